"""Loading a model to serve it prints nothing: no MLflow "Downloading artifacts" bar at every
load and reload of `retrainer serve`."""

from __future__ import annotations

import pytest
from serving_env import FEATURES, Env

from retrainer.config import FeatureSpec
from retrainer.deployments.serving.router import registry_loader


def test_loading_a_served_model_prints_no_progress_bar(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    load = registry_loader(env.registry, [FeatureSpec(**f) for f in FEATURES])
    capfd.readouterr()
    model = load(env.versions[0])
    out, err = capfd.readouterr()
    assert model.version == env.versions[0]
    assert "Downloading artifacts" not in err and "Downloading artifacts" not in out
    assert err == ""
