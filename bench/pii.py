"""PII detection measured on a labelled Japanese set: precision and recall per kind.

    .venv/bin/python bench/pii.py [--set bench/pii_set.yaml] [--misses]

The set (bench/pii_set.yaml) is realistic sentences with every piece of personal information
labelled by kind and exact text, and near-misses beside them (order and ticket numbers, dates,
versions, prices, product codes, 12-digit numbers failing the My Number check). A finding counts
as right when its kind matches a labelled span it overlaps by at least half of their union; the
baseline row is Presidio's own recognisers with their defaults (English context words, every
phone region, no My Number, postal code or address recogniser), over the same GiNZA names.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bunko.pii.detect import Finding, PiiDetector  # noqa: E402
from bunko.pii.recognizers import ENTITIES  # noqa: E402

Span = tuple[str, int, int]


def gold_spans(text: str, labels: list[list[str]]) -> list[Span]:
    spans = []
    for kind, value in labels:
        start = text.find(value)
        if start < 0:
            raise SystemExit(f"label {value!r} is not in {text!r}")
        spans.append((kind, start, start + len(value)))
    return spans


def _iou(a: Span, b: Span) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[1], b[1]))
    union = max(a[2], b[2]) - min(a[1], b[1])
    return inter / union if union else 0.0


def score(items: list[dict], find, *, misses: bool = False) -> dict[str, Counter]:
    tally: dict[str, Counter] = {k: Counter() for k in ENTITIES}
    for item in items:
        text = item["text"]
        gold = gold_spans(text, item["pii"])
        found: list[Span] = [(f.entity, f.start, f.end) for f in find(text)]
        matched_gold: set[int] = set()
        for f in found:
            hit = next((i for i, g in enumerate(gold) if i not in matched_gold and g[0] == f[0]
                        and _iou(f, g) >= 0.5), None)
            if hit is None:
                tally.setdefault(f[0], Counter())["fp"] += 1
                if misses:
                    print(f"  FP {f[0]:15} {text[f[1]:f[2]]!r:40} in {text}")
            else:
                matched_gold.add(hit)
                tally[f[0]]["tp"] += 1
        for i, g in enumerate(gold):
            if i not in matched_gold:
                tally[g[0]]["fn"] += 1
                if misses:
                    print(f"  FN {g[0]:15} {text[g[1]:g[2]]!r:40} in {text}")
    return tally


def _row(name: str, c: Counter) -> str:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else float("nan")
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else float("nan")
    return f"| {name} | {c['tp'] + c['fn']} | {p:.2f} | {r:.2f} | {c['fp']} |"


def table(title: str, tally: dict[str, Counter]) -> None:
    print(f"\n{title}\n\n| kind | labelled | precision | recall | false positives |\n|---|---|---|---|---|")
    total: Counter = Counter()
    for kind in ENTITIES:
        print(_row(kind, tally.get(kind, Counter())))
        total.update(tally.get(kind, Counter()))
    for kind in sorted(set(tally) - set(ENTITIES)):
        print(_row(kind, tally[kind]))
        total.update(tally[kind])
    print(_row("**all**", total))


def presidio_defaults(detector: PiiDetector):
    """Presidio's predefined recognisers as they come (English context, all phone regions), told
    to read Japanese: the baseline the Japanese recognisers are measured against."""
    from presidio_analyzer import RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    engine = detector._load()  # the same GiNZA engine
    registry = RecognizerRegistry(supported_languages=["ja"], recognizers=[
        SpacyRecognizer(supported_language="ja", supported_entities=["PERSON"]),
        EmailRecognizer(supported_language="ja"), PhoneRecognizer(supported_language="ja"),
        CreditCardRecognizer(supported_language="ja")])
    from presidio_analyzer import AnalyzerEngine

    base = AnalyzerEngine(nlp_engine=engine.nlp_engine, registry=registry, supported_languages=["ja"])

    def find(text: str) -> list[Finding]:
        return [Finding(r.entity_type, r.start, r.end, r.score)
                for r in base.analyze(text, language="ja", score_threshold=0.4)]

    return find


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=HERE / "pii_set.yaml")
    ap.add_argument("--misses", action="store_true", help="print every false positive and miss")
    args = ap.parse_args()
    items = yaml.safe_load(args.set.read_text(encoding="utf-8"))["items"]
    labelled = sum(len(i["pii"]) for i in items)
    print(f"{len(items)} sentences, {labelled} labelled spans, "
          f"{sum(1 for i in items if not i['pii'])} sentences with none")
    detector = PiiDetector()
    t0 = time.perf_counter()
    detector.find("準備")
    print(f"GiNZA + Presidio loaded in {time.perf_counter() - t0:.1f} s")
    try:
        baseline = score(items, presidio_defaults(detector))
    except Exception as exc:  # a baseline that cannot run is reported, not fatal
        print(f"baseline failed: {exc}")
        baseline = None
    t0 = time.perf_counter()
    ours = score(items, detector.find, misses=args.misses)
    chars = sum(len(i["text"]) for i in items)
    seconds = time.perf_counter() - t0
    if baseline is not None:
        table("Baseline: Presidio's predefined recognisers, defaults, same GiNZA names", baseline)
    table("Bunko: Japanese recognisers (bunko.pii)", ours)
    print(f"\n{chars} characters in {seconds:.2f} s ({chars / seconds:,.0f} characters/s on this machine)")


if __name__ == "__main__":
    main()
