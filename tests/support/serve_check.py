"""What Ray Serve would say of a RayService's serveConfigV2 before it runs anything: the config
against Ray's own ``ServeDeploySchema``, each application's ``import_path`` imported and its
builder called with the config's ``args`` (the Serve application graph built, no model loaded),
and every ``deployments`` override naming a deployment the application has — the checks
``serve deploy`` makes, so a config the operator renders wrong is caught where KubeRay would
leave it failing.
"""

from __future__ import annotations

import importlib
from typing import Any

import yaml


def serve_config_problems(text: str) -> list[str]:
    from ray.serve._private.build_app import build_app
    from ray.serve.schema import ServeDeploySchema

    try:
        config: Any = yaml.safe_load(text)
        schema = ServeDeploySchema.parse_obj(config)
    except Exception as exc:  # Ray's validation error, whatever its class
        return [f"ServeDeploySchema: {exc}"]
    problems = []
    for app in schema.applications:
        try:
            module, attr = app.import_path.split(":")
            builder = getattr(importlib.import_module(module), attr)
            built = build_app(builder(app.args or {}), name=app.name)
        except Exception as exc:
            problems.append(f"{app.name}: {app.import_path}: {type(exc).__name__}: {exc}")
            continue
        names = {d.name for d in built.deployments}
        for override in app.deployments:
            if override.name not in names:
                problems.append(f"{app.name}: deployment {override.name!r} is not in the application {sorted(names)}")
    return problems
