"""Write serving/ray_serve_deploy_schema.json: Ray Serve's ServeDeploySchema as JSON Schema.

The operator checks every Serve config it renders against this file, so it needs no Ray in its
image; tests/integration/test_serve_schema.py fails when the installed Ray says otherwise.
Run with the repository's venv after changing the Ray pin: .venv/bin/python -P scripts/vendor-serve-schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

import ray
from ray.serve.schema import ServeDeploySchema

OUT = Path(__file__).resolve().parents[1] / "serving" / "ray_serve_deploy_schema.json"


def schema() -> dict[str, object]:
    return {"x-ray-version": ray.__version__, **ServeDeploySchema.model_json_schema()}


if __name__ == "__main__":
    OUT.write_text(json.dumps(schema(), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} (Ray {ray.__version__})")
