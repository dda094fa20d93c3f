"""Ingestion throughput: the pipeline against its bare engines, in one run.

Prints pages/s for a born-digital and a scanned PDF through the real pipeline (sandboxed
extraction, chunking, embedding, Milvus Lite indexing, database rows, object store, thumbnail),
and, on the same files in the same run, the bare engine times: pypdfium2 text extraction alone,
rasterise + rapidocr alone, embedding alone. The ratio pipeline / engines is the cost of the glue.

    python bench/ingest.py [--born-pages 300] [--scanned-pages 4]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bunko import samples as S

console = Console()


def make_born_digital(path: Path, pages: int) -> Path:
    """A long born-digital report: prose pages from the sample sentences, shuffled per page."""
    pdf = S._new_pdf("ベンチマーク用報告書")
    rng = random.Random(1)
    sentences = S.BORN_DIGITAL_SENTENCES + S.SCANNED_SENTENCES
    for n in range(pages):
        pdf.add_page()
        S._heading(pdf, f"第{n + 1}節 検証")
        for _ in range(8):
            S._paragraph(pdf, "".join(rng.sample(sentences, 3)))
    pdf.output(str(path))
    return path


def make_scanned(path: Path, pages: int) -> Path:
    rng = random.Random(2)
    sentences = S.BORN_DIGITAL_SENTENCES + S.SCANNED_SENTENCES
    images = [
        S._render_text_page([(f"第{n + 1}章 スキャン", 18)] + [("".join(rng.sample(sentences, 2)), 11)
                                                              for _ in range(6)], seed=n)
        for n in range(pages)
    ]
    return S._image_pdf(images, path, "スキャンベンチマーク")


def bare_text(path: Path) -> float:
    t = time.perf_counter()
    doc = pdfium.PdfDocument(str(path))
    for i in range(len(doc)):
        page = doc[i]
        tp = page.get_textpage()
        tp.get_text_range()
        tp.close()
        page.close()
    doc.close()
    return time.perf_counter() - t


def bare_ocr(path: Path, engine: object, dpi: int) -> tuple[float, float, list[str]]:
    """Render time, OCR time, and the texts (for the embedding leg)."""
    render = ocr = 0.0
    texts: list[str] = []
    doc = pdfium.PdfDocument(str(path))
    for i in range(len(doc)):
        t = time.perf_counter()
        image = doc[i].render(scale=dpi / 72).to_pil()
        render += time.perf_counter() - t
        t = time.perf_counter()
        result = engine.recognize(image, dpi=dpi)  # type: ignore[attr-defined]
        ocr += time.perf_counter() - t
        texts.append(result.markdown)
    doc.close()
    return render, ocr, texts


def pipeline_run(path: Path, data_dir: Path) -> tuple[float, int, object]:
    from bunko.collections import ensure_default_collection
    from bunko.ingest.pipeline import make_processor
    from bunko.ingest.submit import submit_document
    from bunko.ingest.worker import run_worker
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir, ocr_engines=["rapidocr"], _env_file=None))  # type: ignore[call-arg]
    ensure_default_collection(rt)
    _ = rt.embedder, rt.ocr_engines  # models loaded before the clock starts, as in a warm worker
    t = time.perf_counter()
    doc = submit_document(rt, collection="default", path=path, filename=path.name, owner_id="bench")
    run_worker(rt.settings, make_processor(rt), worker_id="bench", drain=True)
    wall = time.perf_counter() - t
    from bunko.store.db import Document

    with rt.sessions() as s:
        d = s.get(Document, doc.id)
        assert d is not None and d.status == "completed", (d.status if d else None, d.error if d else None)
        return wall, d.chunk_count, rt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--born-pages", type=int, default=300)
    ap.add_argument("--scanned-pages", type=int, default=4)
    args = ap.parse_args()

    from bunko.collections import CollectionConfig
    from bunko.ingest.extract import extract_document
    from bunko.models.embedding import load_embedder
    from bunko.models.ocr import load_ocr_engines
    from bunko.settings import Settings
    from bunko.text.chunking import chunk_pages

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    cfg = CollectionConfig()
    with tempfile.TemporaryDirectory(prefix="bunko-bench-") as tmp_s:
        tmp = Path(tmp_s)
        born = make_born_digital(tmp / "born.pdf", args.born_pages)
        scanned = make_scanned(tmp / "scanned.pdf", args.scanned_pages)

        # --- born-digital: extract + chunk (the stage the 200 pages/s target is about) ---
        t_text = min(bare_text(born) for _ in range(3))
        t0 = time.perf_counter()
        pages = extract_document(born, sandbox=settings.sandbox, ocr=settings.ocr, engines=[])
        drafts = chunk_pages(pages, chunk_size=cfg.chunk_size, chunk_overlap=cfg.chunk_overlap,
                             table_max_chars=cfg.table_max_chars)
        t_extract_chunk = time.perf_counter() - t0
        born_wall, born_chunks, _ = pipeline_run(born, tmp / "p-born")

        # --- scanned: the whole pipeline vs its engines (render + OCR + embed) ---
        engine = load_ocr_engines(["rapidocr"])[0]
        embedder = load_embedder(settings.embedding_model)
        embedder.embed_documents(["ウォームアップ"])
        engine.recognize(S._render_text_page([("ウォームアップ", 11)], dpi=100), dpi=100)
        t_render, t_ocr, _texts = bare_ocr(scanned, engine, settings.ocr_dpi)
        scan_wall, scan_chunks, rt = pipeline_run(scanned, tmp / "p-scan")
        from bunko.store.db import Chunk

        with rt.sessions() as s:  # type: ignore[attr-defined]
            chunk_texts = [c.text for c in s.query(Chunk).all()]
        t = time.perf_counter()
        for i in range(0, len(chunk_texts), 64):
            embedder.embed_documents(chunk_texts[i:i + 64])
        t_embed = time.perf_counter() - t
        t_scan_text = bare_text(scanned)

    n_born, n_scan = args.born_pages, args.scanned_pages
    table = Table(title="ingestion — pipeline vs bare engines (same files, same run)")
    for col in ("measure", "pages", "seconds", "pages/s", "note"):
        table.add_column(col)
    table.add_row("born-digital: pypdfium2 text alone", str(n_born), f"{t_text:.3f}", f"{n_born / t_text:.0f}",
                  "best of 3, in-process")
    table.add_row("born-digital: extract + chunk (sandboxed)", str(n_born), f"{t_extract_chunk:.3f}",
                  f"{n_born / t_extract_chunk:.0f}", f"{len(drafts)} chunks; target ≥ 200 pages/s")
    table.add_row("born-digital: whole pipeline", str(n_born), f"{born_wall:.2f}", f"{n_born / born_wall:.1f}",
                  f"{born_chunks} chunks, embedding dominates")
    engines = t_render + t_ocr + t_embed + t_scan_text
    table.add_row("scanned: render 300 dpi alone", str(n_scan), f"{t_render:.2f}", "", "")
    table.add_row("scanned: rapidocr alone", str(n_scan), f"{t_ocr:.2f}", f"{n_scan / t_ocr:.2f}", "")
    table.add_row("scanned: embedding alone", str(n_scan), f"{t_embed:.2f}", "", f"{scan_chunks} chunks")
    table.add_row("scanned: sum of bare engines", str(n_scan), f"{engines:.2f}", f"{n_scan / engines:.2f}", "")
    table.add_row("scanned: whole pipeline", str(n_scan), f"{scan_wall:.2f}", f"{n_scan / scan_wall:.2f}",
                  "sandbox, OCR, chunk, embed, Milvus, DB, S3/dir, thumbnail")
    console.print(table)
    console.print(f"ratio pipeline / bare engines on scanned pages: [bold]{scan_wall / engines:.3f}[/bold] "
                  "(target ≤ 1.10)")
    console.print(f"extract + chunk on born-digital pages: [bold]{n_born / t_extract_chunk:.0f} pages/s[/bold] "
                  f"(bare pypdfium2: {n_born / t_text:.0f} pages/s; target ≥ 200)")


if __name__ == "__main__":
    main()
