"""``bunko users create|list|set-role`` against a real (SQLite) database."""

from __future__ import annotations

from typer.testing import CliRunner

from bunko import auth
from bunko.runtime import Runtime


def test_users_cli(settings_factory, monkeypatch):
    settings = settings_factory()
    monkeypatch.setenv("BUNKO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEW_PW", "cli-password-1")
    from bunko.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["users", "create", "hanako", "--role", "power_user", "--email", "h@example.jp",
                            "--password-env", "NEW_PW"])
    assert r.exit_code == 0, r.output
    assert "hanako" in r.output and "power_user" in r.output
    r = runner.invoke(app, ["users", "create", "hanako", "--password-env", "NEW_PW"])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(app, ["users", "create", "taro", "--role", "root", "--password-env", "NEW_PW"])
    assert r.exit_code == 2 and "unknown role" in r.output
    r = runner.invoke(app, ["users", "set-role", "hanako", "viewer"])
    assert r.exit_code == 0 and "power_user → viewer" in r.output
    r = runner.invoke(app, ["users", "list"])
    assert r.exit_code == 0 and "hanako" in r.output and "viewer" in r.output
    rt = Runtime(settings)
    user, _pair = auth.login(rt, "hanako", "cli-password-1")
    assert user.role == "viewer"


def test_serve_keeps_idle_connections_longer_than_clients_and_proxies(monkeypatch):
    # The client must close an idle connection first: uvicorn's default 5 s raced httpx's 5 s in
    # make e2e (ReadError on a reused connection) and is shorter than ingress-nginx's 60 s.
    import uvicorn

    from bunko.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.delenv("BUNKO_API_START_WORKER", raising=False)  # `serve` sets it; restored after
    r = CliRunner().invoke(app, ["serve", "--port", "8123", "--no-worker"])
    assert r.exit_code == 0, r.output
    assert calls and calls[0]["port"] == 8123
    assert calls[0]["timeout_keep_alive"] > 60
