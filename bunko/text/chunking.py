"""Pages → chunks: tables whole, prose split on Japanese sentence boundaries, one page per chunk.

A chunk never spans two pages, because citations are per page. Markdown tables (lines that start
with ``|``) stay in one chunk up to ``table_max_chars``; a bigger table is cut between rows and each
piece repeats the header row (and its ``|---|`` separator) so every piece can be read on its own.
Prose goes through LangChain's ``RecursiveCharacterTextSplitter`` with Japanese separators, the
separator kept at the end of its sentence. ``section`` is the nearest heading above a chunk
(a Markdown ``#`` heading, or a line that looks like one: ``第3章 …``, ``1.2 …``, ``【…】``),
carried over page breaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from bunko.domain import ChunkDraft, PageText

JAPANESE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "、", ""]

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_HEADING_LIKE = re.compile(
    r"^\s*(?:"
    r"第[0-9０-９一二三四五六七八九十百千]+[章節部編款条項]"  # 第3章, 第十二条
    r"|[0-9]+(?:\.[0-9]+)*[.．、]?\s+\S"  # 1. 概要 / 2.3 手順
    r"|【[^】]+】\s*$"  # 【注意事項】
    r"|[■◆●□◇]\s*\S"  # ■ 料金
    r")"
)
_HEADING_MAX_CHARS = 60
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


@dataclass
class _Block:
    kind: str  # "text" | "table"
    text: str
    section: str


def _heading_text(line: str) -> str | None:
    m = _MD_HEADING.match(line)
    if m:
        return m.group(1).strip()
    stripped = line.strip()
    if (
        stripped
        and len(stripped) <= _HEADING_MAX_CHARS
        and not stripped.endswith(("。", "、", "，", ","))
        and _HEADING_LIKE.match(stripped)
    ):
        return stripped.lstrip("■◆●□◇ ").strip()
    return None


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def _blocks(markdown: str, section: str) -> tuple[list[_Block], str]:
    """Cut one page into prose and table blocks; a heading starts a new prose block.

    Returns the blocks and the section in force at the end of the page (it carries over)."""
    blocks: list[_Block] = []
    prose: list[str] = []
    table: list[str] = []
    prose_section = section

    def flush_prose() -> None:
        text = "\n".join(prose).strip()
        if text:
            blocks.append(_Block("text", text, prose_section))
        prose.clear()

    def flush_table() -> None:
        if table:
            blocks.append(_Block("table", "\n".join(line.strip() for line in table), section))
        table.clear()

    for line in markdown.splitlines():
        if _is_table_line(line):
            flush_prose()
            table.append(line)
            continue
        flush_table()
        heading = _heading_text(line)
        if heading is not None:
            flush_prose()
            section = prose_section = heading
        prose.append(line)
    flush_prose()
    flush_table()
    return blocks, section


def _split_table(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    lines = text.split("\n")
    header = lines[:1]
    body = lines[1:]
    if body and _TABLE_SEPARATOR.match(body[0]):
        header.append(body[0])
        body = body[1:]
    head = "\n".join(header)
    pieces: list[str] = []
    rows: list[str] = []
    size = len(head)
    for row in body:
        # A row that alone exceeds the limit still goes whole into its own piece: cutting a cell
        # would make both halves meaningless.
        if rows and size + 1 + len(row) > max_chars:
            pieces.append("\n".join([head, *rows]))
            rows, size = [], len(head)
        rows.append(row)
        size += 1 + len(row)
    if rows or not pieces:
        pieces.append("\n".join([head, *rows]))
    return pieces


def _page_chunks(
    page: PageText, section: str, splitter: RecursiveCharacterTextSplitter, table_max_chars: int
) -> tuple[list[tuple[str, str, str]], str]:
    blocks, section = _blocks(page.markdown, section)
    out: list[tuple[str, str, str]] = []  # (kind, text, section)
    for block in blocks:
        if block.kind == "table":
            out.extend(("table", piece, block.section) for piece in _split_table(block.text, table_max_chars))
        else:
            pieces = [p.strip() for p in splitter.split_text(block.text) if p.strip()]
            # A heading cut off from its paragraph would be a chunk that answers nothing: it goes
            # in front of the paragraph instead (a few characters over chunk_size at most).
            if len(pieces) > 1 and _heading_text(pieces[0]) is not None and "\n" not in pieces[0]:
                pieces[1] = pieces[0] + "\n" + pieces[1]
                del pieces[0]
            out.extend(("text", piece, block.section) for piece in pieces)
    return out, section


def chunk_pages(
    pages: list[PageText], *, chunk_size: int, chunk_overlap: int, table_max_chars: int
) -> list[ChunkDraft]:
    """Chunk a document's pages; ``chunk_index`` runs 0.. over the whole document, in page order."""
    splitter = RecursiveCharacterTextSplitter(
        separators=JAPANESE_SEPARATORS,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        strip_whitespace=True,
    )
    drafts: list[ChunkDraft] = []
    section = ""
    for page in sorted(pages, key=lambda p: p.page_no):
        pieces, section = _page_chunks(page, section, splitter, table_max_chars)
        for kind, text, sec in pieces:
            drafts.append(
                ChunkDraft(page_no=page.page_no, chunk_index=len(drafts), text=text, kind=kind, section=sec)
            )
    return drafts

