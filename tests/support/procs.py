"""Launching real subprocesses in tests (workers to SIGKILL, concurrent claimers, CLIs).

``Processes`` owns every process it starts and kills what is left at teardown (the ``procs``
fixture in ``tests/conftest.py`` gives one per test). Output goes to a log file per process, so a
failing assertion can show what the process said.

    def test_x(procs, settings_factory, db_url):
        settings = settings_factory(database_url=db_url, job_lease_s=1)
        w = procs.start_python_module("tests.support.sleepy_worker", env=settings_env(settings))
        w.wait_for(lambda: marker.exists(), timeout=20, what="the worker to start the job")
        w.kill()  # SIGKILL
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

REPO_ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Any) -> dict[str, str]:
    """``BUNKO_*`` environment variables that make a child process build the same ``Settings``."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | dict):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"BUNKO_{name.upper()}"] = text
    return env


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no lease is released — a crash as the OS sees it."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"{self.argv} still running after {timeout}s:\n{self.output()[-3000:]}"
            ) from e

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 30, what: str = "condition",
                 interval: float = 0.05) -> None:
        """Poll ``predicate``; fail with the process's output if it does not hold in time or the
        process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.alive():
                if predicate():
                    return
                raise AssertionError(f"process exited ({self.popen.returncode}) before {what}:\n"
                                     f"{self.output()[-3000:]}")
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.output()[-3000:]}")


@dataclass
class Processes:
    log_dir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, name: str | None = None) -> Proc:
        """Start ``argv`` with the current environment minus ``BUNKO_*``, plus ``env``."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        # Never put the repository root on PYTHONPATH: its `operator/` folder would shadow the
        # standard library's `operator` during interpreter start-up. `python -m tests.support.x`
        # with cwd = the repository root finds the test helpers; `bunko` is installed (editable).
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name or Path(argv[0]).name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(list(argv), env=full_env, cwd=cwd or REPO_ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        proc = Proc(popen, log_path, list(argv))
        self.started.append(proc)
        return proc

    def start_python_module(self, module: str, *args: str, env: Mapping[str, str] | None = None,
                            name: str | None = None) -> Proc:
        return self.start([sys.executable, "-m", module, *args], env=env,
                          name=name or module.rsplit(".", 1)[-1])

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.alive():
                proc.kill()
