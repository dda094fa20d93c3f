"""Is a page's text layer worth keeping, or must the page be OCR'd?

Real PDFs carry broken text layers: fonts without a usable ToUnicode map come out as U+FFFD,
private-use code points or pdfminer-style ``(cid:12)`` tokens; scans carry an empty layer or a few
stray characters. Such pages go to OCR. A layer that is mostly Latin on a Japanese document is not
a reason by itself (English pages, part numbers, tables of figures are fine).
"""

from __future__ import annotations

import re
import unicodedata

# A4 in square points; the minimum character count scales with the page's area.
A4_AREA_PT2 = 595.0 * 842.0
MIN_CHARS_PER_A4 = 12
MAX_JUNK_RATIO = 0.10

_CID_TOKEN = re.compile(r"\(cid:\d+\)")


def _is_junk(ch: str) -> bool:
    if ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    # Co: private use; Cn: unassigned; Cc: controls (tab/newline are whitespace, skipped before).
    return cat in ("Co", "Cn", "Cc", "Cs")


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
    return True, "ok"
