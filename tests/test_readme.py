"""README.md opens with the two set-up commands, and its reference sections match the code."""

from __future__ import annotations

import re
from pathlib import Path

from retrainer.cli import app
from retrainer.reference import SECTIONS, render_sections

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_exactly_the_two_setup_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block is not None and README.index(first_block.group(0)) < README.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readmes_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_generated_reference_sections_are_current():
    assert set(SECTIONS) == {"config-reference", "triggers-reference", "cli-reference"}
    assert render_sections(README, app) == README, "run: python -m retrainer.reference README.md"


def test_the_config_reference_names_every_field():
    for key in ("`gate.min_ratio`", "`policy.cooldown`", "`rollout.ab.split`", "`data.features[].type`"):
        assert key in README
