"""Text normalisation shared by extraction and queries.

NFKC folds what PDFs and OCR engines produce in many shapes onto one: ligatures (``ﬀ`` → ``ff``),
full-width Latin and digits (``ＡＢＣ１２３`` → ``ABC123``), half-width katakana (``ｶﾀｶﾅ`` → ``カタカナ``)
and the ideographic space. Control characters and U+FFFD carry no meaning and are dropped.
Newlines are kept (they carry layout); runs of spaces become one. No space is ever inserted, so
Japanese text comes out as it went in.
"""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls except tab and newline, DEL, zero-width and bidi marks, BOM and U+FFFD.
_DROP = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060\ufeff\ufffd]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalize_text(s: str) -> str:
    """NFKC, drop controls and U+FFFD, collapse spaces (not newlines), trim each line's ends."""
    s = unicodedata.normalize("NFKC", s)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _DROP.sub("", s)
    s = _SPACES.sub(" ", s)
    s = _SPACE_AROUND_NEWLINE.sub("\n", s)
    s = _MANY_NEWLINES.sub("\n\n", s)
    return s.strip()


def _is_cjk(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def join_runs(a: str, b: str) -> str:
    """Join two pieces of one line (or a wrapped line onto the previous): no space inside Japanese,
    none after a hyphen, one between Latin words. Used by the text layer and by OCR alike."""
    a, b = a.rstrip(), b.lstrip()
    if not a or not b:
        return a + b
    if _is_cjk(a[-1]) or _is_cjk(b[0]) or a.endswith("-"):
        return a + b
    return a + " " + b
