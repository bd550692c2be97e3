"""The example plugin in examples/custom-trigger installs as a separate distribution, is
discovered through its entry point, and is used in a real ``retrainer check``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "custom-trigger"
RETRAINER = [sys.executable, "-c", "import sys; from retrainer.cli import main; sys.exit(main(sys.argv[1:]))"]

_spec = importlib.util.spec_from_file_location("_demo_store_for_plugin", ROOT / "tests" / "triggers" / "test_check.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


def _can_build_in_place() -> bool:
    """setuptools builds wheels by itself from 70.1; before that it needs the `wheel` package."""
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("plugin-site")
    build = tmp_path_factory.mktemp("plugin-build")
    # Build from a copy: setuptools leaves build/ and *.egg-info next to the sources it builds.
    source = shutil.copytree(EXAMPLE, build / "custom-trigger",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # Without a wheel-capable setuptools here, let pip fetch the build backend (build isolation).
    isolation = ["--no-build-isolation"] if _can_build_in_place() else []
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
         "--no-compile", "--target", str(target), str(source)],
        check=True, cwd=build, capture_output=True, text=True, timeout=300,
    )
    return target


def run(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(RETRAINER + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_plugin_is_listed_and_used_in_a_check(installed, tmp_path):
    listed = {r["name"]: r for r in run(["triggers", "list", "--json"], installed, tmp_path)}
    plugin = listed["error_rate"]
    assert plugin["class"] == "retrainer_example_triggers.error_rate:ErrorRateTrigger"
    assert plugin["distribution"] == "retrainer-example-triggers" and plugin["version"] == "0.1.0"
    assert plugin["error"] is None and "max_error_rate" in plugin["params_schema"]["properties"]

    demo.demo_store(f"sqlite:///{tmp_path / 'r.db'}").close()
    cfg = demo.config(tmp_path).model_dump(mode="json", by_alias=True, exclude={"base_dir"})
    cfg["store"]["url"] = "sqlite:///r.db"
    cfg["triggers"] = [{"type": "error_rate", "max_error_rate": 0.05, "window": "7d"}, {"type": "model_age"}]
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump(cfg))
    out = run(["check", "--config", "retrainer.yaml", "--json", "--at", "2026-01-20T00:00Z"], installed, tmp_path)
    assert out["checks"]["error_rate"]["status"] == "fired" and out["reasons"] == ["error_rate"]
    assert out["checks"]["error_rate"]["threshold"] == 0.05
