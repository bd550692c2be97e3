"""Reference profiles: what a registered model version's drift is measured against.

The registration task builds one from the model's training frame with
:func:`build_reference_profile` and the store keeps it as JSON
(``Store.save_reference_profile(model, version, profile)``). The drift trigger reads it back
through ``ctx.reference`` and :func:`load_reference_profile` turns it into typed
:mod:`retrainer.stats` references. Statistics themselves live in :mod:`retrainer.stats`.

Profile shape (version 1, strict JSON)::

    {"version": 1,
     "features": {name: NumericReference.to_dict() | CategoricalReference.to_dict()},
     "prediction": NumericReference.to_dict() | None,   # the model's scores on the training frame
     "n_rows": int, "model_version": str | None, "registered_at": ISO-8601 | None,
     # added by the retrain flow at registration (optional; older profiles lack them):
     "holdout_metrics": {metric: float},                # the candidate's realized holdout figures
     "calibration": CalibrationMap.to_dict() | {"skipped": reason} | None}   # binary classifiers

:func:`load_calibration` reads the calibration map back (what ``estimated_performance`` uses).

>>> import pandas as pd
>>> from retrainer.config import FeatureSpec
>>> frame = pd.DataFrame({"x": [float(i) for i in range(100)], "c": ["a", "b"] * 50})
>>> profile = build_reference_profile(frame, [FeatureSpec(name="x"), FeatureSpec(name="c", type="categorical")], bins=4)
>>> sorted(profile["features"]), profile["n_rows"]
(['c', 'x'], 100)
>>> loaded = load_reference_profile(profile)
>>> type(loaded.features["x"]).__name__, loaded.features["c"].counts
('NumericReference', {'a': 50, 'b': 50})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from retrainer.config import FeatureSpec
from retrainer.errors import StatisticsError
from retrainer.stats import KS_EXACT_MAX_N, CategoricalReference, NumericReference, Reference
from retrainer.stats.calibration import CalibrationMap

PROFILE_VERSION = 1

#: Sorted values kept per numeric feature for KS / Wasserstein (PSI always uses the whole frame).
#: Above ``KS_EXACT_MAX_N`` (10,000) values the KS p-value is scipy's asymptotic ``kstwo`` path,
#: cheap; at or below it scipy's exact O(n x m) one costs ~20 ms per feature. A 20-feature profile
#: is then ~5 MB of JSON (~0.2 s to load).
DEFAULT_SAMPLE_SIZE = 12_000
assert DEFAULT_SAMPLE_SIZE > KS_EXACT_MAX_N


@dataclass(frozen=True)
class ReferenceProfile:
    """A loaded profile: typed references per feature (and for the prediction scores)."""

    features: Mapping[str, Reference]
    prediction: NumericReference | None
    n_rows: int
    model_version: str | None
    registered_at: datetime | None


def _utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"registered_at must be timezone-aware, got {value!r}")
    return value.astimezone(timezone.utc).isoformat()


def build_reference_profile(
    frame: pd.DataFrame,
    features: Sequence[FeatureSpec],
    *,
    bins: int = 10,
    sample_size: int | None = DEFAULT_SAMPLE_SIZE,
    model_version: str | None = None,
    registered_at: datetime | None = None,
    predictions: ArrayLike | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile the training ``frame``: quantile bins + a sorted sample per numeric feature,
    category counts per categorical one, and (optionally) the model's prediction scores.

    Raises :class:`~retrainer.errors.StatisticsError` naming the feature when a column is
    missing or has no usable value: a model must not be registered without a reference.
    """
    out: dict[str, Any] = {}
    for spec in features:
        if spec.name not in frame.columns:
            raise StatisticsError(f"cannot profile feature {spec.name!r}: the training frame has no such column")
        column = frame[spec.name]
        try:
            if spec.type == "numeric":
                values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
                ref: Reference = NumericReference.from_values(values, bins=bins, sample_size=sample_size, seed=seed)
            else:
                ref = CategoricalReference.from_values(column.to_numpy(object))
        except StatisticsError as exc:
            raise StatisticsError(f"cannot profile feature {spec.name!r}: {exc}") from None
        out[spec.name] = ref.to_dict()
    prediction = None
    if predictions is not None:
        scores = np.asarray(predictions, dtype=np.float64).ravel()
        prediction = NumericReference.from_values(scores, bins=bins, sample_size=sample_size, seed=seed).to_dict()
    return {
        "version": PROFILE_VERSION,
        "features": out,
        "prediction": prediction,
        "n_rows": int(len(frame)),
        "model_version": None if model_version is None else str(model_version),
        "registered_at": _utc_iso(registered_at),
    }


def profile_arrays(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The same profile with its long lists as read-only numpy arrays.

    Same meaning, same keys; only cheaper to hand to a :class:`~retrainer.triggers.TriggerContext`,
    which deep-freezes its reference (element by element for lists, O(1) for arrays), and to
    :func:`load_reference_profile`. ``run_check`` and ``backtest`` pass profiles through this.
    """

    def arrays(ref: Any) -> Any:
        if not isinstance(ref, Mapping) or ref.get("kind") != NumericReference.kind:
            return ref
        out = dict(ref)
        for key, dtype in (("inner_edges", np.float64), ("counts", np.int64), ("sorted_sample", np.float64)):
            if key in out:
                arr = np.asarray(out[key], dtype=dtype)
                arr.setflags(write=False)
                out[key] = arr
        return out

    out = dict(profile)
    if isinstance(out.get("features"), Mapping):
        out["features"] = {name: arrays(ref) for name, ref in out["features"].items()}
    if out.get("prediction") is not None:
        out["prediction"] = arrays(out["prediction"])
    return out


def _reference(data: Mapping[str, Any], name: str) -> Reference:
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == NumericReference.kind:
        return NumericReference.from_dict(data)
    if kind == CategoricalReference.kind:
        return CategoricalReference.from_dict(data)
    raise StatisticsError(f"reference of {name!r} has kind {kind!r}, expected 'numeric' or 'categorical'")


def load_reference_profile(profile: Mapping[str, Any]) -> ReferenceProfile:
    """Typed references from a stored profile; a clear StatisticsError if it is not one."""
    if not isinstance(profile, Mapping) or profile.get("version") != PROFILE_VERSION or not isinstance(
        profile.get("features"), Mapping
    ):
        version = profile.get("version") if isinstance(profile, Mapping) else None
        raise StatisticsError(
            f"not a version-{PROFILE_VERSION} reference profile (version={version!r}, keys="
            f"{sorted(profile) if isinstance(profile, Mapping) else type(profile).__name__}); "
            "rebuild it with retrainer.profiles.build_reference_profile"
        )
    features = {str(name): _reference(data, str(name)) for name, data in profile["features"].items()}
    pred = profile.get("prediction")
    prediction = None if pred is None else NumericReference.from_dict(pred)
    at = profile.get("registered_at")
    registered_at = None if at is None else datetime.fromisoformat(str(at))
    if registered_at is not None and registered_at.tzinfo is None:
        registered_at = registered_at.replace(tzinfo=timezone.utc)
    mv = profile.get("model_version")
    return ReferenceProfile(
        features=features,
        prediction=prediction,
        n_rows=int(profile.get("n_rows") or 0),
        model_version=None if mv is None else str(mv),
        registered_at=registered_at,
    )


def load_calibration(profile: Mapping[str, Any] | None) -> CalibrationMap | None:
    """The champion's calibration map from its stored profile; None when it has none.

    None when the profile, or its ``calibration``, is missing or was skipped (a regressor, a
    multiclass model, a holdout too small): the caller says why it cannot estimate. A malformed
    map raises StatisticsError.
    """
    data = None if profile is None else profile.get("calibration")
    if not isinstance(data, Mapping) or "skipped" in data:
        return None
    return CalibrationMap.from_dict(data)


__all__ = ["DEFAULT_SAMPLE_SIZE", "PROFILE_VERSION", "ReferenceProfile", "build_reference_profile", "load_calibration",
           "load_reference_profile",
           "profile_arrays"]
