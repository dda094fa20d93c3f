"""Page images (finding 15.5): a bounded number of render sandboxes per process, 503 "busy" beyond
that, and a page that failed to render is remembered instead of starting a sandbox on every
request (a decompression bomb asked for repeatedly took 1.5 → 6.7 GB)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from PIL import Image

from bunko.errors import Busy, InvalidDocument, UnsafeDocument
from bunko.ingest import page_view
from bunko.store.db import Document


class _Rendered:
    def __init__(self) -> None:
        self.image = Image.new("L", (10, 10), 255)


class _FakeSandbox:
    """Stands in for SandboxedPdf (starting real sandboxes is what is being bounded)."""

    live = 0
    most = 0
    started = 0
    lock = threading.Lock()
    release = threading.Event()
    fail = False

    def __init__(self, path: Any, limits: Any) -> None:
        pass

    def __enter__(self) -> _FakeSandbox:
        with self.lock:
            type(self).started += 1
            type(self).live += 1
            type(self).most = max(type(self).most, type(self).live)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self.lock:
            type(self).live -= 1

    def render(self, page_no: int, dpi: int) -> _Rendered:
        if type(self).fail:
            raise UnsafeDocument("the PDF exceeded the sandbox's memory limit (a decompression bomb?)")
        type(self).release.wait(10)
        return _Rendered()


@pytest.fixture
def world(runtime_factory, monkeypatch):
    rt = runtime_factory()
    monkeypatch.setattr(page_view, "SandboxedPdf", _FakeSandbox)
    monkeypatch.setattr(page_view, "RENDER_WAIT_S", 0.5)
    for attr, value in (("live", 0), ("most", 0), ("started", 0), ("fail", False)):
        monkeypatch.setattr(_FakeSandbox, attr, value)
    monkeypatch.setattr(_FakeSandbox, "release", threading.Event())
    rt.objects.put("raw-pdfs/c/bomb.pdf", b"%PDF-1.7 not really")
    doc = Document(id="bomb", collection_id="c", title="t", filename="bomb.pdf", sha256="0" * 64,
                   size_bytes=20, raw_key="raw-pdfs/c/bomb.pdf", page_count=50)
    return rt, doc


def test_at_most_a_few_renders_run_at_once_and_the_rest_hear_busy(world):
    rt, doc = world
    results: list[Any] = []

    def ask(page: int) -> None:
        try:
            results.append(page_view.page_image_png(rt, doc, page))
        except Busy as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask, args=(p,)) for p in range(1, 9)]
    for t in threads:
        t.start()
    # The renders that got a turn hold it until released: everyone else must give up meanwhile.
    deadline = time.monotonic() + 30
    while len(results) < 8 - page_view.RENDER_CONCURRENCY and time.monotonic() < deadline:
        time.sleep(0.05)
    _FakeSandbox.release.set()
    for t in threads:
        t.join(10)
    assert _FakeSandbox.most == page_view.RENDER_CONCURRENCY
    busy = [r for r in results if isinstance(r, Busy)]
    assert len(busy) == 8 - page_view.RENDER_CONCURRENCY and busy[0].http_status == 503
    assert sum(isinstance(r, bytes) for r in results) == page_view.RENDER_CONCURRENCY


def test_a_page_that_failed_to_render_is_not_rendered_again(world):
    rt, doc = world
    _FakeSandbox.fail = True
    with pytest.raises(UnsafeDocument):
        page_view.page_image_png(rt, doc, 3)
    for _ in range(5):
        with pytest.raises(InvalidDocument) as again:
            page_view.page_image_png(rt, doc, 3)
        assert again.value.code == "unsafe" and "memory limit" in again.value.message
    assert _FakeSandbox.started == 1
