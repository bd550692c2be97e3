"""Build the configured estimator and fit it on the training split.

The estimator class comes from configuration (``estimator.class``), so importing it is the
first thing that can go wrong: every failure is a :class:`ConfigError` naming the path.
Categorical features are one-hot encoded inside the model (a Pipeline), so the registered
model takes the same raw columns that the serving app receives.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from retrainer.config import EstimatorConfig, FeatureSpec
from retrainer.errors import ConfigError
from retrainer.tasks.load import TrainingData

DEFAULT_SEED = 0


def _import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"estimator.class {path!r}: module {module_name!r} cannot be imported ({exc}); "
            "check the spelling or install the package that provides it"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"estimator.class {path!r}: module {module_name!r} has no attribute {class_name!r}")
    if not isinstance(cls, type):
        raise ConfigError(f"estimator.class {path!r} is a {type(cls).__name__}, not a class")
    missing = [m for m in ("fit", "predict", "get_params", "set_params") if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(
            f"estimator.class {path!r} is not a scikit-learn estimator: it lacks {', '.join(missing)}"
        )
    return cls


def _seed(estimator: Any, seed: int, explicit: set[str]) -> None:
    """Give every unset ``random_state`` (also inside pipelines) a fixed seed: reruns reproduce."""
    params = estimator.get_params(deep=True)
    unset = {
        k: seed
        for k, v in params.items()
        if (k == "random_state" or k.endswith("__random_state")) and v is None and k not in explicit
    }
    if unset:
        estimator.set_params(**unset)


def build_estimator(cfg: EstimatorConfig, features: Sequence[FeatureSpec], *, seed: int = DEFAULT_SEED) -> Any:
    """A fresh, unfitted estimator for ``features``; wrapped in a one-hot Pipeline when needed."""
    cls = _import_class(cfg.class_path)
    try:
        estimator = cls(**cfg.params)
    except TypeError as exc:
        raise ConfigError(f"estimator.params do not fit {cfg.class_path}: {exc}") from None
    _seed(estimator, seed, set(cfg.params))
    categorical = [f.name for f in features if f.type == "categorical"]
    numeric = [f.name for f in features if f.type != "categorical"]
    if not categorical or isinstance(estimator, Pipeline):
        # A configured Pipeline brings its own preprocessing; wrapping it again would encode twice.
        return estimator
    encode = ColumnTransformer(
        [
            # Dense output: several estimators (HistGradientBoosting among them) reject sparse input.
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            ("numeric", "passthrough", numeric),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return Pipeline([("encode", encode), ("model", estimator)])


def train_model(estimator_cfg: EstimatorConfig, features: Sequence[FeatureSpec], data: TrainingData) -> Any:
    """Fit a fresh estimator on ``data``'s training split and return it."""
    estimator = clone(build_estimator(estimator_cfg, features))
    columns = [f.name for f in features]
    try:
        estimator.fit(data.X_train[columns], data.y_train)
    except ValueError as exc:
        raise ConfigError(f"{estimator_cfg.class_path} could not be fitted on the training data: {exc}") from exc
    return estimator


# Compute: deterministic, so a retry would fail the same way.
train_model_task = task(train_model, name="train", cache_policy=NO_CACHE)

__all__ = ["build_estimator", "train_model", "train_model_task"]
