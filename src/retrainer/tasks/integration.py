"""Integration test of a registered version, exercised the way serving will use it.

The model is loaded back from the registry (``models:/<name>@challenger`` by default) as a
pyfunc, so the test covers what the serving app gets: the logged signature is enforced, the
predictions are usable, and a single-row predict is fast enough.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retrainer.errors import RegistryError
from retrainer.registry import Registry

DEFAULT_LATENCY_BUDGET_MS = 50.0


@dataclass(frozen=True)
class IntegrationCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class IntegrationReport:
    model_uri: str
    passed: bool
    checks: list[IntegrationCheck] = field(default_factory=list)

    @property
    def failures(self) -> list[IntegrationCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_schema(model: Any, sample: pd.DataFrame) -> IntegrationCheck:
    schema = model.metadata.get_input_schema()
    if schema is None:
        return IntegrationCheck("signature", False, "the model was logged without an input signature")
    names = schema.input_names()
    missing = [n for n in names if n not in sample.columns]
    if missing:
        return IntegrationCheck("signature", False, f"the sample lacks signature column(s) {missing}")
    # Enforcement must be live: a request without a required column has to be refused.
    try:
        model.predict(sample[names].head(1).drop(columns=[names[0]]))
    except Exception:  # noqa: BLE001 - any refusal is the expected outcome
        return IntegrationCheck("signature", True, f"inputs {names} enforced")
    return IntegrationCheck("signature", False, f"a row without {names[0]!r} was accepted: the signature is not enforced")


def _check_predictions(model: Any, sample: pd.DataFrame, labels: Collection[Any] | None) -> list[IntegrationCheck]:
    checks: list[IntegrationCheck] = []
    try:
        pred = np.asarray(model.predict(sample))
    except Exception as exc:  # noqa: BLE001
        return [IntegrationCheck("predict", False, f"predict on the sample failed: {exc.__class__.__name__}: {exc}")]
    ok_len = len(pred) == len(sample)
    checks.append(IntegrationCheck("predict", ok_len, f"{len(pred)} predictions for {len(sample)} rows"))
    if np.issubdtype(pred.dtype, np.number):
        finite = bool(np.isfinite(pred.astype(float)).all())
        checks.append(IntegrationCheck("finite", finite, "all predictions finite" if finite else "NaN/inf predictions"))
    raw = model.get_raw_model() if hasattr(model, "get_raw_model") else None
    if labels is None and raw is not None and hasattr(raw, "classes_"):
        labels = list(raw.classes_)
    if labels is not None:
        allowed = set(np.asarray(list(labels)).tolist())
        outside = sorted({str(v) for v in pred.tolist() if v not in allowed})
        checks.append(
            IntegrationCheck(
                "labels",
                not outside,
                f"predictions within {sorted(map(str, allowed))}" if not outside else f"unknown labels {outside[:5]}",
            )
        )
    if raw is not None and hasattr(raw, "predict_proba"):
        proba = np.asarray(raw.predict_proba(sample), dtype=float)
        in_range = bool(np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all())
        sums = bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)) if proba.ndim == 2 else True
        checks.append(
            IntegrationCheck(
                "probabilities",
                in_range and sums,
                "probabilities in [0, 1] summing to 1" if in_range and sums else "probabilities out of [0, 1] or not summing to 1",
            )
        )
    return checks


def _check_latency(model: Any, sample: pd.DataFrame, budget_ms: float, repeats: int) -> IntegrationCheck:
    rows = [sample.iloc[[i % len(sample)]] for i in range(repeats)]
    model.predict(rows[0])  # warm-up: first call pays lazy imports and caches
    timings = []
    for row in rows:
        t0 = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - t0) * 1000)
    p95 = float(np.percentile(timings, 95))
    ok = p95 <= budget_ms
    return IntegrationCheck(
        "latency", ok, f"p95 single-row predict {p95:.2f} ms {'<=' if ok else '>'} budget {budget_ms:g} ms ({repeats} calls)"
    )


def integration_test(
    registry: Registry,
    version_or_alias: str | int,
    sample: pd.DataFrame,
    *,
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS,
    latency_repeats: int = 50,
    labels: Collection[Any] | None = None,
    raise_on_failure: bool = True,
) -> IntegrationReport:
    """Load ``version_or_alias`` (e.g. ``"challenger"``) back through the registry and check it is fit to serve.

    Raises :class:`RegistryError` naming every failed check (unless ``raise_on_failure=False``).
    """
    if sample is None or len(sample) == 0:
        raise RegistryError("integration_test needs a non-empty sample of feature rows")
    uri = registry.model_uri(version_or_alias)
    checks: list[IntegrationCheck] = []
    try:
        model = registry.load_model(version_or_alias, flavor="pyfunc")
    except RegistryError as exc:
        checks.append(IntegrationCheck("load", False, str(exc)))
        model = None
    if model is not None:
        checks.append(IntegrationCheck("load", True, f"loaded {uri}"))
        checks.append(_check_schema(model, sample))
        checks.extend(_check_predictions(model, sample, labels))
        if all(c.passed for c in checks if c.name == "predict"):
            checks.append(_check_latency(model, sample, latency_budget_ms, max(1, latency_repeats)))
    report = IntegrationReport(uri, all(c.passed for c in checks), checks)
    if not report.passed and raise_on_failure:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
        raise RegistryError(f"integration test of {uri} failed: {failed}")
    return report


# Loads from the registry (I/O) but a failed check is a verdict, not a glitch: no retries.
integration_test_task = task(integration_test, name="integration-test", cache_policy=NO_CACHE)

__all__ = [
    "DEFAULT_LATENCY_BUDGET_MS",
    "IntegrationCheck",
    "IntegrationReport",
    "integration_test",
    "integration_test_task",
]
