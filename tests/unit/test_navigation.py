"""Table-of-contents and index text: recognised, and ranked behind the body it points to."""

import pytest

from bunko.domain import Hit
from bunko.retrieve.search import navigation_last
from bunko.text.navigation import is_navigation, is_toc_line

MAINT_GUIDE_TOC = """目次
4. debian ディレクトリー中の必須のファイル 28
4.1. control ファイル ........................................ 28
4.2. copyright ファイル ...................................... 30
4.3. changelog ファイル ...................................... 30
4.4. rules ファイル .......................................... 31
4.4.1. debian/rules ファイルのターゲット ..................... 31"""


@pytest.mark.parametrize("line", [
    "4.4. rules ファイル .......................................... 31",
    "第2章 はじめの一歩 ………… 15",
    "付録 A 索引 112",
    "3.1 debian/rules ファイル 23",
    "dpkg-buildpackage    45",
])
def test_toc_lines(line):
    assert is_toc_line(line)


@pytest.mark.parametrize("line", [
    "debian/rules ファイルはパッケージを作成するための Makefile です。",
    "2025年度の売上高は1,234億円でした。",
    "| 2025年度 | 売上高 | 1,234 |",
    "バージョン 3.1 では 23 個の修正がありました。",
])
def test_body_lines_are_not_toc_lines(line):
    assert not is_toc_line(line)


def test_a_toc_page_is_navigation_and_a_body_page_is_not():
    assert is_navigation(MAINT_GUIDE_TOC)
    body = "debian/rules ファイルは実際にパッケージを作成するスクリプトです。\n中身は Makefile です。\n" * 3
    assert not is_navigation(body)


def _hit(i, text):
    return Hit(chunk_id=f"c{i}", document_id="d", page_no=i, chunk_index=0, text=text, score=1.0 / i)


def test_navigation_passages_rank_behind_every_body_passage_in_order():
    toc, body1, body2 = _hit(1, MAINT_GUIDE_TOC), _hit(2, "rules は Makefile です。"), _hit(3, "本文。")
    assert [h.page_no for h in navigation_last([toc, body1, body2])] == [2, 3, 1]
