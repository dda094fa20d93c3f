"""Extractive answers: with no LLM configured, the best sentences of the top passages, cited.

Nothing is written that the documents do not say: each line of the answer is a sentence (or a
table row) copied from a passage, followed by that passage's ``[文書N]``; rows of one table come
under its header row, shown once. Header rows and table-of-contents lines are never answers. The
answer carries no label: the response's ``mode`` ("extractive") says how it was made, and the web
page shows it as a badge.

Scoring, per sentence: the share of the question's terms (Sudachi + bigrams, as BM25 sees them,
function words dropped) that the sentence contains, each term weighted by its rarity among the
candidate sentences (a term every sentence has tells nothing); plus a small bonus for the
passage's own retrieval rank, so that between equally matching sentences the better passage wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bunko.domain import Hit
from bunko.text.navigation import is_toc_line
from bunko.text.tokenize import Analyzer, query_tokens

_ANALYZER = Analyzer(drop_function_words=True)
# Japanese sentence ends and line breaks. Not ASCII ? and !: in these manuals they are keys and
# operators ("? を押せば", "?name(...)"), and splitting there cut the fact off its sentence.
_SENTENCE_END = re.compile(r"(?<=[。！？])|\n")
# A sentence that announces what follows ("以下のように実行します:", "次のコマンドを実行します。"),
# and a short line with no sentence end (a definition-list term such as "-z, --compressed"): the
# fact is on the next line, so it is shown with them.
_LEAD_IN = re.compile(r"[:：]\s*$|(以下|次)(の|に|を|で).*[。.]?\s*$")
_TERM_LINE_CHARS = 40
_CONTINUATION_CHARS = 200
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|[\s:|-]+\|\s*$")
_CODE_TERM = re.compile(r"^[-%+~?\\$@:.]?[A-Za-z0-9_-][\x21-\x7e]*(?:,? [\x21-\x7e]+)*$")
_HIRAGANA = re.compile(r"^[\u3040-\u309f]+$")
_PASSAGE_WEIGHT = 0.2
# Layout wrapping: a passage whose widest line has at least this many characters, and a line of
# at least this share of that width.
_WRAP_MIN_WIDTH = 30
_WRAP_SHARE = 0.7
_JAPANESE_END = re.compile(r"[\u3041-\u30ff\u3400-\u9fff]$")
_BLOCK_START = re.compile(r"^(?:[•・*\-#|$>]|\d+[.)]\s|[（(]\d+[)）])")
_MAX_SENTENCE_CHARS = 300


@dataclass(frozen=True)
class _Sentence:
    text: str  # what is shown: the sentence, or a table row
    terms: frozenset[str]  # of the sentence, or of a row with its header
    header: str  # a table row's header row; "" for a sentence
    block: int  # 1-based context block number
    rank: int  # the passage's rank, 0 = best
    position: int  # order inside the passage, for stable ties
    continuation: str = ""  # the line(s) after a lead-in or a term line, shown with it
    term: str = ""  # the term line a description belongs to ("%q" above "年の四半期 (1..4)")


def _is_content(term: str) -> bool:
    # A lone hiragana is grammar. Two-character words that mix kana and kanji (長さ, 使う, 消す) are
    # Sudachi's words and carry the question: dropping them (a rule from when bigrams were terms
    # here) cost 5 points of answer accuracy on the real-documents set.
    return len(term) > 1 or not _HIRAGANA.match(term)


def _terms(text: str) -> frozenset[str]:
    return frozenset(t for t in query_tokens(text, _ANALYZER).split() if _is_content(t))


def split_sentences(text: str) -> list[str]:
    """Sentences on 。！？ and line breaks; table rows come back as lines."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def rejoin_wrapped(text: str) -> str:
    """Japanese prose that the page's layout wrapped ("GIMP が見つけ易い場所がどこかが問" /
    "題になります。") back into one line, so that a sentence is not cut at a line end. A line is
    taken as wrapped when it runs (nearly) to the passage's widest line and does not end a sentence
    or announce what follows; short lines (a definition list's terms, commands) stay lines."""
    lines = text.split("\n")
    width = max((len(x.rstrip()) for x in lines), default=0)
    if width < _WRAP_MIN_WIDTH:
        return text
    out: list[str] = []
    joining = False
    for line in lines:
        stripped = line.strip()
        if joining and not stripped:
            continue  # some layouts print every wrapped line as its own paragraph
        if joining and not _BLOCK_START.match(stripped):
            out[-1] = out[-1].rstrip() + stripped
        else:
            out.append(line)
        last = out[-1].rstrip()
        # Cut mid-word: it ends in kana or kanji (a command or an English line never joins).
        joining = (len(line.rstrip()) >= _WRAP_SHARE * width and _JAPANESE_END.search(last) is not None
                   and not _TABLE_ROW.match(last) and not last.lstrip().startswith(("#", "$")))
    return "\n".join(out)


def _unwrapped(lines: list[str]) -> list[str]:
    """English prose that the page's layout wrapped ("... expands to the" / "absolute path of ...")
    back into one line: a line ending in a letter or comma followed by one starting lower-case."""
    out: list[str] = []
    for line in lines:
        if out and re.search(r"[A-Za-z,]$", out[-1]) and re.match(r"[a-z]", line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


def _is_term_line(line: str) -> bool:
    # A shell command ("$ dpkg-buildpackage -us -uc") is what a lead-in announces, not a term that
    # the sentence after it describes.
    return (len(line) <= _TERM_LINE_CHARS and not re.search(r"[。．.!?！？:：]$", line)
            and not _TABLE_ROW.match(line) and not line.startswith(("#", "$ ")) and not is_toc_line(line))


def _is_code_term(line: str) -> bool:
    """A definition list's term written as code: an option, a format or a key ("-d, --dir",
    "%q", "logbsize=value"); the line after it is its description, not something it announces."""
    return len(line) <= _TERM_LINE_CHARS and _CODE_TERM.match(line) is not None


def _announces(sentence: str) -> bool:
    if _TABLE_ROW.match(sentence) or sentence.startswith("#"):
        return False
    return _LEAD_IN.search(sentence) is not None or _is_term_line(sentence)


def _continuation(sentences: list[str], at: int) -> str:
    """The lines after ``sentences[at]``, at most ``_CONTINUATION_CHARS``: the first whatever it
    is (a command, a list item, a term's description), then more until a sentence of prose."""
    out: list[str] = []
    size = 0
    for line in sentences[at + 1:]:
        prose = re.search(r"[。．!?！？]$", line) is not None
        if _TABLE_RULE.match(line) or is_toc_line(line) or line.startswith("#") or (out and prose):
            break  # the announced lines end where the prose goes on (or the section does)
        out.append(line)
        size += len(line)
        if size >= _CONTINUATION_CHARS or prose:
            break
    text = " ".join(out)
    return text if len(text) <= _CONTINUATION_CHARS else text[: _CONTINUATION_CHARS - 1] + "…"


def _candidates(hits: Sequence[Hit]) -> list[_Sentence]:
    out: list[_Sentence] = []
    for rank, hit in enumerate(hits):
        header = ""
        sentences = _unwrapped(split_sentences(rejoin_wrapped(hit.text)))
        for pos, sentence in enumerate(sentences):
            # A heading names a section; the section's sentences are the answer.
            if _TABLE_RULE.match(sentence) or len(sentence) < 2 or is_toc_line(sentence) or sentence.startswith("#"):
                continue
            row_header = ""
            if _TABLE_ROW.match(sentence):
                if not header or sentence == header:
                    header = sentence  # the first row of a Markdown table is its header: not an answer
                    continue
                row_header = header
            else:
                header = ""
            # A table row is scored with its header: "九州の売上高" matches the row "| 九州 | 45 |"
            # only through the column name "売上高".
            terms = _terms(f"{row_header}\n{sentence}" if row_header else sentence)
            # "%q" then "年の四半期 (1..4)": a short line after a code term describes it; it does not
            # announce the next option.
            described = (pos > 0 and not row_header and _is_code_term(sentences[pos - 1])
                         and _is_term_line(sentence) and not _is_code_term(sentence))
            follow = _continuation(sentences, pos) if _announces(sentence) and not described else ""
            term = (sentences[pos - 1] if pos and not follow and not row_header
                    and _is_term_line(sentences[pos - 1]) else "")
            out.append(_Sentence(sentence[:_MAX_SENTENCE_CHARS], terms, row_header, rank + 1, rank, pos, follow,
                                 term))
    return out


def extractive_answer(question: str, hits: Sequence[Hit], *, max_sentences: int = 3) -> str:
    """The answer text for ``question`` from ``hits``, which are the context blocks in order
    (``hits[0]`` is ``[文書1]``)."""
    if not hits:
        raise ValueError("extractive_answer needs at least one passage")
    candidates = _candidates(hits)
    query = _terms(question)
    n = len(candidates)
    df = {t: sum(1 for c in candidates if t in c.terms) for t in query}
    weight = {t: math.log(1 + n / (1 + df[t])) for t in query}
    total = sum(weight.values()) or 1.0

    def score(c: _Sentence) -> float:
        overlap = sum(weight[t] for t in query if t in c.terms) / total
        return overlap + _PASSAGE_WEIGHT / (1 + c.rank)

    ranked = sorted(
        (c for c in candidates if query & c.terms), key=lambda c: (-score(c), c.rank, c.position)
    )
    chosen: list[_Sentence] = []
    seen: set[str] = set()
    shown = ""  # what the chosen lines and their continuations already say
    for c in ranked:
        key = re.sub(r"\s+", "", c.text)
        if key in seen or key in shown:
            continue
        seen.add(key)
        shown += re.sub(r"\s+", "", c.term + c.continuation)
        chosen.append(c)
        if len(chosen) >= max_sentences:
            break
    if not chosen and candidates:
        # No shared term (a paraphrased question): the opening of the best passage is the best guess.
        chosen = [candidates[0]]
    lines: list[str] = []
    shown_header = ""
    for c in chosen:
        if c.header and c.header != shown_header:
            lines.append(c.header)
        shown_header = c.header
        text = " ".join(part for part in (c.term, c.text, c.continuation) if part)
        lines.append(f"{text} [文書{c.block}]")
    return "\n".join(lines)
