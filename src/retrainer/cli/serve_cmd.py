"""``retrainer serve``: the prediction service (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from retrainer.cli.common import ConfigOption, open_config_and_store


# The top-level ``serve`` command. Joined into the root app by retrainer.cli.
commands = typer.Typer()


@commands.command("serve")
def serve(
    config: Path = ConfigOption,
    host: str | None = typer.Option(None, "--host", help="Bind address (default: serving.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default: serving.port, 8000)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Serve on a non-loopback address without an API token (something else authenticates)."
    ),
) -> None:
    """Serve the champion (and any A/B challenger or shadow model), logging every prediction.

    Routes: POST /predict, POST /feedback, GET /health, GET /ready, GET /metrics,
    GET /admin/status, POST /admin/reload. Set RETRAINER_API_TOKEN to require a bearer token; off
    loopback one is required unless --insecure.
    """
    from retrainer.deployments.serving.app import check_exposure, run_server

    cfg, store = open_config_and_store(config)  # a missing store is one line before MLflow or uvicorn start
    store.close()
    check_exposure(host or cfg.serving.host, cfg.serving.api_token, insecure=insecure)  # before loading any model
    run_server(cfg, host=host, port=port, log_level=log_level, insecure=insecure)
