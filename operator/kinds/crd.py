"""The CustomResourceDefinitions, generated from the typed specs.

``python -m bunko.operator.kinds.crd crds charts/bunko/crds`` (``make crds``) writes
``<plural>.yaml`` into each folder; ``--check`` fails, naming the file, when a committed one differs
from what the classes say. pydantic's JSON Schema is turned into a Kubernetes *structural* schema:
references inlined, ``Optional`` unwrapped, draft-4 exclusive bounds, no ``additionalProperties:
false`` (the API server prunes unknown fields instead), and every key in one fixed order so the
files diff well.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bunko.operator.kinds import collection, pipeline
from bunko.operator.kinds.base import GROUP, VERSION, Kind

KINDS: dict[str, Kind] = {k.plural: k for k in (pipeline.KIND, collection.KIND)}

_ORDER = (
    "type", "description", "default", "enum", "format", "pattern", "minimum", "exclusiveMinimum",
    "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "required",
    "x-kubernetes-validations", "items", "properties", "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
)  # fmt: skip


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema from a pydantic model's JSON Schema."""
    defs = schema.get("$defs", {})

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # the field's own description and default win
        if "anyOf" in node:
            choices = [c for c in node.pop("anyOf") if c.get("type") != "null"]
            if len(choices) != 1:
                raise ValueError(f"a CRD field takes one type, not {choices}")
            node = {**choices[0], **node}
            if "$ref" in node:
                return walk(node)
        if "const" in node:
            node["enum"] = [node.pop("const")]
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(bound), (int, float)) and not isinstance(node[bound], bool):
                node[plain], node[bound] = node[bound], True
        if node.get("default", 0) is None:
            del node["default"]
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]
        if "enum" in node and "type" not in node:
            node["type"] = "string"
        if "properties" in node:
            node["properties"] = {k: walk(v) for k, v in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            node["items"] = walk(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = walk(node["additionalProperties"])
        if "description" in node:  # docstrings wrap; kubectl explain re-wraps
            node["description"] = " ".join(node["description"].split())
        node.pop("title", None)
        node.pop("$defs", None)
        unknown = set(node) - set(_ORDER)
        if unknown:
            raise ValueError(f"no CRD rendering for JSON Schema keys {sorted(unknown)}")
        return {k: node[k] for k in _ORDER if k in node}

    return walk(schema)


@cache
def spec_schema(plural: str) -> dict[str, Any]:
    """The OpenAPI schema of ``spec`` for the kind ``plural``, as the API server holds it."""
    model = KINDS[plural].spec
    schema = structural(model.model_json_schema(by_alias=True, mode="validation"))
    schema.pop("description", None)  # the class docstring says why; the kind's header says what
    return schema


def build_crd(plural: str) -> dict[str, Any]:
    kind = KINDS[plural]
    name = kind.kind
    root: dict[str, Any] = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": kind.metadata,
            "spec": copy.deepcopy(spec_schema(plural)),
            "status": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": kind.status,
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": plural,
                "singular": name.lower(),
                "shortNames": kind.short_names,
                "categories": ["bunko"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": kind.columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """No anchors: each field reads whole where it stands, as ``kubectl explain`` shows it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def crd_yaml(plural: str) -> str:
    header = "".join(f"# {line}".rstrip() + "\n" for line in KINDS[plural].header.strip().splitlines())
    note = f"# Generated from bunko.operator.kinds.{KINDS[plural].spec.__module__.rsplit('.', 1)[-1]}"
    note += " by `make crds`: edit the class, not this file.\n"
    body = yaml.dump(build_crd(plural), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + note + body


def crd_spec_schema(plural: str) -> dict[str, Any]:
    """The structural schema of a kind's spec, as its CRD carries it."""
    root = build_crd(plural)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(root["properties"]["spec"])


def _draft7(schema: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema draft-07 (Helm's): a boolean exclusiveMinimum /
    exclusiveMaximum becomes the number it qualifies. An unknown field, which the API server would
    drop without a word (pruning), is refused: in values it is a typo."""
    if isinstance(schema, list):
        return [_draft7(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _draft7(v) for k, v in schema.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    for bound in ("Minimum", "Maximum"):
        if out.get(f"exclusive{bound}") is True:
            out[f"exclusive{bound}"] = out.pop(bound.lower())
        elif out.get(f"exclusive{bound}") is False:
            del out[f"exclusive{bound}"]
    return out


def values_schema(current: dict[str, Any]) -> dict[str, Any]:
    """The chart's values.schema.json with its Pipeline and DocumentCollection specs replaced by
    the CRDs' own schemas, so `helm install` refuses a spec the API server would (enums, bounds,
    required fields; CEL rules are left to the API server). pipeline.spec may be empty (cpuSpec)."""
    out = json.loads(json.dumps(current))
    pipeline = _draft7(crd_spec_schema("pipelines"))
    props = out["properties"]
    props["pipeline"]["properties"]["spec"] = {"anyOf": [{"type": "object", "maxProperties": 0}, pipeline]}
    props["pipeline"]["properties"]["cpuSpec"] = pipeline
    props["documentCollection"]["properties"]["spec"] = _draft7(crd_spec_schema("documentcollections"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the CRD YAML of every Bunko kind.")
    parser.add_argument("folders", nargs="+", type=Path, help="folders that hold <plural>.yaml files")
    parser.add_argument("--check", action="store_true", help="fail when a file differs; write nothing")
    parser.add_argument("--values-schema", type=Path, help="the chart's values.schema.json, whose specs follow")
    args = parser.parse_args(argv)
    stale = []
    if args.values_schema:
        current = json.loads(args.values_schema.read_text(encoding="utf-8"))
        text = json.dumps(values_schema(current), indent=2, ensure_ascii=False) + "\n"
        if args.check:
            if args.values_schema.read_text(encoding="utf-8") != text:
                stale.append(str(args.values_schema))
        else:
            args.values_schema.write_text(text, encoding="utf-8")
    for folder in args.folders:
        for plural in KINDS:
            path = folder / f"{plural}.yaml"
            text = crd_yaml(plural)
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date with the typed specs: {', '.join(stale)}; run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
