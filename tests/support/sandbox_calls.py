"""Functions for the sandbox tests to run in the child.

They live in a module of their own, importing nothing heavy: the child imports the module a call
names, and a test module (pydantic, numpy, the whole ingest package) takes seconds to import on a
loaded machine, inside the deadline the test is measuring.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from bunko.errors import CorruptPdf


def pid() -> int:
    return os.getpid()


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def allocate(mb: int) -> int:
    return len(bytearray(mb * 1024 * 1024))


def slow_items(n: int, seconds: float) -> Iterator[int]:
    for i in range(n):
        time.sleep(seconds)
        yield i


def stalls_after(n: int) -> Iterator[int]:
    yield from range(n)
    time.sleep(60)
    yield n


def allocates_after(n: int, mb: int) -> Iterator[int]:
    yield from range(n)
    yield len(bytearray(mb * 1024 * 1024))


def fails_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise CorruptPdf(f"page {n + 1} of the PDF cannot be loaded")


def page_item(i: int) -> str:
    return f"reading the text of page {i + 1}"
