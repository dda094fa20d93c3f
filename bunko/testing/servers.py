"""Start Bunko's own model servers as child processes for tests, on free loopback ports.

``llm_server(model_dir)`` runs ``python -m bunko.serving.llm_transformers`` and yields its base URL
(``http://127.0.0.1:PORT``; the OpenAI routes are under ``/v1``), stopping the process on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(url: str, *, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early, with the process's output, if it dies."""
    deadline = time.monotonic() + timeout_s
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was up:\n{out[-4000:]}")
        try:
            r = httpx.get(url, timeout=2.0)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s (last: {last})")


def stop_process(proc: subprocess.Popen[bytes], *, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; close the captured output."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


@contextlib.contextmanager
def llm_server(
    model_dir: str | Path, *, served_model_name: str | None = None, startup_timeout_s: float = 120.0
) -> Iterator[str]:
    """Run the transformers OpenAI-compatible server on ``model_dir``; yield ``http://127.0.0.1:PORT``."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bunko.serving.llm_transformers",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    if served_model_name:
        cmd += ["--served-model-name", served_model_name]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base}/health", timeout_s=startup_timeout_s, proc=proc)
        yield base
    finally:
        stop_process(proc)


MILVUS_SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "milvus-server.sh"


@contextlib.contextmanager
def milvus_server(data_dir: str | Path, *, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Run Milvus's C++ engine as a gRPC server on a free loopback port; yield ``http://127.0.0.1:PORT``.

    The binary comes from ``scripts/milvus-server.sh build`` (``.venv-milvus/``); without it the
    script exits saying so, and this raises with its words. The server keeps its data in ``data_dir``.
    """
    from pymilvus import MilvusClient

    from bunko.settings import Settings

    script = MILVUS_SERVER_SCRIPT
    # The same setting the embedded store reads (BUNKO_MILVUS_ENGINE_DIR), with the same default.
    venv = Settings(_env_file=None).milvus_engine_dir or script.parents[1] / ".venv-milvus"  # type: ignore[call-arg]
    port = free_port()
    data = Path(data_dir).resolve() / "milvus.db"
    proc = subprocess.Popen(
        ["bash", str(script), "run", str(data), f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "BUNKO_MILVUS_ENGINE_DIR": str(venv)},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"Milvus server exited with {proc.returncode}:\n{out[-4000:]}")
            try:
                client = MilvusClient(uri=uri, timeout=2)
                client.list_collections()
                client.close()
                break
            except Exception as exc:  # any failure here means "not up yet"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Milvus server at {uri} not ready after {startup_timeout_s:.0f} s") from exc
                time.sleep(0.3)
        yield uri
    finally:
        stop_process(proc)


def stop_embedded_engines(under: str | Path) -> int:
    """SIGTERM every embedded Milvus engine supervisor (``bunko.store.milvus_local``) whose data
    directory lies under ``under``; return how many were signalled. Tests call it so the engines
    their data directories started do not wait out their idle time."""
    import signal

    root = str(Path(under).resolve())
    n = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "bunko.store.milvus_local" in args and "supervise" in args:
            data = args[args.index("supervise") + 1]
            if data == root or data.startswith(root + "/"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGTERM)
                    n += 1
    return n
