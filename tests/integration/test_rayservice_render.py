"""Every rendered RayService validates against KubeRay v1.7.0's own CRD schema, and its
serveConfigV2 against Ray Serve's ServeDeploySchema."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft4Validator
from ray.serve.schema import ServeDeploySchema

from bunko.errors import InvalidInput
from bunko.operator.planner import plan_pipeline
from bunko.operator.rayservice import readiness, render_rayservice, serving_spec
from bunko.operator.schemas import parse_pipeline
from bunko.operator.status import contains, merge_patch
from tests.support.pod_security import restricted_violations

ROOT = Path(__file__).resolve().parents[2]
# shared/ sits beside the repository (here and in CI).
KUBERAY = ROOT / "third_party" / "kuberay-v1.7.0" / "ray.io_rayservices.yaml"
PIPELINE_EXAMPLES = sorted((ROOT / "crds" / "examples").glob("pipeline.*.yaml"))


@cache
def kuberay_validator() -> Draft4Validator:
    crd = yaml.safe_load(KUBERAY.read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    return Draft4Validator(schema)


def render(spec, name="p", namespace="ns"):
    full = parse_pipeline(spec)
    plan = plan_pipeline(full)
    assert plan.feasible, plan.message
    return full, plan, render_rayservice(name, namespace, full, plan)


def kuberay_errors(body):
    return [f"{list(e.absolute_path)}: {e.message}" for e in kuberay_validator().iter_errors(body)]


@pytest.mark.parametrize("path", PIPELINE_EXAMPLES, ids=[p.name for p in PIPELINE_EXAMPLES])
def test_rendered_rayservice_is_valid_for_kuberay_and_ray_serve(path):
    doc = yaml.safe_load(path.read_text())
    _full, plan, body = render(doc["spec"], doc["metadata"]["name"])
    assert kuberay_errors(body) == []
    config = yaml.safe_load(body["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    cluster = body["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    gpus_used = len(plan.gpus_used)
    groups = cluster["workerGroupSpecs"]
    gpu_limits = [
        g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") for g in groups
    ]
    assert gpu_limits == (["1"] * gpus_used if gpus_used else [None])
    for g in groups:
        assert g["template"]["spec"]["volumes"][0]["name"] == "model-cache"
    expected = "None" if len(plan.gpus) <= 1 else "NewCluster"
    assert body["spec"]["upgradeStrategy"] == {"type": expected}
    # KubeRay v1.7 documents these as "Deprecated: not used anymore": setting them promises nothing.
    assert not {"serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"} & set(body["spec"])


def test_kuberay_schema_does_refuse_a_broken_body():
    """The validator is not vacuous: KubeRay's schema rejects what KubeRay would reject."""
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "pipeline.rtx4090.yaml").read_text())
    _, _, body = render(doc["spec"])
    broken = copy.deepcopy(body)
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-gpus"] = 0  # not a string
    del broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["name"]
    errors = kuberay_errors(broken)
    assert any("rayStartParams" in e for e in errors) and any(
        "'name' is a required property" in e for e in errors
    )


def test_seed_rtx4090_plan_reaches_the_engines():
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "pipeline.rtx4090.yaml").read_text())
    _full, plan, body = render(doc["spec"])
    apps = {a["name"]: a for a in yaml.safe_load(body["spec"]["serveConfigV2"])["applications"]}
    llm = apps["bunko-llm"]["args"]["llm_configs"][0]
    [llm_placement] = plan.for_role("llm")
    assert llm["model_loading_config"]["model_source"] == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    assert llm["engine_kwargs"]["gpu_memory_utilization"] == llm_placement.num_gpus
    assert llm["engine_kwargs"]["max_model_len"] == 4096 and llm["engine_kwargs"]["max_num_seqs"] == 2
    assert llm["placement_group_config"]["bundles"][0]["GPU"] == llm_placement.num_gpus
    ocr = apps["bunko-ocr"]
    assert ocr["deployments"][0]["ray_actor_options"]["num_gpus"] == plan.for_role("ocr")[0].num_gpus
    assert ocr["args"]["gpu_memory_fraction"] == plan.for_role("ocr")[0].num_gpus
    total = sum(p.num_gpus for p in plan.placements)
    assert total <= 1.0
    env = body["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf_token"}}} in env


def test_multigpu_pins_each_deployment_to_its_planned_gpu():
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "pipeline.multigpu.yaml").read_text())
    _, plan, body = render(doc["spec"])
    groups = body["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert [g["groupName"] for g in groups] == ["gpu-0", "gpu-1"]
    assert json.loads(json.loads(groups[1]["rayStartParams"]["resources"])) == {"bunko_gpu_1": 1}
    apps = {a["name"]: a for a in yaml.safe_load(body["spec"]["serveConfigV2"])["applications"]}
    for role in ("ocr", "embedding", "reranker"):
        gpu = plan.for_role(role)[0].gpu
        opts = apps[f"bunko-{role}"]["deployments"][0]["ray_actor_options"]
        assert opts["resources"] == {f"bunko_gpu_{gpu}": 0.001}
    bundle = apps["bunko-llm"]["args"]["llm_configs"][0]["placement_group_config"]["bundles"][0]
    assert bundle[f"bunko_gpu_{plan.for_role('llm')[0].gpu}"] == 0.001


def test_cpu_pipeline_serves_without_gpus():
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "pipeline.cpu.yaml").read_text())
    full, plan, body = render(doc["spec"])
    spec = serving_spec(full, plan)
    assert spec.llm is None  # extractive answers
    assert all(role.num_gpus == 0 and role.effective_device == "cpu" for _, role in spec.roles())
    assert [g["groupName"] for g in body["spec"]["rayClusterConfig"]["workerGroupSpecs"]] == ["cpu"]


def test_readiness_from_kuberay_status():
    assert readiness(None)["phase"] == "Deploying"
    ready = readiness({"conditions": [{"type": "Ready", "status": "True", "reason": "RunningServeApps"}]})
    assert (ready["phase"], ready["ready"]) == ("Ready", True)
    failing = readiness(
        {
            "conditions": [{"type": "Ready", "status": "True"}],
            "activeServiceStatus": {
                "applicationStatuses": {
                    "bunko-llm": {
                        "status": "DEPLOY_FAILED",
                        "serveDeploymentStatuses": {
                            "llm": {"status": "UNHEALTHY", "message": "CUDA out of memory"}
                        },
                    }
                }
            },
        }
    )
    assert (failing["phase"], failing["ready"]) == ("Degraded", False)
    assert "CUDA out of memory" in failing["message"]
    assert failing["deployments"] == {
        "bunko-llm/llm": {"status": "UNHEALTHY", "message": "CUDA out of memory"}
    }


def test_merge_patch_and_contains():
    live = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "default": "x"}
    desired = {"a": 1, "b": {"c": 5}, "e": [1]}
    assert merge_patch(live, desired) == {"b": {"c": 5, "d": None}, "e": [1], "default": None}
    assert contains({"a": 1, "b": {"c": 5, "extra": 0}, "e": [1]}, desired)
    assert not contains(live, desired)


def _pods(body):
    spec = body["spec"]["rayClusterConfig"]
    yield "head", spec["headGroupSpec"]["template"]["spec"]
    for group in spec["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


@pytest.mark.parametrize("path", PIPELINE_EXAMPLES, ids=[p.name for p in PIPELINE_EXAMPLES])
def test_every_ray_pod_meets_pod_security_restricted(path):
    _, _, body = render(yaml.safe_load(path.read_text())["spec"])
    for group, pod in _pods(body):
        assert restricted_violations(pod) == [], group


def test_a_restricted_check_catches_a_pod_that_breaks_it():
    _, _, body = render(yaml.safe_load(PIPELINE_EXAMPLES[0].read_text())["spec"])
    _, pod = next(_pods(body))
    pod = copy.deepcopy(pod)
    pod["containers"][0]["securityContext"] = {"privileged": True}
    assert any("privileged" in v for v in restricted_violations(pod))


def test_gpu_pods_land_on_the_planned_gpu_and_tolerate_its_taint():
    spec = yaml.safe_load((ROOT / "crds/examples/pipeline.rtx4090.yaml").read_text())["spec"]
    _, plan, body = render(spec)
    gpu_pods = [(g, p) for g, p in _pods(body) if g.startswith("gpu-")]
    assert gpu_pods and len(gpu_pods) == len(plan.gpus_used)
    for _, pod in gpu_pods:
        (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert term["matchExpressions"] == [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-GeForce-RTX-4090"]}]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    head = dict(_pods(body))["head"]
    assert "affinity" not in head and "tolerations" not in head  # the head holds no GPU


def test_placement_reaches_every_ray_pod_and_validates_against_kuberay():
    spec = yaml.safe_load((ROOT / "crds/examples/pipeline.multigpu.yaml").read_text())["spec"]
    spec["placement"] = {
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "bunko", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
        "imagePullSecrets": ["registry-creds"],
    }
    _, _, body = render(spec)
    assert kuberay_errors(body) == []
    for group, pod in _pods(body):
        assert pod["nodeSelector"] == {"pool": "inference"}, group
        assert pod["imagePullSecrets"] == [{"name": "registry-creds"}], group
        assert {"key": "dedicated", "operator": "Equal", "value": "bunko", "effect": "NoSchedule"} in pod[
            "tolerations"], group
        assert (pod.get("runtimeClassName") == "nvidia") == group.startswith("gpu-"), group


def test_an_explicit_gpu_list_pins_by_its_product_label_or_not_at_all():
    spec = yaml.safe_load((ROOT / "crds/examples/pipeline.rtx4090.yaml").read_text())["spec"]
    spec["gpuProfile"] = {"gpus": [{"type": "l40s", "memoryGiB": 48, "product": "NVIDIA-L40S"}]}
    _, _, body = render(spec)
    pods = dict(_pods(body))
    expr = pods["gpu-0"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expr["values"] == ["NVIDIA-L40S"]
    del spec["gpuProfile"]["gpus"][0]["product"]
    _, _, body = render(spec)
    assert "affinity" not in dict(_pods(body))["gpu-0"]  # no label known: nothing to pin to


def test_mig_instances_are_planned_as_their_own_gpus_and_asked_for_by_profile():
    """Two 3g.40gb instances of an A100 (the GPU operator's mixed strategy): each is a GPU of
    39.25 GiB to the planner, one CUDA device to Ray, and nvidia.com/mig-3g.40gb to Kubernetes."""
    spec = yaml.safe_load((ROOT / "crds/examples/pipeline.rtx4090.yaml").read_text())["spec"]
    spec["gpuProfile"] = {"gpus": [{"type": "a100-80gb", "memoryGiB": 39.25, "mig": "3g.40gb", "count": 2}]}
    _, plan, body = render(spec)
    assert kuberay_errors(body) == []
    assert [g.resource for g in plan.gpus] == ["nvidia.com/mig-3g.40gb"] * 2
    for gpu in plan.gpus_used:
        assert sum(p.need.total_gib for p in plan.placements if p.gpu == gpu.index and p.need) <= gpu.usable_gib
    groups = body["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert len(groups) == len(plan.gpus_used) >= 1
    for group in groups:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/mig-3g.40gb"] == "1" and "nvidia.com/gpu" not in limits
        assert group["rayStartParams"]["num-gpus"] == "1"
        expr = group["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert "NVIDIA-A100-SXM4-80GB" in expr["values"]  # mixed strategy keeps the board's product label
    with pytest.raises(InvalidInput, match="mig"):
        parse_pipeline({**spec, "gpuProfile": {"gpus": [{"type": "a100-80gb", "memoryGiB": 40, "mig": "3g.40"}]}})


READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "RunningServeApps"}]}


@pytest.mark.parametrize(
    ("status", "kwargs", "phase", "reason"),
    [
        ({**READY, "observedGeneration": 2}, {"generation": 2}, "Ready", "RunningServeApps"),
        ({**READY, "observedGeneration": 1}, {"generation": 2}, "Deploying", "RayServiceUpdating"),
        (READY, {"pipeline_current": False}, "Deploying", "PipelineChanged"),
        ({"conditions": [*READY["conditions"], {"type": "UpgradeInProgress", "status": "True"}]}, {},
         "Deploying", "UpgradeInProgress"),
        ({**READY, "pendingServiceStatus": {"applicationStatuses": {"bunko-llm": {"status": "DEPLOYING"}}}}, {},
         "Deploying", "UpgradeInProgress"),
        ({"conditions": [*READY["conditions"], {"type": "RollbackInProgress", "status": "True"}]}, {},
         "Degraded", "RollbackInProgress"),
    ],
    ids=["current", "kuberay-behind", "pipeline-changed", "upgrading", "pending-cluster", "rolling-back"],
)
def test_readiness_is_ready_only_for_the_current_spec_with_no_upgrade_under_way(status, kwargs, phase, reason):
    r = readiness(status, **kwargs)
    assert (r["phase"], r["reason"], r["ready"]) == (phase, reason, phase == "Ready")


def test_ray_tracing_puts_the_otlp_variables_on_every_ray_pod():
    doc = yaml.safe_load((ROOT / "crds" / "examples" / "pipeline.cpu.yaml").read_text())
    plain = render(doc["spec"])[2]["spec"]["rayClusterConfig"]
    spec = copy.deepcopy(doc["spec"])
    spec.setdefault("ray", {})["tracing"] = {"otlpEndpoint": "http://otel:4318", "sampleRatio": 0.1}
    body = render(spec)[2]
    assert kuberay_errors(body) == []
    cluster = body["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group, before in zip(groups, [plain["headGroupSpec"], *plain["workerGroupSpecs"]], strict=True):
        env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4318"
        assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.1")
        assert not any(e["name"].startswith("OTEL_") for e in before["template"]["spec"]["containers"][0]["env"])
    with pytest.raises(InvalidInput, match="otlpEndpoint"):
        parse_pipeline({**spec, "ray": {"tracing": {"otlpEndpoint": "otel:4318"}}})
