"""A configuration error names what is wrong and never prints a secret value (finding 15.2: the
pydantic error echoed the bootstrap admin password, the database URL's password, the S3 secret
key and the LLM API key on stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback

import pytest

from bunko.errors import ConfigError
from bunko.settings import Settings

SECRETS = {
    "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": "admin-pw-7f3a9c1e",
    "BUNKO_DATABASE_URL": "postgresql+psycopg://bunko:db-pw-52b8e0d4@db.internal/bunko",
    "BUNKO_S3_SECRET_KEY": "s3-secret-0c9d71aa",
    "BUNKO_LLM_API_KEY": "sk-llm-4e2f8b6d",
}
VALUES = ("admin-pw-7f3a9c1e", "db-pw-52b8e0d4", "s3-secret-0c9d71aa", "sk-llm-4e2f8b6d")


def test_the_error_and_its_traceback_hold_no_secret(monkeypatch):
    for key in list(os.environ):
        if key.startswith("BUNKO_"):
            monkeypatch.delenv(key)
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BUNKO_MODE", "production")  # without BUNKO_JWT_SECRET: refused
    with pytest.raises(ConfigError) as info:
        Settings(_env_file=None)
    printed = "".join(traceback.format_exception(info.value))
    assert "BUNKO_JWT_SECRET must be set in production mode" in printed
    for v in VALUES:
        assert v not in printed and v not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_cli_says_what_is_wrong_without_the_values(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    env.update(SECRETS, BUNKO_MODE="production", BUNKO_DATA_DIR=str(tmp_path / "data"))
    bunko = os.path.join(os.path.dirname(sys.executable), "bunko")
    out = subprocess.run([bunko, "status"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "BUNKO_JWT_SECRET" in out.stderr and "Traceback" not in out.stderr + out.stdout
    for v in VALUES:
        assert v not in out.stderr and v not in out.stdout
