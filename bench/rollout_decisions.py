"""Measure the rollout decision rule (issue 19 §6) against today's rule and "offline gate only".

A simulation through the real decision code, no wall clock: for every cell of

    true online Δ  {-0.05, -0.02, 0, +0.02, +0.05, +0.11}   (challenger - champion, accuracy)
    traffic        {50, 200, 1000, 5000} requests a day
    label delay    {1, 7} days
    transfer k     {1, 0.5, 0, -0.5}   (online Δ = k * Δ_off)

it runs ``--runs`` rollouts (500 by default) and reports wrong promotions (promoted while
Δ < -margin), missed promotions (kept the champion while Δ > margin), days to a decision, and
the extra errors served over 90 days against an oracle that knows Δ (serves the challenger from
day 0 iff Δ > 0).

The world (each assumption stated, one per line):

* the champion is right on 80% of requests; the two models disagree on a share ``d`` of them,
  ``d ~ U(0.10, 0.15)`` per run (at least |Δ| + 0.02). A labelled pair is
  ``Y = correct_chal - correct_champ`` in {-1, 0, 1}: ``P(Y != 0) = d``, ``E[Y] = Δ``;
* the shadow scores every request with both models; the labels of day r's requests arrive at
  the end of day r + delay; every request is labelled in the end (``--label-share`` lowers that:
  the others only ever have the proxy);
* the label-free proxy ``f`` (calibrated P(chal right) - P(champ right)) correlates with ``Y`` at
  ``rho = 0.6`` (calibrated: ``cov(Y, f) = var(f)``), with a per-run calibration bias
  ``b ~ N(0, 0.01^2)`` on its mean;
* the offline holdout has 2,000 paired rows: ``Δ_off_hat ~ N(Δ_off, d / 2000)``. For k = 0 the
  offline difference says nothing about the online one: ``Δ_off ~ N(+0.04, 0.03^2)`` per run,
  a typical retrain's offline gain, drawn independently of Δ;
* no guard after the promotion for any rule (it would cut the cost of wrong promotions for all).

Daily sufficient statistics are drawn instead of requests: the disagreement count and the sign
split exactly (binomial), the proxy sum from its regression on ``Y`` (normal), so 500 runs of a
cell cost a few vector operations per day. The rule's arithmetic is the shipped one:
:func:`retrainer.stats.paired.ppi_from_moments` (PPI++), :func:`...decision.combine` (posterior)
and :func:`...decision.rule_actions` (the verdict), with the prior of
:func:`...decision.prior_from_offline`.

"Today's rule" replays the code before issue 19: a shadow stage of max(1 day, 200 comparisons)
judged by the unpaired one-sided error z-test on the labels matured by then (the agreement check,
which fails any challenger disagreeing on more than 10%, is left out: generous to today's rule),
then an A/B test at split 0.1 read daily by the mSPRT (tau = the detectable effect 0.02), promoted
at p < 0.05 with a positive difference, rejected at p < 0.05 otherwise, at the planned sample size
without significance, or when the 14 days run out. Its verdict function was checked against
``analysis.decide`` of the pre-issue-19 code (commit 441bf06) on sampled looks until that function
was replaced by the new rule; the replica is now the only copy of today's rule.
"Offline gate only" promotes on day 0 iff the holdout passes :func:`retrainer.metrics.gate`
(accuracy, min_ratio 0.95).

    python bench/rollout_decisions.py             # 500 runs per cell, a few minutes
    python bench/rollout_decisions.py --smoke     # 20 runs per cell, seconds
    python bench/rollout_decisions.py --runs 1000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import norm

from retrainer.config import ABConfig, GateConfig
from retrainer.deployments.rollout.decision import (
    CONTINUE,
    DEFAULT_KAPPA,
    DEFAULT_MAX_DURATION_DAYS,
    DEFAULT_TAU,
    PROMOTE,
    REJECT,
    DecisionRule,
    combine,
    prior_from_offline,
    rule_actions,
)
from retrainer.metrics import gate
from retrainer.stats.paired import ppi_from_moments
from retrainer.stats.proportions import _msprt_look_pvalues, required_sample_size

DELTAS = (-0.05, -0.02, 0.0, 0.02, 0.05, 0.11)
TRAFFIC = (50, 200, 1000, 5000)
DELAYS = (1, 7)
TRANSFERS = (1.0, 0.5, 0.0, -0.5)
HORIZON = 90  # days over which extra errors are counted


@dataclass(frozen=True)
class World:
    base_accuracy: float = 0.80
    disagreement: tuple[float, float] = (0.10, 0.15)
    rho: float = 0.6
    proxy_bias_sd: float = 0.01
    holdout_rows: int = 2000
    k0_offline_mean: float = 0.04
    k0_offline_sd: float = 0.03
    label_share: float = 1.0  # share of requests that are ever labelled (the rest only have the proxy)


@dataclass(frozen=True)
class Policy:
    """The new rule's settings (the shipped defaults unless overridden on the command line)."""

    rule: DecisionRule = field(default_factory=DecisionRule)
    kappa: float = DEFAULT_KAPPA
    tau: float = DEFAULT_TAU
    max_days: int = DEFAULT_MAX_DURATION_DAYS
    use_proxy: bool = True


# -- the world -----------------------------------------------------------------------------------


def _disagreement(rng: np.random.Generator, runs: int, delta: float, world: World) -> np.ndarray:
    lo, hi = world.disagreement
    return np.maximum(rng.uniform(lo, hi, runs), abs(delta) + 0.02)


def _offline(rng: np.random.Generator, runs: int, delta: float, k: float, d: np.ndarray, world: World) -> tuple[np.ndarray, np.ndarray]:
    """(Δ_off_hat, se_off) per run."""
    true_off = rng.normal(world.k0_offline_mean, world.k0_offline_sd, runs) if k == 0 else np.full(runs, delta / k)
    se = np.sqrt(d / world.holdout_rows)
    return true_off + rng.normal(0.0, 1.0, runs) * se, se


def _daily_pairs(rng: np.random.Generator, runs: int, days: int, traffic: int, delta: float, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum Y, number of disagreements) per run and request day: exact binomial draws."""
    k = rng.binomial(traffic, np.broadcast_to(d[:, None], (runs, days)))
    plus = rng.binomial(k, np.broadcast_to(((1.0 + delta / d) / 2.0)[:, None], (runs, days)))
    return (2 * plus - k).astype(float), k.astype(float)


# -- the new rule ----------------------------------------------------------------------------------


def simulate_new(rng: np.random.Generator, runs: int, delta: float, traffic: int, delay: int, k: float,
                 world: World, policy: Policy) -> dict[str, np.ndarray]:
    """(action, day) per run under the new rule: shadow pairs + PPI + offline prior."""
    d = _disagreement(rng, runs, delta, world)
    off, se_off = _offline(rng, runs, delta, k, d, world)
    prior_mean = policy.kappa * off
    prior_sd = np.sqrt(policy.tau**2 + se_off**2)
    # Check the vectorised prior against the scalar one on a run (the same formula, not a copy).
    p0 = prior_from_offline(float(off[0]), float(se_off[0]), policy.kappa, policy.tau)
    assert math.isclose(p0.mean, prior_mean[0]) and math.isclose(p0.sd, prior_sd[0])

    days = policy.max_days
    labelled_per_day = max(1, round(traffic * world.label_share))
    never = traffic - labelled_per_day  # requests that only ever have the proxy
    sy, kk = _daily_pairs(rng, runs, days, labelled_per_day, delta, d)
    var_y_true = d - delta**2
    var_f = world.rho**2 * var_y_true  # calibrated proxy: var(f) = cov(Y, f) = rho^2 var(Y)
    bias = rng.normal(0.0, world.proxy_bias_sd, runs)
    # f = E[f] + (cov / var Y)(Y - Δ) + e:  cov / var Y = rho^2, var e = var f (1 - rho^2)
    sf = (labelled_per_day * (delta + bias))[:, None] + world.rho**2 * (sy - labelled_per_day * delta) \
        + rng.normal(0.0, 1.0, (runs, days)) * np.sqrt(labelled_per_day * var_f * (1 - world.rho**2))[:, None]
    sf_never = (never * (delta + bias))[:, None] + rng.normal(0.0, 1.0, (runs, days)) * math.sqrt(never) * np.sqrt(var_f)[:, None]
    csy, ckk, csf, csf_never = (np.concatenate([np.zeros((runs, 1)), np.cumsum(a, axis=1)], axis=1)
                                for a in (sy, kk, sf, sf_never))

    action = np.zeros(runs, dtype=int)
    day = np.full(runs, days, dtype=int)
    for t in range(days + 1):
        lab = max(0, t - delay)  # request days whose labels have arrived
        n = float(labelled_per_day * lab)
        big_n = float(traffic * t - n) if policy.use_proxy else 0.0
        if n >= 2:
            mean_y = csy[:, lab] / n
            var_y = np.maximum(ckk[:, lab] - csy[:, lab] ** 2 / n, 0.0) / (n - 1)
            mean_f = csf[:, lab] / n
            mean_fu = (csf[:, t] - csf[:, lab] + csf_never[:, t]) / big_n if big_n > 0 else np.zeros(runs)
            theta, se, _ = ppi_from_moments(
                n, big_n, mean_y=mean_y, mean_f=mean_f, mean_fu=mean_fu, var_y=var_y, var_f=var_f, var_fu=var_f,
                cov_yf=var_f, var_f_pooled=var_f,
            )
        else:
            theta, se = np.zeros(runs), np.full(runs, np.inf)
        mean, sd = combine(prior_mean, prior_sd, theta, se)
        verdict = rule_actions(mean, sd, policy.rule, at_max_duration=t == days, n_labelled=n)
        fresh = (action == CONTINUE) & (verdict != CONTINUE)
        action[fresh] = verdict[fresh]
        day[fresh] = t
    return {"action": action, "day": day, "off": off}


# -- today's rule ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _required(p_rounded: float) -> int:
    cfg = ABConfig()
    mde = cfg.min_detectable_effect if p_rounded + cfg.min_detectable_effect < 1 else -cfg.min_detectable_effect
    return required_sample_size(p_rounded, mde, cfg.alpha, cfg.power)


def simulate_today(rng: np.random.Generator, runs: int, delta: float, traffic: int, delay: int,
                   world: World, check: bool) -> dict[str, np.ndarray]:
    """(action, day, shadow_days) per run under the pre-issue-19 rule (module docstring)."""
    cfg = ABConfig()
    p_a = world.base_accuracy
    d = _disagreement(rng, runs, delta, world)
    # Shadow: max(1 day, 200 comparisons); error test on the labels matured by then.
    t_s = max(1, math.ceil(200 / traffic))
    n_s = round(traffic * world.label_share) * max(0, t_s - delay)
    action = np.zeros(runs, dtype=int)
    day = np.full(runs, t_s, dtype=int)
    if n_s > 0:
        kk = rng.binomial(n_s, d)
        plus = rng.binomial(kk, (1.0 + delta / d) / 2.0)
        minus = kk - plus
        e_both = np.clip((1 - p_a - (d + delta) / 2.0) / (1 - d), 0, 1)
        both = rng.binomial(n_s - kk, e_both)
        err_a, err_b = both + plus, both + minus  # champion wrong where only the challenger was right
        pooled = (err_a + err_b) / (2 * n_s)
        var = pooled * (1 - pooled) * (2.0 / n_s)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (err_b - err_a) / n_s / np.sqrt(var)
        failed = (var > 0) & (norm.sf(z) < ABConfig().alpha)  # shadow.error_alpha defaults to 0.05 too
        action[failed] = REJECT
    # A/B from day t_s: split 0.1, daily looks, labels after the delay.
    split, limit = cfg.split, int(cfg.duration.total_seconds() // 86400)
    looks = limit
    per_day_b = rng.binomial(traffic, split, (runs, looks))
    per_day_a = traffic - per_day_b
    per_day_b = rng.binomial(per_day_b, world.label_share)  # labelled predictions per arm
    per_day_a = rng.binomial(per_day_a, world.label_share)
    ok_b = rng.binomial(per_day_b, p_a + delta)
    ok_a = rng.binomial(per_day_a, p_a)
    ca, na, cb, nb = (np.concatenate([np.zeros((runs, 1)), np.cumsum(a, axis=1)], axis=1).astype(float)
                      for a in (ok_a, per_day_a, ok_b, per_day_b))
    best_p = np.ones(runs)
    ab_action = np.zeros(runs, dtype=int)
    ab_day = np.full(runs, limit, dtype=int)
    samples: list[tuple[int, int]] = []
    for e in range(1, limit + 1):  # e days into the A/B
        lab = max(0, e - delay)
        sa, sna, sb, snb = ca[:, lab], na[:, lab], cb[:, lab], nb[:, lab]
        have = (sna > 0) & (snb > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_look = np.where(have, _msprt_look_pvalues(sa, np.maximum(sna, 1), sb, np.maximum(snb, 1),
                                                        cfg.min_detectable_effect**2), 1.0)
        best_p = np.minimum(best_p, p_look)
        pa_hat = np.where(sna > 0, sa / np.maximum(sna, 1), p_a)
        required = np.array([_required(round(float(p), 3)) if 0 < p < 1 else 10**9 for p in pa_hat])
        diff = np.where(have, sb / np.maximum(snb, 1) - pa_hat, 0.0)
        sig = have & (best_p < cfg.alpha)
        enough = have & (np.minimum(sna, snb) >= required)
        verdict = np.where(sig, np.where(diff > 0, PROMOTE, REJECT), np.where(enough, REJECT, CONTINUE))
        if e >= limit:
            verdict = np.where(verdict == CONTINUE, REJECT, verdict)
        fresh = (ab_action == CONTINUE) & (verdict != CONTINUE)
        ab_action[fresh] = verdict[fresh]
        ab_day[fresh] = e
        if check and e % 3 == 0:
            samples.append((e, int(rng.integers(runs))))
    in_ab = action == CONTINUE
    action[in_ab] = ab_action[in_ab]
    day[in_ab] = t_s + ab_day[in_ab]
    return {"action": action, "day": day, "shadow_days": np.full(runs, t_s), "ab": in_ab}


# -- scoring ---------------------------------------------------------------------------------------


def _extra_errors(delta: float, traffic: int, promoted: np.ndarray, day: np.ndarray,
                  ab_len: np.ndarray | None = None, split: float = 0.1) -> np.ndarray:
    """Errors served over HORIZON days beyond the oracle's, per run.

    Until ``day`` the champion serves (during the ``ab_len`` A/B days the challenger answers
    ``split`` of the traffic); from ``day`` on the challenger if promoted, else the champion.
    """
    day = np.minimum(day, HORIZON).astype(float)
    ab = np.zeros(day.shape) if ab_len is None else np.minimum(ab_len, day).astype(float)
    if delta > 0:  # the oracle serves the challenger throughout
        return traffic * delta * ((day - split * ab) + np.where(promoted, 0.0, HORIZON - day))
    if delta < 0:  # the oracle keeps the champion
        return traffic * -delta * (split * ab + np.where(promoted, HORIZON - day, 0.0))
    return np.zeros(day.shape)


def run_cell(seed: int, runs: int, delta: float, traffic: int, delay: int, k: float, world: World, policy: Policy,
             check: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    margin = policy.rule.margin
    new = simulate_new(rng, runs, delta, traffic, delay, k, world, policy)
    old = simulate_today(rng, runs, delta, traffic, delay, world, check)
    gate_cfg = GateConfig(metric="accuracy")
    off_promoted = np.array([gate({"accuracy": world.base_accuracy + o}, {"accuracy": world.base_accuracy}, gate_cfg).accepted
                             for o in new["off"]])
    out: dict[str, Any] = {"delta": delta, "traffic": traffic, "delay": delay, "k": k}
    for name, promoted, day, extra in (
        ("new", new["action"] == PROMOTE, new["day"],
         _extra_errors(delta, traffic, new["action"] == PROMOTE, new["day"])),
        ("today", old["action"] == PROMOTE, old["day"],
         _extra_errors(delta, traffic, old["action"] == PROMOTE, old["day"],
                       ab_len=np.where(old["ab"], old["day"] - old["shadow_days"], 0))),
        ("offline", off_promoted, np.zeros(runs, dtype=int), _extra_errors(delta, traffic, off_promoted, np.zeros(runs))),
    ):
        out[name] = {
            "promoted": float(promoted.mean()),
            "wrong_promotions": float(promoted.mean()) if delta < -margin else None,
            "missed_promotions": float(1 - promoted.mean()) if delta > margin else None,
            "median_days": float(np.median(day)),
            "extra_errors": float(extra.mean()),
        }
    return out


def run(runs: int, world: World, policy: Policy, seed: int = 2026, check: bool = True) -> list[dict[str, Any]]:
    cells = []
    i = 0
    for delta in DELTAS:
        for traffic in TRAFFIC:
            for delay in DELAYS:
                for k in TRANSFERS:
                    cells.append(run_cell(seed + i, runs, delta, traffic, delay, k, world, policy, check))
                    i += 1
    return cells


# -- report ----------------------------------------------------------------------------------------


def goals(cells: list[dict[str, Any]]) -> dict[str, Any]:
    wrong = [c for c in cells if c["new"]["wrong_promotions"] is not None and c["new"]["wrong_promotions"] > 0.05]
    worse = [c for c in cells if c["new"]["extra_errors"] > c["today"]["extra_errors"] + 1e-9]
    half = [c for c in cells if c["traffic"] <= 1000 and c["new"]["extra_errors"] > 0.5 * c["today"]["extra_errors"] + 1e-9]
    key = lambda c: f"Δ{c['delta']:+.2f} T{c['traffic']} d{c['delay']} k{c['k']:+g}"  # noqa: E731
    return {
        "cells": len(cells),
        "wrong_promotions_over_5pct": [key(c) for c in wrong],
        "extra_errors_above_today": [key(c) for c in worse],
        "extra_errors_above_half_today_at_le_1000": [key(c) for c in half],
        "total_extra_errors": {r: sum(c[r]["extra_errors"] for c in cells) for r in ("new", "today", "offline")},
    }


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "   -" if x is None else format(x, spec)


def print_table(cells: list[dict[str, Any]]) -> None:
    print(f"{'Δ':>6} {'T/day':>5} {'lag':>3} {'k':>4} | {'new: wrong miss days  extra':>28} | "
          f"{'today: wrong miss days  extra':>30} | {'offline: wrong miss  extra':>26} | new/today")
    for c in cells:
        n, t, o = c["new"], c["today"], c["offline"]
        ratio = "  -" if t["extra_errors"] == 0 else f"{n['extra_errors'] / t['extra_errors']:.2f}"
        print(f"{c['delta']:+6.2f} {c['traffic']:5d} {c['delay']:3d} {c['k']:+4.1f} | "
              f"{_fmt(n['wrong_promotions']):>6} {_fmt(n['missed_promotions']):>5} {n['median_days']:4.0f} {n['extra_errors']:7.0f} | "
              f"{_fmt(t['wrong_promotions']):>11} {_fmt(t['missed_promotions']):>5} {t['median_days']:4.0f} {t['extra_errors']:7.0f} | "
              f"{_fmt(o['wrong_promotions']):>13} {_fmt(o['missed_promotions']):>5} {o['extra_errors']:6.0f} | {ratio}")


def print_summary(cells: list[dict[str, Any]]) -> None:
    """By Δ and traffic over both delays and all four transfers: the worst wrong-promotion and
    missed-promotion rates, the mean median day, and mean extra errors per rule (a markdown table)."""
    print("\n| Δ | req/day | new: worst wrong | new: worst missed | new: days | new: extra | today: worst missed "
          "| today: extra | offline only: extra | new / today |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for delta in DELTAS:
        for traffic in TRAFFIC:
            cs = [c for c in cells if c["delta"] == delta and c["traffic"] == traffic]
            def worst(rule: str, key: str) -> str:
                vals = [c[rule][key] for c in cs if c[rule][key] is not None]
                return "-" if not vals else f"{max(vals):.1%}"
            mean = lambda rule, key: float(np.mean([c[rule][key] for c in cs]))  # noqa: E731
            new, old, off = mean("new", "extra_errors"), mean("today", "extra_errors"), mean("offline", "extra_errors")
            ratio = "-" if old == 0 else f"{new / old:.2f}"
            print(f"| {delta:+.2f} | {traffic} | {worst('new', 'wrong_promotions')} | {worst('new', 'missed_promotions')} | "
                  f"{mean('new', 'median_days'):.0f} | {new:.0f} | {worst('today', 'missed_promotions')} | {old:.0f} | "
                  f"{off:.0f} | {ratio} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="20 runs per cell: seconds, for CI")
    ap.add_argument("--runs", type=int, default=500, help="rollouts simulated per cell (default 500)")
    ap.add_argument("--json", metavar="FILE", help="write every cell's figures and the goals as JSON")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--kappa", type=float, default=None)
    ap.add_argument("--tau", type=float, default=None)
    ap.add_argument("--margin", type=float, default=None)
    ap.add_argument("--max-loss", type=float, default=None)
    ap.add_argument("--min-labelled", type=int, default=None)
    ap.add_argument("--max-days", type=int, default=None)
    ap.add_argument("--no-proxy", action="store_true", help="labelled pairs only (no PPI)")
    ap.add_argument("--label-share", type=float, default=1.0, help="share of requests ever labelled (default 1)")
    args = ap.parse_args(argv)
    runs = 20 if args.smoke else args.runs
    base = Policy()
    rule = DecisionRule(
        margin=base.rule.margin if args.margin is None else args.margin,
        p_worse_max=base.rule.p_worse_max,
        max_expected_loss=base.rule.max_expected_loss if args.max_loss is None else args.max_loss,
        p_harm_reject=base.rule.p_harm_reject,
        min_labelled=base.rule.min_labelled if args.min_labelled is None else args.min_labelled,
    )
    policy = Policy(rule=rule, kappa=base.kappa if args.kappa is None else args.kappa,
                    tau=base.tau if args.tau is None else args.tau,
                    max_days=base.max_days if args.max_days is None else args.max_days, use_proxy=not args.no_proxy)
    world = World(label_share=args.label_share)
    started = time.perf_counter()
    cells = run(runs, world, policy, seed=args.seed)
    took = time.perf_counter() - started
    print_table(cells)
    print_summary(cells)
    g = goals(cells)
    print(f"\n{runs} runs per cell, {len(cells)} cells, {took:.0f} s; policy: {asdict(policy)}")
    print(f"total extra errors over {HORIZON} days: new {g['total_extra_errors']['new']:.0f}, today "
          f"{g['total_extra_errors']['today']:.0f}, offline gate only {g['total_extra_errors']['offline']:.0f}")
    for name, bad in (("wrong promotions <= 5% in every cell", g["wrong_promotions_over_5pct"]),
                      ("extra errors <= today's in every cell", g["extra_errors_above_today"]),
                      ("extra errors <= half of today's where traffic <= 1000/day", g["extra_errors_above_half_today_at_le_1000"])):
        print(f"goal {name}: {'met' if not bad else f'MISSED in {len(bad)} cells: ' + ', '.join(bad)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": " ".join(["python", "bench/rollout_decisions.py", *(argv or sys.argv[1:])]),
                       "runs": runs, "policy": asdict(policy), "world": asdict(world), "cells": cells, "goals": g}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
