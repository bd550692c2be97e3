"""The ``retrainer`` command line. Every command that reports has ``--json``.

Heavy imports (prefect, mlflow, evidently) happen inside commands so that ``--help`` and
quick commands stay fast.
"""

from __future__ import annotations

import sys

import typer

from retrainer import __version__
from retrainer.errors import RetrainerError

app = typer.Typer(
    name="retrainer",
    help="Keep production ML models fresh: decide when to retrain, retrain, gate, promote, roll out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retrainer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """retrainer command line."""


def _register_commands() -> None:
    # Each module adds its own commands/sub-apps to `app`.
    from retrainer.cli import config_cmd, store_cmd, triggers_cmd  # noqa: F401
    from retrainer.cli import ab_cmd, serve_cmd, shadow_cmd  # noqa: F401
    from retrainer.cli import demo_cmd, flows_cmd  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: a RetrainerError is one clear line on stderr and exit code 2."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except RetrainerError as exc:
        from retrainer.cli.output import err_console

        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code or 0
    except typer.Abort:
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())
