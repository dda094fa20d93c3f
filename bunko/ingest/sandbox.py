"""Run PDF parsing and rendering in a child process with a memory cap and a wall-clock timeout.

Hostile PDFs exist: a FlateDecode stream that inflates to gigabytes, an image of 60 000² pixels, a
content stream that loops. pdfium runs in the same address space as its caller, so it runs in a
child: ``RLIMIT_AS`` bounds its memory (an allocation past it fails, and pdfium then either reports
the failure or dies), and every call has a deadline after which the child is killed. Either way
the *document* fails with :class:`UnsafeDocument` or :class:`ExtractionTimeout`; the caller (the
worker, the API) lives on.

One child serves one document for all its pages (per-call timeouts), so a page costs a pipe round
trip (~0.1 ms), not a process start. Children come from a ``forkserver`` that preloads pypdfium2:
forking from it is fast, and never forks a parent that holds threads (ONNX Runtime, Ray, uvicorn).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import resource
from collections.abc import Callable
from functools import lru_cache
from multiprocessing.context import BaseContext
from types import TracebackType
from typing import Any, TypeVar

from bunko.errors import BunkoError, ExtractionTimeout, UnsafeDocument

T = TypeVar("T")

PRELOAD = ["bunko.ingest.pdf"]


class ChildError(Exception):
    """An unexpected error inside the child, carried back as text (its type may not unpickle)."""


@lru_cache(maxsize=1)
def _context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Only takes effect if no forkserver runs yet in this process; otherwise children import
        # the modules on first use, which is slower but equally correct.
        ctx.set_forkserver_preload(PRELOAD)  # type: ignore[attr-defined]
        return ctx
    return multiprocessing.get_context("spawn")


def _child_main(conn: multiprocessing.connection.Connection, memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # A crash past the limit must not leave a multi-GB core file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, args = msg
        try:
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
        self._proc: Any = None
        self._conn: multiprocessing.connection.Connection | None = None

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
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        self._kill()
        ctx = _context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(  # type: ignore[attr-defined]
            target=_child_main, args=(child_conn, self.memory_mb), daemon=True, name="bunko-pdf-sandbox"
        )
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        return parent_conn

    def call(self, fn: Callable[..., T], *args: Any, what: str, timeout_s: float | None = None) -> T:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        conn = self._start()
        try:
            conn.send((fn, args))
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
            code = self._kill()
            raise UnsafeDocument(self._memory_message(what, f"the parser died (exit code {code})")) from None
        if status == "ok":
            return payload  # type: ignore[no-any-return]
        if status == "memory":
            self._kill()
            raise UnsafeDocument(self._memory_message(what, "it ran out of memory"))
        raise payload

    def _memory_message(self, what: str, how: str) -> str:
        return (
            f"{what} failed: {how}. The PDF needs more than {self.memory_mb} MB to open/render; it may "
            "be a decompression bomb or otherwise hostile. If the file is genuine, raise "
            "BUNKO_SANDBOX_MEMORY_MB or re-save it with a PDF tool."
        )

    def _kill(self) -> int | None:
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        code: int | None = proc.exitcode
        proc.close()
        return code

    def close(self) -> None:
        """Ask the child to exit; kill it if it does not."""
        if self._proc is not None and self._conn is not None and self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, EOFError, OSError):
                self._conn.send(None)
            self._proc.join(2)
        self._kill()


def run_sandboxed(
    fn: Callable[..., T], *args: Any, memory_mb: int, timeout_s: float, what: str
) -> T:
    """One call in a fresh child, which is gone afterwards."""
    with Sandbox(memory_mb=memory_mb, timeout_s=timeout_s) as box:
        return box.call(fn, *args, what=what)
