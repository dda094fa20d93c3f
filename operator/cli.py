"""``bunko operator run``: the operator process (kopf), as a typer sub-app the main CLI mounts."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The Kubernetes operator: Pipelines -> RayServices, DocumentCollections -> stores.",
    no_args_is_help=True,
)


@app.callback()
def operator() -> None:
    """The Kubernetes operator: Pipelines -> RayServices, DocumentCollections -> stores."""


@app.command()
def run(
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="Watch only these namespaces (default: all)."
    ),
    liveness: str = typer.Option(
        "http://0.0.0.0:8080/healthz", help="Liveness endpoint URL ('' to disable)."
    ),
    metrics_port: int = typer.Option(9090, help="Prometheus /metrics port (0 to disable)."),
    metrics_host: str = typer.Option("0.0.0.0", help="Address the metrics server binds."),
    peering: str = typer.Option("bunko", help="Peering (leader election) group name."),
    peering_mandatory: bool = typer.Option(
        False, help="Fail when the kopf peering CRDs are missing instead of running standalone."
    ),
    standalone: bool = typer.Option(False, help="Run without peering (a single replica only)."),
    priority: int = typer.Option(
        0, help="Peering priority: the highest-priority replica works, others wait."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator until interrupted."""
    import logging

    import kopf

    from bunko.operator import main

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    main.OPTIONS.metrics_port = metrics_port
    main.OPTIONS.metrics_host = metrics_host
    main.OPTIONS.peering_name = peering
    main.OPTIONS.peering_mandatory = peering_mandatory
    main.OPTIONS.priority = priority
    kopf.run(
        clusterwide=not namespace,
        namespaces=namespace,
        liveness_endpoint=liveness or None,
        peering_name=peering,
        priority=priority,
        standalone=standalone or None,
    )
