"""`retrainer demo` refuses, in one line and up front, a story it cannot tell; a failure inside one of
its flows is the CLI's one line, never Prefect's traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_process import run_python
from retrainer.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rows-per-day", "30"], "use --rows-per-day 50 or more"),
        (["--drift-day", "15"], "use --drift-day 16 or later"),
        (["--rows-per-day", "50", "--days", "30", "--drift-day", "18"], "use --days 32 or more"),
        (["--rows-per-day", "2000", "--days", "25", "--drift-day", "20"], "use --days 33 or more"),
    ],
)
def test_a_story_that_cannot_be_told_is_refused_in_one_line_before_anything_is_written(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and says in err, err
    assert not workdir.exists()


# The demo as a user runs it, with a training minimum its data cannot meet: the first retrain flow
# raises InsufficientDataError inside its flow run.
_UNMEETABLE_MIN_ROWS = """
import sys
import retrainer.demo.sizing as sizing
sizing.MIN_TRAIN_ROWS = 10**6
from retrainer.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_insufficient_data_inside_the_demos_retrain_flow_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    done = run_python(_UNMEETABLE_MIN_ROWS, "demo", "--workdir", str(tmp_path / "demo"), "--rows-per-day", "50",
                      "--days", "34", "--drift-day", "18", "--json")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: found ") and "data.min_rows is 1000000" in lines[0]
    assert "Traceback" not in done.stderr and "flow_engine" not in done.stderr
    assert done.stdout == ""
