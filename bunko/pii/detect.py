"""Finding and redacting personal information in Japanese text, with Presidio over GiNZA.

``PiiDetector`` loads once per process (GiNZA's ``ja_ginza`` model, ~3 s) and is safe to share
between threads that do not call it at the same time; the worker calls it from one. Person names
come from GiNZA's named-entity recogniser (its ``Person`` label), everything else from the
recognisers in :mod:`bunko.pii.recognizers`. Nothing is downloaded: a model that is not installed
is an error that says which package to install.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import ConfigError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

MODEL = "ja_ginza"
# GiNZA's pipes that NER does not need; leaving them out makes it about twice as fast.
_UNUSED_PIPES = ("parser", "morphologizer", "compound_splitter", "bunsetu_recognizer")
# Sudachi refuses an input over 49,149 bytes; pages are cut at line ends well below that.
_PIECE_CHARS = 8000
# A finding scoring below this is dropped: a bare 123-4567 with no 郵便 near it, a 12-digit
# number that passes the My Number check but has no マイナンバー beside it (bench/pii.py).
SCORE_THRESHOLD = 0.4
_NOT_A_NAME = re.compile(r"[0-9０-９@＠]")


@dataclass(frozen=True)
class Finding:
    entity: str  # a key of bunko.pii.recognizers.LABELS
    start: int
    end: int
    score: float


class PiiDetector:
    def __init__(self, model: str = MODEL) -> None:
        self.model = model
        self._engine: AnalyzerEngine | None = None
        self._lock = threading.Lock()

    def _load(self) -> AnalyzerEngine:
        with self._lock:
            if self._engine is None:
                self._engine = _analyzer(self.model)
            return self._engine

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, in order (the higher score wins an overlap)."""
        if not text.strip():
            return []
        from bunko.pii.recognizers import ENTITIES, LANGUAGE, PERSON

        engine = self._load()
        found: list[Finding] = []
        for offset, piece in _pieces(text):
            for r in engine.analyze(piece, language=LANGUAGE, entities=list(ENTITIES),
                                    score_threshold=SCORE_THRESHOLD):
                if r.entity_type == PERSON and _NOT_A_NAME.search(piece[r.start:r.end]):
                    continue  # GiNZA sometimes takes the head of a phone number or an address for a name
                found.append(Finding(r.entity_type, r.start + offset, r.end + offset, round(r.score, 3)))
        return _without_overlaps(found)


def label(entity: str) -> str:
    """What a redacted page shows in place of a finding of ``entity``: ＜電話番号＞."""
    from bunko.pii.recognizers import LABELS

    return f"＜{LABELS[entity]}＞"


def redact(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by its label, through presidio-anonymizer."""
    if not findings:
        return text
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    from bunko.pii.recognizers import ENTITIES

    results = [RecognizerResult(f.entity, f.start, f.end, f.score) for f in findings]
    operators = {e: OperatorConfig("replace", {"new_value": label(e)}) for e in ENTITIES}
    return AnonymizerEngine().anonymize(text=text, analyzer_results=results, operators=operators).text


def _pieces(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + _PIECE_CHARS)
        if end < len(text):
            cut = text.rfind("\n", start + _PIECE_CHARS // 2, end)
            end = cut + 1 if cut != -1 else end
        out.append((start, text[start:end]))
        start = end
    return out


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def _analyzer(model: str) -> AnalyzerEngine:
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
    except ImportError as exc:
        raise ConfigError(
            f"PII detection needs the 'pii' extra (presidio-analyzer, presidio-anonymizer, ja-ginza): "
            f"pip install 'bunko[pii]' ({exc.name} is missing)"
        ) from None
    from bunko.pii.recognizers import LANGUAGE, PERSON, recognizers

    if not (spacy.util.is_package(model) or Path(model).is_dir()):
        raise ConfigError(
            f"the spaCy model {model!r} is not installed: pip install ja-ginza (Bunko never downloads "
            "models at run time)"
        )

    class _GinzaEngine(SpacyNlpEngine):  # type: ignore[misc]
        def load(self) -> None:
            nlp = spacy.load(model, exclude=list(_UNUSED_PIPES))
            # GiNZA's other labels (Date, Company, ...) are not personal information; named here,
            # Presidio drops them quietly instead of warning on every page.
            self.ner_model_configuration.labels_to_ignore = [
                label for label in nlp.get_pipe("ner").labels if label != "Person"]  # type: ignore[attr-defined]
            self.nlp = {LANGUAGE: nlp}  # type: ignore[assignment]

    ner = NerModelConfiguration(model_to_presidio_entity_mapping={"Person": PERSON},
                                low_score_entity_names=[], labels_to_ignore=[])
    nlp_engine = _GinzaEngine(models=[{"lang_code": LANGUAGE, "model_name": model}],
                              ner_model_configuration=ner)
    nlp_engine.load()
    # Only these recognisers: Presidio's predefined set includes some that fetch a suffix list.
    names = SpacyRecognizer(supported_language=LANGUAGE, supported_entities=[PERSON])
    registry = RecognizerRegistry(recognizers=[names, *recognizers()], supported_languages=[LANGUAGE])
    engine: Any = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[LANGUAGE])
    return engine  # type: ignore[no-any-return]
