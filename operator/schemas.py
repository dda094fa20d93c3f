"""A custom resource's spec, checked the way the API server checks it — defaults, then OpenAPI,
then CEL — and parsed once into its typed class (``bunko.operator.kinds``).

The operator checks every spec itself before acting on it, because not every API server it meets
validates (test emulators do none) and a half-valid spec must become a condition, not a crash. The
schema is the one the CRD is generated from, and the CEL rules are evaluated with cel-python in
every install, so what the tests check is what the operator does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from typing import Any, TypeVar

import celpy
import yaml
from jsonschema import Draft4Validator
from pydantic import ValidationError

from bunko.errors import ConfigError, InvalidInput
from bunko.operator.kinds.collection import DocumentCollectionSpec
from bunko.operator.kinds.crd import spec_schema
from bunko.operator.kinds.pipeline import PipelineSpec

_Spec = TypeVar("_Spec", PipelineSpec, DocumentCollectionSpec)

PIPELINES = "pipelines"
COLLECTIONS = "documentcollections"


@cache
def load_crd(plural: str) -> dict[str, Any]:
    """The CRD ``crds/<plural>.yaml``, read from the installed package (``bunko.crds``)."""
    resource = files("bunko.crds") / f"{plural}.yaml"
    if not resource.is_file():
        raise ConfigError(f"no CRD named {plural!r} ships with this Bunko (bunko.crds/{plural}.yaml)")
    crd: dict[str, Any] = yaml.safe_load(resource.read_text(encoding="utf-8"))
    return crd


def openapi_schema(crd: Mapping[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise ConfigError(f"CRD {crd['metadata']['name']} has no version {version}")


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """A copy of ``value`` pruned of unknown fields and with the schema's defaults filled in."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        props = schema.get("properties")
        if (
            props is not None
            and not schema.get("additionalProperties")
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            for key in [k for k in value if k not in props]:
                del value[key]  # structural pruning, as the API server does with unknown fields
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in value:
                if key not in schema.get("properties", {}):
                    _default(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default(schema["items"], item)


def schema_errors(schema: Mapping[str, Any], value: Any) -> list[tuple[str, str]]:
    """OpenAPI (JSON Schema draft 4, as Kubernetes uses it) and CEL errors, as (path, message)."""
    found = sorted(Draft4Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if found:
        return [(_path(e.absolute_path), e.message) for e in found]
    # CEL rules assume a value of the right shape, as in the API server.
    return cel_errors(schema, value)


def validate_spec(plural: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The spec with defaults applied, and every error the API server would have reported."""
    schema = spec_schema(plural)
    defaulted: dict[str, Any] = apply_defaults(schema, dict(spec))
    return defaulted, [
        f"spec{'.' + path if path and not path.startswith('[') else path}: {msg}"
        for path, msg in schema_errors(schema, defaulted)
    ]


def parse_pipeline(spec: Mapping[str, Any]) -> PipelineSpec:
    """A Pipeline spec, defaulted, checked and typed; ``InvalidInput`` lists every error."""
    return _parse(PIPELINES, PipelineSpec, spec)


def parse_collection(spec: Mapping[str, Any]) -> DocumentCollectionSpec:
    """A DocumentCollection spec, defaulted, checked and typed; ``InvalidInput`` lists every error."""
    return _parse(COLLECTIONS, DocumentCollectionSpec, spec)


def _parse(plural: str, model: type[_Spec], spec: Mapping[str, Any]) -> _Spec:
    full, errors = validate_spec(plural, spec)
    if not errors:
        try:
            return model.model_validate(full)
        except ValidationError as exc:  # the schema is generated from the class: a bug if reached
            errors = [f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    raise InvalidInput("; ".join(errors), detail={"errors": errors})


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out.lstrip(".")


# --- CEL (x-kubernetes-validations) ---------------------------------------------------------------


def _rules(
    schema: Mapping[str, Any], value: Any, path: str = ""
) -> Iterator[tuple[str, dict[str, Any], Any]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _rules(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            yield from _rules(schema["items"], item, f"{path}[{i}]")


def cel_errors(schema: Mapping[str, Any], value: Any) -> list[tuple[str, str]]:
    """Evaluate every CEL rule that applies to ``value`` (transition rules with oldSelf are skipped)."""
    out: list[tuple[str, str]] = []
    for path, rule, node in _rules(schema, value):
        if "oldSelf" in rule["rule"]:
            continue
        program = _program(rule["rule"])
        try:
            ok = program.evaluate({"self": celpy.json_to_cel(node)})
        except celpy.CELEvalError as exc:
            out.append((path, f"rule {rule['rule']!r} could not be evaluated: {exc.args[0]}"))
            continue
        if not bool(ok):
            out.append((path, str(rule.get("message") or f"failed rule: {rule['rule']}")))
    return out


@cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))
