"""Run PDF parsing and rendering in a child process with a memory cap and a wall-clock timeout.

Hostile PDFs exist: a FlateDecode stream that inflates to gigabytes, an image of 60 000² pixels, a
content stream that loops. pdfium runs in the same address space as its caller, so it runs in a
child: ``RLIMIT_AS`` bounds its memory (an allocation past it fails, and pdfium then either reports
the failure or dies), and every call has a deadline after which the child is killed. Either way
the *document* fails with :class:`UnsafeDocument` or :class:`ExtractionTimeout`; the caller (the
worker, the API) lives on.

One child serves one document for all its pages (per-call timeouts), so a page costs a socket
round trip (~0.1 ms), not a process start. :meth:`Sandbox.stream` runs a generator in the child and
sends each item as soon as it is made, each under its own deadline: a batch of pages costs one
request, yet every page keeps its per-page timeout and the child never holds a batch in memory.
The child is a fresh interpreter (``python -m bunko.ingest.sandbox``), not a multiprocessing
child: it never forks a parent that holds threads (ONNX Runtime, Ray, uvicorn), and it never
re-imports the caller's ``__main__`` (which spawn/forkserver children do, breaking any script
without a main guard).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import resource
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

from bunko.errors import BunkoError, ExtractionTimeout, UnsafeDocument

T = TypeVar("T")


# A fresh interpreter importing pypdfium2 takes ~0.2 s idle; seconds on a loaded machine.
STARTUP_TIMEOUT_S = 60.0


class ChildError(Exception):
    """An unexpected error inside the child, carried back as text (its type may not unpickle)."""


class SandboxFailed(BunkoError):
    """The sandbox process itself failed (not the document's fault); the job is retried."""

    code = "sandbox_failed"
    http_status = 500


def _child_main(conn: multiprocessing.connection.Connection, memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A crash past the limit must not leave a multi-GB core file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    conn.send("ready")
    # The caller's import path, set only now: on the command line it could shadow the standard
    # library at start-up (the repository's operator/ folder versus Python's operator module).
    sys.path[:] = conn.recv()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            return
        except Exception as e:  # the call names a function this interpreter cannot import
            conn.send(("error", ChildError(f"cannot load the call: {type(e).__name__}: {e}")))
            continue
        if msg is None:
            return
        fn, args, streamed = msg
        try:
            if streamed:
                for item in fn(*args):
                    conn.send(("item", item))
                result = None
            else:
                result = fn(*args)
        except MemoryError:
            with contextlib.suppress(BaseException):
                conn.send(("memory", None))
            return
        except BunkoError as e:
            conn.send(("error", type(e)(e.message)))
            continue
        except Exception as e:
            conn.send(("error", ChildError(f"{type(e).__name__}: {e}")))
            continue
        try:
            conn.send(("ok", result))
        except MemoryError:
            with contextlib.suppress(BaseException):
                conn.send(("memory", None))
            return


class Sandbox:
    """A child process that runs module-level functions for the caller, under limits.

    ``what`` in :meth:`call` names the operation for error messages ("render page 3").
    Use as a context manager; the child is started on the first call and killed on exit.
    """

    def __init__(self, *, memory_mb: int, timeout_s: float) -> None:
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def ensure_started(self) -> int:
        """Start the child if none is alive; returns its pid (a new pid means a fresh child)."""
        self._start()
        assert self._proc is not None
        return int(self._proc.pid)

    def _start(self) -> multiprocessing.connection.Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._kill()
        parent_sock, child_sock = socket.socketpair()
        self._stderr = tempfile.TemporaryFile(prefix="bunko-sandbox-")  # noqa: SIM115 - lives as long as the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "bunko.ingest.sandbox", str(child_sock.fileno()), str(self.memory_mb)],
                pass_fds=[child_sock.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        finally:
            child_sock.close()
        self._proc, self._conn = proc, multiprocessing.connection.Connection(parent_sock.detach())
        # Interpreter start-up is not the document's time: wait for the child's hello on its own
        # deadline, so the per-call limits measure only the work on the PDF.
        try:
            hello = self._conn.recv() if self._conn.poll(STARTUP_TIMEOUT_S) else None
        except (EOFError, OSError):
            hello = None
        if hello != "ready":
            err = self._stderr_tail()
            code = self._kill()
            raise SandboxFailed(f"the PDF sandbox process did not start (exit code {code}): {err[-500:]}")
        self._conn.send(list(sys.path))
        return self._conn

    def call(self, fn: Callable[..., T], *args: Any, what: str, timeout_s: float | None = None) -> T:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        self._send(fn, args, streamed=False)
        status, payload = self._receive(what, timeout)
        if status == "error":
            raise payload
        if status != "ok":
            self._kill()  # a stray "item" means the child and this side disagree: start afresh
            raise SandboxFailed(f"the PDF sandbox answered {status!r} to a plain call while {what}")
        return payload  # type: ignore[no-any-return]

    def stream(
        self,
        fn: Callable[..., Iterator[T]],
        *args: Any,
        what: Callable[[int], str],
        timeout_s: float | None = None,
    ) -> Iterator[T]:
        """Run the generator ``fn(*args)`` in the child, yielding its items as they arrive.

        Each item has its own deadline (``timeout_s``, else the sandbox's): a stream of pages keeps
        the per-page timeout. ``what(i)`` names item ``i`` (0-based) for error messages. A stream
        left before its end kills the child (its unread items would answer the next call); the next
        call starts a fresh one.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        self._send(fn, args, streamed=True)
        finished = False
        index = 0
        try:
            while True:
                status, payload = self._receive(what(index), timeout)
                if status != "item":
                    finished = True  # the child is done with this request, and waits for the next
                    if status == "error":
                        raise payload
                    return
                yield payload
                index += 1
        finally:
            if not finished:
                self._kill()

    def _send(self, fn: Callable[..., Any], args: tuple[Any, ...], *, streamed: bool) -> None:
        conn = self._start()
        # A child that died before reading this is found (and reported) by _receive.
        with contextlib.suppress(BrokenPipeError, EOFError, OSError):
            conn.send((fn, args, streamed))

    def _receive(self, what: str, timeout: float) -> tuple[str, Any]:
        """The child's next answer: ``("ok", result)``, ``("item", item)`` or ``("error", exception)``.

        A timeout, a death or an exhausted memory cap kill the child and raise here."""
        conn = self._conn
        if conn is None:  # the send found no child at all
            raise SandboxFailed(f"the PDF sandbox process is gone while {what}")
        try:
            ready = conn.poll(timeout)
        except (BrokenPipeError, EOFError, OSError):
            ready = True  # the child died; recv below says so
        if not ready:
            self._kill()
            raise ExtractionTimeout(
                f"{what} took longer than {timeout:g} s and was stopped; the PDF may be pathological "
                "(a huge or looping content stream). Simplify the file (e.g. print it to a new PDF) or "
                "raise BUNKO_SANDBOX_PAGE_TIMEOUT_S."
            )
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):
            assert self._proc is not None
            # Let a child that is already dying report its own exit code before any kill.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(2)
            err = self._stderr_tail()
            code = self._kill()
            if code is not None and code > 0 and "MemoryError" not in err:
                # An ordinary exit with an error before any answer: the interpreter could not start
                # (a broken install, say). Not the document's fault, so not a verdict on it.
                raise SandboxFailed(
                    f"the PDF sandbox process exited with code {code} while {what}: {err[-500:]}"
                ) from None
            raise UnsafeDocument(self._memory_message(what, f"the parser died (exit code {code})")) from None
        if status == "memory":
            self._kill()
            raise UnsafeDocument(self._memory_message(what, "it ran out of memory"))
        return status, payload

    def _memory_message(self, what: str, how: str) -> str:
        return (
            f"{what} failed: {how}. The PDF needs more than {self.memory_mb} MB to open/render; it may "
            "be a decompression bomb or otherwise hostile. If the file is genuine, raise "
            "BUNKO_SANDBOX_MEMORY_MB or re-save it with a PDF tool."
        )

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError):
            self._stderr.seek(0)
            return self._stderr.read()[-4000:].decode(errors="replace")
        return ""

    def _kill(self) -> int | None:
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        stderr, self._stderr = self._stderr, None
        if conn is not None:
            conn.close()
        if stderr is not None:
            stderr.close()
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        return proc.returncode

    def close(self) -> None:
        """Ask the child to exit; kill it if it does not."""
        if self._proc is not None and self._conn is not None and self._proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, EOFError, OSError):
                self._conn.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(2)
        self._kill()


def run_sandboxed(
    fn: Callable[..., T], *args: Any, memory_mb: int, timeout_s: float, what: str
) -> T:
    """One call in a fresh child, which is gone afterwards."""
    with Sandbox(memory_mb=memory_mb, timeout_s=timeout_s) as box:
        return box.call(fn, *args, what=what)


if __name__ == "__main__":
    # The child: argv = [fd of its end of the socket pair, memory cap in MB].
    import bunko.ingest.pdf_child  # noqa: F401  (loaded before the memory cap applies)

    _child_main(multiprocessing.connection.Connection(int(sys.argv[1])), int(sys.argv[2]))
    # Nothing here needs an orderly interpreter shutdown (which, closing pdfium and tearing down
    # modules, takes longer than many pages): the caller waits for this exit.
    sys.stderr.flush()
    os._exit(0)
