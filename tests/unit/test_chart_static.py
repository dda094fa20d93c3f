"""Static checks of the chart and the images: no helm binary, no rendering."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bunko"
PROCESSES = ["api", "worker", "operator", "serving"]


def test_chart_crds_are_files_not_symlinks():
    copies = sorted((CHART / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    for copy in copies:
        assert not copy.is_symlink(), f"{copy} is a symlink: helm package drops symlinks"


def test_every_dependency_is_pinned_and_switched_by_a_condition():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"milvus", "kuberay-operator", "postgresql", "valkey", "minio"}
    assert deps["milvus"]["version"] == "5.0.19"
    assert deps["milvus"]["repository"] == "https://zilliztech.github.io/milvus-helm/"
    assert deps["kuberay-operator"]["version"] == "1.7.0"
    assert deps["kuberay-operator"]["repository"] == "https://ray-project.github.io/kuberay-helm/"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name, dep in deps.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", dep["version"]), name
        assert dep["condition"] == f"{name}.enabled"
        assert isinstance(values[name]["enabled"], bool)
        if not dep["repository"]:  # vendored: must be there, at that version
            vendored = yaml.safe_load((CHART / "charts" / name / "Chart.yaml").read_text())
            assert vendored["version"] == dep["version"]


def test_chart_lock_is_in_sync_with_chart_yaml():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chart-lock.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_chart_lock_check_catches_a_changed_dependency(tmp_path):
    import shutil

    shutil.copytree(CHART, tmp_path / "bunko", ignore=shutil.ignore_patterns("charts"))
    chart_yaml = tmp_path / "bunko" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 5.0.19", "version: 5.0.18"))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chart-lock.py"),
            "--check",
            "--chart",
            str(tmp_path / "bunko"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "out of sync" in proc.stderr


# --- images -------------------------------------------------------------------------------------


DOCKERFILE = (ROOT / "images" / "Dockerfile").read_text()
# Each stage's name and the stage or image it starts FROM.
STAGES = {alias: base for base, alias in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", DOCKERFILE, flags=re.M)}


def _stage(name: str) -> str:
    """The text of one stage, from its FROM to the next."""
    parts = re.split(r"^(?=FROM\s)", DOCKERFILE, flags=re.M)
    return next(p for p in parts if re.match(rf"FROM\s+\S+\s+AS\s+{re.escape(name)}\s*$", p.splitlines()[0]))


def _image(process: str) -> str:
    """Everything that goes into a process's image: its stage and the stages it builds on."""
    text, name = "", process
    while name in STAGES:
        text = _stage(name) + text
        name = STAGES[name]
    installer = f"install-{process}"
    if installer in STAGES:
        text = _stage(installer) + _stage("install") + text
    return text


def test_one_dockerfile_has_a_target_per_process():
    assert set(PROCESSES) <= set(STAGES)
    assert not (ROOT / "images" / "api").exists(), "one Dockerfile with targets, not one per process"


@pytest.mark.parametrize("process", PROCESSES)
def test_images_are_multi_stage_pinned_and_non_root(process):
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE, flags=re.M))
    for image in re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.M):
        resolved = image
        for _ in range(3):  # an ARG's default may name other ARGs (SERVING_BASE)
            resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), resolved)
        if resolved in STAGES:
            continue
        assert "$" not in resolved, f"base image {image} depends on an ARG without a default"
        assert ":" in resolved and not resolved.endswith(":latest"), f"unpinned base {resolved}"
    users = re.findall(r"^USER\s+(\S+)", _stage(process), flags=re.M)
    assert users and users[-1] not in ("root", "0", "0:0"), "the runtime stage must end as a non-root user"
    assert re.search(r"^ENTRYPOINT\s+\[\"bunko\"\]", _image(process), flags=re.M) or process == "serving"


@pytest.mark.parametrize("process", PROCESSES)
def test_each_image_installs_its_own_extra_only(process):
    image = _image(process)
    default = re.search(rf"^ARG\s+{process.upper()}_EXTRAS=(\S+)", image, flags=re.M)
    installs = default.group(1) if default else re.search(r"install-bunko\s+(\S+)", image).group(1)
    assert installs == process, f"the {process} image installs bunko[{installs}]"


@pytest.mark.parametrize("process", PROCESSES)
def test_images_take_models_from_a_volume_and_torch_from_the_right_index(process):
    text = _image(process)
    assert "HF_HOME=/models" in text
    assert not re.search(r"snapshot_download|huggingface-cli download|from_pretrained", text)
    # torch, where an image needs it (the serving image; the local extra), comes from an explicit
    # index first (the CPU one by default): from PyPI it would be the CUDA build.
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    script = (ROOT / "images" / "install-bunko.sh").read_text()
    assert '--index-url "${TORCH_INDEX_URL}"' in script


@pytest.mark.parametrize("process", PROCESSES)
def test_each_image_installs_from_its_hash_pinned_lock(process):
    lock = (ROOT / "images" / "locks" / f"{process}.txt").read_text()
    pins = [line for line in lock.splitlines() if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==\S+ --hash=sha256:[0-9a-f]{64}", p) for p in pins)
    assert not any(p.lower().startswith("bunko==") for p in pins)  # the image's own wheel comes from the build
    script = (ROOT / "images" / "install-bunko.sh").read_text()
    assert "--require-hashes" in script and "/locks/" in script


def test_dockerignore_keeps_the_context_small_and_secret_free():
    lines = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".tools", ".bunko", "*.env", ".env"} <= lines


def test_the_serving_image_is_built_on_the_ray_release_pipelines_default_to():
    from bunko.operator.kinds.pipeline import RAY_VERSION

    assert re.search(r"^ARG RAY_VERSION=(\S+)", DOCKERFILE, flags=re.M).group(1) == RAY_VERSION
