"""OCR settings on real scans: 1 − CER of the image-only pages of ``bench/realdocs.py`` against
their text layer, for each render resolution and rapidocr input-size cap.

    .venv/bin/python bench/ocr_settings.py [--data bench/.realdocs] [--pages 18]

rapidocr shrinks every image to ``Global.max_side_len`` (2,000 px) on its long side by default, so
an A4 page rendered at 300 dpi (3,508 px) is read at ~170 dpi. Each row renders the same pages
through Bunko's sandbox and reads them with the same engine; only the setting differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality import edit_distance, extract
from bench.realdocs import DEFAULT_OUT, squash


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--pages", type=int, default=18, help="scanned pages to read (spread over the documents)")
    args = ap.parse_args()

    from bunko.ingest.pdf import SandboxedPdf
    from bunko.models.ocr import RapidOcrEngine
    from bunko.settings import get_settings

    settings = get_settings()
    mapping = json.loads((args.data / "scan" / "pages.json").read_text())
    cache = args.data / "cache"
    cache.mkdir(exist_ok=True)
    picks: list[tuple[str, int, int]] = []
    docs = sorted(mapping)
    i = 0
    while len(picks) < args.pages and any(mapping.values()):
        doc = docs[i % len(docs)]
        items = sorted(mapping[doc].items(), key=lambda kv: int(kv[0]))
        k = len([p for p in picks if p[0] == doc])
        if k < len(items):
            picks.append((doc, int(items[k][0]), int(items[k][1])))
        i += 1
        if i > 10 * args.pages:
            break
    refs = {}
    for doc in {d for d, _, _ in picks}:
        pages = extract(args.data / "pdf" / f"{doc}.pdf", cache, ocr=False)
        for d, orig, _ in picks:
            if d == doc:
                refs[(d, orig)] = squash(pages[orig - 1].markdown.replace("|", "").replace("#", ""))

    rows = []
    for dpi in (200, 300):
        for max_side in (2000, 3600):
            engine = RapidOcrEngine()
            engine._load()
            engine._engine.max_side_len = max_side  # type: ignore[union-attr]
            scores, t0 = [], time.perf_counter()
            for doc, orig, idx in picks:
                with SandboxedPdf(args.data / "scan" / f"{doc}.pdf", settings.sandbox) as pdf:
                    image = pdf.render(idx, dpi).image
                got = squash(engine.recognize(image, dpi=dpi).markdown.replace("|", "").replace("#", ""))
                ref = refs[(doc, orig)]
                scores.append(1 - edit_distance(got, ref) / max(len(ref), 1))
            secs = (time.perf_counter() - t0) / len(picks)
            rows.append((dpi, max_side, float(np.mean(scores)), float(np.median(scores)), secs))
            print(f"render {dpi} dpi, rapidocr max_side_len {max_side}: 1-CER mean {rows[-1][2]:.3f} "
                  f"median {rows[-1][3]:.3f}, {secs:.1f} s/page", flush=True)


if __name__ == "__main__":
    main()
