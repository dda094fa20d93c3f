"""Citation extraction: every shape models use, invalid numbers dropped, non-citations ignored."""

from bunko.generate.citations import cited_numbers, find_citations, strip_invalid_citations


def test_plain_and_detailed_forms():
    text = "売上は増えた[文書2]。利益も増えた[文書1: 決算報告書, 第12頁]。"
    assert cited_numbers(text, 3) == [2, 1]


def test_bare_numbers_lists_and_full_width():
    text = "A [1]. B [1, 3]. C ［文書２］. D 【文書3】. E [文書1、文書2]."
    assert cited_numbers(text, 3) == [1, 3, 2]
    marks = find_citations(text)
    assert [m.numbers for m in marks] == [(1,), (1, 3), (2,), (3,), (1, 2)]


def test_numbers_outside_the_context_are_dropped():
    text = "本文[文書1]。捏造[文書7]。混在[文書2、文書9]。"
    assert cited_numbers(text, 2) == [1, 2]


def test_brackets_that_are_not_citations_are_ignored():
    text = "[注] 参照 [報告書 2023] と [第12頁] と [リンク](http://x) と [a1]"
    assert find_citations(text) == []
    assert cited_numbers(text, 100) == []


def test_title_with_numbers_is_not_read_as_more_citations():
    text = "[文書1: 2023年版 報告書, 第3頁]"
    assert cited_numbers(text, 5) == [1]


def test_strip_removes_invented_and_rewrites_mixed_marks():
    text = "正しい[文書1]。捏造[文書7]。混在[文書2、文書9]。詳細[文書1: 報告書, 第3頁]。"
    out = strip_invalid_citations(text, 2)
    assert out == "正しい[文書1]。捏造。混在[文書2]。詳細[文書1: 報告書, 第3頁]。"
    assert cited_numbers(out, 2) == [1, 2]


def test_strip_leaves_valid_text_unchanged():
    text = "何も変えない[文書1][文書2]。"
    assert strip_invalid_citations(text, 2) == text
