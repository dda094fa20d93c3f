"""Bunko is one package, ``bunko``, whose ``api``, ``operator`` and ``serving`` subpackages live in
the top-level folders of those names (setuptools ``package-dir``), with the CRDs and the built web
page as package data. No symlinks: an installed wheel must carry and import all of it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    """Every folder holding Python code, named as the package-dir mapping names it (folders of
    modules without ``__init__.py``, the Alembic migrations, are packages too)."""
    found = set()
    for name, folder in PYPROJECT["package-dir"].items():
        base = ROOT / folder
        for py in base.rglob("*.py"):
            rel = py.parent.relative_to(base).parts
            if "__pycache__" not in rel:
                found.add(".".join((name, *rel)))
    return found


def test_the_package_list_names_every_folder_of_python_code():
    assert set(PYPROJECT["packages"]) == _packages_on_disk()


def test_the_tree_holds_no_symlinks():
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True)
    links = [line.split("\t", 1)[1] for line in listing.stdout.splitlines() if line.startswith("120000 ")]
    assert links == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools stages into build/lib and copies from there: a page rebuilt since the last wheel
    # (its asset names are hashes) or a moved module would otherwise ship beside the current one.
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("bunko-*.whl")
    return built


def test_the_wheel_carries_the_subpackages_crds_migrations_and_the_built_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("bunko/api/main.py", "bunko/api/routes/__init__.py", "bunko/operator/main.py",
                   "bunko/serving/apps.py", "bunko/crds/pipelines.yaml",
                   "bunko/crds/documentcollections.yaml", "bunko/store/migrations/env.py"):
        assert module in names, module
    migrations = {p.name for p in (ROOT / "bunko/store/migrations/versions").glob("*.py")}
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("bunko/store/migrations/versions/")} >= migrations
    # The page as built in this checkout (make setup builds it), file for file.
    static = ROOT / "api" / "static"
    built = {p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file()} if static.is_dir() else set()
    shipped = {n.removeprefix("bunko/api/static/") for n in names if n.startswith("bunko/api/static/")}
    assert shipped == built


def test_an_installed_wheel_imports_and_reads_its_data_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    probe = (
        "import bunko, bunko.api, bunko.operator, bunko.serving, bunko.api.main\n"
        "from bunko.operator.schemas import load_crd\n"
        "from bunko.api.web import web_dir\n"
        "import json\n"
        "print(json.dumps({'files': [bunko.__file__, bunko.api.__file__, bunko.operator.__file__,"
        " bunko.serving.__file__], 'crd': load_crd('pipelines')['spec']['names']['kind'],"
        " 'web': str(web_dir())}))\n"
    )
    # The wheel's folder first, and a working directory far from the checkout: nothing of the
    # source tree (nor the editable install's import hook, which finds bunko only after it) is used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(f.startswith(str(target)) for f in seen["files"]), seen
    assert seen["crd"] == "Pipeline"
    assert seen["web"] == str(target / "bunko" / "api" / "static")


def test_the_wheel_installs_one_top_level_package_and_no_operator(wheel, tmp_path):
    # The folders api/, operator/ and serving/ are bunko.api, bunko.operator and bunko.serving:
    # nothing may install a top-level `operator`, which would shadow the standard library's.
    tops = {n.split("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"bunko"}
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    probe = "import operator, bunko.operator; print(operator.__file__); print(bunko.operator.__file__)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(target)}, timeout=120)
    assert done.returncode == 0, done.stderr
    stdlib, ours = done.stdout.split()
    assert not stdlib.startswith(str(target)) and "site-packages" not in stdlib  # the standard library's
    assert ours == str(target / "bunko" / "operator" / "__init__.py")


def test_unit_tests_need_no_ray():
    # `make test-fast` runs tests/unit without Ray; a test that needs it belongs in tests/integration.
    imports_ray = re.compile(r"^\s*(import ray\b|from ray[. ])", re.M)
    for path in (ROOT / "tests" / "unit").glob("*.py"):
        assert not imports_ray.search(path.read_text(encoding="utf-8")), path.name
