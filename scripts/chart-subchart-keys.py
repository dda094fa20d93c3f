#!/usr/bin/env python3
"""Fail on a value the umbrella chart gives a subchart that the subchart does not have.

Helm passes `milvus.standalone.resorces` to Milvus without a word, and Milvus ignores it: the
limit a platform team thought it set is not there. This walks the values given to each subchart
(the chart's values.yaml merged with an overlay) and looks each key up in the subchart's own
defaults, its sub-subcharts' defaults included (Milvus's etcd). A key under a default that is an
empty map, a list or null is free-form (extraEnv: []) and not checked further, nor is one that the
chart copies into the pod spec as a Kubernetes object (securityContext, resources ...).

Usage: chart-subchart-keys.py CHART_DIR [VALUES_FILE ...]   (exit 1 and one line per unknown key)
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

# Keys Helm itself gives meaning to under a subchart's section.
_HELM_KEYS = {"enabled", "global", "tags"}
# Values the charts copy into a pod spec as Kubernetes objects: their keys are the API's, checked
# where the rendered manifests are validated against Kubernetes' schemas (kubernetes-validate).
_KUBERNETES_OBJECTS = ("securitycontext", "resources", "affinity", "nodeselector", "tolerations")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _chart_files(source: Path) -> dict[str, bytes]:
    """The files of a chart folder or archive, by path inside the chart."""
    if source.is_dir():
        return {str(p.relative_to(source)): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    with tarfile.open(source) as tar:
        files = {}
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            if f is not None:
                files[member.name.split("/", 1)[1]] = f.read()
        return files


def _defaults(files: dict[str, bytes]) -> dict[str, Any]:
    """A chart's default values, each of its own subcharts' defaults under that subchart's name."""
    values: dict[str, Any] = yaml.safe_load(files.get("values.yaml", b"")) or {}
    for name, sub in _subcharts(files).items():
        values[name] = _merge(_defaults(sub), values.get(name) or {})
    return values


def _subcharts(files: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    subs: dict[str, dict[str, bytes]] = {}
    for path, data in files.items():
        parts = path.split("/")
        if len(parts) == 2 and parts[0] == "charts" and parts[1].endswith(".tgz"):
            sub = _chart_files_from_bytes(data)
        elif len(parts) == 3 and parts[0] == "charts" and parts[2] == "Chart.yaml":
            prefix = f"charts/{parts[1]}/"
            sub = {p[len(prefix):]: d for p, d in files.items() if p.startswith(prefix)}
        else:
            continue
        subs[yaml.safe_load(sub["Chart.yaml"])["name"]] = sub
    return subs


def _chart_files_from_bytes(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name.split("/", 1)[1]: f.read()
            for m in tar.getmembers()
            if m.isfile() and (f := tar.extractfile(m)) is not None
        }


def unknown_keys(given: Any, defaults: Any, path: str) -> list[str]:
    if not isinstance(given, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    out = []
    for key, value in given.items():
        if key in _HELM_KEYS and "." not in path:
            continue
        if key not in defaults:
            out.append(f"{path}.{key}")
        elif defaults[key] is not None and not key.lower().endswith(_KUBERNETES_OBJECTS):
            out += unknown_keys(value, defaults[key], f"{path}.{key}")
    return out


def check(chart: Path, overlays: list[Path]) -> list[str]:
    files = _chart_files(chart)
    values: dict[str, Any] = yaml.safe_load(files["values.yaml"]) or {}
    for overlay in overlays:
        values = _merge(values, yaml.safe_load(overlay.read_text()) or {})
    problems = []
    for name, sub in _subcharts(files).items():
        for key in unknown_keys(values.get(name) or {}, _defaults(sub), name):
            problems.append(f"{key}: the {name} chart has no such value (a typo, or a key of another version?)")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(Path(argv[0]), [Path(a) for a in argv[1:]])
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
