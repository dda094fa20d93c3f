"""Hostile PDFs fail their own document inside the sandbox; the calling process lives on."""

import os
import resource
import time

import pytest

from bunko import samples as S
from bunko.errors import CorruptPdf, ExtractionTimeout, UnsafeDocument
from bunko.ingest.extract import extract_document
from bunko.ingest.pdf import SandboxedPdf
from bunko.ingest.sandbox import Sandbox
from bunko.settings import Settings
from tests.support.sandbox_calls import allocate as _allocate
from tests.support.sandbox_calls import allocates_after, fails_after, page_item, slow_items, stalls_after
from tests.support.sandbox_calls import pid as _pid
from tests.support.sandbox_calls import sleep as _sleep

SANDBOX_MB = 512


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return S.make_invalid_samples(tmp_path_factory.mktemp("invalid"))


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None, sandbox_memory_mb=SANDBOX_MB, sandbox_page_timeout_s=30)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def test_decompression_bomb_is_unsafe_and_the_parent_stays_small(bad, samples, settings):
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    rss_before = _rss_kib("VmRSS")
    started = time.monotonic()
    with pytest.raises((UnsafeDocument, ExtractionTimeout)) as info:
        extract_document(bad["bomb"], sandbox=settings.sandbox, ocr=settings.ocr, engines=[])
    assert time.monotonic() - started < 40
    assert "decompression bomb" in info.value.message or "took longer" in info.value.message
    # The 4 GiB stream was inflated (and failed) in the child only: this process's peak and current
    # RSS grew by far less than even the child's limit (other tests may have loaded OCR models
    # into this process before, so growth is what is measured, not the absolute size).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024
    assert _rss_kib("VmRSS") - rss_before < 64 * 1024
    # ... and it goes on to extract the next document normally.
    pages = extract_document(samples["born_digital.pdf"], sandbox=settings.sandbox, ocr=settings.ocr, engines=[])
    assert S.BORN_DIGITAL_SENTENCES[0] in pages[0].markdown


def test_absurd_page_size_is_refused_by_the_pixel_cap(bad, settings):
    with SandboxedPdf(bad["huge_page"], settings.sandbox) as pdf:
        assert pdf.info.page_count == 1
        with pytest.raises(UnsafeDocument) as info:
            pdf.render(1, 300)
    assert "200000×200000 pt" in info.value.message
    assert "BUNKO_MAX_RENDER_PIXELS" in info.value.message


def test_a_huge_image_renders_within_the_cap_or_fails_safely(bad, settings):
    # pdfium decodes images line by line and downsamples: the 3.6 GB image must either render to a
    # capped page image or fail as unsafe/timeout, never take the parent down.
    with SandboxedPdf(bad["image_bomb"], settings.sandbox) as pdf:
        try:
            page = pdf.render(1, 300)
        except (UnsafeDocument, ExtractionTimeout):
            return
    assert page.image.width * page.image.height <= settings.max_render_pixels


def test_big_pages_are_rendered_at_a_lower_dpi_to_fit_the_cap(samples):
    small_cap = Settings(_env_file=None, max_render_pixels=2_000_000)
    with SandboxedPdf(samples["born_digital.pdf"], small_cap.sandbox) as pdf:
        page = pdf.render(1, 300)
    assert page.dpi < 300
    assert page.image.width * page.image.height <= 2_000_000


def test_cyclic_page_tree_fails_as_corrupt_not_a_hang(bad, settings):
    with pytest.raises(CorruptPdf):
        extract_document(bad["page_tree_cycle"], sandbox=settings.sandbox, ocr=settings.ocr, engines=[])


# --- the sandbox itself ------------------------------------------------------------------------


def test_a_call_past_its_deadline_is_killed_and_reported():
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=3) as box:
        child = box.call(_pid, what="pid")
        started = time.monotonic()
        with pytest.raises(ExtractionTimeout) as info:
            box.call(_sleep, 60, what="rendering page 7")
        assert time.monotonic() - started < 10
        assert "rendering page 7" in info.value.message
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
        # The next call gets a fresh child.
        assert box.call(_sleep, 0, what="again") == "woke"


def test_an_allocation_past_the_memory_cap_is_unsafe_and_the_child_is_reused_per_document():
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=30) as box:
        first = box.call(_pid, what="pid")
        assert box.call(_pid, what="pid") == first  # one child serves many calls
        assert box.call(_allocate, 64, what="small") == 64 * 1024 * 1024
        with pytest.raises(UnsafeDocument) as info:
            box.call(_allocate, 2 * SANDBOX_MB, what="opening the PDF")
        assert f"more than {SANDBOX_MB} MB" in info.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024


def test_a_child_killed_between_pages_is_replaced_and_reopens_the_document(samples, settings):
    import signal

    with SandboxedPdf(samples["born_digital.pdf"], settings.sandbox) as pdf:
        first = pdf.layer(1)
        os.kill(pdf._box.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert pdf.layer(1).markdown == first.markdown


# --- streamed calls (a batch of pages per request) ---------------------------------------------


def test_a_stream_has_a_deadline_per_item_not_per_batch():
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=2) as box:
        box.call(_pid, what="warm-up")  # the child's start and imports are not part of the measure
        started = time.monotonic()
        # 3 × 0.8 s: longer than one deadline in all, each item well within its own.
        assert list(box.stream(slow_items, 3, 0.8, what=page_item)) == [0, 1, 2]
        assert time.monotonic() - started > 2


def test_a_stalled_item_is_killed_named_and_the_items_before_it_arrive():
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=2) as box:
        child = box.call(_pid, what="pid")
        received = []
        started = time.monotonic()
        with pytest.raises(ExtractionTimeout) as info:
            for item in box.stream(stalls_after, 2, what=page_item):
                received.append(item)
        assert time.monotonic() - started < 10
        assert received == [0, 1]
        assert "reading the text of page 3 took longer than 2 s" in info.value.message
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
        assert box.call(_sleep, 0, what="again") == "woke"  # a fresh child serves the next call


def test_an_item_past_the_memory_cap_is_unsafe_and_the_parent_stays_small():
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=30) as box:
        with pytest.raises(UnsafeDocument) as info:
            list(box.stream(allocates_after, 2, 2 * SANDBOX_MB, what=page_item))
        assert "reading the text of page 3 failed" in info.value.message
        assert f"more than {SANDBOX_MB} MB" in info.value.message
        assert list(box.stream(slow_items, 2, 0, what=page_item)) == [0, 1]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 64 * 1024


def test_a_stream_left_early_does_not_answer_the_next_call():
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=30) as box:
        child = box.call(_pid, what="pid")
        items = box.stream(slow_items, 50, 0.01, what=page_item)
        assert next(items) == 0
        items.close()  # 49 items unread: the child is replaced rather than left out of step
        assert box.call(_pid, what="pid") != child
        assert box.call(_sleep, 0, what="after") == "woke"


def test_batched_layers_equal_page_by_page_layers(samples, settings):
    with SandboxedPdf(samples["born_digital.pdf"], settings.sandbox) as pdf:
        n = pdf.info.page_count
        one_by_one = [pdf.layer(i) for i in range(1, n + 1)]
        batched = pdf.layers(1, n)
    assert [p.page_no for p in batched] == list(range(1, n + 1))
    assert batched == one_by_one
    assert all(p.blocks and p.markdown for p in batched)


def test_an_error_inside_a_stream_is_raised_and_the_child_stays_in_step():
    with Sandbox(memory_mb=SANDBOX_MB, timeout_s=30) as box:
        child = box.call(_pid, what="pid")
        received = []
        with pytest.raises(CorruptPdf) as info:
            for item in box.stream(fails_after, 2, what=page_item):
                received.append(item)
        assert received == [0, 1] and "page 3" in info.value.message
        # The child finished that request by reporting the error: it is kept, and answers in step.
        assert box.call(_pid, what="pid") == child
        assert list(box.stream(slow_items, 2, 0, what=page_item)) == [0, 1]
