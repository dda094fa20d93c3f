"""What every kind's spec shares: camelCase field names, CEL rules attached to a class, and the
shapes Kubernetes conditions take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUP, VERSION = "bunko.dev", "v1alpha1"

# Unit suffixes Kubernetes spells with a capital inside a word.
_SPECIAL = {"gib": "GiB"}


def camel(name: str) -> str:
    """snake_case field names to the camelCase of Kubernetes resources (``memory_gib`` -> ``memoryGiB``)."""
    head, *rest = name.split("_")
    return head + "".join(_SPECIAL.get(p, p[:1].upper() + p[1:]) for p in rest)


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``x-kubernetes-validations`` for a class: (CEL rule, message) pairs.

    The API server evaluates them; :mod:`bunko.operator.schemas` evaluates the same text with
    cel-python before the operator acts, so a cluster that skips validation changes nothing.
    """
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class SpecModel(BaseModel):
    """A part of a custom resource's spec. Field names are snake_case here and camelCase in YAML.

    Unknown fields are refused here; the API server prunes them earlier, and so does
    :func:`bunko.operator.schemas.apply_defaults` before a spec reaches this class.
    """

    model_config = ConfigDict(
        extra="forbid", alias_generator=camel, populate_by_name=True, frozen=True, protected_namespaces=()
    )


def defaulted(model: type[BaseModel], **kwargs: Any) -> Any:
    """A sub-object that is always present: ``{}`` in the CRD (the API server then fills in its
    fields' defaults), the class's defaults here."""
    extra = kwargs.pop("json_schema_extra", {})
    return Field(default_factory=model, json_schema_extra={"default": {}, **extra}, **kwargs)


CONDITIONS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    },
}


@dataclass(frozen=True)
class Kind:
    """What the CRD of a kind says beside its spec's schema (bunko.operator.kinds.crd renders it)."""

    kind: str
    plural: str
    short_names: list[str]
    spec: type[BaseModel]
    header: str  # the comment at the top of the generated YAML: the kind module's docstring
    columns: list[dict[str, Any]]  # additionalPrinterColumns
    metadata: dict[str, Any]  # the schema of metadata (a DocumentCollection's name is a DNS label)
    status: dict[str, Any]  # the properties of status, written by the operator
