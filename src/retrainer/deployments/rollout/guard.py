"""The guard window: after a rollout promotes a challenger, watch it and roll back on evidence.

For ``rollout.guard.window`` after the promotion the replaced champion keeps answering a copy of
the traffic in shadow (:func:`ensure_guard_shadow`; the shadow stops when the window ends or on a
rollback), so the new champion is judged against it **on the same requests**:

* **paired_difference** — on every shadowed request whose label has matured, the difference of
  correctness ``1[new right] - 1[old right]``, in the order the labels arrived;
  :func:`retrainer.stats.sequential.guard_sequence` tests it with an anytime-valid bound, so *every look is allowed* (no completed-day rule, no
  split of alpha over looks) and the false-rollback rate of a champion exactly ``guard.error_margin``
  worse stays at most ``guard.alpha``. A paired test needs no dispersion correction: a day that
  is hard for one model is hard for the other, and the difference cancels it;
* **serving_errors** / **latency_p99** — failure rate and p99 latency per version, when a
  :class:`ServingStatsSource` records them (the service's inference log keeps only answered
  predictions, so without one they say "not recorded" and are not judged), against the replaced
  champion's figures in the ``guard.baseline`` before the promotion, recorded on the first look;
  latency as a ratio, never an absolute figure.

The rollback is the compare-and-set :func:`~retrainer.deployments.rollout.promotion.rollback` against
the guarded version, then the rollout moves ``champion -> rolled_back`` with the verdict as its
ledger evidence. Time is the caller's ``now``; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from scipy import stats as _sps

from retrainer.config import GuardConfig, RetrainerConfig
from retrainer.deployments.rollout.promotion import rollback
from retrainer.deployments.rollout.stages import guard_shadow_rollout, start_guard_shadow, stop_shadow
from retrainer.errors import StatisticsError
from retrainer.stats.proportions import two_proportion_ztest
from retrainer.stats.sequential import guard_sequence

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
    """One version's serving figures over a window, as the guard compares them."""

    version: str
    start: str
    end: str
    serving: dict[str, Any] | None = None  # ServingFigures as a dict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Pairs:
    """The guard's paired evidence: ``1[new right] - 1[old right]`` on the shadowed requests whose
    label has matured, in request order, and how many requests were shadowed in all."""

    diffs: np.ndarray
    shadowed: int

    @property
    def labelled(self) -> int:
        return int(self.diffs.size)


@dataclass(frozen=True)
class GuardCheck:
    name: str
    judged: bool  # enough data to test
    breached: bool
    champion: float | None  # the new champion's figure (paired: the mean difference new - old)
    baseline: float | None  # the replaced champion's
    margin: float | None
    p_value: float | None  # a z-test's p-value; None for the anytime-valid bound and the latency ratio
    alpha: float | None
    reason: str
    bound: float | None = None  # paired: the anytime-valid upper bound of the mean difference


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


def paired(store: Store, r: Rollout, now: datetime) -> Pairs:
    """The paired differences of rollout ``r``'s new champion against the champion it replaced,
    answering in shadow since the promotion, on the labels known at ``now``."""
    at = r.started("champion")
    assert at is not None and r.champion_version is not None  # guarded_rollout checked both
    w = store.shadow_window(r.model_name, shadow_version=r.champion_version, since=at, until=now, as_of=now,
                            champion_version=r.version)
    ok = ~w.failed & np.isfinite(w.shadow_prediction)
    known = ok & np.isfinite(w.label)
    # In the order the labels arrived (then the requests'): each look extends the same sequence,
    # as the anytime-valid test assumes.
    order = np.lexsort((w.ts[known], w.label_ts[known]))
    label = w.label[known][order]
    diffs = (w.champion_prediction[known][order] == label).astype(np.float64) - (w.shadow_prediction[known][order] == label)
    return Pairs(diffs, int(ok.sum()))


def serving_figures(serving: ServingStatsSource | None, model_name: str, version: str, start: datetime,
                    end: datetime) -> Figures:
    served = None if serving is None else serving.serving_stats(model_name, version, start, end)
    return Figures(version, start.isoformat(), end.isoformat(), None if served is None else asdict(served))


# -- judging (pure: the figures in, the verdict out) ----------------------------------------------


def judge(guard: GuardConfig, pairs: Pairs, champion: Figures, baseline: Figures, *, latency_slack_ms: float = 0.0,
          looks: int = 1) -> GuardVerdict:
    """The verdict on the new champion (see the module doc). ``looks``: how many distinct looks the
    window allows (its days): the serving z-test's alpha is split over them; the paired bound needs no split."""
    serving_judged = _serving_judgeable(guard, champion, baseline)
    alpha = guard.alpha / (2 if serving_judged else 1) / max(looks, 1)  # Bonferroni for the z-test only
    checks = [
        _paired(guard, pairs),
        _serving(guard, champion, baseline, alpha) if serving_judged else _unjudged(
            "serving_errors", _why_no_serving(guard, champion, baseline)),
        _latency(guard, champion, baseline, latency_slack_ms) if serving_judged and _has_latency(champion, baseline)
        else _unjudged("latency_p99", "p99 latency " + _why_no_serving(guard, champion, baseline)),
    ]
    bad = [c for c in checks if c.breached]
    facts = {"champion": champion.to_dict(), "baseline": baseline.to_dict(), "labelled_pairs": pairs.labelled,
             "shadowed": pairs.shadowed, "alpha_serving": alpha, "looks": looks}
    if bad:
        return GuardVerdict(True, checks, "guard breached: " + "; ".join(f"{c.name}: {c.reason}" for c in bad), facts)
    if not any(c.judged for c in checks):
        return GuardVerdict(False, checks, "nothing to judge yet: " + "; ".join(c.reason for c in checks), facts)
    return GuardVerdict(False, checks, "no breach: " + "; ".join(c.reason for c in checks if c.judged), facts)


def _paired(guard: GuardConfig, pairs: Pairs) -> GuardCheck:
    if pairs.labelled == 0:
        return _unjudged("paired_difference", f"no matured label yet on the {pairs.shadowed} requests both answered")
    seq = guard_sequence(pairs.diffs, guard.error_margin, guard.alpha)
    mean = float(pairs.diffs.mean())
    bound = None if seq.bound is None else float(seq.bound)
    figures = (f"accuracy new - replaced {mean:+.4f} on {pairs.labelled} labelled pairs"
               + ("" if bound is None else f", anytime-valid upper bound {bound:+.4f}"))
    verdict = ("worse by more than" if seq.reject else "not shown worse by more than")
    return GuardCheck("paired_difference", True, bool(seq.reject), mean, None, guard.error_margin, None, guard.alpha,
                      f"{figures}: {verdict} the margin {guard.error_margin:.3f} (alpha {guard.alpha}, any look)", bound)


def _serving_judgeable(guard: GuardConfig, a: Figures, b: Figures) -> bool:
    return bool(a.serving and b.serving and min(a.serving["requests"], b.serving["requests"]) >= guard.min_predictions)


def _has_latency(a: Figures, b: Figures) -> bool:
    return (a.serving or {}).get("p99_ms") is not None and (b.serving or {}).get("p99_ms") is not None


def _unjudged(name: str, why: str) -> GuardCheck:
    return GuardCheck(name, False, False, None, None, None, None, None, f"not judged: {why}")


def _why_no_serving(guard: GuardConfig, a: Figures, b: Figures) -> str:
    if not a.serving or not b.serving:
        return "not recorded by the service for both versions"
    return f"requests: {a.serving['requests']} and {b.serving['requests']}, {guard.min_predictions} needed"


def margin_test(base_k: int, base_n: int, new_k: int, new_n: int, margin: float) -> tuple[float, float] | None:
    """One-sided pooled z-test of H1: new rate - base rate > margin; None when nothing can be told apart."""
    try:
        z, _ = two_proportion_ztest(base_k, base_n, new_k, new_n, "larger", null_diff=margin)
    except StatisticsError:  # no event at all (or only events) on both sides: no variance to test with
        return None
    return z, float(_sps.norm.sf(z))


def _serving(guard: GuardConfig, a: Figures, b: Figures, alpha: float) -> GuardCheck:
    sa, sb = a.serving or {}, b.serving or {}
    new_k, new_n, base_k, base_n = int(sa["failures"]), int(sa["requests"]), int(sb["failures"]), int(sb["requests"])
    new_rate, base_rate = new_k / new_n, base_k / base_n
    rates = f"serving failures {new_k}/{new_n} = {new_rate:.2%} vs baseline {base_k}/{base_n} = {base_rate:.2%}"
    margin = guard.serving_error_margin
    tested = margin_test(base_k, base_n, new_k, new_n, margin)
    if tested is None:
        return GuardCheck("serving_errors", True, False, new_rate, base_rate, margin, None, alpha, f"{rates}: nothing to tell apart")
    _, p = tested
    breached = p < alpha
    verdict = "significantly more than" if breached else "not significantly more than"
    return GuardCheck("serving_errors", True, breached, new_rate, base_rate, margin, p, alpha,
                      f"{rates}: {verdict} {margin:.2%} above it (one-sided p={p:.3g}, alpha {alpha:.3g})")


def _latency(guard: GuardConfig, a: Figures, b: Figures, slack_ms: float) -> GuardCheck:
    # p99 over >= min_predictions requests per side is an order statistic of many points, not one;
    # the ratio (+ slack) keeps the comparison side by side, never against an absolute figure.
    new, base = float((a.serving or {})["p99_ms"]), float((b.serving or {})["p99_ms"])
    bound = guard.latency_ratio * base + slack_ms
    breached = new > bound
    return GuardCheck("latency_p99", True, breached, new, base, guard.latency_ratio, None, None,
                      f"p99 latency {new:.2f} ms {'>' if breached else '<='} {guard.latency_ratio:g} x baseline "
                      f"{base:.2f} ms + {slack_ms:g} ms")


# -- the window, its shadow, the baseline, the rollback -----------------------------------------------


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


def ensure_guard_shadow(cfg: RetrainerConfig, store: Store, r: Rollout, *, now: datetime, actor: str = ACTOR) -> bool:
    """Start the replaced champion's shadow for rollout ``r``'s guard window, once (idempotent: a
    ``shadow_start`` row of this guard already in the ledger means started, even if stopped by
    hand since). True when it started one now."""
    if not cfg.rollout.guard.enabled or r.champion_version is None or r.champion_version == r.version:
        return False
    for e in store.ledger(cfg.model.name):
        if e.action == "shadow_start" and (e.details or {}).get("guard_rollout_id") == r.id:
            return False
    start_guard_shadow(cfg, store, replaced=r.champion_version, champion=r.version, rollout_id=r.id, actor=actor,
                       at=now)
    return True


def release_guard_shadow(cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *,
                         actor: str = ACTOR) -> bool:
    """Stop the guard's shadow once its rollout is no longer guarded (window over, rolled back, or
    the champion moved). True when it stopped one now."""
    rid = guard_shadow_rollout(cfg, store)
    if rid is None:
        return False
    guarded = guarded_rollout(cfg, store, now)
    if guarded is not None and guarded.id == rid:
        return False
    stop_shadow(cfg, store, registry, actor=actor, at=now,
                reason=f"guard of rollout {rid} over: the replaced champion stops shadowing")
    return True


def baseline_for(cfg: RetrainerConfig, store: Store, r: Rollout, *, serving: ServingStatsSource | None = None) -> Figures:
    """The replaced champion's serving figures recorded for rollout ``r``, or measured over the
    ``guard.baseline`` before its promotion."""
    recorded = ((r.evidence or {}).get("guard") or {}).get("baseline")
    if recorded:
        return Figures.from_dict(recorded)
    at = r.started("champion")
    assert at is not None and r.champion_version is not None  # guarded_rollout checked both
    return serving_figures(serving, cfg.model.name, r.champion_version, at - cfg.rollout.guard.baseline, at)


def evaluate(cfg: RetrainerConfig, store: Store, r: Rollout, now: datetime, *,
             serving: ServingStatsSource | None = None) -> tuple[GuardVerdict, Figures]:
    """The verdict on rollout ``r``'s champion at ``now`` (its requests since the promotion)."""
    at = r.started("champion")
    assert at is not None
    guard = cfg.rollout.guard
    baseline = baseline_for(cfg, store, r, serving=serving)
    champion = serving_figures(serving, cfg.model.name, r.version, at, now)
    looks = max(math.ceil(guard.window.total_seconds() / 86400), 1)
    verdict = judge(guard, paired(store, r, now), champion, baseline, latency_slack_ms=cfg.rollout.latency_slack_ms,
                    looks=looks)
    return verdict, baseline


def audit_rows(r: Rollout, verdict: GuardVerdict, now: datetime) -> list[dict[str, Any]]:
    """The look as rows of the trigger-evaluation audit (like a check's): one per guard check and
    a ``guard`` row whose ``fired`` is the rollback; ``evidence.role`` keeps them apart from policy rows."""
    check_id = f"guard-{r.id}-{now.isoformat()}"
    common = {"role": AUDIT_ROLE, "rollout_id": r.id, "version": r.version, "replaced": r.champion_version}
    rows = [{"check_id": check_id, "trigger": f"guard:{c.name}", "fired": c.breached,
             "status": ("fired" if c.breached else "ok") if c.judged else "insufficient_data",
             "value": c.p_value if c.p_value is not None else (c.bound if c.bound is not None else c.champion),
             "threshold": c.alpha if c.p_value is not None else (-c.margin if c.bound is not None and c.margin is not None else None),
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
    promoted = r.started("champion")
    ensure_guard_shadow(cfg, store, r, now=promoted or now, actor=actor)  # finishes an interrupted promotion step
    verdict, baseline = evaluate(cfg, store, r, now, serving=serving)
    store.record_evaluations(cfg.model.name, now, audit_rows(r, verdict, now))
    until = (promoted + cfg.rollout.guard.window).isoformat() if promoted else None
    evidence = {"guard": {"baseline": baseline.to_dict(), "until": until, "verdict": verdict.to_dict()}}
    if not verdict.rollback:
        store.note_rollout(r.id, at=now, decision="guarding", explanation=f"guard until {until}: {verdict.reason}",
                           evidence={**(r.evidence or {}), **evidence})
        return GuardOutcome("watching", r.id, r.version, None, verdict, verdict.reason)
    why = f"rollout {r.id}: version {r.version} rolled back: {verdict.reason}"
    # Compare-and-set against the version judged: if anyone moved the champion since, nothing rolls back.
    result = rollback(registry, store, actor=actor, reason=why, run_id=r.run_id, at=now, expected_champion=r.version)
    if result.status != "rolled_back":
        return GuardOutcome("superseded", r.id, r.version, result.champion, verdict,
                            f"{verdict.reason}; but the champion moved to {result.champion} meanwhile (compare-and-set lost)")
    store.transition_rollout(r.id, expected="champion", new="rolled_back", at=now, action="rollout_rollback",
                             actor=actor, reason=why, decision="rolled_back", evidence={**(r.evidence or {}), **evidence})
    release_guard_shadow(cfg, store, registry, now, actor=actor)  # the replaced champion serves again
    return GuardOutcome("rolled_back", r.id, r.version, result.champion, verdict,
                        f"version {r.version} rolled back to {result.champion}: {verdict.reason}")


__all__ = [
    "ACTOR", "AUDIT_ROLE", "Figures", "GuardCheck", "GuardOutcome", "GuardVerdict", "Pairs", "ServingFigures",
    "ServingStatsSource", "audit_rows", "baseline_for", "ensure_guard_shadow", "evaluate", "guard_rollout",
    "guarded_rollout", "judge", "margin_test", "paired", "release_guard_shadow", "serving_figures",
]
