"""``bunko serving``: run the model applications on a local Ray cluster, or print their Serve config.

Mounted by the main CLI as ``app.add_typer(serving_app, name="serving")``.

``bunko serving run --config serve.yaml``
    ``serve.yaml`` is either a serving spec (``bunko.serving.spec.ServingSpec`` as YAML) or a Ray
    Serve config (a document with ``applications:``). Attaches to a running local Ray or starts
    one on 127.0.0.1, deploys every application, and serves until interrupted.
``bunko serving build-config --pipeline spec.yaml``
    Prints the Serve config (YAML) that the spec turns into, validated by Ray's schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from bunko.errors import BunkoError, ConfigError

serving_app = typer.Typer(
    help="Model serving on Ray Serve (OCR, embedding, reranker, LLM).", no_args_is_help=True
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def config_from_file(path: Path) -> dict[str, Any]:
    """A validated Serve config from a spec file or a Serve config file."""
    from bunko.serving.config import build_serve_config, load_spec, validate_serve_config

    data = _read_yaml(path)
    if "applications" in data:
        validate_serve_config(data)
        return data
    return build_serve_config(load_spec(data))


def _fail(exc: BunkoError) -> None:
    typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@serving_app.command("build-config")
def build_config(
    pipeline: Path = typer.Option(
        ..., "--pipeline", "-p", help="serving spec YAML", exists=True, dir_okay=False
    ),
) -> None:
    """Print the Ray Serve config (YAML) for a serving spec."""
    try:
        config = config_from_file(pipeline)
    except BunkoError as exc:
        _fail(exc)
    typer.echo(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), nl=False)


@serving_app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="serving spec or Serve config YAML", exists=True),
    host: str = typer.Option("127.0.0.1", help="address Serve's HTTP proxy binds"),
    port: int = typer.Option(8000, help="port of Serve's HTTP proxy"),
    num_cpus: int | None = typer.Option(None, help="CPUs for a new local Ray (default: all)"),
    num_gpus: int | None = typer.Option(None, help="GPUs for a new local Ray (default: all visible)"),
    detach: bool = typer.Option(False, help="return once deployed instead of serving until Ctrl-C"),
) -> None:
    """Deploy the applications on a local Ray cluster (attached to, or started on 127.0.0.1)."""
    from bunko.serving.local import deploy_config, start_local_ray

    try:
        serve_config = config_from_file(config)
    except BunkoError as exc:
        _fail(exc)
    start_local_ray(num_cpus=num_cpus, num_gpus=num_gpus, dashboard=True)
    # An interrupt during the deploy must tear the apps down too, not leave them running.
    try:
        deploy_config(serve_config, host=host, port=port)
        names = ", ".join(a["route_prefix"] for a in serve_config["applications"])
        typer.echo(f"serving on http://{host}:{port} ({names}); set BUNKO_MODEL_ENDPOINT=http://{host}:{port}")
        if detach:
            return
        from ray.serve._private.utils import wait_for_interrupt  # the loop `serve run` uses

        wait_for_interrupt()
    except BaseException:
        from ray import serve

        serve.shutdown()
        raise
    from ray import serve

    serve.shutdown()
