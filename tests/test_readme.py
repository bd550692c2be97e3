"""README.md opens with the two set-up commands and its ten-minute path works as written;
docs/reference.md's generated sections match the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from retrainer.cli import app
from retrainer.config import RetrainerConfig
from retrainer.deployments.serving.app import request_models
from retrainer.reference import SECTIONS, render_sections

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
REFERENCE = (REPO / "docs" / "reference.md").read_text(encoding="utf-8")


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
    assert render_sections(REFERENCE, app) == REFERENCE, "run: python -m retrainer.cli.render_reference docs/reference.md"


def test_the_config_reference_names_every_field():
    for key in ("`gate.min_ratio`", "`policy.cooldown`", "`rollout.ab.split`", "`data.features[].type`"):
        assert key in REFERENCE


def _ten_minutes() -> str:
    start = README.index("## Your own model in ten minutes")
    return README[start:README.index("\n## ", start + 1)]


def test_the_ten_minute_config_is_valid_and_names_a_training_table():
    section = _ten_minutes()
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    cfg = RetrainerConfig.model_validate(yaml.safe_load(block.group(1)))
    assert cfg.data.source.table == "loans" and "training table" in section
    assert [t.type for t in cfg.triggers] == ["performance", "drift", "model_age"]


def test_the_ten_minute_path_serves_after_the_first_retrain():
    commands = [line.split("#")[0].strip() for line in _ten_minutes().splitlines() if re.match(r"retrainer [a-z]+( |$)", line) and "#" in line]
    assert commands.index("retrainer retrain --force") < commands.index("retrainer serve")
    assert commands[:2] == ["retrainer config validate", "retrainer store init"]


def test_the_readme_request_bodies_are_what_the_service_accepts():
    """The exact /predict and /feedback bodies of the README, through the service's request models."""
    section = _ten_minutes()
    cfg = RetrainerConfig.model_validate(yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1)))
    PredictRequest, FeedbackRequest = request_models(cfg.data.features, max_batch=10, max_labels=10)
    bodies = dict(re.findall(r"localhost:8000/(predict|feedback) .*?-d '(\{.*?\})'", section))
    assert set(bodies) == {"predict", "feedback"}
    predict = PredictRequest.model_validate(json.loads(bodies["predict"]))
    assert predict.request_id == "req-1" and predict.features is not None
    feedback = FeedbackRequest.model_validate(json.loads(bodies["feedback"]))
    assert feedback.request_id == "req-1" and feedback.label == 1.0
    # The answers shown are the shapes the service returns.
    answers = [json.loads(line.lstrip("# ")) for line in section.splitlines() if line.startswith("# {")]
    assert set(answers[0]) == {"request_id", "prediction", "score", "model_version", "arm"}
    assert set(answers[1]) == {"written", "unknown_request_ids"}


def test_readme_links_the_docs_that_exist():
    for target in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (REPO / target).is_file(), target
