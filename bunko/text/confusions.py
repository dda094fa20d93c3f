"""OCR's look-alike characters across Japanese scripts, put right by the dictionary.

A recogniser reads a glyph, not a word. On real scans (``bench/realdocs.py``) it reads 入力 as
入カ (katakana ka), 一般 as ー般 (the long-vowel mark), すべて as すベて (katakana be): about one
character in a thousand. BM25 then looks for 入 and カ instead of 入力, and the page stops matching
the question's terms.

Each such character is tried with its look-alike from the other script. The reading Sudachi finds
more natural is kept, that is the one whose best path through its lattice costs less over a few
characters either side. Which way a change may go depends on the neighbours:

* katakana → kanji (カ→力, ー→一, ロ→口, ...): a kanji is next to it, and the character before it is
  not katakana. A katakana there is a katakana word, and ー after it is its long vowel, as in
  アンカー点.
* kanji → katakana (力→カ, 一→ー, ...): a katakana is next to it, and no kanji or hiragana is.
* katakana ↔ hiragana (ベ/べ, ペ/ぺ, リ/り): the script of the neighbours, none of the other
  script. へ/ヘ is left alone, because the particle へ follows katakana words (サーバへ).

Only OCR output goes through here. A text layer holds the characters the author typed. On the
936 text-layer pages of the development set, this changes 1 character in ~1.5 M, where on their
108 scans it puts ~140 right.
"""

from __future__ import annotations

from bunko.text.tokenize import lattice_cost

_KATAKANA_KANJI = (("カ", "力"), ("ロ", "口"), ("ニ", "二"), ("エ", "工"), ("タ", "夕"), ("ハ", "八"), ("ー", "一"))
_KATAKANA_HIRAGANA = (("ベ", "べ"), ("ペ", "ぺ"), ("リ", "り"))
# character -> (its look-alike, the script the look-alike is in)
_LOOK_ALIKE: dict[str, tuple[str, str]] = {}
for _kata, _other in _KATAKANA_KANJI:
    _LOOK_ALIKE[_kata] = (_other, "kanji")
    _LOOK_ALIKE[_other] = (_kata, "katakana")
for _kata, _other in _KATAKANA_HIRAGANA:
    _LOOK_ALIKE[_kata] = (_other, "hiragana")
    _LOOK_ALIKE[_other] = (_kata, "katakana")
# Characters each side that Sudachi sees: enough for a two- or three-character word around the
# character, few enough that the rest of the line does not decide.
_CONTEXT = 4


def _script(ch: str) -> str:
    o = ord(ch)
    if 0x3041 <= o <= 0x3096:
        return "hiragana"
    if 0x30A1 <= o <= 0x30FA or ch == "ー":
        return "katakana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or ch == "々":
        return "kanji"
    return ""


def _may_become(target: str, before: str, after: str) -> bool:
    around = {before, after}
    if target == "kanji":
        return "kanji" in around and before != "katakana"
    if target == "katakana":
        return "katakana" in around and not ({"kanji", "hiragana"} & around)
    return "hiragana" in around and "katakana" not in around


def _fix_line(line: str) -> str:
    chars = list(line)
    for i, ch in enumerate(chars):
        alike = _LOOK_ALIKE.get(ch)
        if alike is None:
            continue
        alt, target = alike
        before = _script(chars[i - 1]) if i > 0 else ""
        after = _script(chars[i + 1]) if i + 1 < len(chars) else ""
        if not _may_become(target, before, after):
            continue
        lo, hi = max(0, i - _CONTEXT), min(len(chars), i + _CONTEXT + 1)
        window = "".join(chars[lo:hi])
        other = window[: i - lo] + alt + window[i - lo + 1 :]
        if lattice_cost(other) < lattice_cost(window):
            chars[i] = alt
    return "".join(chars)


def fix_confusions(text: str) -> str:
    """``text`` (one OCR'd line or page) with its cross-script look-alikes put right. A word that
    a line break splits is left as it is: each line is read on its own."""
    if not any(ch in _LOOK_ALIKE for ch in text):
        return text
    return "\n".join(_fix_line(line) for line in text.split("\n"))
