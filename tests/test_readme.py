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


def _readme_examples() -> tuple[dict, dict[str, dict], list[dict]]:
    """The ten-minute config, the /predict and /feedback bodies, and the answers shown."""
    section = _ten_minutes()
    cfg = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    bodies = {route: json.loads(body)
              for route, body in re.findall(r"localhost:8000/(predict|feedback) .*?-d '(\{.*?\})'", section)}
    answers = [json.loads(line.lstrip("# ")) for line in section.splitlines() if line.startswith("# {")]
    return cfg, bodies, answers


class _OneVersionRegistry:
    """The registry as the service reads it: version 1 is the champion, nothing else."""

    model_name = "credit-default"

    def alias_version(self, alias: str) -> str | None:
        return "1" if alias == "champion" else None


def test_the_readme_example_answers_are_what_the_service_answers(tmp_path: Path) -> None:
    """The README's /predict and /feedback, sent to a real service (the README's config, the
    default durability, a small model on its two features) one right after the other: the
    answers have the README's keys and types, and the label is never "unknown"."""
    import numpy as np
    import pandas as pd
    from fastapi.testclient import TestClient
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from retrainer.config import parse_config
    from retrainer.deployments.serving.app import create_app
    from retrainer.deployments.serving.router import ServedModel
    from retrainer.deployments.serving.serving import PredictionService

    data, bodies, answers = _readme_examples()
    data["store"] = {"url": f"sqlite:///{tmp_path / 'retrainer.db'}"}
    data["rollout"] = {**data.get("rollout", {}), "shadow": {"isolation": "thread"}}
    cfg = parse_config(data, base_dir=tmp_path, environ={})
    frame = pd.DataFrame({"income": [20000.0, 90000.0, 40000.0, 70000.0], "region": ["north", "south", "north", "south"]})
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["region"]),
                                                  (StandardScaler(), ["income"])), LogisticRegression())
    model.fit(frame, np.array([1, 0, 1, 0]))
    from retrainer.store import Store

    store = Store.open(cfg.store.url)
    store.init()
    service = PredictionService.from_config(cfg, store=store, registry=_OneVersionRegistry(),  # type: ignore[arg-type]
                                            loader=lambda v: ServedModel(v, None, cfg.data.features, raw=model),
                                            reload_interval=60)
    try:
        with TestClient(create_app(service)) as client:
            predicted = client.post("/predict", json=bodies["predict"])
            labelled = client.post("/feedback", json=bodies["feedback"])  # right after: the row may not be stored yet
    finally:
        store.close()
    assert predicted.status_code == 200 and labelled.status_code == 200
    for shown, real in zip(answers, (predicted.json(), labelled.json()), strict=True):
        assert set(shown) == set(real)
        assert {k: type(v) for k, v in shown.items()} == {k: type(v) for k, v in real.items()}
    assert predicted.json()["request_id"] == answers[0]["request_id"] == bodies["predict"]["request_id"]
    assert labelled.json() == answers[1] == {"written": 1, "unknown_request_ids": [], "clamped_request_ids": []}


def test_readme_links_the_docs_that_exist():
    for target in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (REPO / target).is_file(), target
