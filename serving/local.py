"""Deploy a Serve config on the Ray cluster this process is connected to (tests, ``bunko serving run``).

In a Kubernetes cluster KubeRay deploys the config itself; here each application's ``import_path``
is imported, called with its ``args`` and run with ``serve.run_many`` under its ``route_prefix``,
so the local path goes through the same builders as the cluster.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

LOOPBACK = "127.0.0.1"


def start_local_ray(
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    dashboard: bool = False,
    env_vars: dict[str, str] | None = None,
    attach: bool = True,
) -> None:
    """Attach to a running local Ray (when ``attach``), else start one bound to loopback only."""
    # Without it Ray binds the machine's external interface.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": env_vars} if env_vars else None
    if attach:
        try:
            ray.init(address="auto", runtime_env=runtime_env, log_to_driver=False)
            return
        except ConnectionError:
            pass
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=dashboard,
        dashboard_host=LOOPBACK,
        _node_ip_address=LOOPBACK,
        runtime_env=runtime_env,
        log_to_driver=False,
    )


def deploy_config(config: dict[str, Any], *, host: str = LOOPBACK, port: int = 8000) -> None:
    """Start Serve's HTTP proxy on ``host:port`` and run every application of ``config``."""
    from ray import serve
    from ray.serve.api import RunTarget

    serve.start(http_options={"host": host, "port": port})
    targets = []
    for app in config["applications"]:
        module, func = app["import_path"].split(":")
        builder = getattr(importlib.import_module(module), func)
        targets.append(
            RunTarget(
                target=builder(app.get("args", {})),
                name=app["name"],
                route_prefix=app.get("route_prefix", "/"),
            )
        )
    serve.run_many(targets)
