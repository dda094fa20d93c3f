"""The embedded vector store: Milvus's C++ engine as a loopback server for one data directory.

Milvus Lite 3.x (a pure-Python engine inside the calling process) cannot be shared: each process
that opens the file gets its own engine, a new process finds every collection ``released``, and a
hybrid search over 100k chunks took 585 ms (p95) against 12.7 ms on the C++ engine. milvus-lite
2.5.1 ships that C++ engine (segcore/knowhere) as one ``milvus`` binary; Bunko runs it here as a
gRPC server on 127.0.0.1 that every local Bunko process shares:

* the first process that needs vectors starts a small supervisor (``python -m
  bunko.store.milvus_local supervise ...``, its own session, so it outlives the process that
  started it); the supervisor starts the engine and writes ``server.json`` (port, pids);
* the supervisor holds an exclusive ``flock`` on ``server.lock`` for its whole life: a lock that can
  be taken means no server, whatever ``server.json`` says (a ``kill -9`` leaves no stale owner);
* ``start.lock`` serialises starting, connecting and stopping, so a process never connects to a
  server that is about to stop;
* the supervisor stops the engine when no client connection has been open for ``idle_s`` seconds
  (it counts established TCP connections to its port in ``/proc/net/tcp``), and the engine dies
  with its supervisor (``PR_SET_PDEATHSIG``), so no orphan keeps the data file open.

The engine itself does not lock its data file (two engines on one file both start), so the locks
above are what keep one engine per data directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bunko.errors import StoreUnavailable

# Written by scripts/milvus-server.sh build; holds that script's PIN (the one place it is set).
ENGINE_MARKER = ".bunko-milvus"
STATE_FILE = "server.json"
_START_TIMEOUT_S = 60.0


def engine_binary(engine_dir: Path) -> Path | None:
    """The ``milvus`` binary inside an engine folder made by ``scripts/milvus-server.sh build``."""
    if not (engine_dir / ENGINE_MARKER).is_file():
        return None
    found = sorted(engine_dir.glob("lib/python3*/site-packages/milvus_lite/lib/milvus"))
    return found[0] if found and os.access(found[0], os.X_OK) else None


def default_engine_dirs() -> list[Path]:
    """Where ``make setup`` puts the engine: ``.venv-milvus`` beside the project and beside the venv."""
    project = Path(__file__).resolve().parents[2]
    return [project / ".venv-milvus", Path(sys.prefix).resolve().parent / ".venv-milvus"]


def find_engine(engine_dir: Path | None) -> Path | None:
    for d in [engine_dir] if engine_dir is not None else default_engine_dirs():
        binary = engine_binary(d)
        if binary is not None:
            return binary
    return None


def _free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free loopback port")


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path``; yields False when ``blocking`` is off and it is held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def established_connections(port: int) -> int:
    """How many TCP connections to ``port`` on this host are established (server side)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 3 and cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


@dataclass(frozen=True)
class LocalMilvus:
    """The engine of one data directory: ``root`` holds its data file, state, locks and log."""

    root: Path
    binary: Path
    idle_s: float = 300.0

    def _read_state(self) -> dict[str, int] | None:
        try:
            state = json.loads((self.root / STATE_FILE).read_text())
            return {k: int(v) for k, v in state.items()}
        except (OSError, ValueError):
            return None

    def running_port(self) -> int | None:
        """The port of this directory's engine, or None when no supervisor holds ``server.lock``."""
        with _flock(self.root / "server.lock", blocking=False) as free:
            if free:
                return None
        state = self._read_state()
        return state["port"] if state and _port_accepts(state["port"]) else None

    @contextlib.contextmanager
    def connect(self) -> Iterator[str]:
        """Yield the engine's URI, starting it if needed. Open the client inside the block: the
        start lock is held until then, so the idle check cannot stop the engine in between."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _flock(self.root / "start.lock"):
            port = self.running_port()
            if port is None:
                port = self._start()
            yield f"http://127.0.0.1:{port}"

    def _start(self) -> int:
        previous = self._read_state()
        port = _free_port(previous["port"] if previous else 0)
        (self.root / STATE_FILE).unlink(missing_ok=True)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - handed to the child
        os.chmod(self.root / "server.log", 0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "bunko.store.milvus_local", "supervise", str(self.root),
                 str(self.binary), str(port), str(self.idle_s)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.root,
            )
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            state = self._read_state()
            if state and state.get("port") == port and _port_accepts(port):
                return port
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = (self.root / "server.log").read_text(errors="replace")[-1500:]
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise StoreUnavailable(
            f"the embedded Milvus engine in {self.root} did not start (log: {self.root / 'server.log'}). "
            f"Last lines: {tail.strip()[-500:] or 'none'}",
            detail={"data_dir": str(self.root)},
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop this directory's engine now (tests, `bunko` maintenance commands)."""
        state = self._read_state()
        if state is None or self.running_port() is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(state["supervisor_pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.running_port() is not None:
            time.sleep(0.05)


# --- the supervisor (its own process) ------------------------------------------------------------


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def supervise(root: Path, binary: Path, port: int, idle_s: float) -> int:
    os.umask(0o077)  # the engine's files hold chunk text: owner only
    with _flock(root / "server.lock", blocking=False) as mine:
        if not mine:
            return 0  # another supervisor runs this directory's engine
        env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
        engine = subprocess.Popen(
            [str(binary), str(root / "milvus.db"), f"127.0.0.1:{port}", "ERROR"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        stopping = False

        def _stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _port_accepts(port):
            if engine.poll() is not None or time.monotonic() > deadline:
                engine.kill()
                return 1
            time.sleep(0.02)
        tmp = root / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"port": port, "supervisor_pid": os.getpid(), "engine_pid": engine.pid}))
        os.chmod(tmp, 0o600)
        tmp.replace(root / STATE_FILE)
        idle_since = time.monotonic()
        while not stopping and engine.poll() is None:
            time.sleep(1.0)
            if established_connections(port):
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_s:
                with _flock(root / "start.lock"):
                    # Re-checked under the start lock: a process may have just connected.
                    if established_connections(port) == 0:
                        stopping = True
                        (root / STATE_FILE).unlink(missing_ok=True)
                        _terminate(engine)
                        return 0
                idle_since = time.monotonic()
        (root / STATE_FILE).unlink(missing_ok=True)
        _terminate(engine)
        return 0 if stopping else 1


def _terminate(engine: subprocess.Popen[bytes]) -> None:
    engine.terminate()
    try:
        engine.wait(timeout=20)
    except subprocess.TimeoutExpired:
        engine.kill()
        engine.wait()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "supervise":
        sys.exit(supervise(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
    sys.exit("usage: python -m bunko.store.milvus_local supervise ROOT BINARY PORT IDLE_S")
