from bunko.domain import PageText
from bunko.text.chunking import chunk_pages


def page(no, md):
    return PageText(page_no=no, markdown=md, source="layer", confidence=1.0)


TABLE = "| 部署 | 内線番号 |\n|---|---|\n" + "".join(f"| 部署{i:02d} | {1000 + i} |\n" for i in range(40))


def test_a_table_stays_whole_in_one_chunk():
    md = "# 連絡先\n\n担当部署の一覧です。\n\n" + TABLE + "\n以上です。"
    chunks = chunk_pages([page(1, md)], chunk_size=80, chunk_overlap=10, table_max_chars=2048)
    tables = [c for c in chunks if c.kind == "table"]
    assert len(tables) == 1
    assert tables[0].text == TABLE.strip()
    assert tables[0].section == "連絡先"
    # the prose around it is chunked separately
    assert any("担当部署の一覧" in c.text for c in chunks if c.kind == "text")
    assert any("以上です" in c.text for c in chunks if c.kind == "text")


def test_a_big_table_is_split_by_rows_with_the_header_repeated():
    chunks = chunk_pages([page(1, TABLE)], chunk_size=600, chunk_overlap=80, table_max_chars=200)
    assert len(chunks) > 2
    rows_seen = []
    for c in chunks:
        assert c.kind == "table"
        assert len(c.text) <= 200
        lines = c.text.split("\n")
        assert lines[0] == "| 部署 | 内線番号 |" and lines[1] == "|---|---|"
        rows_seen.extend(lines[2:])
    # every row exactly once, in order
    assert rows_seen == [line for line in TABLE.strip().split("\n")[2:]]


def test_no_chunk_crosses_a_page_and_index_is_dense():
    p1 = "第1章 概要\n" + "本書は文庫の説明書です。" * 30
    p2 = "続きの文章です。" * 30
    p3 = ""
    p4 = "最後のページです。"
    chunks = chunk_pages([page(1, p1), page(2, p2), page(3, p3), page(4, p4)],
                         chunk_size=100, chunk_overlap=20, table_max_chars=2048)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        source = {1: p1, 2: p2, 4: p4}[c.page_no]
        assert c.text in source  # each chunk is a piece of exactly one page
    assert {c.page_no for c in chunks} == {1, 2, 4}
    # the section carries over the page break
    assert all(c.section == "第1章 概要" for c in chunks)


def test_prose_is_split_at_japanese_sentence_ends():
    sentences = [f"これは{i}番目の文で、内容はとても大切なことです。" for i in range(20)]
    chunks = chunk_pages([page(1, "".join(sentences))], chunk_size=60, chunk_overlap=0, table_max_chars=2048)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.endswith("。"), c.text  # the separator stays at the end of its sentence
        assert len(c.text) <= 60


def test_sections_follow_headings_and_heading_like_lines():
    md = "# はじめに\n文庫の紹介です。\n\n【注意事項】\n電源を切ってください。\n\n2.1 設定方法\n設定します。"
    chunks = chunk_pages([page(1, md)], chunk_size=600, chunk_overlap=0, table_max_chars=2048)
    by_text = {c.section: c.text for c in chunks}
    assert "文庫の紹介" in by_text["はじめに"]
    assert "電源を切って" in by_text["【注意事項】"]
    assert "設定します" in by_text["2.1 設定方法"]


def test_a_heading_is_not_left_alone_in_a_chunk():
    md = "# 長い章\n\n" + "長い本文が続きます。" * 20
    chunks = chunk_pages([page(1, md)], chunk_size=50, chunk_overlap=0, table_max_chars=2048)
    assert chunks[0].text.startswith("# 長い章\n")
    assert all(c.text.strip() != "# 長い章" for c in chunks)


def test_chunking_is_deterministic():
    pages = [page(1, "# 見出し\n" + "文章です。" * 50 + "\n\n" + TABLE), page(2, "次。" * 100)]
    a = chunk_pages(pages, chunk_size=120, chunk_overlap=30, table_max_chars=300)
    b = chunk_pages(pages, chunk_size=120, chunk_overlap=30, table_max_chars=300)
    assert a == b
