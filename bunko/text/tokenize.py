"""Japanese tokenisation for BM25.

Milvus Lite only has the ``standard`` and ``jieba`` analyzers (no ``lindera``), so the Japanese
analysis happens here: the text becomes space-separated terms and Milvus's ``standard`` analyzer
only splits on those spaces (it keeps a Japanese term whole and lowercases Latin). Index and query
go through the same :class:`Analyzer`, so their terms agree.

The analysis:

* ASCII runs (commands, options, identifiers, versions such as ``+deb12u1``) are kept whole and
  lowercased: Sudachi would cut ``deb12u1`` into ``deb 12 u 1``, terms that match any number.
* The Japanese in between goes through Sudachi (``sudachidict-core``); each morpheme becomes its
  ``normalized_form`` (``受け`` → ``受ける``, ``ＡＢＣ`` → ``abc``), punctuation and whitespace are
  dropped.
* Optionally, character bigrams of every Japanese run.

:data:`DEFAULT_ANALYZER` is what new collections index with: Sudachi mode C without bigrams,
measured on real manuals (``bench/quality.py``; see ``bunko.retrieve.recipe``). Changing the
analysis changes the index: it is a new index version in ``bunko.retrieve.recipe``, so that
collections built with the old one keep searching with it until they are reindexed.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sudachipy import Dictionary
    from sudachipy import Tokenizer as SudachiTokenizer

# A run of ASCII word characters, with inner connectors that belong to codes and options
# (``foo_bar``, ``v1.2.3``, ``--dry-run``, ``+deb12u1``, ``x86-64``). Leading ``-``/``+`` are part
# of options and version suffixes; Milvus's analyzer drops them again, which is what we want.
_ASCII_RUN = re.compile(r"[-+]*[A-Za-z0-9](?:[A-Za-z0-9_.+\-/:]*[A-Za-z0-9+])?")
# Sudachi refuses inputs over ~49 KB; cut long segments at a harmless boundary first.
_MAX_SEGMENT_CHARS = 4000
_SEGMENT_BREAK = re.compile(r"(?<=[。！？\n])")
# Part-of-speech heads that never help a keyword match.
_DROP_POS = frozenset({"補助記号", "空白"})
_FUNCTION_POS = frozenset({"助詞", "助動詞"})

Mode = Literal["A", "B", "C"]


@dataclass(frozen=True)
class Analyzer:
    """One tokenisation recipe; frozen so it can key caches and name a measured variant."""

    mode: Mode = "A"
    bigrams: bool = False
    drop_function_words: bool = False

    def tokens(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        out: list[str] = []
        pos = 0
        for m in _ASCII_RUN.finditer(text):
            if m.start() > pos:
                self._japanese(text[pos : m.start()], out)
            out.append(m.group().strip("-+").lower() or m.group())
            pos = m.end()
        if pos < len(text):
            self._japanese(text[pos:], out)
        return out

    def _japanese(self, segment: str, out: list[str]) -> None:
        if not segment.strip():
            return
        tok = _tokenizer(self.mode)
        for piece in _pieces(segment):
            for m in tok.tokenize(piece):
                pos0 = m.part_of_speech()[0]
                if pos0 in _DROP_POS:
                    continue
                if self.drop_function_words and pos0 in _FUNCTION_POS:
                    continue
                term = m.normalized_form().lower()
                if term.strip():
                    out.append(term)
        if self.bigrams:
            out.extend(_bigrams(segment))


def _pieces(segment: str) -> list[str]:
    if len(segment) <= _MAX_SEGMENT_CHARS:
        return [segment]
    pieces: list[str] = []
    buf = ""
    for part in _SEGMENT_BREAK.split(segment):
        while len(part) > _MAX_SEGMENT_CHARS:  # no break at all: cut hard
            pieces.append(part[:_MAX_SEGMENT_CHARS])
            part = part[_MAX_SEGMENT_CHARS:]
        if len(buf) + len(part) > _MAX_SEGMENT_CHARS:
            pieces.append(buf)
            buf = ""
        buf += part
    if buf:
        pieces.append(buf)
    return pieces


def _is_word_char(ch: str) -> bool:
    # Letters and digits of any script (kanji and kana are category Lo/Lm), not punctuation.
    return unicodedata.category(ch)[0] in "LN"


def _bigrams(segment: str) -> list[str]:
    grams: list[str] = []
    run: list[str] = []
    for ch in [*segment, " "]:
        if _is_word_char(ch) and not ch.isascii():
            run.append(ch)
            continue
        grams.extend(run[i] + run[i + 1] for i in range(len(run) - 1))
        run = []
    return grams


# --- Sudachi objects: the dictionary once per process, a tokenizer per thread and mode ---------

_dict_lock = threading.Lock()
_dictionary: Dictionary | None = None
_local = threading.local()


def _get_dictionary() -> Dictionary:
    # Imported here, not at the top: the operator reads this module's analyzer names (through
    # bunko.retrieve.recipe) but never tokenizes, and its image has no Sudachi dictionary (208 MB).
    from sudachipy import Dictionary

    global _dictionary
    with _dict_lock:
        if _dictionary is None:
            _dictionary = Dictionary(dict="core")
        return _dictionary


def _tokenizer(mode: Mode) -> SudachiTokenizer:
    cache: dict[str, SudachiTokenizer] | None = getattr(_local, "tokenizers", None)
    if cache is None:
        cache = _local.tokenizers = {}
    tok = cache.get(mode)
    if tok is None:
        d = _get_dictionary()
        # SudachiPy 0.7 names it tokenizer() (create() deprecated); 0.6, which GiNZA (the pii
        # extra) requires, has only create().
        make = getattr(d, "tokenizer", None) or d.create
        from sudachipy import SplitMode

        tok = cache[mode] = make(mode=getattr(SplitMode, mode))
    return tok


def lattice_cost(text: str) -> int:
    """The cost of Sudachi's best path through ``text``: lower is a more natural reading (see
    bunko.text.confusions)."""
    return int(_tokenizer("C").tokenize(text).get_internal_cost())


DEFAULT_ANALYZER = Analyzer(mode="C")
# Questions drop particles and auxiliaries (の, は, て, です): the index keeps every term, so this
# only removes near-zero-IDF terms from the BM25 query. Their posting lists are the longest there
# are, and Milvus Lite scores postings one by one in Python: measured at 100k chunks, the BM25 leg
# took 684 ms with them and 291 ms without; bench/quality.py measured the same recall@5 and an MRR
# within 0.01 (hybrid 0.966 vs 0.968 with headers).
QUERY_ANALYZER = Analyzer(mode="C", drop_function_words=True)


def index_tokens(text: str, analyzer: Analyzer = DEFAULT_ANALYZER) -> str:
    """The space-separated terms stored in the BM25 field for a chunk."""
    return " ".join(analyzer.tokens(text))


def query_tokens(text: str, analyzer: Analyzer = QUERY_ANALYZER) -> str:
    """The space-separated terms of a query: the analysis of :func:`index_tokens`, less the
    particles and auxiliaries (every query term is one the index also produces)."""
    return " ".join(analyzer.tokens(text))
