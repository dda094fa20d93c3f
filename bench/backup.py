"""Backup and restore of a collection against re-ingesting it, in one run.

Makes a born-digital report of --pages pages (bench/ingest.py's generator), ingests it with
`bunko ingest` (the baseline: what rebuilding the index by re-extracting and re-embedding costs),
then times `bunko backup`, destroys the data directory, and times `bunko restore` — each a separate
process, as an operator runs them. Prints the three times and the backup's size.

    python bench/backup.py [--pages 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import make_born_digital

CLI = [sys.executable, "-c", "from bunko.cli import main; main()"]


def run(env: dict[str, str], *args: str) -> float:
    t0 = time.monotonic()
    subprocess.run([*CLI, *args], env=env, check=True, capture_output=True, text=True)
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs = root / "docs"
        docs.mkdir()
        make_born_digital(docs / "report.pdf", args.pages)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
        env["BUNKO_DATA_DIR"] = str(root / "data")
        ingest_s = run(env, "ingest", str(docs))
        backup_s = run(env, "backup", str(root / "backup"))
        size = sum(p.stat().st_size for p in (root / "backup").rglob("*") if p.is_file())
        shutil.rmtree(root / "data")
        restore_s = run(env, "restore", str(root / "backup"))
    print(f"{args.pages} pages, embedded default (SQLite, file objects, embedded Milvus engine), this machine:")
    print(f"  ingest (baseline: re-extract + re-embed)  {ingest_s:8.1f} s")
    print(f"  bunko backup                              {backup_s:8.1f} s   ({size / 1e6:.1f} MB)")
    print(f"  bunko restore (vectors from the backup)   {restore_s:8.1f} s   "
          f"({ingest_s / restore_s:.1f}x faster than re-ingesting)")


if __name__ == "__main__":
    main()
