"""Run `retrainer` as a user does, in a subprocess: Prefect's real console handler, this checkout's code.
Shared by tests/cli and tests/demo (what reaches the terminal can only be seen from outside)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """This checkout's sources first; Prefect's INFO lines off (the demo's own setting), no debug output."""
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.pop("RETRAINER_DEBUG", None)
    return env


def run_python(code: str, *argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -c code argv...`` in that environment."""
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=cli_env(),
                          timeout=timeout)


def run_cli(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The installed console script, ``retrainer argv...``."""
    script = Path(sys.executable).with_name("retrainer")
    return subprocess.run([str(script), *argv], capture_output=True, text=True, env=cli_env(), timeout=timeout)
