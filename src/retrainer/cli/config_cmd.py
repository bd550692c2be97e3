"""``retrainer config validate|example|schema``."""

from __future__ import annotations

from pathlib import Path

import typer

from retrainer.cli.output import console, emit, kv_table

config_app = typer.Typer(help="Validate and explore retrainer.yaml.", no_args_is_help=True)


@config_app.command("validate")
def validate(
    file: Path = typer.Argument(Path("retrainer.yaml"), help="Path to retrainer.yaml (default: ./retrainer.yaml, as every command)."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved configuration as JSON."),
) -> None:
    """Check a config file as `check` would (triggers, policy, store URL); print the resolved configuration."""
    from retrainer.config import load_config
    from retrainer.errors import ConfigError
    from retrainer.triggers.config_check import config_problems

    cfg = load_config(file)
    problems = config_problems(cfg)
    if problems:
        if as_json:
            emit({"valid": False, "problems": problems}, True, lambda _: None)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"{file} is invalid ({count}): " + " | ".join(problems))
    resolved = cfg.model_dump(mode="json", by_alias=True)
    if resolved.get("serving", {}).get("api_token"):
        resolved["serving"]["api_token"] = "***"

    def render(_: object) -> None:
        console.print(f"[green]✓[/] {file} is valid")
        console.print(
            kv_table(
                "summary",
                {
                    "model": cfg.model.name,
                    "store": _mask(cfg.store.url),
                    "mlflow": _mask(cfg.mlflow.tracking_uri),
                    "features": ", ".join(cfg.data.feature_names),
                    "triggers": ", ".join(t.label for t in cfg.triggers) or "(none)",
                    "policy": cfg.policy.mode + (f" (k={cfg.policy.k})" if cfg.policy.k else ""),
                    "gate": f"{cfg.gate.metric} >= {cfg.gate.min_ratio} x champion",
                    "rollout": cfg.rollout.resolved_mode,
                },
            )
        )

    emit({"valid": True, "config": resolved}, as_json, render)


@config_app.command("example")
def example() -> None:
    """Print the commented example retrainer.yaml."""
    from retrainer.config import example_config_path

    typer.echo(example_config_path().read_text(encoding="utf-8"), nl=False)


@config_app.command("schema")
def schema() -> None:
    """Print the JSON schema of retrainer.yaml."""
    from retrainer.cli.output import to_json
    from retrainer.config import RetrainerConfig

    typer.echo(to_json(RetrainerConfig.model_json_schema(by_alias=True)))


def _mask(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


@config_app.command("reference")
def reference() -> None:
    """Print the configuration reference (markdown), generated from the models."""
    from retrainer.reference import config_reference

    typer.echo(config_reference(), nl=False)
