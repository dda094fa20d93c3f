"""Every failure of the ``bunko`` command is a message and an exit code, never a traceback: the
installed console script, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BUNKO = str(Path(sys.executable).with_name("bunko"))


def _bunko(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BUNKO_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([BUNKO, *args], env={**base, **env}, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=False)


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        (["ask"], {}, 2, "Missing argument"),
        (["ask", "質問", "--bogus"], {}, 2, "No such option: --bogus"),
        (["ask", "質問", "-c", "nope"], {}, 2, "collection 'nope' does not exist"),
        (["status"], {"BUNKO_MAX_PAGES": "abc"}, 2, "BUNKO_MAX_PAGES"),
        (["status"], {"BUNKO_CHUNK_SIZE": "700"}, 2, "BUNKO_CHUNK_SIZE is no longer read"),
        (["status"], {"BUNKO_OCR_ENGINES": '["serve"]'}, 2, "'serve' is no longer an engine"),
        (["status"], {"BUNKO_DATABASE_URL": "postgresql+psycopg://u:pw-not-shown@127.0.0.1:1/x"}, 3,
         "the database is unreachable"),
        (["ingest", "/no/such/folder"], {}, 2, "/no/such/folder does not exist"),
        (["pii", "hide"], {}, 2, "unknown PII policy 'hide': use one of off, flag, redact"),
        (["pii", "redact", "-c", "nope"], {}, 2, "collection 'nope' does not exist"),
    ],
)
def test_cli_failures_are_messages_with_exit_codes(tmp_path, args, env, code, says):
    r = _bunko(tmp_path, *args, **env)
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert says in out
    assert "Traceback" not in out and "pw-not-shown" not in out


def test_an_unexpected_failure_names_its_log_and_keeps_the_traceback_there(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    r = _bunko(tmp_path, "status", BUNKO_DATA_DIR=str(blocker / "inner"))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "unexpected error" in out and "Traceback" not in out
    log = Path(out.split("the details are in ", 1)[1].split(";", 1)[0].strip())
    assert "Traceback" in log.read_text()


def test_the_pii_command_sets_the_default_collections_policy_and_reports_it(tmp_path):
    shown = _bunko(tmp_path, "pii")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "default: pii policy off" in shown.stdout
    changed = _bunko(tmp_path, "pii", "flag")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "default: pii off -> flag; 0 document(s) queued" in changed.stdout
    assert "default: pii policy flag" in _bunko(tmp_path, "pii").stdout  # kept, in a new process
