"""Citations in an answer: find them, keep the ones that point at a real context block.

Models cite in more shapes than the prompt asks for. All of these mean "context block N":
``[文書1]``, ``[文書1: 決算報告書, 第12頁]``, ``[文書1、文書3]``, ``[1]``, ``[1, 2]``, and the same
with full-width brackets and digits (``［文書１］``, ``【文書2】``). A number outside ``1..n_blocks``
is an invented citation: it is dropped from the sources and removed from the answer text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_BRACKETED = re.compile(r"[\[［【]([^\[\]［］【】\n]{1,200})[\]］】]")
_SEPARATORS = re.compile(r"[,，、;；・]")
# A part that starts with 文書N may carry a title and page after it ("文書1: 報告書, 第3頁");
# a bare number must be alone in its part, so "[報告書 2023]" or "第12頁" never read as citations.
_DOC_PART = re.compile(r"^\s*文書\s*(\d+)(?:\s*[:：(（].*)?\s*$", re.DOTALL)
_NUMBER_PART = re.compile(r"^\s*(\d+)\s*$")


@dataclass(frozen=True)
class CitationMark:
    """One bracketed citation in the text: its span and the block numbers it names, in order."""

    start: int
    end: int
    numbers: tuple[int, ...]


def _parse_body(body: str) -> tuple[int, ...]:
    """The block numbers a bracket's content names, or () when it is not a citation."""
    numbers: list[int] = []
    for i, part in enumerate(_SEPARATORS.split(unicodedata.normalize("NFKC", body))):
        doc = _DOC_PART.match(part)
        if doc:
            numbers.append(int(doc.group(1)))
            continue
        bare = _NUMBER_PART.match(part)
        if bare:
            numbers.append(int(bare.group(1)))
            continue
        if i == 0:
            return ()  # the bracket does not start like a citation: "[注]", "[報告書 2023]"
        # Later parts that are not numbers are the title/page tail of "文書1: タイトル, 第3頁".
    return tuple(numbers)


def find_citations(text: str) -> list[CitationMark]:
    marks = []
    for m in _BRACKETED.finditer(text):
        numbers = _parse_body(m.group(1))
        if numbers:
            marks.append(CitationMark(m.start(), m.end(), numbers))
    return marks


def cited_numbers(text: str, n_blocks: int) -> list[int]:
    """Valid block numbers (1-based) in order of first citation, without repeats."""
    seen: dict[int, None] = {}
    for mark in find_citations(text):
        for n in mark.numbers:
            if 1 <= n <= n_blocks:
                seen.setdefault(n, None)
    return list(seen)


def strip_invalid_citations(text: str, n_blocks: int) -> str:
    """Remove citations to blocks that do not exist; a mark that names valid and invalid numbers is
    rewritten to the valid ones (``[文書1、文書9]`` with 3 blocks → ``[文書1]``)."""
    out: list[str] = []
    pos = 0
    for mark in find_citations(text):
        valid = [n for n in mark.numbers if 1 <= n <= n_blocks]
        if len(valid) == len(mark.numbers):
            continue  # untouched: it stays in the text between pos and the next rewritten mark
        out.append(text[pos : mark.start])
        out.append("".join(f"[文書{n}]" for n in valid))
        pos = mark.end
    out.append(text[pos:])
    return "".join(out)
