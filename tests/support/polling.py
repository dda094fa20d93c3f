"""Waiting on something a separate process (or container) does, failing at once if it died."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest


def wait_for(check: Callable[[], Any], *, timeout: float, what: str, died: Callable[[], str | None]) -> Any:
    """Poll ``check`` until it returns something true (a refused connection counts as not yet);
    ``died`` returns why the process under test is gone (its log), or None while it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except httpx.TransportError:
            pass
        if (why := died()) is not None:
            pytest.fail(f"exited while waiting for {what}:\n{why}")
        time.sleep(0.5)
    pytest.fail(f"no {what} within {timeout:.0f} s")
