"""Flow commands print retrainer's lines, not Prefect's or MLflow's INFO chatter (issue 20)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrainer.cli.prefect_console import _NoLibraryChatter, _package_dirs

from flow_world import NOW

# What Prefect and MLflow print on their own at INFO: the temporary API server, the engine's
# state lines, MLflow's artifact download bars.
CHATTER = ("temporary server", "Finished in state", "Beginning flow run", "Downloading artifacts", "it/s]")


def _record(pathname: str, level: int) -> logging.LogRecord:
    return logging.LogRecord("prefect.flow_runs", level, pathname, 1, "a line", None, None)


def test_library_info_is_dropped_and_warnings_and_our_own_lines_pass():
    prefect_dir = _package_dirs("prefect")[0]
    chatter = _NoLibraryChatter(_package_dirs("prefect") + _package_dirs("mlflow"))
    assert not chatter.filter(_record(os.path.join(prefect_dir, "task_engine.py"), logging.INFO))
    assert not chatter.filter(_record(os.path.join(_package_dirs("mlflow")[0], "store", "x.py"), logging.INFO))
    assert chatter.filter(_record(os.path.join(prefect_dir, "task_engine.py"), logging.WARNING))
    assert chatter.filter(_record(os.path.join(prefect_dir, "flow_engine.py"), logging.ERROR))
    # retrainer's own progress, logged through the flow's run logger (a prefect logger name)
    import retrainer.flows

    ours = os.path.join(os.path.dirname(retrainer.flows.__file__), "retrain.py")
    assert chatter.filter(_record(ours, logging.INFO))


@pytest.mark.slow
def test_retrain_force_prints_no_prefect_or_mlflow_chatter(make_world):
    """The real command in its own process (Prefect's handlers and its temporary server as a user gets them)."""
    world = make_world()
    # A user's environment, not this worker's: an in-process `retrainer demo` earlier in the same
    # worker leaves PREFECT_LOGGING_LEVEL=WARNING behind, which hides retrainer's own progress lines.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API", "PREFECT_LOGGING", "MLFLOW_ENABLE_ARTIFACTS"))}
    script = Path(sys.executable).with_name("retrainer")
    done = subprocess.run([str(script), "retrain", "--config", str(world.config_path), "--force", "--at", NOW.isoformat()],
                          capture_output=True, text=True, timeout=600, env=env, cwd=world.dir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "→ version 1" in done.stdout
    assert "loaded" in done.stderr and "training" in done.stderr  # retrainer's own progress line stays
    for line in output.splitlines():
        assert not any(c in line for c in CHATTER), line
        assert "Warning" not in line, line
