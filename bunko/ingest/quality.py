"""Is a page's text layer worth keeping, or must the page be OCR'd?

Real PDFs carry broken text layers: fonts without a usable ToUnicode map come out as U+FFFD,
private-use code points or pdfminer-style ``(cid:12)`` tokens; scans carry an empty layer or a few
stray characters. Such pages go to OCR. A layer that is mostly Latin on a Japanese document is not
a reason by itself (English pages, part numbers, tables of figures are fine).

A subtler break: a ToUnicode map that points at the wrong but valid characters, so the layer reads
as kanji nobody writes (燕蠹鑁…). Japanese prose draws ~99 % of its kanji from the 2,965 everyday
ones of JIS X 0208 level 1 (measured on the 723 kanji-bearing pages of bench/realdocs.py: at
most 13 % outside it); a wrong map spreads over all 20,000+ ideographs, 82 % of which are outside.
"""

from __future__ import annotations

import re
import unicodedata

# A4 in square points; the minimum character count scales with the page's area.
A4_AREA_PT2 = 595.0 * 842.0
MIN_CHARS_PER_A4 = 12
MAX_JUNK_RATIO = 0.10

_CID_TOKEN = re.compile(r"\(cid:\d+\)")
# Enough kanji to judge a page by, and the share outside JIS level 1 that no real page reaches.
MIN_KANJI_TO_JUDGE = 20
MAX_RARE_KANJI_RATIO = 0.3


def _is_junk(ch: str) -> bool:
    if ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    # Co: private use; Cn: unassigned; Cc: controls (tab/newline are whitespace, skipped before).
    return cat in ("Co", "Cn", "Cc", "Cs")


def _is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _is_everyday_kanji(ch: str) -> bool:
    """In JIS X 0208 level 1 (Shift_JIS 0x889F–0x9872): the kanji of everyday Japanese."""
    try:
        code = ch.encode("shift_jis")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and 0x889F <= int.from_bytes(code, "big") <= 0x9872


def rare_kanji_ratio(text: str) -> tuple[float, int]:
    """(share of the kanji outside JIS level 1, number of kanji) of ``text``."""
    kanji = [ch for ch in text if _is_kanji(ch)]
    if not kanji:
        return 0.0, 0
    return sum(1 for ch in kanji if not _is_everyday_kanji(ch)) / len(kanji), len(kanji)


def text_layer_is_good(text: str, page_area: float) -> tuple[bool, str]:
    """``(True, "ok")`` when the layer can be used as is, else ``(False, why)``.

    ``page_area`` is in square points (width × height of the page).
    """
    cid_chars = sum(len(m.group(0)) for m in _CID_TOKEN.finditer(text)) if "(cid:" in text else 0
    # str.split() cuts on exactly the characters str.isspace() accepts.
    visible = "".join(text.split())
    n = len(visible)
    scale = max(page_area, 1.0) / A4_AREA_PT2
    min_chars = max(5, round(MIN_CHARS_PER_A4 * min(scale, 4.0)))
    if n < min_chars:
        return False, f"near-empty text layer: {n} characters (fewer than {min_chars} for this page size)"
    # isprintable() is False for every Cc/Cs/Co/Cn character (and for Cf, Z*): a printable layer,
    # the usual case, has no junk and skips the per-character scan.
    junk = cid_chars
    if "\ufffd" in visible or not visible.isprintable():
        junk += sum(1 for ch in visible if _is_junk(ch))
    ratio = junk / n
    if ratio > MAX_JUNK_RATIO:
        return False, (
            f"garbage text layer: {ratio:.0%} of {n} characters are replacement, private-use, "
            "control or CID codes (a font without a usable ToUnicode map)"
        )
    rare, kanji = rare_kanji_ratio(visible)
    if kanji >= MIN_KANJI_TO_JUDGE and rare > MAX_RARE_KANJI_RATIO:
        return False, (
            f"implausible text layer: {rare:.0%} of its {kanji} kanji are outside the everyday "
            "kanji of JIS level 1 (a ToUnicode map that points at the wrong characters)"
        )
    return True, "ok"
