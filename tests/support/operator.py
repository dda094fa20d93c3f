"""Helpers for the operator tests: the example custom resources, and kopf running the Bunko operator
(the fake cluster fixture, ``cluster``, is in ``tests/integration/conftest.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


@contextlib.contextmanager
def operator_running() -> Iterator[Any]:
    """kopf running ``bunko.operator.main`` cluster-wide (kmock cannot list namespaces)."""
    from kopf.testing import KopfRunner

    with KopfRunner(
        ["run", "-A", "--standalone", "--verbose", "-m", "bunko.operator.main"], timeout=30
    ) as runner:
        yield runner
