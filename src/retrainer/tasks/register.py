"""Register a gated candidate in the MLflow registry, exactly once per idempotency key.

A retried task (or a re-run flow) must not create a second version for the same training
run. Three facts make that hold whatever step a crash interrupts:

1. the MLflow *run* carries the idempotency key as a tag from the moment it is created;
2. once the model is logged, the run is tagged with the logged model's id;
3. the model *version* is created with its tags (key included) in the same call, so there is
   no window in which a version exists without its key.

A retry therefore finds either the version (return it), or a run whose model is logged
(register that model, no re-logging), or neither (start over; the failed run is marked FAILED).
Two *concurrent* calls with the same key are not serialised here: the retrain flow runs once
per key (Prefect flow-run id), which is what the key is derived from.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from retrainer.model_safety import TrustPolicy, trusted_types_for
from retrainer.errors import RegistryError
from retrainer.registry import CHALLENGER, IDEMPOTENCY_TAG, Registry, check_idempotency_key
from retrainer.tasks._retry import io_task

MODEL_ID_TAG = "retrainer.model_id"
MODEL_ARTIFACT_NAME = "model"
REFERENCE_PROFILE_FILE = "reference_profile.json"
_MAX_TAG = 5000
_MAX_PARAM = 6000


@dataclass(frozen=True)
class RegisteredVersion:
    version: str
    run_id: str | None
    created: bool  # False: the key was already registered and that version is returned


def _tag_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= _MAX_TAG else text[: _MAX_TAG - 1] + "…"


def _trusted_types(model: Any, policy: TrustPolicy, extra: Sequence[str]) -> list[str]:
    """Types the skops file may load: the registry's allow-list (the one loading checks) plus ``extra``."""
    return list(trusted_types_for(model, TrustPolicy(policy.prefixes, policy.types | frozenset(extra))))


def _find_run(registry: Registry, experiment_id: str, key: str) -> tuple[str | None, str | None]:
    """(run_id, logged model id) of an earlier attempt with this key whose model was logged."""
    runs = registry.client.search_runs(
        [experiment_id], filter_string=f"tags.`{IDEMPOTENCY_TAG}` = '{key}'", order_by=["attributes.start_time ASC"]
    )
    for run in runs:
        model_id = run.data.tags.get(MODEL_ID_TAG)
        if model_id:
            return run.info.run_id, model_id
    return None, None


def register_candidate(
    model: Any,
    *,
    registry: Registry,
    idempotency_key: str,
    metrics: Mapping[str, float | None],
    reasons: Sequence[str] | Mapping[str, Any],
    data_window: tuple[datetime, datetime],
    flow_run_id: str | None,
    input_example: pd.DataFrame,
    reference_profile: Mapping[str, Any] | None = None,
    extra_artifacts: Mapping[str, Path] | None = None,
    params: Mapping[str, Any] | None = None,
    trusted_types: Sequence[str] = (),
) -> RegisteredVersion:
    """Log ``model`` to an MLflow run and register it as a new version of ``registry.model_name``.

    Idempotent on ``idempotency_key`` (see the module docstring). ``metrics`` are logged as given
    (prefix them, e.g. ``candidate_f1`` / ``champion_f1``). The version is tagged with the trigger
    reasons, the data window, the flow run id and the key; ``reference_profile`` (the drift
    baseline) is stored as ``reference_profile.json`` in the run.
    """
    key = check_idempotency_key(idempotency_key)
    # The registry store resolves ``models:/<id>`` sources through MLflow's *global* tracking URI,
    # so the whole registration runs with the globals pointed at this registry.
    with registry.activated():
        return _register(
            model,
            registry=registry,
            key=key,
            metrics=metrics,
            reasons=reasons,
            data_window=data_window,
            flow_run_id=flow_run_id,
            input_example=input_example,
            reference_profile=reference_profile,
            extra_artifacts=extra_artifacts,
            params=params,
            trusted_types=trusted_types,
        )


def _register(
    model: Any,
    *,
    registry: Registry,
    key: str,
    metrics: Mapping[str, float | None],
    reasons: Sequence[str] | Mapping[str, Any],
    data_window: tuple[datetime, datetime],
    flow_run_id: str | None,
    input_example: pd.DataFrame,
    reference_profile: Mapping[str, Any] | None,
    extra_artifacts: Mapping[str, Path] | None,
    params: Mapping[str, Any] | None,
    trusted_types: Sequence[str],
) -> RegisteredVersion:
    existing = registry.version_for_key(key)
    if existing is not None:
        return RegisteredVersion(existing, registry.get_version(existing).run_id, created=False)

    registry.ensure_registered_model()
    experiment_id = registry.ensure_experiment()
    start, end = data_window
    version_tags = {
        IDEMPOTENCY_TAG: key,
        "retrainer.trigger_reasons": _tag_value(reasons if isinstance(reasons, Mapping) else list(reasons)),
        "retrainer.data_window_start": start.isoformat(),
        "retrainer.data_window_end": end.isoformat(),
        "retrainer.flow_run_id": flow_run_id or "",
    }

    run_id, model_id = _find_run(registry, experiment_id, key)
    if run_id is None:
        run_id, model_id = _log_run(
            model,
            registry=registry,
            experiment_id=experiment_id,
            key=key,
            metrics=metrics,
            version_tags=version_tags,
            input_example=input_example,
            reference_profile=reference_profile,
            extra_artifacts=extra_artifacts or {},
            params=params or {},
            trusted_types=trusted_types,
        )
    else:
        # The model of an earlier attempt is logged but maybe not registered: a version made from
        # that run (with or without our tags) is the one to return.
        for mv in registry.versions_for_run(run_id):
            return RegisteredVersion(str(mv.version), run_id, created=False)

    try:
        mv = registry.client.create_model_version(
            registry.model_name,
            source=f"models:/{model_id}",
            run_id=run_id,
            tags={**version_tags, "retrainer.run_id": run_id},
            model_id=model_id,
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot register a version of {registry.model_name!r}: {exc.message}") from exc
    return RegisteredVersion(str(mv.version), run_id, created=True)


def _log_run(
    model: Any,
    *,
    registry: Registry,
    experiment_id: str,
    key: str,
    metrics: Mapping[str, float | None],
    version_tags: Mapping[str, str],
    input_example: pd.DataFrame,
    reference_profile: Mapping[str, Any] | None,
    extra_artifacts: Mapping[str, Path],
    params: Mapping[str, Any],
    trusted_types: Sequence[str],
) -> tuple[str, str]:
    client = registry.client
    if input_example is None or len(input_example) == 0:
        raise RegistryError("an input example (a few rows of features) is needed to infer the model signature")
    example = input_example.head(5)
    trusted = _trusted_types(model, registry.trust, trusted_types)
    try:
        signature = infer_signature(example, model.predict(example))
    except Exception as exc:  # noqa: BLE001 - any failure here means the model cannot be served
        raise RegistryError(f"cannot infer the model signature from the input example: {exc}") from exc

    run = client.create_run(experiment_id, tags=dict(version_tags), run_name=f"retrain-{key[:12]}")
    run_id = run.info.run_id
    try:
        from mlflow.entities import Metric, Param

        now_ms = run.info.start_time
        client.log_batch(
            run_id,
            metrics=[
                Metric(k, float(v), now_ms, 0) for k, v in metrics.items() if v is not None and not math.isinf(float(v))
            ],
            params=[Param(k, str(v)[:_MAX_PARAM]) for k, v in params.items()],
        )
        if reference_profile is not None:
            client.log_dict(run_id, dict(reference_profile), REFERENCE_PROFILE_FILE)
        for name, path in extra_artifacts.items():
            p = Path(path)
            if p.is_dir():
                client.log_artifacts(run_id, str(p), artifact_path=name)
            else:
                client.log_artifact(run_id, str(p), artifact_path=name)
        with registry.activated(), mlflow.start_run(run_id=run_id), _quiet_example_validation():
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT_NAME,
                signature=signature,
                input_example=example,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=trusted or None,
                # Given, not inferred: inference loads the model in a subprocess (seconds per call).
                pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            )
        # From here a retry registers this logged model instead of logging another.
        client.set_tag(run_id, MODEL_ID_TAG, info.model_id)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id, info.model_id


class _ExampleValidationFilter(logging.Filter):
    """Drops MLflow's "Failed to validate serving input example" warning. MLflow checks the
    example by loading the model it just logged, which this process refuses by design (pickle
    deserialization is off in every retrainer process): the warning would tell a user to allow
    unsafe loading. The example is still stored; serving loads through retrainer's allow-list."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to validate serving input example")


@contextmanager
def _quiet_example_validation() -> Iterator[None]:
    logger = logging.getLogger("mlflow.models.model")
    quiet = _ExampleValidationFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def holdout_calibration(model: Any, X: pd.DataFrame, y: Any) -> dict[str, Any] | None:
    """The calibration map of ``model``'s scores on the holdout, as JSON for the reference profile.

    What ``estimated_performance`` turns the logged scores into probabilities with. The score is
    the one serving logs: ``predict_proba[:, 1]``, P(``classes_[1]``), of a binary classifier.
    None for regressors, multiclass models and models without ``predict_proba`` (nothing to
    estimate from); ``{"skipped": reason}`` when the holdout is too small to calibrate on.
    """
    from retrainer.errors import StatisticsError
    from retrainer.stats.calibration import fit_calibration

    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) != 2 or not hasattr(model, "predict_proba"):
        return None
    try:
        score = np.asarray(model.predict_proba(X), dtype=float)[:, 1]
        return fit_calibration(score, np.asarray(y) == classes[1]).to_dict()
    except StatisticsError as exc:
        return {"skipped": str(exc)}


def set_challenger(registry: Registry, version: str | int) -> None:
    """Stage ``version``: point the ``challenger`` alias at it."""
    registry.set_alias(CHALLENGER, version)


# I/O against MLflow: retried; idempotency makes a retry safe. Inputs (models, clients) are not
# hashable cache keys, and a side-effecting task must never be served from a cache.
register_candidate_task = io_task(register_candidate, name="register")
set_challenger_task = io_task(set_challenger, name="set-challenger")

__all__ = [
    "MODEL_ID_TAG",
    "REFERENCE_PROFILE_FILE",
    "RegisteredVersion",
    "holdout_calibration",
    "register_candidate",
    "register_candidate_task",
    "set_challenger",
    "set_challenger_task",
]
