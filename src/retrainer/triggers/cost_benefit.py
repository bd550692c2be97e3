"""``cost_benefit``: retrain once keeping the champion has cost more than a retrain would.

**The default rule: break even on the excess loss already paid** (the ski-rental rule). Since the
champion started serving (or since the last retrain, whichever is later: a retrain that the gate
rejected was paid for too), count what it lost against what a fresh model would reach::

    excess = (bar − champion) × predictions_since × error_cost      (metric units; accuracy: errors)
    bar    = early + (fresh − own holdout)

and fire when the excess exceeds the cost of one retrain (``retrain_cost``, plus the mean measured
duration × ``cost_per_hour`` when set) with probability ``confidence`` (0.95): ``excess − z·SE >
cost``, z the normal quantile. (The excess is a running sum checked at every step: a bound at the
point estimate would fire on the first lucky streak; 0.95 keeps a model that is as good as a fresh
one from being retrained on noise.) Why this rule: a model whose gap to a fresh model grows linearly with
its age (rate r, traffic λ) is cheapest retrained every τ* = √(2·cost / (error_cost·λ·r)), and the
excess it has accrued at age τ is error_cost·λ·r·τ²/2, which equals the cost exactly at τ*. So the
rule finds the optimal interval without knowing r, λ or how long a model stays useful here, at any
volume (traffic sets how fast the excess accrues); when the decay is not linear, paying at break
even costs at most twice the best schedule in hindsight (the classic rent-or-buy bound). A
champion that is as good as a fresh model accrues nothing and never fires.

* ``champion``: ``metric`` on the champion's own predictions in the window, labelled by now; with
  fewer than ``min_samples`` (30) labelled, the label-free estimate (CBPE on the champion's
  calibrated scores, the ``estimated_performance`` trigger's estimator); neither is
  ``insufficient_data``. Labels coming late are fine: the labelled share stands for the rest.
* ``early``: what the champion realized while fresh — ``metric`` over the first third (at least
  ``min_samples``) of its labels since its deployment. A rejected retrain restarts the window, not
  this figure: one failed retrain does not silence the rule for good.
* ``fresh − own holdout``: how much better the last ``retrains`` (3) candidates (the model's own
  retrain history, clamped at ``now``) scored on their holdouts than the champion scored on its own
  (its reference profile, else its retrain record). Holdout against holdout and realized against
  realized: a time holdout next to the training rows flatters every model trained here, and that
  optimism cancels instead of accruing into retrains. The shift is 0 when the champion is the only
  candidate averaged (the bar is then its own decay since it was fresh); it is what lets a champion
  that was stale from birth (trained across a change) be replaced. Before the champion has an early
  figure (2 × ``min_samples`` labels), the bar is the fresh figure itself; with no holdout figure
  anywhere, the early figure alone.
* ``SE``: the binomial error of ``early − champion`` (:func:`early_gap_se`; the two share labels
  unless a rejected retrain restarted the window), scaled to the excess; the estimate's CI on the
  label-free path. The holdout figures enter at their values: their spread is model-to-model, not
  noise a re-checked running sum can ride.

* **the decay prior**, when the test above does not fire: at a few predictions a day the excess at
  the optimal interval is smaller than its own standard error, so a slow routine decay is never
  resolved from the window. Every past retrain measured ``Δ_off`` = candidate − champion on the
  same holdout rows when that champion was ``age`` old; their least-squares slope through the origin
  is the model's decay rate r̂ (:func:`~retrainer.triggers.decay_prior.decay_prior`, over the last
  ``prior_retrains`` (10)). With at least 3 such retrains and r̂ above 0 at ``prior_confidence``
  (0.8, one-sided Student t), the rule breaks even on the prior: fire when
  ``r̂ × mean age of the champion over the window × predictions × error_cost`` exceeds the cost (the
  linear-decay excess; it equals the cost at the optimal interval). A model whose retrains found no
  gain has r̂ ≈ 0 and never fires on it.

>>> from retrainer.testing import make_context, standard_retrains, synthetic_log
>>> ctx = make_context(synthetic_log(drifted=True), retrains=standard_retrains())
>>> params = {"horizon": "30d", "window": "2d", "min_samples": 50, "retrain_cost": 200, "cost_per_hour": 60}
>>> d = CostBenefitTrigger(params).evaluate(ctx)
>>> d.status, round(d.evidence["gap"], 3), d.evidence["traffic"]["expected"]
('fired', 0.495, 2160.0)
>>> round(d.value, 1), d.threshold  # 0.495 × 2160 × 1 against 200 + 600 s × 60 / h
(1069.9, 210.0)
>>> d = CostBenefitTrigger({"retrain_cost": 10}).evaluate(ctx)  # break even: the excess accrued so far
>>> d.status, d.evidence["traffic"]["predictions_in_window"], d.evidence["fresh"]["used"]
('fired', 1001, 'early')
>>> # No champion holdout to compare the runs' with, so no shift: the bar is the early accuracy 0.865; gap 0.059:
>>> round(d.value, 1), round(d.evidence["excess_se"], 1), round(d.evidence["excess_low"], 1), d.threshold
(59.2, 17.1, 31.0, 10.0)
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy.special import ndtri, stdtrit  # norm.ppf and t.ppf, without importing scipy.stats (~0.4 s; issue 20)

from retrainer.durations import PositiveDuration, format_duration
from retrainer.metrics import classification_metrics
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import AUTO, TriggerContext
from retrainer.triggers.decay_prior import decay_prior
from retrainer.triggers.decision import Decision
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger
from retrainer.triggers.performance import Metric, champion_version
from retrainer.windows import LabelledWindow

_HOUR = 3600.0
# The decay prior needs a slope and the spread around it: with fewer measured retrains it is a guess.
_PRIOR_MIN_RETRAINS = 3
_DAY = 86400.0


def early_gap_se(early_only: tuple[int, float], both: tuple[int, float], window_only: tuple[int, float]) -> float:
    """Standard error of ``early − window``: a rate over the champion's first ``k`` labels against
    the rate over the ``n`` labels of the judged window, independent binomial labels. The two may
    share labels, so the labels fall in three groups, each ``(count, rate)``: early only, both,
    window only; with c = 1/k, 1/k − 1/n, −1/n the weight of a label of each group in the
    difference, the variance is ``Σ count·c²·rate·(1 − rate)``. When the early labels lie inside the
    window (k of n) this is ``(1 − f)·√(p_late(1 − p_late)/(n − k) + p_early(1 − p_early)/k)``,
    f = k/n — not the independent-samples ``√(SE_window² + SE_early²)``, which overstates it (by √2
    at f = 1/3); when they lie before it, it is that independent-samples figure.

    >>> round(early_gap_se((0, 0.0), (100, 0.9), (200, 0.75)), 4)  # early ⊂ window: 0.9 over 100, 0.75 after
    0.0286
    >>> round(early_gap_se((100, 0.9), (0, 0.0), (200, 0.75)), 4)  # disjoint: √(0.09/100 + 0.1875/200)
    0.0429
    """
    (a, pa), (o, po), (b, pb) = early_only, both, window_only
    k, n = a + o, o + b
    if k < 1 or n < 1 or min(a, o, b) < 0:
        raise ValueError(f"early_gap_se needs labels on both sides, got early {k} and window {n}")
    var = (a * pa * (1 - pa) / k**2 + o * po * (1 - po) * (1 / k - 1 / n) ** 2 + b * pb * (1 - pb) / n**2)
    return math.sqrt(max(var, 0.0))


class CostBenefitTrigger(Trigger):
    """Fires when the champion's excess loss against a fresh model exceeds the cost of a retrain."""

    name = "cost_benefit"

    class Params(Trigger.Params):
        error_cost: float = Field(1.0, gt=0, description="Cost of one lost unit of the metric per prediction "
                                  "(for accuracy: one wrong prediction).")
        retrain_cost: float = Field(1000.0, ge=0, description="Fixed cost of one retrain, in the same unit.")
        cost_per_hour: float | None = Field(None, ge=0, description="Cost of one hour of retraining; with it, "
                                            "the mean measured duration of past retrains is added to the cost.")
        metric: Metric = Field("accuracy", description="The metric compared: accuracy, f1, precision, recall, roc_auc.")
        horizon: PositiveDuration | None = Field(
            None, description="None: break even on the excess accrued since the champion started (or the last "
            "retrain). A duration: the fixed-horizon rule, gap x traffic x horizon.")
        window: Literal["auto"] | PositiveDuration = Field(
            AUTO, description="auto: since the later of the champion's deployment and the last retrain, at most "
            "max_window; a duration: that trailing window.")
        max_window: PositiveDuration = Field(timedelta(days=3650), description="window auto, and the champion's early "
                                             "figure, read back at most this far.")
        confidence: float = Field(0.95, ge=0.5, lt=1.0, description="Break even: fire when the excess exceeds the "
                                  "retrain cost with this probability (0.5: on the point estimate).")
        min_samples: int = Field(30, ge=1, description="Fewer labelled predictions than this: the label-free "
                                 "estimate, if the champion has a calibration map; else insufficient_data.")
        retrains: int = Field(3, ge=1, description="Average the candidates' holdout figure over this many past "
                              "retrains (break even: its shift over the champion's own holdout moves the bar).")
        prior_retrains: int = Field(10, ge=0, description="Break even: learn the decay rate of a champion from "
                                    "this many past retrains' paired offline differences (candidate - champion on "
                                    "the same holdout, by the champion's age); 0: no prior.")
        prior_confidence: float = Field(0.8, ge=0.5, lt=1.0, description="Use the decay prior only when its rate is "
                                        "above 0 with this one-sided confidence (Student t).")
        positive_label: float = Field(1.0, description="The positive class for f1/precision/recall/roc_auc.")
        champion_only: bool = Field(True, description="Judge only the champion's own predictions.")

    # -- the window, the champion, the fresh figure, the cost ---------------------------------------

    def _start(self, ctx: TriggerContext) -> datetime:
        """Where the judged window starts: a fixed window back from now, or (auto) the later of the
        champion's start and the last retrain, at most ``max_window`` back."""
        p = self.params
        if p.window != AUTO:
            return ctx.now - p.window
        starts = [ctx.now - p.max_window]
        if ctx.champion is not None and ctx.champion.created_at is not None:
            starts.append(ctx.champion.created_at)
        if ctx.last_retrain_at is not None:
            starts.append(ctx.last_retrain_at)
        return min(max(starts), ctx.now)

    def _champion(self, ctx: TriggerContext, span: timedelta) -> tuple[float | None, float, dict[str, Any]]:
        """(loss, its standard error, facts) of the champion over the window."""
        p = self.params
        version = champion_version(ctx, p.champion_only)
        w = ctx.labelled(span, model_version=version)
        y_true, y_pred = np.asarray(w.y_true, float), np.asarray(w.y_pred, float)
        known = np.isfinite(y_true) & np.isfinite(y_pred)
        n = int(known.sum())
        facts: dict[str, Any] = {"source": "realized", "version": version, "n_labelled": n,
                                 "n_predictions": w.n_predictions, "label_coverage": w.coverage}
        if n < p.min_samples:
            return self._estimated(ctx, span, facts)
        y, yp, sc = y_true[known], y_pred[known], np.asarray(w.score, float)[known]
        value = classification_metrics(y, yp, sc, p.positive_label)[p.metric]
        if value is None:
            return None, 0.0, facts
        loss = 1.0 - float(value)
        facts["value"] = float(value)
        facts["early"] = self._early(ctx, version, ctx.now - span, w)
        if facts["early"] is None:
            del facts["early"]
        return loss, math.sqrt(max(loss * (1 - loss), 0.0) / n), facts

    def _early(self, ctx: TriggerContext, version: str | None, start: datetime,
               window: LabelledWindow) -> dict[str, Any] | None:
        """What the champion realized while fresh: its ``metric`` over the first third (at least
        ``min_samples``) of its labels since it was deployed (at most ``max_window`` back; a fixed
        ``window`` looks only at itself), with the standard error of that figure minus the window's
        (:func:`early_gap_se` on per-prediction correctness: exact for accuracy, the binomial
        approximation for the others). None with fewer than twice that many labels. A retrain the
        gate rejected restarts the window but not this figure: the champion is still measured
        against what it once reached, so one failed retrain does not silence the rule for good."""
        p = self.params
        life = ctx.champion.created_at if ctx.champion is not None else None
        if p.window == AUTO and life is not None and life < start:
            lived = ctx.labelled(ctx.now - max(life, ctx.now - p.max_window), model_version=version)
        else:
            lived = window
        y_true, y_pred = np.asarray(lived.y_true, float), np.asarray(lived.y_pred, float)
        known = np.isfinite(y_true) & np.isfinite(y_pred)
        order = np.argsort(np.asarray(lived.ts, float)[known], kind="stable")  # "first" is by prediction time
        y, yp = y_true[known][order], y_pred[known][order]
        sc, ts = np.asarray(lived.score, float)[known][order], np.asarray(lived.ts, float)[known][order]
        k = max(p.min_samples, len(y) // 3)
        if len(y) < 2 * k:
            return None
        value = classification_metrics(y[:k], yp[:k], sc[:k], p.positive_label)[p.metric]
        if value is None:
            return None
        right = (y == yp).astype(float)
        first = np.arange(len(y)) < k
        inside = ts >= start.timestamp()

        def group(mask: np.ndarray) -> tuple[int, float]:
            return int(mask.sum()), float(right[mask].mean()) if mask.any() else 0.0

        se = early_gap_se(group(first & ~inside), group(first & inside), group(~first & inside))
        since = datetime.fromtimestamp(float(ts[0]), ctx.now.tzinfo).isoformat()
        return {"value": float(value), "n": k, "first_label_at": since, "n_in_window": int((first & inside).sum()),
                "gap_se": se}

    def _estimated(self, ctx: TriggerContext, span: timedelta,
                   facts: dict[str, Any]) -> tuple[float | None, float, dict[str, Any]]:
        """The label-free estimate, read through ``estimated_performance`` itself (one estimator,
        not two): a floor of 0 never fires, so its Decision is only the figure and its evidence."""
        p = self.params
        probe = EstimatedPerformanceTrigger(
            {"window": span, "thresholds": {p.metric: 0.0}, "drop": {}, "min_predictions": p.min_samples,
             "positive_label": p.positive_label, "champion_only": p.champion_only}, label=f"{self.label}.estimate")
        d = probe.evaluate(ctx)
        value = (d.evidence.get("estimate") or {}).get(p.metric) if d.status in ("ok", "fired") else None
        if value is None:
            return None, 0.0, {**facts, "estimate_unavailable": d.reason}
        e = d.evidence
        lo, hi = e["ci"][p.metric]
        se = (hi - lo) / 2 / ndtri(0.5 + e["confidence"] / 2)
        return 1.0 - float(value), float(se), {
            **facts, "source": "estimated", "value": float(value), "n_scored": e["n"],
            "realized_share": e["realized_share"], "ci": e["ci"][p.metric], "confidence": e["confidence"],
            "calibration": e["calibration"]}

    def _fresh(self, ctx: TriggerContext) -> tuple[float | None, dict[str, Any]]:
        """(metric a fresh model reaches, facts: its source, and the standard error of the mean across runs)."""
        p = self.params
        runs = [(r, r.metric(p.metric)) for r in ctx.retrain_history(p.retrains)]
        runs = [(r, v) for r, v in runs if v is not None]
        if runs:
            values = [v for _, v in runs]
            value = float(np.mean(values))
            se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
            return value, {"source": "retrain_runs", "value": value, "se": se,
                           "runs": [{"at": r.at.isoformat(), "version": r.version, "value": v} for r, v in runs]}
        stored = self._reference_holdout(ctx)
        if stored is not None:
            return stored, {"source": "reference_profile", "value": stored, "se": 0.0,
                            "version": None if ctx.champion is None else ctx.champion.version}
        return None, {"source": None}

    def _reference_holdout(self, ctx: TriggerContext) -> float | None:
        """The champion's holdout ``metric`` from its reference profile (None when it has none)."""
        stored = ((ctx.reference or {}).get("holdout_metrics") or {}).get(self.params.metric)
        return None if stored is None else float(stored)

    def _corrected_fresh(self, ctx: TriggerContext, fresh: float | None, champion_se: float,
                         champ: dict[str, Any], facts: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
        """(the bar a fresh model would reach now, the standard error of the gap to it, facts).

        Once the champion has its ``early`` figure (what it realized while fresh), the bar is that
        figure moved by how much better the recent candidates scored on their holdouts than the
        champion scored on its own: ``early + (fresh − own holdout)``. Holdout is compared with
        holdout and realized with realized, so a holdout's optimism (a time holdout next to the
        training rows can flatter every model trained here) cancels instead of accruing into retrains.
        When the champion is the latest candidate and the only one averaged, the bar is ``early``
        itself: its own decay since it was fresh. The gap's error is the champion's own sampling
        error — its early figure is part of the same labels (:func:`early_gap_se`); the fresh and
        holdout figures enter at their values (model-to-model spread, not noise a re-check rides).
        Before there is an early figure, the bar is the fresh figure as it stands; with no holdout
        figure at all, the early figure alone (what the data can tell)."""
        early = champ.get("early")
        if early is None:
            assert fresh is not None  # evaluate() returned insufficient_data otherwise
            return fresh, champion_se, {**facts, "bar": fresh, "used": facts["source"]}
        if fresh is None:
            bar = early["value"]
            return bar, early["gap_se"], {
                **facts, "own_holdout": None, "own_holdout_source": None, "shift": 0.0, "bar": bar, "used": "early"}
        own, own_source = self._own_holdout(ctx, facts, fresh)
        shift = fresh - own
        bar = early["value"] + shift
        se = early["gap_se"]
        return bar, se, {**facts, "own_holdout": own, "own_holdout_source": own_source, "shift": shift,
                         "bar": bar, "used": "early" if shift == 0 else "early+shift"}

    def _own_holdout(self, ctx: TriggerContext, facts: dict[str, Any], fresh: float) -> tuple[float, str]:
        """The champion's own holdout figure: its reference profile, else its own retrain record, else
        (neither known) the fresh figure itself: no shift."""
        stored = self._reference_holdout(ctx)
        if stored is not None:
            return stored, "reference_profile"
        version = None if ctx.champion is None else ctx.champion.version
        for run in facts.get("runs", ()):
            if version is not None and run["version"] == version:
                return float(run["value"]), "retrain_run"
        return fresh, "fresh"

    def _retrain_cost(self, ctx: TriggerContext) -> dict[str, Any]:
        p = self.params
        durations = [r.duration_s for r in ctx.retrain_history(p.retrains) if r.duration_s is not None]
        mean_s = float(np.mean(durations)) if durations else None
        compute = mean_s / _HOUR * p.cost_per_hour if mean_s is not None and p.cost_per_hour is not None else 0.0
        return {"fixed": p.retrain_cost, "cost_per_hour": p.cost_per_hour, "mean_duration_s": mean_s,
                "n_durations": len(durations), "compute": compute, "total": p.retrain_cost + compute}

    # -- the decision --------------------------------------------------------------------------------

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        start = self._start(ctx)
        span = ctx.now - start
        evidence: dict[str, Any] = {"metric": p.metric, "rule": "break_even" if p.horizon is None else "horizon",
                                    "horizon": None if p.horizon is None else format_duration(p.horizon),
                                    "window": format_duration(p.window) if p.window != AUTO else AUTO,
                                    "window_start": start.isoformat(), "window_span_s": span.total_seconds()}
        cost = self._retrain_cost(ctx)
        fresh, fresh_facts = self._fresh(ctx)
        evidence["fresh"] = fresh_facts
        n_window = ctx.count_since(start) if span > timedelta(0) else 0
        if n_window == 0:  # nothing served since: nothing accrued, which is a decision (keep), not a lack of data
            evidence |= {"retrain_cost": cost, "traffic": {"predictions_in_window": 0}}
            return Decision.ok(self.label, reason=f"No prediction since {start:%Y-%m-%d %H:%M}: nothing has "
                               "accrued against a retrain yet.", value=0.0, threshold=cost["total"], evidence=evidence)
        champion_loss, champion_se, champ_facts = self._champion(ctx, span)
        evidence["champion"] = champ_facts
        if champion_loss is None:
            why = (f"only {champ_facts['n_labelled']} labelled predictions since {start:%Y-%m-%d %H:%M} "
                   f"({p.min_samples} needed), and no estimate ({champ_facts['estimate_unavailable']})"
                   if "estimate_unavailable" in champ_facts else f"{p.metric} is undefined on them")
            return Decision.insufficient(self.label, reason=f"The champion's current {p.metric} is unknown: {why}.",
                                         evidence=evidence)
        if fresh is None and (p.horizon is not None or "early" not in champ_facts):
            return Decision.insufficient(
                self.label, reason=f"No past retrain recorded a holdout {p.metric} and the champion's reference "
                "profile has none" + (", and the champion has too few labels for its own early figure"
                                      if p.horizon is None else "") + ": nothing says what a fresh model would reach.",
                evidence=evidence)
        champion = 1.0 - champion_loss
        if p.horizon is None:  # break even: the bar starts from what the champion realized while fresh
            fresh, gap_se, fresh_facts = self._corrected_fresh(ctx, fresh, champion_se, champ_facts, fresh_facts)
            evidence["fresh"] = fresh_facts
        assert fresh is not None  # insufficient_data above otherwise
        raw_gap = fresh - champion
        evidence |= {"raw_gap": raw_gap, "gap": max(0.0, raw_gap), "error_cost": p.error_cost, "retrain_cost": cost}
        versus = (f"{p.metric} {champion:.3f} ({champ_facts['source']}) vs {fresh:.3f} for a fresh model "
                  f"({fresh_facts.get('used', fresh_facts['source'])})")
        if p.horizon is not None:
            return self._horizon_rule(ctx, n_window, span, versus, evidence)
        return self._break_even_rule(ctx, n_window, start, raw_gap, gap_se, versus, evidence)

    def _break_even_rule(self, ctx: TriggerContext, n_window: int, start: datetime, raw_gap: float, gap_se: float,
                         versus: str, evidence: dict[str, Any]) -> Decision:
        """Break even: the excess already paid, less z standard errors, against the cost of a retrain."""
        p = self.params
        cost = evidence["retrain_cost"]
        excess = raw_gap * n_window * p.error_cost
        se = gap_se * n_window * p.error_cost
        z = float(ndtri(p.confidence))
        margin = excess - z * se
        evidence |= {"traffic": {"predictions_in_window": n_window}, "excess": excess, "excess_se": se,
                     "confidence": p.confidence, "excess_low": margin, "net_benefit": margin - cost["total"]}
        terms = (f"{versus}: excess {raw_gap:+.3f} × {n_window:,} predictions since {start:%Y-%m-%d} × "
                 f"{p.error_cost:g} = {excess:,.1f} (± {se:,.1f}; {p.confidence:.0%} bound {margin:,.1f})")
        if margin > cost["total"]:
            return Decision.fire(self.label, reason=f"Keeping the champion has cost more than a retrain: {terms} "
                                 f"> {cost['total']:,.1f}.", value=excess, threshold=cost["total"], evidence=evidence)
        prior = self._prior(ctx, start, n_window, evidence)
        if prior is not None and prior["excess"] > cost["total"]:
            return Decision.fire(
                self.label, reason=f"Keeping the champion has cost more than a retrain, on its decay prior: {terms} "
                f"is not conclusive, but past retrains measured a fresh model gaining {prior['rate_per_day'] * 365:.4f} "
                f"{p.metric} a year of the champion's age (± {prior['se_per_day'] * 365:.4f}, {prior['n']} retrains): "
                f"over its mean age {prior['mean_age_days']:,.0f} days that is {prior['gap']:.4f} × {n_window:,} × "
                f"{p.error_cost:g} = {prior['excess']:,.1f} > {cost['total']:,.1f}.",
                value=excess, threshold=cost["total"], evidence=evidence)
        return Decision.ok(self.label, reason=f"A retrain does not pay yet: {terms} <= {cost['total']:,.1f}.",
                           value=excess, threshold=cost["total"], evidence=evidence)

    def _prior(self, ctx: TriggerContext, start: datetime, n_window: int,
               evidence: dict[str, Any]) -> dict[str, Any] | None:
        """The excess the model's own decay rate predicts for this window, when that rate is known
        to be above 0 (one-sided Student t at ``prior_confidence`` on ``m − 1`` degrees of freedom);
        else None. Its facts go in ``evidence["prior"]`` either way.

        Under linear decay at rate r the gap at age a is r·a, so over a window in which the champion
        aged from ``a0`` to ``a1`` (uniform traffic) the excess is ``r·(a0 + a1)/2 × predictions``
        — at the optimal interval that equals the cost, so paying when it does is the break-even
        rule on the prior instead of on the window's own noisy figures."""
        p = self.params
        facts: dict[str, Any] = {"retrains_read": p.prior_retrains, "confidence": p.prior_confidence}
        evidence["prior"] = facts
        if p.prior_retrains == 0:
            facts["status"] = "off"
            return None
        if ctx.champion is None or ctx.champion.created_at is None:
            facts["status"] = "champion_start_unknown"
            return None
        rate = decay_prior(ctx.retrain_history(p.prior_retrains), p.metric)
        if rate is None or rate.n < _PRIOR_MIN_RETRAINS:
            facts |= {"status": "too_few_retrains", "n": 0 if rate is None else rate.n}
            return None
        t = float(stdtrit(rate.df, p.prior_confidence))
        facts |= {**rate.to_dict(), "t": t, "rate_low_per_day": rate.rate - t * rate.se}
        if rate.rate - t * rate.se <= 0:
            facts["status"] = "not_significant"
            return None
        born = ctx.champion.created_at
        mean_age = ((ctx.now - born).total_seconds() + max((start - born).total_seconds(), 0.0)) / 2 / _DAY
        gap = rate.rate * mean_age
        facts |= {"status": "used", "mean_age_days": mean_age, "gap": gap,
                  "excess": gap * n_window * p.error_cost}
        return facts

    def _horizon_rule(self, ctx: TriggerContext, n_window: int, span: timedelta, versus: str,
                      evidence: dict[str, Any]) -> Decision:
        """The fixed-horizon rule: gap (>= 0) × traffic rate × horizon × error_cost against the cost."""
        p = self.params
        assert p.horizon is not None
        gap, cost = evidence["gap"], evidence["retrain_cost"]
        per_hour = n_window / (span.total_seconds() / _HOUR)
        expected = per_hour * p.horizon.total_seconds() / _HOUR
        expected_loss = gap * expected * p.error_cost
        evidence |= {"traffic": {"predictions_in_window": n_window, "per_hour": per_hour, "expected": expected},
                     "expected_loss": expected_loss, "net_benefit": expected_loss - cost["total"]}
        terms = (f"{versus}: gap {gap:.3f} × {expected:,.0f} predictions over {format_duration(p.horizon)} × "
                 f"{p.error_cost:g} = {expected_loss:,.1f}")
        if expected_loss > cost["total"]:
            return Decision.fire(self.label, reason=f"Keeping the champion costs more than a retrain: {terms} "
                                 f"> {cost['total']:,.1f}.", value=expected_loss, threshold=cost["total"], evidence=evidence)
        return Decision.ok(self.label, reason=f"A retrain does not pay yet: {terms} <= {cost['total']:,.1f}.",
                           value=expected_loss, threshold=cost["total"], evidence=evidence)


__all__ = ["CostBenefitTrigger"]
