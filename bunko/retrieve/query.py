"""Query understanding: validate, normalise, tokenise, and notice keyword-style questions.

A question like ``ls -lc の意味は`` or ``+deb12u1 で何が直った?`` hinges on an exact string that a
small embedding model barely sees; BM25 sees it exactly. Such queries get their fusion weight moved
toward BM25 (0.7/0.3 → 0.4/0.6 by default); ``bench/quality.py`` measures the effect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bunko.errors import InvalidQuery
from bunko.text.normalize import normalize_text
from bunko.text.tokenize import query_tokens

# How far a keyword-like query moves the weights from dense to BM25.
KEYWORD_SHIFT = 0.3

_SIGNALS: list[tuple[str, re.Pattern[str]]] = [
    # `code`, "quoted", 「括弧」 — the asker marks an exact string.
    ("quoted", re.compile(r"`[^`]+`|\"[^\"]+\"|「[^」]+」|『[^』]+』")),
    # -l, -lc, --dry-run, --max-size=10
    ("option", re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*(?:=\S+)?")),
    # +deb12u1, v1.2.3, 2.4.10-1, 1.0.0rc1
    ("version", re.compile(r"\+[A-Za-z0-9][\w.~+-]*|\bv?\d+\.\d+(?:\.\d+)*[\w.~+-]*")),
    # a command line: a lowercase word followed by an option, or a path
    ("command", re.compile(r"\b[a-z][a-z0-9_.-]*\s+(?:-{1,2}[A-Za-z]|/)|(?:^|\s)/[\w./-]+")),
    # identifiers and codes: snake_case, camelCase, ERR_42, XZ-9000, E1234, foo.bar
    (
        "identifier",
        re.compile(
            r"\b(?:[A-Za-z]+_[A-Za-z0-9_]+|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{1,6}-?\d{2,}[A-Za-z0-9-]*"
            r"|[A-Za-z]+\d+[A-Za-z0-9]*|[a-z]+\.[a-z]+[\w.]*)\b"
        ),
    ),
]


@dataclass(frozen=True)
class PreparedQuery:
    text: str  # NFKC-normalised
    tokens: str  # the BM25 terms, same analysis as indexing
    keyword_signals: tuple[str, ...] = field(default=())

    @property
    def keyword_like(self) -> bool:
        return bool(self.keyword_signals)

    def weights(self, base: tuple[float, float], *, shift: float = KEYWORD_SHIFT) -> tuple[float, float]:
        """(dense, bm25) fusion weights for this query: ``base``, moved toward BM25 by ``shift`` for
        a keyword-like query (never below 0 on the dense side, and still summing to the same)."""
        if not self.keyword_like or shift <= 0:
            return base
        dense, sparse = base
        moved = min(shift, dense)
        return (round(dense - moved, 6), round(sparse + moved, 6))


def keyword_signals(text: str) -> tuple[str, ...]:
    """Which kinds of exact-string cue the query has (empty for a plain-language question)."""
    return tuple(name for name, pattern in _SIGNALS if pattern.search(text))


def prepare_query(text: str, *, max_chars: int) -> PreparedQuery:
    """Validate and normalise a question. Raises :class:`InvalidQuery` for an empty or too long one."""
    if not isinstance(text, str):
        raise InvalidQuery("the question must be text")
    normalised = normalize_text(text)
    if not normalised:
        raise InvalidQuery(f"the question is empty: type a question of 1 to {max_chars} characters")
    if len(normalised) > max_chars:
        raise InvalidQuery(
            f"the question is too long ({len(normalised)} characters after normalisation; the limit is "
            f"{max_chars}): shorten it or split it into several questions",
            detail={"length": len(normalised), "max_chars": max_chars},
        )
    return PreparedQuery(
        text=normalised, tokens=query_tokens(normalised), keyword_signals=keyword_signals(normalised)
    )
