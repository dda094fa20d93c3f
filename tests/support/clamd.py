"""A real clamd (Debian's clamav-daemon) on loopback with a signature database the test writes.

No public signature database can be fetched here (freshclam needs the network), and none is
needed: clamd loads any ``.hdb`` file of ``md5:size:name`` lines, the format ClamAV's own hash
signatures use. A test signs the exact bytes it will call infected, so clamd's real INSTREAM scan
finds them and passes every other file.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bunko.testing.servers import free_port

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"


def hash_signature(data: bytes, name: str) -> str:
    return f"{hashlib.md5(data).hexdigest()}:{len(data)}:{name}"


@dataclass
class Clamd:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


def start_clamd(root: Path, signatures: list[str]) -> Clamd:
    """clamd in the foreground, its database ``root/db/bunko-test.hdb``; waits for PONG."""
    if not Path(CLAMD).exists():
        raise RuntimeError("clamd is not installed: scripts/system-deps.sh clamav (make setup installs it)")
    db = root / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "bunko-test.hdb").write_text("".join(s + "\n" for s in signatures), encoding="utf-8")
    port = free_port()
    log = root / "clamd.log"
    conf = root / "clamd.conf"
    conf.write_text(
        "\n".join([
            "Foreground yes", f"TCPSocket {port}", "TCPAddr 127.0.0.1", f"DatabaseDirectory {db}",
            f"LogFile {log}", f"PidFile {root / 'clamd.pid'}", f"TemporaryDirectory {root}",
            "StreamMaxLength 100M", "MaxThreads 2",
        ]) + "\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen([CLAMD, "--config-file", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not _pong(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"clamd did not answer PING: {log.read_text() if log.exists() else ''}")
        time.sleep(0.2)
    return Clamd(proc, port, log)
