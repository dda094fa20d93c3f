"""Running headers and footers are removed before chunking; the body is left alone."""

from bunko.domain import PageText
from bunko.text.furniture import strip_furniture


def _page(n: int, body: str) -> PageText:
    head = "12/6/26, 8:58 AM aptitudeユーザマニュアル\n\n"
    foot = f"\n\nfile:///usr/share/doc/aptitude/html/ja/index.html {n}/40"
    return PageText(page_no=n, markdown=head + body + foot, source="layer", confidence=1.0)


def test_headers_and_footers_repeated_on_most_pages_go():
    pages = [_page(n, f"第{n}節の本文です。パッケージを選んで g を押します。") for n in range(1, 11)]
    out = strip_furniture(pages)
    for n, p in enumerate(out, 1):
        assert p.markdown == f"第{n}節の本文です。パッケージを選んで g を押します。"
    assert [p.page_no for p in out] == list(range(1, 11))


def test_a_line_that_repeats_in_the_body_stays():
    # The same sentence opens every page's body, but below the header: only the edges are judged,
    # and the header, not the sentence, is what sits there.
    pages = [_page(n, f"注意: 設定を変える前に保存してください。\n\n本文 {n}。\n\n詳しくは次の節。\n\n結び {n}。")
             for n in range(1, 8)]
    out = strip_furniture(pages)
    assert all("注意: 設定を変える前に保存してください。" in p.markdown for p in out)
    assert all("aptitudeユーザマニュアル" not in p.markdown for p in out)


def test_a_short_document_is_left_alone():
    pages = [_page(n, "本文。") for n in (1, 2)]
    assert strip_furniture(pages) == pages
