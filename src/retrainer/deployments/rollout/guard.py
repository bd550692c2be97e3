"""The guard window: after a rollout promotes a challenger, watch it and roll back on evidence.

For ``rollout.guard.window`` after the promotion, the new champion is compared with the one it
replaced, on that one's *baseline*: its predictions in the ``guard.baseline`` before the
promotion, read as of the promotion (no look-ahead) and recorded on the rollout the first time
the guard looks, so every later look compares against the same figures. The checks:

* **realized_error** — error rate (1 - accuracy) on the labels that have arrived for each
  model's own predictions;
* **estimated_accuracy** — where labels are missing, CBPE accuracy on each model's calibrated
  scores (:func:`retrainer.stats.estimation.estimate_performance`, arrived labels blended);
* **serving_errors** / **latency_p99** — failure rate and p99 latency per version, when a
  :class:`ServingStatsSource` records them (the service's inference log keeps only answered
  predictions, so without one they say "not recorded" and are not judged).

Each rate check is a one-sided test whose null is "worse by at most the margin" (the margin is
the null offset of :func:`~retrainer.stats.proportions.two_proportion_ztest`), so a champion as
noisy as the one before is not rolled back and a breach must be significant, not a single bad
point. Two things would make a plain z-test roll back a healthy champion far more often than
alpha, and both are corrected:

* *flakiness*: a champion whose error rate swings from day to day (around the same mean) has
  more variance than the binomial; the realized-error test scales it by the quasi-binomial
  dispersion of the daily error rates (Pearson chi-square / df, at least 1), so it needs two
  completed days of the champion before it judges;
* *repeated looks*: the champion is judged on completed days only (every look within a day sees
  the same data), and ``guard.alpha`` is split (Bonferroni) over the checks and the window's
  days, the most distinct looks there can be.

The rollback is the compare-and-set
:func:`~retrainer.deployments.rollout.promotion.rollback` against the guarded version, then the rollout
moves ``champion -> rolled_back`` with the verdict as its ledger evidence. Time is the caller's
``now``; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from scipy import stats as _sps

from retrainer.config import GuardConfig, RetrainerConfig
from retrainer.deployments.rollout.promotion import rollback
from retrainer.errors import StatisticsError
from retrainer.profiles import load_calibration
from retrainer.stats.estimation import estimate_performance
from retrainer.stats.proportions import two_proportion_ztest

if TYPE_CHECKING:
    from retrainer.registry import Registry
    from retrainer.store import Store
    from retrainer.store.rollouts import Rollout

ACTOR = "rollout-guard"
AUDIT_ROLE = "guard"  # evidence["role"] of the guard's rows in the trigger-evaluation audit table
POSITIVE = 1.0  # the class CBPE's probabilities are of (binary classifiers: labels 0/1)


@dataclass(frozen=True)
class ServingFigures:
    """One version's serving outcomes over a window: requests, failed requests, p99 latency (ms)."""

    requests: int
    failures: int
    p99_ms: float | None = None


class ServingStatsSource(Protocol):
    """Where serving failures and latency per version are recorded (None: not recorded)."""

    def serving_stats(self, model_name: str, version: str, start: datetime, end: datetime) -> ServingFigures | None: ...


@dataclass(frozen=True)
class Figures:
    """What one model did over its window, as the guard compares it."""

    version: str
    start: str
    end: str
    as_of: str
    predictions: int = 0
    labelled: int = 0
    wrong: int = 0  # labelled predictions that were wrong
    daily: list[list[int]] = field(default_factory=list)  # [labelled, wrong] per day from start (days with labels)
    estimated_accuracy: float | None = None
    estimated_se: float | None = None
    realized_share: float | None = None
    estimate_note: str | None = None  # why there is no estimate
    serving: dict[str, Any] | None = None  # ServingFigures as a dict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class GuardCheck:
    name: str
    judged: bool  # enough data on both sides to test
    breached: bool
    champion: float | None  # the new champion's figure
    baseline: float | None  # the replaced champion's
    margin: float | None
    p_value: float | None
    alpha: float | None
    reason: str


@dataclass(frozen=True)
class GuardVerdict:
    """Roll back or not, and every check's figures and test."""

    rollback: bool
    checks: list[GuardCheck]
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def breached(self) -> list[str]:
        return [c.name for c in self.checks if c.breached]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GuardOutcome:
    """What one look did: watched (no breach), rolled back, or found the champion moved meanwhile."""

    action: Literal["watching", "rolled_back", "superseded"]
    rollout_id: int
    version: str
    restored: str | None  # the champion after a rollback
    verdict: GuardVerdict
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- measuring ------------------------------------------------------------------------------------


def measure(
    store: Store, model_name: str, version: str, start: datetime, end: datetime, *, as_of: datetime,
    serving: ServingStatsSource | None = None,
) -> Figures:
    """The figures of ``version``'s own predictions in [start, end) as known at ``as_of``."""
    lw = store.labelled_window(model_name, start, end, as_of=as_of, model_version=version)
    y_true, y_pred = np.asarray(lw.y_true, dtype=float), np.asarray(lw.y_pred, dtype=float)
    wrong = y_true != y_pred
    day = np.floor((np.asarray(lw.ts, dtype=float) - start.timestamp()) / 86400.0).astype(np.int64)
    daily = [[int(np.sum(day == d)), int(np.sum(wrong[day == d]))] for d in np.unique(day)]
    estimate = _estimate(store, model_name, version, start, end, as_of)
    served = None if serving is None else serving.serving_stats(model_name, version, start, end)
    return Figures(
        version=version, start=start.isoformat(), end=end.isoformat(), as_of=as_of.isoformat(),
        predictions=int(lw.n_predictions), labelled=len(lw), wrong=int(np.sum(wrong)), daily=daily,
        serving=None if served is None else asdict(served), **estimate,
    )


def _estimate(store: Store, model_name: str, version: str, start: datetime, end: datetime, as_of: datetime) -> dict[str, Any]:
    try:
        cal = load_calibration(store.reference_profile(model_name, version))
    except StatisticsError as exc:
        return {"estimate_note": f"calibration map unusable: {exc}"}
    if cal is None:
        return {"estimate_note": f"version {version} has no calibration map (binary classifiers with predict_proba only)"}
    w = store.scored_window(model_name, start, end, as_of=as_of, model_version=version)
    score, y_pred, y_true = (np.asarray(a, dtype=float) for a in (w.score, w.y_pred, w.y_true))
    ok = np.isfinite(score) & np.isfinite(y_pred)
    if not ok.any():
        return {"estimate_note": "no scored predictions"}
    y = y_true[ok]
    if np.any(~np.isin(y_pred[ok], (0.0, 1.0))) or np.any(~np.isin(y[np.isfinite(y)], (0.0, 1.0))):
        return {"estimate_note": "not a binary classifier (predictions or labels other than 0/1)"}
    try:
        est = estimate_performance(cal.apply(score[ok]), y_pred[ok] == POSITIVE, labels=y, score=score[ok])
    except StatisticsError as exc:
        return {"estimate_note": str(exc)}
    return {"estimated_accuracy": est.metrics["accuracy"], "estimated_se": est.se["accuracy"],
            "realized_share": est.realized_share}


# -- judging (pure: the figures in, the verdict out) ----------------------------------------------


def judge(guard: GuardConfig, champion: Figures, baseline: Figures, *, latency_slack_ms: float = 0.0,
          looks: int = 1) -> GuardVerdict:
    """Compare the new champion's figures with the replaced champion's baseline (see module doc).

    ``looks``: how many distinct looks the window allows (its days); alpha is split over them too.
    """
    judged = _judgeable(guard, champion, baseline)
    alpha = guard.alpha / max(len(judged), 1) / max(looks, 1)  # Bonferroni over checks and looks
    checks = [
        _realized(guard, champion, baseline, alpha) if "realized_error" in judged else _unjudged(
            "realized_error", f"matured labels: {champion.labelled} (champion, {len(champion.daily)} day(s)) and "
            f"{baseline.labelled} (baseline), {guard.min_labels} needed on each side and 2 days of the champion"),
        _estimated(guard, champion, baseline, alpha) if "estimated_accuracy" in judged else _unjudged(
            "estimated_accuracy", _why_no_estimate(guard, champion, baseline)),
        _serving(guard, champion, baseline, alpha) if "serving_errors" in judged else _unjudged(
            "serving_errors", _why_no_serving(guard, champion, baseline)),
        _latency(guard, champion, baseline, latency_slack_ms) if "latency_p99" in judged else _unjudged(
            "latency_p99", "p99 latency " + _why_no_serving(guard, champion, baseline)),
    ]
    bad = [c for c in checks if c.breached]
    facts = {"champion": champion.to_dict(), "baseline": baseline.to_dict(), "alpha_per_check": alpha, "looks": looks}
    if bad:
        return GuardVerdict(True, checks, "guard breached: " + "; ".join(f"{c.name}: {c.reason}" for c in bad), facts)
    if not judged:
        return GuardVerdict(False, checks, "nothing to judge yet: " + "; ".join(c.reason for c in checks), facts)
    return GuardVerdict(False, checks, "no breach: " + "; ".join(c.reason for c in checks if c.judged), facts)


def _judgeable(guard: GuardConfig, a: Figures, b: Figures) -> list[str]:
    out = []
    if min(a.labelled, b.labelled) >= guard.min_labels and len(a.daily) >= 2:  # 2 days: a dispersion to measure
        out.append("realized_error")
    if a.estimated_accuracy is not None and b.estimated_accuracy is not None and min(a.predictions, b.predictions) >= guard.min_predictions:
        out.append("estimated_accuracy")
    if a.serving and b.serving and min(a.serving["requests"], b.serving["requests"]) >= guard.min_predictions:
        out.append("serving_errors")
        if a.serving.get("p99_ms") is not None and b.serving.get("p99_ms") is not None:
            out.append("latency_p99")
    return out


def _unjudged(name: str, why: str) -> GuardCheck:
    return GuardCheck(name, False, False, None, None, None, None, None, f"not judged: {why}")


def _why_no_estimate(guard: GuardConfig, a: Figures, b: Figures) -> str:
    note = a.estimate_note or b.estimate_note
    if note:
        return f"no estimate ({note})"
    return f"predictions: {a.predictions} (champion) and {b.predictions} (baseline), {guard.min_predictions} needed"


def _why_no_serving(guard: GuardConfig, a: Figures, b: Figures) -> str:
    if not a.serving or not b.serving:
        return "not recorded by the service for both versions"
    return f"requests: {a.serving['requests']} and {b.serving['requests']}, {guard.min_predictions} needed"


def margin_test(base_k: int, base_n: int, new_k: int, new_n: int, margin: float,
                dispersion: float = 1.0) -> tuple[float, float] | None:
    """One-sided pooled z-test of H1: new rate - base rate > margin; None when nothing can be told apart.

    ``dispersion`` (>= 1) scales the binomial variance (quasi-binomial): z is divided by its root.
    """
    try:
        z, _ = two_proportion_ztest(base_k, base_n, new_k, new_n, "larger", null_diff=margin)
    except StatisticsError:  # no event at all (or only events) on both sides: no variance to test with
        return None
    z /= math.sqrt(max(dispersion, 1.0))
    return z, float(_sps.norm.sf(z))


def dispersion(*sides: list[list[int]]) -> float:
    """Quasi-binomial dispersion of daily counts ``[n, k]``: Pearson chi-square of each side's days
    around that side's rate, over its degrees of freedom (days - 1 per side); 1 when not estimable."""
    chi2, df = 0.0, 0
    for days in sides:
        n = np.array([d[0] for d in days if d[0] > 0], dtype=float)
        k = np.array([d[1] for d in days if d[0] > 0], dtype=float)
        if n.size < 2:
            continue
        p = k.sum() / n.sum()
        if not 0.0 < p < 1.0:
            continue
        chi2 += float(np.sum((k - n * p) ** 2 / (n * p * (1.0 - p))))
        df += n.size - 1
    return chi2 / df if df else 1.0


def _rate_check(name: str, what: str, base_k: int, base_n: int, new_k: int, new_n: int, margin: float,
                alpha: float, phi: float = 1.0) -> GuardCheck:
    new_rate, base_rate = new_k / new_n, base_k / base_n
    rates = f"{what} {new_k}/{new_n} = {new_rate:.2%} vs baseline {base_k}/{base_n} = {base_rate:.2%}"
    tested = margin_test(base_k, base_n, new_k, new_n, margin, phi)
    if tested is None:
        return GuardCheck(name, True, False, new_rate, base_rate, margin, None, alpha, f"{rates}: nothing to tell apart")
    _, p = tested
    if phi > 1.0:
        rates += f" (day-to-day dispersion {phi:.2f})"
    breached = p < alpha
    verdict = "significantly more than" if breached else "not significantly more than"
    return GuardCheck(name, True, breached, new_rate, base_rate, margin, p, alpha,
                      f"{rates}: {verdict} {margin:.2%} above it (one-sided p={p:.3g}, alpha {alpha:.3g})")


def _realized(guard: GuardConfig, a: Figures, b: Figures, alpha: float) -> GuardCheck:
    return _rate_check("realized_error", "error rate on matured labels", b.wrong, b.labelled, a.wrong, a.labelled,
                       guard.error_margin, alpha, max(dispersion(a.daily, b.daily), 1.0))


def _serving(guard: GuardConfig, a: Figures, b: Figures, alpha: float) -> GuardCheck:
    sa, sb = a.serving or {}, b.serving or {}
    return _rate_check("serving_errors", "serving failures", int(sb["failures"]), int(sb["requests"]),
                       int(sa["failures"]), int(sa["requests"]), guard.serving_error_margin, alpha)


def estimate_drop_test(base: float, base_se: float, new: float, new_se: float, margin: float) -> tuple[float, float]:
    """One-sided z-test of H1: base - new > margin for two independent estimates with standard errors.

    z = (base - new - margin) / sqrt(base_se^2 + new_se^2), p = P(Z > z) (the textbook test of a
    difference of independent normal estimates).
    """
    se = math.hypot(base_se, new_se)
    if not se > 0:
        raise StatisticsError("both estimates have a zero standard error: nothing to test")
    z = (base - new - margin) / se
    return z, float(_sps.norm.sf(z))


def _estimated(guard: GuardConfig, a: Figures, b: Figures, alpha: float) -> GuardCheck:
    new, base = float(a.estimated_accuracy), float(b.estimated_accuracy)  # type: ignore[arg-type]
    figures = (f"estimated accuracy {new:.3f} ({a.realized_share or 0:.0%} realized) vs baseline {base:.3f} "
               f"({b.realized_share or 0:.0%} realized)")
    try:
        _, p = estimate_drop_test(base, float(b.estimated_se or 0.0), new, float(a.estimated_se or 0.0),
                                  guard.estimated_margin)
    except StatisticsError:
        return GuardCheck("estimated_accuracy", True, False, new, base, guard.estimated_margin, None, alpha,
                          f"{figures}: no uncertainty to test with")
    breached = p < alpha
    verdict = "significantly more than" if breached else "not significantly more than"
    return GuardCheck("estimated_accuracy", True, breached, new, base, guard.estimated_margin, p, alpha,
                      f"{figures}: {verdict} {guard.estimated_margin:.3f} below it (one-sided p={p:.3g}, alpha {alpha:.3g})")


def _latency(guard: GuardConfig, a: Figures, b: Figures, slack_ms: float) -> GuardCheck:
    # p99 over >= min_predictions requests per side is an order statistic of many points, not one;
    # the ratio (+ slack) keeps the comparison side by side, never against an absolute figure.
    new, base = float((a.serving or {})["p99_ms"]), float((b.serving or {})["p99_ms"])
    bound = guard.latency_ratio * base + slack_ms
    breached = new > bound
    return GuardCheck("latency_p99", True, breached, new, base, guard.latency_ratio, None, None,
                      f"p99 latency {new:.2f} ms {'>' if breached else '<='} {guard.latency_ratio:g} x baseline "
                      f"{base:.2f} ms + {slack_ms:g} ms")


# -- the window, the baseline, the rollback ----------------------------------------------------------


def guarded_rollout(cfg: RetrainerConfig, store: Store, now: datetime) -> Rollout | None:
    """The rollout whose promotion the guard watches at ``now``: the newest rollout in ``champion``,
    still the store's champion, promoted less than ``guard.window`` ago. None otherwise."""
    guard = cfg.rollout.guard
    if not guard.enabled:
        return None
    promoted = store.rollouts(cfg.model.name, stages=["champion"])
    if not promoted:
        return None
    r = promoted[-1]
    at = r.started("champion")
    if at is None or r.champion_version is None or store.champion(cfg.model.name) != r.version:
        return None
    if not at <= now < at + guard.window:
        return None
    return r


def baseline_for(cfg: RetrainerConfig, store: Store, r: Rollout, *, serving: ServingStatsSource | None = None) -> Figures:
    """The replaced champion's figures recorded for rollout ``r``, or measured now as of its promotion
    (the same figures whenever measured: every read is clamped at the promotion)."""
    recorded = ((r.evidence or {}).get("guard") or {}).get("baseline")
    if recorded:
        return Figures.from_dict(recorded)
    at = r.started("champion")
    assert at is not None and r.champion_version is not None  # guarded_rollout checked both
    return measure(store, cfg.model.name, r.champion_version, at - cfg.rollout.guard.baseline, at, as_of=at,
                   serving=serving)


def evaluate(cfg: RetrainerConfig, store: Store, r: Rollout, now: datetime, *,
             serving: ServingStatsSource | None = None) -> tuple[GuardVerdict, Figures]:
    """The verdict on rollout ``r``'s champion at ``now`` (its predictions since the promotion)."""
    at = r.started("champion")
    assert at is not None
    guard = cfg.rollout.guard
    baseline = baseline_for(cfg, store, r, serving=serving)
    # Completed days only: every look within a day sees the same data, so the window's days bound the looks.
    days = int((now - at).total_seconds() // 86400)
    champion = measure(store, cfg.model.name, r.version, at, at + timedelta(days=days), as_of=now, serving=serving)
    looks = max(math.ceil(guard.window.total_seconds() / 86400), 1)
    verdict = judge(guard, champion, baseline, latency_slack_ms=cfg.rollout.latency_slack_ms, looks=looks)
    return verdict, baseline


def audit_rows(r: Rollout, verdict: GuardVerdict, now: datetime) -> list[dict[str, Any]]:
    """The look as rows of the trigger-evaluation audit (like a check's): one per guard check and
    a ``guard`` row whose ``fired`` is the rollback; ``evidence.role`` keeps them apart from policy rows."""
    check_id = f"guard-{r.id}-{now.isoformat()}"
    common = {"role": AUDIT_ROLE, "rollout_id": r.id, "version": r.version, "replaced": r.champion_version}
    rows = [{"check_id": check_id, "trigger": f"guard:{c.name}", "fired": c.breached,
             "status": ("fired" if c.breached else "ok") if c.judged else "insufficient_data",
             "value": c.p_value if c.p_value is not None else c.champion, "threshold": c.alpha if c.p_value is not None else None,
             "reason": c.reason, "evidence": {**common, **asdict(c)}} for c in verdict.checks]
    rows.append({"check_id": check_id, "trigger": "guard", "fired": verdict.rollback,
                 "status": "fired" if verdict.rollback else "ok", "reason": verdict.reason,
                 "evidence": {**common, "breached": verdict.breached, "looks": verdict.facts.get("looks")}})
    return rows


def guard_rollout(
    cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *, actor: str = ACTOR,
    serving: ServingStatsSource | None = None,
) -> GuardOutcome | None:
    """One look at the guarded champion (None: nothing is guarded at ``now``); rolls back on a breach."""
    r = guarded_rollout(cfg, store, now)
    if r is None:
        return None
    verdict, baseline = evaluate(cfg, store, r, now, serving=serving)
    store.record_evaluations(cfg.model.name, now, audit_rows(r, verdict, now))
    promoted = r.started("champion")
    until = (promoted + cfg.rollout.guard.window).isoformat() if promoted else None
    evidence = {"guard": {"baseline": baseline.to_dict(), "until": until, "verdict": verdict.to_dict()}}
    if not verdict.rollback:
        store.note_rollout(r.id, at=now, decision="guarding", explanation=f"guard until {until}: {verdict.reason}",
                           evidence=evidence)
        return GuardOutcome("watching", r.id, r.version, None, verdict, verdict.reason)
    why = f"rollout {r.id}: version {r.version} rolled back: {verdict.reason}"
    # Compare-and-set against the version judged: if anyone moved the champion since, nothing rolls back.
    result = rollback(registry, store, actor=actor, reason=why, run_id=r.run_id, at=now, expected_champion=r.version)
    if result.status != "rolled_back":
        return GuardOutcome("superseded", r.id, r.version, result.champion, verdict,
                            f"{verdict.reason}; but the champion moved to {result.champion} meanwhile (compare-and-set lost)")
    store.transition_rollout(r.id, expected="champion", new="rolled_back", at=now, action="rollout_rollback",
                             actor=actor, reason=why, decision="rolled_back", evidence=evidence)
    return GuardOutcome("rolled_back", r.id, r.version, result.champion, verdict,
                        f"version {r.version} rolled back to {result.champion}: {verdict.reason}")


__all__ = [
    "ACTOR", "AUDIT_ROLE", "Figures", "GuardCheck", "GuardOutcome", "GuardVerdict", "ServingFigures", "ServingStatsSource",
    "audit_rows", "baseline_for", "dispersion", "estimate_drop_test", "evaluate", "guard_rollout", "guarded_rollout", "judge", "margin_test",
    "measure",
]
