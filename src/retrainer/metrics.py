"""The one home of classification metrics and of the promotion gate (Prefect-free).

Every "is the challenger good enough" decision — the offline gate after training
(``tasks/evaluate.py`` + ``tasks/gate.py``), the performance trigger and the A/B verdict
(``deployments/rollout/analysis.py``) — scores with :func:`label_metrics` / :func:`roc_auc` and
decides with :func:`gate`, so the rules cannot drift apart.

Rules:

* **Positive class**: the *last* of the classes — the estimator's ``classes_[-1]`` (sklearn keeps
  them sorted), else the sorted union of observed labels' last (1 for {0, 1}, "yes" for
  {"no", "yes"}). More than two classes use macro averages and one-vs-rest ROC AUC.
* **Undefined ratios** (no predicted positives...) count as 0 (``zero_division=0``); ROC AUC on a
  single-class sample is NaN. A NaN metric is **rejected** by :func:`gate`, wherever it is used.

>>> from retrainer.config import GateConfig
>>> gate({"f1": 0.76}, {"f1": 0.80}, GateConfig()).accepted   # 0.76 == 0.95 x 0.80
True
>>> gate({"f1": 0.7599}, {"f1": 0.80}, GateConfig()).accepted
False
>>> gate({"f1": float("nan")}, {"f1": 0.80}, GateConfig()).accepted
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from retrainer.config import GateConfig

METRIC_NAMES = ("accuracy", "f1", "precision", "recall", "roc_auc")

# Products like 0.95 x 0.8 land a hair off the decimal value (0.7599999999999999): compare with
# a tolerance far below any meaningful metric difference so "exactly 0.95x" really accepts.
_REL_TOL = 1e-9


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank: ``scipy.stats.rankdata(values)`` (its own
    formula, so the same floats), without importing scipy.stats (~0.4 s of every check; issue 20)."""
    x = np.asarray(values).ravel()
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts)  # 1-based tie group of each sorted position
    bounds = np.r_[np.flatnonzero(starts), x.size]  # group g spans sorted positions bounds[g-1] .. bounds[g]-1
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = 0.5 * (bounds[group] + bounds[group - 1] + 1)
    return ranks


def resolve_classes(y_true: np.ndarray, y_pred: np.ndarray, classes: Any = None) -> np.ndarray:
    """The model's classes if known, else the sorted labels seen in ``y_true`` and ``y_pred``."""
    if classes is not None:
        return np.asarray(classes)
    return np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))


def _label_scorer(metric: str):
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"accuracy": accuracy_score, "f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]


def label_metric(y_true: Any, y_pred: Any, classes: Any, metric: str) -> float:
    """One of accuracy, f1, precision, recall of hard predictions (the rules of :func:`label_metrics`)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return math.nan
    if metric == "accuracy":
        return float(_label_scorer(metric)(y_true, y_pred))
    cls = resolve_classes(y_true, y_pred, classes)
    if len(cls) <= 2:
        avg: dict[str, Any] = {"average": "binary", "pos_label": cls[-1] if len(cls) else 1}
    else:
        avg = {"average": "macro", "labels": cls}
    return float(_label_scorer(metric)(y_true, y_pred, zero_division=0, **avg))


def label_metrics(y_true: Any, y_pred: Any, classes: Any = None) -> dict[str, float]:
    """accuracy, f1, precision, recall of hard predictions (positive class = ``classes[-1]``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cls = resolve_classes(y_true, y_pred, classes) if y_true.size else classes
    return {m: label_metric(y_true, y_pred, cls, m) for m in ("accuracy", "f1", "precision", "recall")}


def roc_auc(y_true: Any, scores: Any, classes: Any) -> tuple[float, str | None]:
    """ROC AUC and, when it is NaN, why. Binary ``scores`` are of the positive class ``classes[-1]``;
    multiclass ``scores`` are one column per class (one-vs-rest)."""
    from sklearn.metrics import roc_auc_score

    y_true, cls = np.asarray(y_true), np.asarray(classes)
    if scores is None:
        return math.nan, "roc_auc is undefined: the model has neither predict_proba nor decision_function"
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:  # drop rows without a score (e.g. a model that logged none)
        ok = ~np.isnan(scores)
        y_true, scores = y_true[ok], scores[ok]
    present = np.unique(y_true)
    if len(present) < 2:
        return math.nan, f"roc_auc is undefined: the sample holds a single class ({present.tolist()})"
    if len(cls) <= 2:
        return float(roc_auc_score(y_true == cls[-1], scores)), None
    if set(present.tolist()) != set(cls.tolist()):
        return math.nan, "roc_auc is undefined: the sample lacks some of the model's classes"
    return float(roc_auc_score(y_true, scores, multi_class="ovr", labels=cls)), None


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, positive_label: float = 1.0
) -> dict[str, float | None]:
    """The five metrics of labelled predictions, as sklearn defines them (binary, positive class
    ``positive_label``); ``None`` where undefined (no rows; roc_auc with one class present or no
    finite score). numpy-only, for the performance trigger's hot path."""
    t = y_true == positive_label
    p = y_pred == positive_label
    tp, fp, fn = float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(t & ~p))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    out: dict[str, float | None] = {
        "accuracy": float(np.mean(y_true == y_pred)) if y_true.size else None,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": None,
    }
    scored = np.isfinite(score)
    pos, neg = int(np.sum(t & scored)), int(np.sum(~t & scored))
    if pos and neg:
        # Mann-Whitney U with mid-ranks for ties: equals sklearn's trapezoidal ROC AUC.
        ranks = midranks(score[scored])
        out["roc_auc"] = float((ranks[t[scored]].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return out


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    metric: str
    candidate_value: float
    champion_value: float | None
    required: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(metrics: Mapping[str, Any], metric: str, who: str) -> float:
    if metric not in metrics:
        raise KeyError(f"{who} metrics lack {metric!r} (have: {', '.join(sorted(metrics))})")
    value = metrics[metric]
    return math.nan if value is None else float(value)


def gate(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, cfg: GateConfig) -> GateResult:
    """Accept when ``candidate[m] >= cfg.min_ratio * champion[m]`` (inclusive); no champion accepts.

    A NaN (or None) metric on either side is rejected: an undefined score proves nothing.
    """
    m = cfg.metric
    cand = _value(candidate, m, "candidate")
    if math.isnan(cand):
        return GateResult(False, m, cand, None, None, f"candidate {m} is NaN (undefined on this sample): rejected")
    if champion is None:
        return GateResult(True, m, cand, None, None, f"no champion yet: candidate {m} {cand:.4f} accepted")
    champ = _value(champion, m, "champion")
    if math.isnan(champ):
        return GateResult(
            False, m, cand, champ, None,
            f"champion {m} is NaN on this sample, so the candidate cannot be compared: rejected",
        )
    required = cfg.min_ratio * champ
    accepted = cand >= required or math.isclose(cand, required, rel_tol=_REL_TOL, abs_tol=1e-12)
    verdict = "accepted" if accepted else "rejected"
    reason = (
        f"candidate {m} {cand:.4f} {'>=' if accepted else '<'} {cfg.min_ratio:g} x champion {champ:.4f} "
        f"= {required:.4f}: {verdict}"
    )
    return GateResult(accepted, m, cand, champ, required, reason)


def metric_differences(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None) -> dict[str, float]:
    """candidate − champion for every metric both hold as a finite number: the paired offline
    difference (Δ_off) when both were measured on the same holdout rows, as the gate measures them."""
    champion = champion or {}
    out = {}
    for name, value in candidate.items():
        other = champion.get(name)
        if isinstance(value, (int, float)) and isinstance(other, (int, float)) \
                and math.isfinite(float(value)) and math.isfinite(float(other)):
            out[name] = float(value) - float(other)
    return out


__all__ = ["METRIC_NAMES", "GateResult", "classification_metrics", "gate", "label_metric", "label_metrics",
           "metric_differences", "resolve_classes", "roc_auc"]
