"""Pages without a usable text layer are OCR'd: rapidocr for horizontal text, Tesseract jpn_vert for
vertical text, with retry, fallback and a cache that makes a re-run free. OCR costs seconds a page,
so each sample is OCR'd once per module and shared."""

import difflib
import re

import pytest

from bunko import samples as S
from bunko.domain import OcrBlock
from bunko.errors import OcrFailed
from bunko.ingest.extract import extract_document, ocr_page
from bunko.ingest.pdf import SandboxedPdf
from bunko.models.base import OcrResult
from bunko.models.ocr import load_ocr_engines
from bunko.settings import Settings
from bunko.store import keys

pytestmark = pytest.mark.slow


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _similarity(expected: str, got: str) -> float:
    return difflib.SequenceMatcher(None, _squash(expected), _squash(got), autojunk=False).ratio()


def _best_window(expected: str, text: str) -> float:
    """Best similarity of ``expected`` against any same-length window of ``text`` (OCR noise)."""
    e, t = _squash(expected), _squash(text)
    if e in t:
        return 1.0
    n = len(e)
    return max((_similarity(e, t[i : i + n]) for i in range(max(1, len(t) - n + 1))), default=0.0)


class DictCache:
    """The OcrCache protocol over a dict (the object store satisfies the same protocol)."""

    def __init__(self):
        self.data, self.puts = {}, []

    def get(self, key):
        return self.data.get(key)

    def put(self, key, data, content_type):
        assert content_type == "application/json"
        self.data[key] = data
        self.puts.append(key)


class Counting:
    """Wraps a real engine and counts its calls."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0
        self.name, self.version = engine.name, engine.version

    def recognize(self, image, *, dpi):
        self.calls += 1
        return self.engine.recognize(image, dpi=dpi)


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def engines():
    return load_ocr_engines(["rapidocr", "tesseract"])


@pytest.fixture(scope="module")
def scanned(samples, settings, engines):
    cache = DictCache()
    pages = extract_document(samples["scanned.pdf"], sandbox=settings.sandbox, ocr=settings.ocr, engines=engines,
                             cache=cache)
    return pages, cache


def test_scanned_pages_are_ocrd_by_rapidocr_with_their_sentences(scanned):
    pages, _ = scanned
    assert [p.page_no for p in pages] == [1, 2]
    assert {p.source for p in pages} == {"rapidocr"}
    for page, (_, sentences) in zip(pages, S.SCANNED_PAGES, strict=True):
        assert page.confidence >= 0.85
        for sentence in sentences:
            assert _best_window(sentence, page.markdown) >= 0.9, (sentence, page.markdown)


def test_ocr_blocks_are_in_page_points(scanned):
    page = scanned[0][0]
    assert page.blocks
    for block in page.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= page.width_pt and 0 <= y0 < y1 <= page.height_pt
    # The heading is drawn 20 mm (≈ 57 pt) from the top-left corner.
    assert abs(page.blocks[0].bbox[0] - 57) < 10 and abs(page.blocks[0].bbox[1] - 57) < 15


def test_a_rerun_takes_ocr_from_the_cache(samples, settings, engines, scanned):
    _, cache = scanned
    sha = __import__("hashlib").sha256(samples["scanned.pdf"].read_bytes()).hexdigest()
    rapid = engines[0]
    assert keys.ocr_result(keys.file_ocr_cache_prefix(sha), 1, "rapidocr", rapid.version, 300) in cache.puts
    counting = [Counting(e) for e in engines]
    again = extract_document(samples["scanned.pdf"], sandbox=settings.sandbox, ocr=settings.ocr, engines=counting,
                             cache=cache)
    assert sum(c.calls for c in counting) == 0
    assert [p.markdown for p in again] == [p.markdown for p in scanned[0]]


def test_a_broken_text_layer_is_ocrd_not_taken(samples, settings, engines):
    with SandboxedPdf(samples["broken_layer.pdf"], settings.sandbox) as pdf:
        layer = pdf.layer(1)
    assert "\ufffd" in layer.raw_text  # the layer really is junk ...
    (page,) = extract_document(samples["broken_layer.pdf"], sandbox=settings.sandbox, ocr=settings.ocr, engines=engines)
    assert page.source == "rapidocr"  # ... so the page was OCR'd
    for sentence in S.BROKEN_LAYER_SENTENCES:
        assert _best_window(sentence, page.markdown) >= 0.9


def test_a_text_layer_of_wrong_but_valid_kanji_is_ocrd(settings, engines, tmp_path):
    """A ToUnicode map pointing at valid ideographs: no U+FFFD, no private use, every character
    printable, and still not the page's text."""
    pdf_path = S.make_wrong_kanji_layer(tmp_path / "wrong_kanji.pdf")
    with SandboxedPdf(pdf_path, settings.sandbox) as pdf:
        layer = pdf.layer(1)
    visible = "".join(layer.raw_text.split())
    assert visible.isprintable() and "\ufffd" not in visible  # it looks like text ...
    assert _best_window(S.BROKEN_LAYER_SENTENCES[0], layer.raw_text) < 0.3  # ... and is not
    (page,) = extract_document(pdf_path, sandbox=settings.sandbox, ocr=settings.ocr, engines=engines)
    assert page.source == "rapidocr"
    for sentence in S.BROKEN_LAYER_SENTENCES:
        assert _best_window(sentence, page.markdown) >= 0.9


def test_vertical_text_is_read_right_to_left_by_tesseract_jpn_vert(samples, settings, engines):
    (page,) = extract_document(samples["vertical.pdf"], sandbox=settings.sandbox, ocr=settings.ocr, engines=engines)
    assert page.source == "tesseract"
    expected = "".join(S.VERTICAL_COLUMNS)
    assert _similarity(expected, page.markdown) >= 0.9, page.markdown
    # Reading the columns left to right instead would match far worse.
    assert _similarity("".join(reversed(S.VERTICAL_COLUMNS)), page.markdown) < 0.8


# --- retry and fallback policy, with stand-in engines on a real page ----------------------------


class Scripted:
    def __init__(self, name, script):
        self.name, self.version, self.script, self.dpis = name, "1", script, []

    def recognize(self, image, *, dpi):
        self.dpis.append(dpi)
        step = self.script[len(self.dpis) - 1]
        if isinstance(step, Exception):
            raise step
        return OcrResult(engine=self.name, blocks=[OcrBlock(step[0], (10, 10, 200, 30), step[1])],
                         markdown=step[0], confidence=step[1])


def test_low_confidence_is_retried_at_the_higher_dpi_then_the_next_engine_is_tried(samples, settings):
    first = Scripted("first", [("ぼやけた", 0.5), ("まだぼやけた", 0.6)])
    second = Scripted("second", [("はっきり", 0.95)])
    with SandboxedPdf(samples["broken_layer.pdf"], settings.sandbox) as pdf:
        result = ocr_page(pdf, 1, cache_prefix="x/", policy=settings.ocr, engines=[first, second])
    assert first.dpis == [300, 400]
    assert second.dpis == [300]
    assert result.markdown == "はっきり"


def test_an_engine_error_falls_back_and_the_best_result_is_kept(samples, settings):
    broken = Scripted("broken", [RuntimeError("model crashed")])
    weak = Scripted("weak", [("弱い", 0.4), ("少し良い", 0.7)])
    with SandboxedPdf(samples["broken_layer.pdf"], settings.sandbox) as pdf:
        result = ocr_page(pdf, 1, cache_prefix="x/", policy=settings.ocr, engines=[broken, weak])
        assert result.markdown == "少し良い" and result.confidence == 0.7
        with pytest.raises(OcrFailed) as info:
            ocr_page(pdf, 1, cache_prefix="x/", policy=settings.ocr,
                     engines=[Scripted("a", [RuntimeError("boom")]), Scripted("b", [OcrFailed("no")])])
    assert "boom" in info.value.message and "no" in info.value.message


# --- engine registry -----------------------------------------------------------------------------


def test_engines_are_created_once_and_reused(engines):
    assert load_ocr_engines(["tesseract", "rapidocr"]) == [engines[1], engines[0]]


@pytest.mark.parametrize(("names", "words"), [(["nope"], "unknown OCR engine"),
                                              (["yomitoku"], "not available in-process"),
                                              ([], "no OCR engine")])
def test_unknown_or_unavailable_engines_are_config_errors(names, words):
    from bunko.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_ocr_engines(names)
    assert words in info.value.message


def test_tesseract_without_its_binary_is_a_config_error():
    from bunko.errors import ConfigError
    from bunko.models.ocr import TesseractEngine

    with pytest.raises(ConfigError) as info:
        TesseractEngine(binary="no-such-tesseract")
    assert "apt" in info.value.message or "install" in info.value.message
