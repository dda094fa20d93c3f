#!/usr/bin/env python3
"""Write (or --check) charts/bunko/Chart.lock without network access.

`helm dependency update` resolves each dependency in its repository and records the result with a
digest of Chart.yaml's dependencies and the resolved ones. Every dependency of the Bunko chart is
pinned to one exact version, so the resolution is known without asking the repositories, and the
digest is computed here exactly as helm does (sha256 of the JSON of [requested, locked], fields
in the order and with the omitempty rules of helm's chart.Dependency). `helm dependency build`
then accepts the lock, and fetches the archives when it is online.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "bunko"


def _go_dependency(dep: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": dep["name"]}
    if dep.get("version"):
        out["version"] = dep["version"]
    out["repository"] = dep.get("repository", "")
    for key in ("condition", "tags", "enabled", "import-values", "alias"):
        if dep.get(key):
            out[key] = dep[key]
    return out


def helm_digest(requested: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    data = json.dumps(
        [[_go_dependency(d) for d in requested], [_go_dependency(d) for d in locked]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # Go's encoding/json escapes these for HTML safety.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def resolve(requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    locked = []
    for dep in requested:
        version = str(dep.get("version", ""))
        if not version or any(c in version for c in "^~<>=*x| ,"):
            raise SystemExit(f"dependency {dep['name']}: pin one exact version (got {version!r})")
        locked.append({"name": dep["name"], "repository": dep.get("repository", ""), "version": version})
    return locked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("--check", action="store_true", help="fail if Chart.lock is missing or stale")
    args = parser.parse_args()
    requested = yaml.safe_load((args.chart / "Chart.yaml").read_text())["dependencies"]
    locked = resolve(requested)
    digest = helm_digest(requested, locked)
    lock_path = args.chart / "Chart.lock"
    if args.check:
        if not lock_path.exists():
            print(f"{lock_path} is missing: run scripts/chart-lock.py", file=sys.stderr)
            return 1
        current = yaml.safe_load(lock_path.read_text())
        if current.get("digest") != digest or current.get("dependencies") != locked:
            print(f"{lock_path} is out of sync with Chart.yaml: run scripts/chart-lock.py", file=sys.stderr)
            return 1
        print(f"{lock_path} is in sync ({digest})")
        return 0
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lock = {"dependencies": locked, "digest": digest, "generated": generated}
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    print(f"wrote {lock_path} ({digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
