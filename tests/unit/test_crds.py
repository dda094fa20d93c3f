"""Our CRDs: every example is valid; invalid specs are refused by OpenAPI rules and by CEL rules
(evaluated with cel-python, as the API server would); the committed YAML is what the typed specs
generate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator

from bunko.collections import CollectionConfig
from bunko.errors import InvalidInput
from bunko.operator.catalogue import non_commercial_ids
from bunko.operator.kinds.crd import crd_yaml, spec_schema
from bunko.operator.kinds.crd import main as crd_main
from bunko.operator.kinds.pipeline import RAY_VERSION, Llm
from bunko.operator.schemas import (
    COLLECTIONS,
    PIPELINES,
    load_crd,
    openapi_schema,
    parse_pipeline,
    validate_spec,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


def plural_of(doc):
    return {"Pipeline": PIPELINES, "DocumentCollection": COLLECTIONS}[doc["kind"]]


@pytest.mark.parametrize("plural", [PIPELINES, COLLECTIONS])
def test_crd_is_well_formed(plural):
    crd = load_crd(plural)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "bunko.dev" and crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Ready", "Age"} <= columns
    assert crd["spec"]["names"]["shortNames"] == [{"pipelines": "bpl", "documentcollections": "bdc"}[plural]]
    Draft4Validator.check_schema(openapi_schema(crd))


def test_examples_cover_every_scenario():
    names = {p.name for p in EXAMPLES}
    assert {
        "pipeline.rtx4090.yaml",
        "pipeline.multigpu.yaml",
        "pipeline.cpu.yaml",
        "pipeline.permissive.yaml",
        "documentcollection.default.yaml",
        "documentcollection.hnsw.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "bunko.dev/v1alpha1"
    schema = openapi_schema(load_crd(plural_of(doc)))
    assert list(Draft4Validator(schema).iter_errors(doc)) == []
    _, errors = validate_spec(plural_of(doc), doc["spec"])
    assert errors == []


def _example(name):
    return yaml.safe_load((ROOT / "crds" / "examples" / name).read_text())["spec"]


def _set(spec, path, value):
    spec = copy.deepcopy(spec)
    node = spec
    *parents, leaf = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    if value is ...:
        del node[leaf]
    else:
        node[leaf] = value
    return spec


INVALID_PIPELINES = [
    ("unknown profile", "gpuProfile.name", "rtx3060", "gpuProfile.name"),
    ("profile name and list", "gpuProfile.gpus", [{"type": "x", "memoryGiB": 8}], "exactly one of"),
    ("zero GPU memory", "gpuProfile", {"gpus": [{"type": "x", "memoryGiB": 0}]}, "memoryGiB"),
    ("missing embedding", "embedding", ..., "'embedding' is a required property"),
    ("unknown OCR engine", "ocr.model", "abbyy", "ocr.model"),
    ("unknown LLM engine", "llm.engine", "tgi", "llm.engine"),
    ("fraction above 1", "llm.resources", {"gpuFraction": 1.5}, "gpuFraction"),
    ("both memory and fraction", "llm.resources", {"gpuFraction": 0.5, "memoryGiB": 10}, "at most one"),
    ("proxy without url", "llm.engine", "proxy", "needs llm.url"),
    ("vllm on CPU", "llm.device", "cpu", "needs device gpu"),
    ("quantisation on transformers", "llm.engine", "transformers", "served by engine vllm"),
    ("non-commercial without licence", "licenseAccepted", False, "licenseAccepted: true"),
    ("PVC without claim", "modelCache", {"type": "PersistentVolumeClaim"}, "claimName"),
    ("tiny context", "llm.maxModelLen", 16, "llm.maxModelLen"),
    ("unknown field", "llm.temperature", 0.2, None),
]


@pytest.mark.parametrize(
    ("case", "path", "value", "fragment"), INVALID_PIPELINES, ids=[c[0] for c in INVALID_PIPELINES]
)
def test_invalid_pipeline_is_refused(case, path, value, fragment):
    spec = _set(_example("pipeline.rtx4090.yaml"), path, value)
    full, errors = validate_spec(PIPELINES, spec)
    if fragment is None:
        # Structural schemas prune unknown fields rather than refuse them, as the API server does.
        assert errors == [] and "temperature" not in full["llm"]
        return
    assert errors, case
    assert any(fragment in e for e in errors), errors


INVALID_COLLECTIONS = [
    ("weights do not sum to 1", "search.weights", {"dense": 0.7, "sparse": 0.7}, "must be 1"),
    ("rerank topK above search topK", "rerank.topK", 50, "cannot exceed the search top-k"),
    ("overlap not below size", "chunking", {"size": 100, "overlap": 100}, "overlap must be smaller"),
    ("hnsw params with IVF", "search.index", {"type": "IVF_FLAT", "hnsw": {"m": 8}}, "only used with"),
    (
        "nprobe above nlist",
        "search.index",
        {"type": "IVF_FLAT", "ivf": {"nlist": 8, "nprobe": 16}},
        "nprobe cannot exceed",
    ),
    ("unknown index", "search.index.type", "DISKANN", "search.index.type"),
    (
        "roles without roles visibility",
        "access",
        {"visibility": "collection", "roles": ["user"]},
        "only used with access.visibility roles",
    ),
    ("unknown role", "access", {"visibility": "roles", "roles": ["root"]}, "access.roles"),
    ("threshold above 1", "rerank.threshold", 1.5, "rerank.threshold"),
    ("no pipelineRef", "pipelineRef", ..., "'pipelineRef' is a required property"),
]


@pytest.mark.parametrize(
    ("case", "path", "value", "fragment"), INVALID_COLLECTIONS, ids=[c[0] for c in INVALID_COLLECTIONS]
)
def test_invalid_collection_is_refused(case, path, value, fragment):
    spec = _set(_example("documentcollection.hnsw.yaml"), path, value)
    _, errors = validate_spec(COLLECTIONS, spec)
    assert any(fragment in e for e in errors), errors


def test_weights_within_tolerance_are_accepted():
    spec = _set(
        _example("documentcollection.default.yaml"), "search.weights", {"dense": 0.6667, "sparse": 0.3333}
    )
    assert validate_spec(COLLECTIONS, spec)[1] == []


def test_defaults_are_applied():
    spec, errors = validate_spec(COLLECTIONS, {"pipelineRef": {"name": "p"}})
    assert errors == []
    assert spec["search"]["weights"] == {"dense": 0.7, "sparse": 0.3}
    assert (spec["search"]["denseTopK"], spec["rerank"]["topK"], spec["rerank"]["threshold"]) == (20, 5, 0.65)
    assert spec["search"]["index"]["type"] == "IVF_FLAT" and spec["reindexPolicy"] == "Manual"


def test_licence_rule_lists_the_catalogues_non_commercial_models():
    rule = openapi_schema(load_crd(PIPELINES))["properties"]["spec"]["x-kubernetes-validations"][0]["rule"]
    ids = non_commercial_ids()
    assert ids == ["sbintuitions/sarashina-embedding-v1-1b", "yomitoku"]
    assert rule.count(str(ids).replace('"', "'")) == 4  # one list per role


@pytest.mark.parametrize("folder", ["crds", "charts/bunko/crds"])
@pytest.mark.parametrize("plural", [PIPELINES, COLLECTIONS])
def test_committed_crd_is_what_the_typed_spec_generates(folder, plural):
    committed = (ROOT / folder / f"{plural}.yaml").read_text(encoding="utf-8")
    assert committed == crd_yaml(plural), f"{folder}/{plural}.yaml is out of date: run `make crds`"


def test_the_chart_values_schema_checks_specs_with_the_crds_schemas(tmp_path, capsys):
    committed = ROOT / "charts" / "bunko" / "values.schema.json"
    assert crd_main(["--check", str(ROOT / "crds"), "--values-schema", str(committed)]) == 0, capsys.readouterr().err
    schema = json.loads(committed.read_text(encoding="utf-8"))
    spec = schema["properties"]["pipeline"]["properties"]["cpuSpec"]
    assert "rtx4090-24gb" in spec["properties"]["gpuProfile"]["properties"]["name"]["enum"]
    assert spec["additionalProperties"] is False  # a typo in values is refused, not pruned
    stale = tmp_path / "values.schema.json"
    stale.write_text(committed.read_text(encoding="utf-8").replace('"rtx4090-24gb"', '"rtx4090"'), encoding="utf-8")
    assert crd_main(["--check", str(ROOT / "crds"), "--values-schema", str(stale)]) == 1
    assert str(stale) in capsys.readouterr().err


def test_the_crd_check_names_a_stale_file(tmp_path, capsys):
    for plural in (PIPELINES, COLLECTIONS):
        (tmp_path / f"{plural}.yaml").write_text(crd_yaml(plural), encoding="utf-8")
    assert crd_main(["--check", str(tmp_path)]) == 0
    stale = tmp_path / f"{PIPELINES}.yaml"
    stale.write_text(crd_yaml(PIPELINES).replace("default: 8192", "default: 4096"), encoding="utf-8")
    assert crd_main(["--check", str(tmp_path)]) == 1
    assert str(stale) in capsys.readouterr().err


def test_a_typed_default_reaches_the_crd_and_the_parsed_spec():
    # One source: the class's default is the CRD's default and the parsed spec's value.
    llm = spec_schema(PIPELINES)["properties"]["llm"]["properties"]
    assert llm["maxModelLen"]["default"] == Llm.model_fields["max_model_len"].default == 8192
    spec = parse_pipeline({**_example("pipeline.cpu.yaml")})
    assert spec.ray.version == RAY_VERSION and spec.model_cache.mount_path == "/models"
    chunking = spec_schema(COLLECTIONS)["properties"]["chunking"]["properties"]
    assert chunking["size"]["default"] == CollectionConfig.model_fields["chunk_size"].default
    assert chunking["size"]["maximum"] == 8192


def test_a_spec_the_api_server_would_refuse_is_refused_with_every_error():
    spec = _set(_example("pipeline.rtx4090.yaml"), "llm.engine", "proxy")
    spec = _set(spec, "gpuProfile.name", "rtx3060")
    with pytest.raises(InvalidInput) as exc:
        parse_pipeline(spec)
    assert "gpuProfile.name" in exc.value.message
    # CEL rules run only on a value of the right shape, as in the API server; fix the shape and
    # the CEL error appears.
    with pytest.raises(InvalidInput, match=r"needs llm\.url"):
        parse_pipeline(_set(spec, "gpuProfile.name", "rtx4090-24gb"))
