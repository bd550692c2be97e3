"""The ``retrainer`` command line. Every command that reports has ``--json``.

Each ``*_cmd`` module owns its own ``typer.Typer``; this module joins them into one fully built
``app``. Heavy imports (prefect, mlflow, evidently) happen inside commands so that ``--help`` and
quick commands stay fast.
"""

from __future__ import annotations

import os
import sys

# The temporary Prefect server a flow command starts would try to send telemetry; offline that
# prints "Failed to send telemetry". Set before anything imports prefect; a user's choice wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary server must not fail a nightly run because the machine is busy when it starts
# (the default 20 s timed out under load): wait longer, a user's choice still wins.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import typer  # noqa: E402

from retrainer import __version__  # noqa: E402
from retrainer.cli import (  # noqa: E402
    ab_cmd,
    config_cmd,
    demo_cmd,
    fleet_cmd,
    flows_cmd,
    rollout_cmd,
    serve_cmd,
    shadow_cmd,
    simulate_cmd,
    store_cmd,
    triggers_cmd,
)
from retrainer.errors import DEBUG_ENV, debug_requested  # noqa: E402
from retrainer.errors import RetrainerError  # noqa: E402

app = typer.Typer(
    name="retrainer",
    help="Keep production ML models fresh: decide when to retrain, retrain, gate, promote, roll out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: the rich renderer shows a type beside every flag (`--force <bool>`).
    rich_markup_mode=None,
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


# Top-level commands (no name: their commands join the root), then the command groups.
for _commands in (flows_cmd.commands, triggers_cmd.commands, serve_cmd.commands, demo_cmd.commands, simulate_cmd.commands):
    app.add_typer(_commands)
app.add_typer(config_cmd.config_app, name="config")
app.add_typer(store_cmd.store_app, name="store")
app.add_typer(triggers_cmd.triggers_app, name="triggers")
app.add_typer(ab_cmd.ab_app, name="ab")
app.add_typer(shadow_cmd.shadow_app, name="shadow")
app.add_typer(rollout_cmd.rollout_app, name="rollout")
app.add_typer(fleet_cmd.fleet_app, name="fleet")


def _usage_errors() -> tuple[type[BaseException], ...]:
    """The click exception classes typer really raises (it vendors click as ``typer._click``)."""
    from typer._click import exceptions as vendored

    found: list[type[BaseException]] = [vendored.ClickException]
    try:  # a stand-alone click, in case a command or plugin raises its exceptions
        import click

        found.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def _one_line(exc: BaseException) -> str:
    """A click error as one line: the message, and where to get help for the command."""
    message = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see: {ctx.command_path} --help)" if ctx is not None and _is_usage(exc) else ""
    return f"error: {message}{hint}"


def _is_usage(exc: BaseException) -> bool:
    from typer._click.exceptions import UsageError

    try:
        import click

        return isinstance(exc, (UsageError, click.UsageError))
    except ImportError:  # pragma: no cover
        return isinstance(exc, UsageError)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: every failure is one line on stderr and exit code 2."""
    from typer._click.exceptions import NoArgsIsHelpError

    try:
        # Without standalone mode click *returns* a typer.Exit's code instead of raising it.
        code = app(args=argv, prog_name="retrainer", standalone_mode=False)
    except RetrainerError as exc:
        _print_error(f"error: {exc}")
        return 2
    except typer.Exit as exc:
        return exc.exit_code or 0
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except NoArgsIsHelpError as exc:  # `retrainer` or `retrainer config` alone: the help, as asked
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else "")
        return 0
    except _usage_errors() as exc:
        _print_error(_one_line(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - users see one line, not our internals
        if debug_requested():
            raise
        message = " ".join(str(exc).split()) or "no message"
        _print_error(f"error: unexpected {type(exc).__name__}: {message} (set {DEBUG_ENV}=1 for the traceback)")
        return 2
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _print_error(line: str) -> None:
    # Plain write, no rich wrapping: a long message must stay on one line.
    sys.stderr.write(line.rstrip("\n").replace("\n", " ") + "\n")
    sys.stderr.flush()


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
