"""Fixtures for integration tests that need a whole Bunko runtime."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bunko.testing.servers import free_port, stop_process


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus Lite gRPC server as its own process, so several processes (workers, the test) can
    share one vector store as they would share a Milvus cluster. Yields its URI."""
    from pymilvus import MilvusClient

    data = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(data / "db"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"milvus-lite server exited with {proc.returncode}; see {data / 'server.log'}")
        try:
            MilvusClient(uri=uri, timeout=2).list_collections()
            break
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"milvus-lite server did not answer on {uri} within 60 s: {last}")
    yield uri
    stop_process(proc)
    log.close()


@pytest.fixture
def runtime_factory(settings_factory: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Builds a Runtime from settings overrides; closes what it opened at the end of the test."""
    from bunko.runtime import Runtime

    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        rt = Runtime(settings_factory(**overrides))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        close = getattr(rt, "close", None)
        if close is not None:
            close()
