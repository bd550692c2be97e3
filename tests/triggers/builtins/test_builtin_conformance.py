"""Every built-in trigger keeps the plugin contract (retrainer.testing.check_trigger), and its
docstring examples stay true."""

from __future__ import annotations

import doctest
import importlib
from datetime import timedelta

import pytest

from retrainer.config import FeatureSpec
from retrainer.profiles import build_reference_profile
from retrainer.testing import DEFAULT_NOW, check_trigger, standard_contexts, synthetic_log
from retrainer.triggers import available_triggers
from retrainer.triggers.cost_benefit import CostBenefitTrigger
from retrainer.triggers.data_volume import DataVolumeTrigger
from retrainer.triggers.drift import DriftTrigger
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger
from retrainer.triggers.model_age import ModelAgeTrigger
from retrainer.triggers.performance import PerformanceTrigger
from retrainer.triggers.schedule import ScheduleTrigger

SPECS = [FeatureSpec(name="x1"), FeatureSpec(name="x2"), FeatureSpec(name="segment", type="categorical")]


@pytest.fixture(scope="module")
def contexts():
    training = synthetic_log(DEFAULT_NOW - timedelta(days=30), seed=2)
    profile = build_reference_profile(training, SPECS, predictions=training["score"], model_version="3")
    # What registration adds for binary classifiers (estimated_performance reads it).
    profile["calibration"] = {"version": 1, "method": "platt", "a": 1.7, "b": 0.0, "input": "logit"}
    return standard_contexts(reference=profile)


CASES = [
    (ScheduleTrigger, None),
    (ScheduleTrigger, {"interval": "7d"}),
    (ScheduleTrigger, {"cron": "0 3 * * 1", "timezone": "Europe/Paris"}),
    (ModelAgeTrigger, None),
    (ModelAgeTrigger, {"max_age": "5d"}),
    (PerformanceTrigger, None),
    (PerformanceTrigger, {"min_labels": 50, "thresholds": {"roc_auc": 0.9, "recall": 0.5}}),
    (DriftTrigger, None),
    (DriftTrigger, {"window": "3d", "prediction": True}),
    (DriftTrigger, {"window": "3d", "statistic": "pvalue", "verdict": "share", "drift_share": 0.3}),
    (DriftTrigger, {"window": "3d", "statistic": "distance", "thresholds": {"x1": 0.5}}),
    (DataVolumeTrigger, None),
    (CostBenefitTrigger, None),
    (CostBenefitTrigger, {"window": "3d", "min_samples": 50, "retrain_cost": 10, "cost_per_hour": 30, "metric": "f1"}),
    (EstimatedPerformanceTrigger, None),
    (EstimatedPerformanceTrigger, {"window": "3d", "min_predictions": 50, "thresholds": {"accuracy": 0.9, "roc_auc": 0.8}}),
]


@pytest.mark.parametrize(("cls", "params"), CASES, ids=[f"{c.name}-{i}" for i, (c, _) in enumerate(CASES)])
def test_builtin_conforms(cls, params, contexts):
    check_trigger(cls, params=params, contexts=contexts)


def test_builtins_conform_on_the_kit_default_contexts():
    # With the kit's own reference format the drift trigger cannot read a profile: it must say
    # so as data (an error Decision through the policy), never crash check_trigger for the others.
    for cls in (ScheduleTrigger, ModelAgeTrigger, PerformanceTrigger, DataVolumeTrigger, CostBenefitTrigger,
                EstimatedPerformanceTrigger):
        check_trigger(cls)


def test_entry_points_name_the_builtins():
    infos = available_triggers()
    expected = {"schedule": ScheduleTrigger, "model_age": ModelAgeTrigger, "performance": PerformanceTrigger,
                "drift": DriftTrigger, "data_volume": DataVolumeTrigger, "cost_benefit": CostBenefitTrigger,
                "estimated_performance": EstimatedPerformanceTrigger}
    for name, cls in expected.items():
        assert infos[name].cls is cls, infos[name].error


@pytest.mark.parametrize("name", ["retrainer.profiles", "retrainer.triggers.schedule", "retrainer.triggers.model_age",
                                  "retrainer.triggers.performance", "retrainer.triggers.drift",
                                  "retrainer.triggers.data_volume", "retrainer.triggers.cost_benefit",
                                  "retrainer.triggers.estimated_performance"])
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
