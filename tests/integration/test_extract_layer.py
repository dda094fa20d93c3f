"""Born-digital pages come out of the text layer, with their layout, through the sandbox."""

import io

import pytest
from PIL import Image

from bunko import samples as S
from bunko.ingest.extract import extract_document
from bunko.ingest.pdf import render_thumbnail


class _NoOcr:
    """An engine that must not be reached: born-digital pages never need OCR."""

    name, version = "no-ocr", "0"

    def recognize(self, image, *, dpi):
        raise AssertionError("a born-digital page was sent to OCR")


@pytest.fixture(scope="module")
def born_digital_pages(samples, layer_settings):
    return extract_document(samples["born_digital.pdf"], sandbox=layer_settings.sandbox, ocr=layer_settings.ocr,
                            engines=[_NoOcr()])


@pytest.fixture(scope="module")
def layer_settings(tmp_path_factory):
    from bunko.settings import Settings

    return Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"))


def test_every_page_comes_from_the_layer_in_order(born_digital_pages):
    assert [p.page_no for p in born_digital_pages] == list(range(1, S.BORN_DIGITAL_PAGES + 1))
    assert {p.source for p in born_digital_pages} == {"layer"}
    assert all(p.confidence == 1.0 for p in born_digital_pages)
    assert all(round(p.width_pt) == 595 and round(p.height_pt) == 842 for p in born_digital_pages)


def test_known_sentences_are_extracted_whole(born_digital_pages):
    text = "\n".join(p.markdown for p in born_digital_pages)
    for sentence in S.BORN_DIGITAL_SENTENCES:
        assert sentence in text


def test_section_headings_become_markdown_headings(born_digital_pages):
    for page, (heading, _) in zip(born_digital_pages, S.BORN_DIGITAL_SECTIONS, strict=False):
        first = page.markdown.splitlines()[0]
        assert first.startswith("#") and first.lstrip("# ") == heading


def test_the_table_becomes_one_markdown_table_with_the_fact_in_one_row(born_digital_pages):
    page = born_digital_pages[-1]
    table = [line for line in page.markdown.splitlines() if line.startswith("|")]
    assert len(table) == len(S.BORN_DIGITAL_TABLE) + 1  # header separator
    assert table[0] == "| " + " | ".join(S.BORN_DIGITAL_TABLE[0]) + " |"
    year, item, amount = S.BORN_DIGITAL_TABLE_FACT
    assert f"| {year} | {item} | {amount} |" in table
    assert any(b.kind == "table" for b in page.blocks)


def test_blocks_have_top_left_point_boxes_inside_the_page(born_digital_pages):
    page = born_digital_pages[0]
    title = page.blocks[0]
    assert title.kind == "title"
    x0, y0, x1, y1 = title.bbox
    assert 0 <= x0 < x1 <= page.width_pt and 0 <= y0 < y1 <= page.height_pt
    assert y0 < 150  # the heading is at the top, so near y=0 with a top-left origin


def test_progress_is_reported_per_page(samples, layer_settings):
    calls = []
    extract_document(samples["born_digital.pdf"], sandbox=layer_settings.sandbox, ocr=layer_settings.ocr, engines=[],
                     on_page=lambda done, total: calls.append((done, total)))
    n = S.BORN_DIGITAL_PAGES
    assert calls == [(i, n) for i in range(1, n + 1)]


def test_thumbnail_is_a_200_by_300_png(samples, layer_settings):
    png = render_thumbnail(samples["born_digital.pdf"], layer_settings.sandbox)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (200, 300)
    # Not blank: the page's text is drawn.
    assert image.convert("L").getextrema()[0] < 128
