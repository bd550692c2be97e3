"""The shadow's evidence: paired comparisons on the same requests, plain functions over stored rows.

Both models answer every mirrored request, so everything here is *paired* (challenger minus
champion on the same request), never two independent samples:

* **labelled pairs** — where the request's label has matured (known at ``now``), the difference
  of correctness ``1[chal right] - 1[champ right]`` in {-1, 0, 1}; nothing is judged from a label
  that has not arrived;
* **label-free pairs** — on *every* shadowed request, each version's calibrated probability of
  being right (each version's own calibration map, fitted at its registration, as the
  ``estimated_performance`` trigger uses the champion's): ``p_right = p`` where the model said
  positive, ``1 - p`` where it said negative, and the proxy difference
  ``p_right(chal) - p_right(champ)``.

The two combine by prediction-powered inference (PPI++: :func:`retrainer.stats.paired.ppi_paired_difference`):
the proxy's mean over all requests, corrected by the labelled pairs' mean residual, so a few
labels give a tight interval that stays valid when the calibration is off. Without a usable map
for both versions the estimate is the labelled pairs' alone.

Guardrails, judged once ``shadow.min_comparisons`` requests were compared (each rejects):

* **serving_errors** — the challenger's failures on the shadowed requests, by a one-sided
  two-proportion z-test at ``shadow.error_alpha`` against the champion (which answered all of them);
* **latency** — the challenger's p99 within ``shadow.max_latency_ratio`` x the champion's p99 on the
  same requests (+ ``rollout.latency_slack_ms``): a ratio, never a wall-clock figure; the median
  until both have ``P99_MIN_CALLS`` calls (a p99 of a few hundred calls is one slow call);
* **agreement_floor** — a challenger agreeing with the champion on fewer than
  ``shadow.agreement_floor`` of the requests is broken. A sanity floor, not a quality line: a
  better model after drift disagrees with a stale champion by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.shadow_report import latency_percentiles
from retrainer.errors import StatisticsError
from retrainer.stats.calibration import CalibrationMap
from retrainer.stats.paired import Estimate, paired_difference, ppi_paired_difference
from retrainer.stats.proportions import two_proportion_ztest
from retrainer.store.records import ShadowWindow

POSITIVE = 1.0  # the class a binary classifier's score and calibration map are about (labels 0/1)
MIN_LABELLED_PAIRS = 30  # fewer matured pairs than this say nothing about the variance: the prior decides


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class ShadowPairs:
    """The paired differences of one shadow: labelled (with their proxy) and label-free."""

    compared: int  # requests both models answered
    failures: int  # requests the challenger failed on
    agreement: float | None
    labelled_diff: np.ndarray
    labelled_proxy_diff: np.ndarray | None  # None: no label-free pairs (no usable calibration)
    unlabelled_proxy_diff: np.ndarray | None
    proxy_note: str | None = None  # why there are no label-free pairs

    @property
    def n_labelled(self) -> int:
        return int(self.labelled_diff.size)

    @property
    def n_unlabelled(self) -> int:
        return 0 if self.unlabelled_proxy_diff is None else int(self.unlabelled_proxy_diff.size)


@dataclass(frozen=True)
class OnlineEvidence:
    """What a stage measured: the paired estimate of delta (or None), its pair counts, the
    guardrails (judged or not yet) and the facts behind them."""

    estimate: Estimate | None
    n_labelled: int
    n_unlabelled: int
    checks: list[Check] = field(default_factory=list)
    guardrails_judged: bool = False
    not_ready: list[str] = field(default_factory=list)  # why a promotion must wait (judged guardrails, duration)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def guardrail_failure(self) -> str | None:
        bad = [c for c in self.checks if not c.passed]
        return "; ".join(f"{c.name}: {c.reason}" for c in bad) or None

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": None if self.estimate is None else self.estimate.to_dict(),
                "n_labelled": self.n_labelled, "n_unlabelled": self.n_unlabelled,
                "checks": [asdict(c) for c in self.checks], "guardrails_judged": self.guardrails_judged,
                "not_ready": list(self.not_ready), "facts": dict(self.facts)}


def p_right(cal: CalibrationMap, score: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Calibrated probability that each answer is right: P(positive) where the model said positive,
    1 - P(positive) where it said negative (binary 0/1 answers)."""
    p = cal.apply(score)
    return np.where(prediction == POSITIVE, p, 1.0 - p)


def shadow_pairs(w: ShadowWindow, *, champion_cal: CalibrationMap | None, challenger_cal: CalibrationMap | None) -> ShadowPairs:
    """The paired differences of a shadow's comparisons ``w`` (labels as known at the caller's ``now``)."""
    ok = ~w.failed & np.isfinite(w.shadow_prediction)
    champ, chal, label = w.champion_prediction[ok], w.shadow_prediction[ok], w.label[ok]
    known = np.isfinite(label)
    labelled = (chal[known] == label[known]).astype(np.float64) - (champ[known] == label[known]).astype(np.float64)
    agreement = float(np.mean(champ == chal)) if ok.any() else None
    proxy, note = _proxy_diff(champ, chal, w.champion_score[ok], w.shadow_score[ok], champion_cal, challenger_cal)
    return ShadowPairs(
        compared=int(ok.sum()), failures=int(w.failed.sum()), agreement=agreement, labelled_diff=labelled,
        labelled_proxy_diff=None if proxy is None else proxy[known],
        unlabelled_proxy_diff=None if proxy is None else proxy[~known], proxy_note=note)


def _proxy_diff(champ: np.ndarray, chal: np.ndarray, champ_score: np.ndarray, chal_score: np.ndarray,
                champion_cal: CalibrationMap | None, challenger_cal: CalibrationMap | None) -> tuple[np.ndarray | None, str | None]:
    if champion_cal is None or challenger_cal is None:
        which = " and ".join(w for w, c in (("champion", champion_cal), ("challenger", challenger_cal)) if c is None)
        return None, f"no calibration map for the {which} (binary classifiers with predict_proba only): labelled pairs only"
    if champ.size == 0:
        return None, "no compared request"
    if np.any(~np.isin(champ, (0.0, 1.0))) or np.any(~np.isin(chal, (0.0, 1.0))):
        return None, "not a binary 0/1 classifier: labelled pairs only"
    if not (np.isfinite(champ_score).all() and np.isfinite(chal_score).all()):
        return None, "scores missing on some compared requests: labelled pairs only"
    return p_right(challenger_cal, chal_score, chal) - p_right(champion_cal, champ_score, champ), None


def paired_estimate(pairs: ShadowPairs) -> Estimate | None:
    """Delta from the pairs: PPI++ over labelled and label-free pairs, or the labelled pairs alone
    (no usable calibration); None below :data:`MIN_LABELLED_PAIRS` matured pairs (the prior decides)."""
    if pairs.n_labelled < MIN_LABELLED_PAIRS:
        return None
    if pairs.labelled_proxy_diff is None or pairs.unlabelled_proxy_diff is None:
        return paired_difference(pairs.labelled_diff, np.zeros_like(pairs.labelled_diff))
    return ppi_paired_difference(pairs.labelled_diff, pairs.labelled_proxy_diff, pairs.unlabelled_proxy_diff)


def shadow_evidence(
    cfg: RetrainerConfig, w: ShadowWindow, *, champion_cal: CalibrationMap | None, challenger_cal: CalibrationMap | None,
) -> OnlineEvidence:
    """The shadow's estimate of delta and its guardrails (see the module doc) from its comparisons
    ``w`` (:meth:`retrainer.store.Store.shadow_window`, labels as known at the look's ``now``)."""
    sh = cfg.rollout.shadow
    pairs = shadow_pairs(w, champion_cal=champion_cal, challenger_cal=challenger_cal)
    n = len(w)
    facts: dict[str, Any] = {"requests": n, "compared": pairs.compared, "failures": pairs.failures,
                             "agreement": pairs.agreement, "label_free": pairs.proxy_note or "calibrated p_right pairs"}
    judged = n >= sh.min_comparisons
    checks = [] if not judged else [
        _serving_errors(n, pairs.failures, sh.error_alpha),
        _latency(w, sh.max_latency_ratio, cfg.rollout.latency_slack_ms),
        _agreement_floor(pairs.agreement, sh.agreement_floor),
    ]
    not_ready = [] if judged else [f"shadow.min_comparisons: {n} of {sh.min_comparisons} requests compared "
                                   "(guardrails not judged yet)"]
    return OnlineEvidence(paired_estimate(pairs), pairs.n_labelled, pairs.n_unlabelled, checks, judged, not_ready, facts)


def _serving_errors(n: int, failures: int, alpha: float) -> Check:
    rate = f"challenger failed {failures}/{n} requests the champion answered"
    try:
        _, p = two_proportion_ztest(0, n, failures, n, alternative="larger")
    except StatisticsError:  # no failure at all: nothing to test
        return Check("serving_errors", True, None, alpha, f"{rate}")
    ok = p >= alpha
    verdict = "not significantly" if ok else "significantly"
    return Check("serving_errors", ok, p, alpha, f"{rate}: {verdict} more than the champion (one-sided p={p:.3g}, alpha {alpha})")


# A p99 from fewer calls than this is the slowest one or two calls: one scheduler hiccup on a busy
# host (the shadow runs in its own, lower-priority process) would reject a model as fast as the
# champion. Below it the guardrail judges the median, which a few slow calls cannot move.
P99_MIN_CALLS = 1_000


def _latency(w: ShadowWindow, ratio: float, slack_ms: float) -> Check:
    shadow_ms = w.latency_ms[~w.failed & np.isfinite(w.latency_ms)]
    champion_ms = w.champion_latency_ms[np.isfinite(w.champion_latency_ms)]
    which = "p99" if min(shadow_ms.size, champion_ms.size) >= P99_MIN_CALLS else "p50"
    shadow, champion = latency_percentiles(shadow_ms)[which], latency_percentiles(champion_ms)[which]
    name = {"p99": "p99 latency", "p50": f"median latency (p99 once both have {P99_MIN_CALLS:,} calls)"}[which]
    if shadow is None or champion is None:
        return Check("latency", True, None, None, "latency: not recorded for both models, not judged")
    bound = ratio * champion + slack_ms
    ok = shadow <= bound
    return Check("latency", ok, shadow, bound, f"{name} {shadow:.2f} ms {'<=' if ok else '>'} {ratio:g} x "
                 f"champion's {champion:.2f} ms + {slack_ms:g} ms")


def _agreement_floor(rate: float | None, floor: float) -> Check:
    if rate is None:
        return Check("agreement_floor", False, None, floor, "the challenger answered no request successfully")
    ok = rate >= floor
    why = "" if ok else " (a broken model: the floor is a sanity check, not a quality line)"
    return Check("agreement_floor", ok, rate, floor, f"agreement {rate:.1%} {'>=' if ok else '<'} floor {floor:.1%}{why}")


__all__ = ["MIN_LABELLED_PAIRS", "Check", "OnlineEvidence", "ShadowPairs", "p_right",
           "paired_estimate", "shadow_evidence", "shadow_pairs"]
