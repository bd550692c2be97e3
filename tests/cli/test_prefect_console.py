"""The CLI's console rule for Prefect's records: an expected failure (any RetrainerError) never shows
Prefect's lines or traceback; another exception's traceback only when RETRAINER_DEBUG asks for it."""

from __future__ import annotations

import logging

import pytest

from cli_process import run_cli
from flow_world import NOW
from retrainer.cli.prefect_console import CliConsoleFilter, reports_expected_failure
from retrainer.errors import InsufficientDataError, RetrainerError


class PluginError(RetrainerError):
    """A plugin's own subclass, defined after the filter module was imported."""


def _record(msg: str, exc: BaseException | None = None, level: int = logging.ERROR) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("prefect.flow_runs", level, __file__, 1, msg, None, exc_info)


# The three records a flow failing on InsufficientDataError puts on the console (Prefect 3's wording).
TASK_FAILED = ("Finished in state Failed('Task run encountered an exception InsufficientDataError: found 160 "
               "labelled training row(s) but data.min_rows is 300')")
FLOW_FAILED = "Finished in state Failed('Flow run encountered an exception: InsufficientDataError: found 160 rows')"


@pytest.fixture
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRAINER_DEBUG", raising=False)


def test_every_record_about_an_expected_failure_is_dropped(no_debug: None) -> None:
    keep = CliConsoleFilter().filter
    engine = _record("Encountered exception during execution: %r", InsufficientDataError("found 160 rows"))
    assert not keep(engine)
    assert not keep(_record(TASK_FAILED))
    assert not keep(_record(FLOW_FAILED, level=logging.INFO))
    assert not keep(_record("Task run failed", PluginError("a plugin's expected failure")))
    assert reports_expected_failure(_record(FLOW_FAILED.replace("InsufficientDataError", "PluginError")))


def test_other_failures_keep_their_line_and_show_the_traceback_only_on_request(
    no_debug: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = CliConsoleFilter().filter
    bug = _record("Encountered exception during execution: %r", ZeroDivisionError("division by zero"))
    other_state = _record(TASK_FAILED.replace("InsufficientDataError", "ZeroDivisionError"))
    assert not reports_expected_failure(bug) and not reports_expected_failure(other_state)
    assert keep(other_state) and keep(_record("Beginning flow run", level=logging.INFO))
    assert not keep(bug)
    monkeypatch.setenv("RETRAINER_DEBUG", "1")
    assert keep(bug)
    assert not keep(_record("Encountered exception during execution: %r", InsufficientDataError("x")))


def test_a_failing_retrain_prints_one_line_and_no_prefect_traceback(make_world) -> None:
    """`retrainer retrain` in a subprocess (Prefect's real console handler) on a world whose
    data.min_rows cannot be met: the InsufficientDataError is raised inside the flow run."""
    world = make_world(data={"min_rows": 10**6})
    done = run_cli("retrain", "-c", str(world.config_path), "--force", "--at", NOW.isoformat())
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: found ") and "data.min_rows is 1000000" in lines[0]
    assert "Traceback" not in done.stderr and "flow_engine" not in done.stderr
