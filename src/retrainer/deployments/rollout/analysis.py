"""A/B test analysis: is the challenger better than the champion on live, labelled traffic?

The tested quantity is **accuracy** (share of labelled predictions that were right): each
labelled prediction is a Bernoulli trial, so the two-proportion z-test, its Wald CI and the
mSPRT apply exactly. The gate metric (f1 by default) is reported per arm and must not fall
below ``gate.min_ratio`` x the champion's for a ``promote_challenger`` verdict.

Guards, in order:

1. **Sample-ratio mismatch** — the units assigned to each arm are checked against the planned
   split (chi-square, :func:`retrainer.stats.proportions.srm_test`). At p < ``srm_alpha``
   assignment or logging is broken and no verdict is given until it is fixed.
2. **Peeking** — with ``sequential: true`` the p-value is the always-valid mSPRT p-value over
   daily looks, so the test may be read every day; otherwise the fixed-horizon z-test is only
   read once each arm reached the planned sample size.

The verdict logic is a pure function (:func:`decide`) so a simulation can check its
false-positive rate; :func:`analyze` gathers the counts from the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from retrainer.config import ABConfig, GateConfig
from retrainer.deployments.rollout.ab import CHALLENGER_ARM, CHAMPION_ARM
from retrainer.errors import StatisticsError
from retrainer.metrics import gate as gate_rule
from retrainer.metrics import label_metrics, resolve_classes, roc_auc
from retrainer.stats.proportions import (
    diff_confidence_interval,
    msprt_pvalue,
    required_sample_size,
    srm_test,
    two_proportion_ztest,
)

if TYPE_CHECKING:
    from retrainer.store import Store
    from retrainer.store.records import ABTest

Verdict = Literal["promote_challenger", "keep_champion", "keep_collecting"]
DAY = 86_400.0


@dataclass(frozen=True)
class ArmResult:
    arm: str
    version: str
    units: int  # distinct units assigned (SRM check)
    n: int  # labelled predictions
    correct: int
    accuracy: float | None
    f1: float | None
    gate_metric: float | None


@dataclass(frozen=True)
class ABVerdict:
    verdict: Verdict
    reason: str
    p_value: float | None
    p_value_kind: Literal["msprt", "z_test"]
    z: float | None
    diff: float | None  # accuracy challenger - champion
    ci: tuple[float, float] | None
    required_per_arm: int | None
    srm_p_value: float | None
    srm_mismatch: bool


@dataclass(frozen=True)
class ABAnalysis:
    ab_test_id: int
    model_name: str
    started_at: datetime
    as_of: datetime
    split: float
    alpha: float
    sequential: bool
    tested_metric: str
    gate_metric_name: str
    arms: dict[str, ArmResult]
    decision: ABVerdict
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict
        return out


def decide(
    correct_a: int,
    n_a: int,
    correct_b: int,
    n_b: int,
    *,
    units: tuple[int, int] | None,
    split: float,
    cfg: ABConfig,
    looks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    gate_ok: bool = True,
) -> ABVerdict:
    """The verdict from counts. Arm A is the champion, B the challenger.

    ``units``: units assigned per arm (for the SRM check; None skips it). ``looks``: cumulative
    (correct_a, n_a, correct_b, n_b) at each daily look, for the mSPRT (default: one look).
    ``gate_ok``: whether the challenger's gate metric clears ``min_ratio`` x the champion's.
    """
    kind: Literal["msprt", "z_test"] = "msprt" if cfg.sequential else "z_test"
    srm_p: float | None = None
    if units is not None and sum(units) > 0:
        srm_p = srm_test(list(units), [1.0 - split, split])
    srm_bad = srm_p is not None and srm_p < cfg.srm_alpha

    def out(verdict: Verdict, reason: str, **kw: Any) -> ABVerdict:
        base: dict[str, Any] = {"p_value": None, "z": None, "diff": None, "ci": None, "required_per_arm": None}
        base.update(kw)
        return ABVerdict(verdict, reason, p_value_kind=kind, srm_p_value=srm_p, srm_mismatch=srm_bad, **base)

    if srm_bad:
        return out(
            "keep_collecting",
            f"sample-ratio mismatch: units per arm {units} do not fit the {split:.0%} split "
            f"(p={srm_p:.2g} < {cfg.srm_alpha}); assignment or logging is broken, no verdict until it is fixed",
        )
    if n_a == 0 or n_b == 0:
        return out("keep_collecting", "no labelled predictions yet in " + ("either arm" if n_a == n_b else
                   ("the champion arm" if n_a == 0 else "the challenger arm")))

    pa, pb = correct_a / n_a, correct_b / n_b
    diff = pb - pa
    ci = diff_confidence_interval(correct_a, n_a, correct_b, n_b, 0.95)
    required = _required(pa, cfg)
    try:
        z, p_fixed = two_proportion_ztest(correct_a, n_a, correct_b, n_b)
    except StatisticsError:
        z, p_fixed = None, None
    if cfg.sequential:
        la, na, lb, nb = looks if looks is not None else (
            np.array([correct_a]), np.array([n_a]), np.array([correct_b]), np.array([n_b]))
        p = msprt_pvalue(la, na, lb, nb, tau2=cfg.min_detectable_effect**2)
    else:
        p = p_fixed
    kw = {"p_value": p, "z": z, "diff": diff, "ci": ci, "required_per_arm": required}
    enough = required is not None and min(n_a, n_b) >= required
    if p is None:
        return out("keep_collecting", "every labelled prediction so far has the same outcome; nothing to test yet", **kw)
    if not cfg.sequential and not enough:
        return out(
            "keep_collecting",
            f"fixed-horizon test: wait for {required} labelled predictions per arm (have {min(n_a, n_b)}); "
            "reading it earlier inflates false positives",
            **kw,
        )
    if p < cfg.alpha:
        if diff > 0 and gate_ok:
            return out("promote_challenger", f"challenger accuracy is higher by {diff:+.4f} (p={p:.3g} < {cfg.alpha})", **kw)
        if diff > 0:
            return out("keep_champion", f"challenger accuracy is higher (p={p:.3g}) but its gate metric is below "
                       "min_ratio x the champion's", **kw)
        return out("keep_champion", f"challenger accuracy is lower by {diff:+.4f} (p={p:.3g} < {cfg.alpha})", **kw)
    if enough:
        return out("keep_champion", f"no significant difference at the planned {required} per arm (p={p:.3g}); "
                   "the champion stays", **kw)
    need = "" if required is None else f" (planned: {required} per arm, have {min(n_a, n_b)})"
    return out("keep_collecting", f"not significant yet (p={p:.3g}){need}", **kw)


def _required(p_baseline: float, cfg: ABConfig) -> int | None:
    mde = cfg.min_detectable_effect
    # Near 1 (or 0) the lift cannot go up by mde: size it for a drop of the same magnitude.
    if p_baseline + mde >= 1.0:
        mde = -mde
    try:
        return required_sample_size(p_baseline, mde, cfg.alpha, cfg.power)
    except StatisticsError:
        return None


def daily_looks(
    ts_a: np.ndarray, ok_a: np.ndarray, ts_b: np.ndarray, ok_b: np.ndarray, start: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (correct_a, n_a, correct_b, n_b) at the end of each day since ``start``,
    keeping only looks where both arms have data."""
    day_a = np.floor((ts_a - start) / DAY).astype(np.int64)
    day_b = np.floor((ts_b - start) / DAY).astype(np.int64)
    last = int(max(day_a.max(initial=0), day_b.max(initial=0)))
    days = last + 1

    def cum(day: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        day = np.clip(day, 0, last)
        return (np.cumsum(np.bincount(day, weights=ok.astype(np.float64), minlength=days)),
                np.cumsum(np.bincount(day, minlength=days)).astype(np.float64))

    sa, na = cum(day_a, ok_a)
    sb, nb = cum(day_b, ok_b)
    keep = (na > 0) & (nb > 0)
    return sa[keep], na[keep], sb[keep], nb[keep]


def _metrics(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, gate_metric: str) -> tuple[float | None, float | None]:
    """(f1, gate metric) for one arm by :mod:`retrainer.metrics`' rules; None when undefined."""
    if y_true.size == 0:
        return None, None
    classes = resolve_classes(y_true, y_pred)
    values = label_metrics(y_true, y_pred, classes)
    if gate_metric == "roc_auc":
        values["roc_auc"] = roc_auc(y_true, score, classes)[0] if len(classes) <= 2 else math.nan
    g = values[gate_metric]
    return values["f1"], None if math.isnan(g) else g


def analyze(
    store: Store, test: ABTest, *, gate: GateConfig, cfg: ABConfig | None = None, as_of: datetime | None = None
) -> ABAnalysis:
    """Analyse A/B test ``test`` (a :class:`retrainer.store.records.ABTest`) from the store.

    ``cfg`` defaults to the ABConfig the test was started with (``test.config``), so a
    later config edit does not change the rules of a running test.
    """
    as_of = as_of or datetime.now(UTC)
    if cfg is None:
        cfg = ABConfig.model_validate({k: v for k, v in (test.config or {}).items() if k in ABConfig.model_fields})
    end = test.stopped_at or as_of
    units = store.assignment_counts(test.id)
    arms: dict[str, ArmResult] = {}
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for arm, version in ((CHAMPION_ARM, test.champion_version), (CHALLENGER_ARM, test.challenger_version)):
        w = store.labelled_window(test.model_name, test.started_at, end, as_of=as_of, model_version=version)
        ok = np.asarray(w.y_true == w.y_pred)
        f1, g = _metrics(np.asarray(w.y_true), np.asarray(w.y_pred), np.asarray(w.score), gate.metric)
        n = len(w)
        arms[arm] = ArmResult(
            arm=arm, version=version, units=int(units.get(arm, 0)), n=n, correct=int(ok.sum()),
            accuracy=float(ok.mean()) if n else None, f1=f1, gate_metric=g,
        )
        raw[arm] = (np.asarray(w.ts, dtype=np.float64), ok)
    a, b = arms[CHAMPION_ARM], arms[CHALLENGER_ARM]
    # The offline gate's rule: an undefined (None/NaN) gate metric on either arm blocks promotion.
    gate_ok = gate_rule({gate.metric: b.gate_metric}, {gate.metric: a.gate_metric}, gate).accepted
    looks = None
    if a.n and b.n:
        looks = daily_looks(raw[CHAMPION_ARM][0], raw[CHAMPION_ARM][1], raw[CHALLENGER_ARM][0], raw[CHALLENGER_ARM][1],
                            test.started_at.timestamp())
    unit_counts = (a.units, b.units) if a.units + b.units else None
    decision = decide(a.correct, a.n, b.correct, b.n, units=unit_counts, split=test.split, cfg=cfg, looks=looks, gate_ok=gate_ok)
    notes = []
    if unit_counts is None:
        notes.append("no unit assignments recorded yet: the sample-ratio check has nothing to check")
    return ABAnalysis(
        ab_test_id=test.id, model_name=test.model_name, started_at=test.started_at, as_of=as_of, split=test.split,
        alpha=cfg.alpha, sequential=cfg.sequential, tested_metric="accuracy", gate_metric_name=gate.metric,
        arms=arms, decision=decision, notes=notes,
    )


__all__ = ["ABAnalysis", "ABVerdict", "ArmResult", "Verdict", "analyze", "daily_looks", "decide"]
