"""``bunko demo``: from nothing to cited answers, offline, on a CPU.

Builds the project's own sample PDFs (a born-digital report with a table, a scanned image-only
page, a page with a broken text layer, a vertical-text page), ingests them with progress bars and
asks questions whose answers sit in a table cell, on a scanned page and in vertical text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bunko.domain import Principal
from bunko.samples import make_samples

if TYPE_CHECKING:
    from bunko.runtime import Runtime

DEMO_QUESTIONS: list[str] = [
    "2025年度の売上高はいくらですか？",  # only in a table cell of the born-digital report
    "画像だけの頁の本文はどのように復元しますか？",  # only on the scanned page
    "縦書きの文章はどちらから読みますか？",  # the vertical-text page
]


def run_demo(rt: Runtime, console: Console, *, ingest: Callable[[list[Path]], None]) -> None:
    from bunko.qa import ask

    t0 = time.perf_counter()
    sample_dir = rt.settings.data_dir / "samples"
    console.rule("[bold]1. サンプルPDFの作成[/bold] (sample PDFs)")
    paths = make_samples(sample_dir)
    for name, path in paths.items():
        console.print(f"  {name:20s} {path.stat().st_size / 1024:8.1f} KiB")

    console.rule("[bold]2. 取り込み[/bold] (ingest: extract → OCR → chunk → embed → index)")
    ingest(list(paths.values()))

    console.rule("[bold]3. 質問[/bold] (questions)")
    admin = Principal(user_id="demo", role="admin")
    for q in DEMO_QUESTIONS:
        a = asdict(ask(rt, q, principal=admin, collection="default"))
        console.print(f"\n[bold cyan]Q:[/bold cyan] {q}")
        console.print(f"[bold green]A:[/bold green] {a['answer']}", highlight=False)
        table = Table("#", "文書", "頁", "score", "snippet",
                      title=f"mode={a['mode']} confidence={a['confidence']:.2f} "
                            f"{a['processing_time_ms']:.0f} ms", title_justify="left")
        for i, s in enumerate(a["sources"], 1):
            table.add_row(str(i), s["title"][:20], str(s["page"]), f"{s['score']:.3f}",
                          s["snippet"].replace("\n", " ")[:50])
        console.print(table)
    console.rule(f"done in {time.perf_counter() - t0:.1f} s")
