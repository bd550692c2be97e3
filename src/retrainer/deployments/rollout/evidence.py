"""The evidence a rollout stage is judged on: plain functions over stored rows, no I/O.

Shadow (:func:`judge_shadow`) is read from the stored comparisons of the challenger against the
champion on the *same* requests, so every check is side by side:

* **agreement** — share of requests where both answered the same, >= ``shadow.agreement_floor``;
* **error rate** — an error is a request the model failed on, or answered wrongly where its label
  is known. The challenger must not be worse by a one-sided two-proportion z-test at
  ``shadow.error_alpha`` (a single bad point is not evidence, a significant excess is);
* **latency** — the challenger's p99 within ``shadow.max_latency_ratio`` x the champion's p99
  (+ ``rollout.latency_slack_ms``: sub-millisecond models jitter).

It waits (``passed`` None) until ``shadow.duration`` has passed and ``shadow.min_comparisons``
requests were compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.shadow_report import summarize
from retrainer.errors import StatisticsError
from retrainer.stats.proportions import two_proportion_ztest

Outcome = Literal["wait", "pass", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class StageVerdict:
    """What the evidence says about one stage: wait (and for what), pass, or fail (naming the checks)."""

    outcome: Outcome
    reason: str
    checks: list[Check] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def error_counts(rows: Sequence[Any], labels: Mapping[str, float]) -> tuple[int, int, int]:
    """(requests, champion errors, challenger errors) on the same shadowed requests.

    A challenger failure (``error`` set) counts as an error; so does a wrong answer of either
    model where the request's label is known. The champion answered every stored request.
    """
    champion = challenger = 0
    for r in rows:
        label = labels.get(r.request_id)
        if label is not None and r.champion_prediction != label:
            champion += 1
        if r.error is not None or (label is not None and r.shadow_prediction != label):
            challenger += 1
    return len(rows), champion, challenger


def judge_shadow(
    cfg: RetrainerConfig, rows: Sequence[Any], labels: Mapping[str, float], *, version: str,
    started_at: datetime, now: datetime,
) -> StageVerdict:
    """Judge the challenger ``version`` from its comparisons since ``started_at`` (see the module doc)."""
    sh = cfg.rollout.shadow
    summary = summarize(rows).get(version) or {"n": 0, "compared": 0, "errors": 0, "agreement_rate": None,
                                                "shadow_latency_ms": {"p99": None}, "champion_latency_ms": {"p99": None}}
    n = int(summary["n"])
    elapsed = now - started_at
    facts = {"comparisons": n, "compared": summary["compared"], "failures": summary["errors"],
             "elapsed_s": elapsed.total_seconds(), "duration_s": sh.duration.total_seconds()}
    waiting = []
    if elapsed < sh.duration:
        waiting.append(f"shadow.duration: {_fmt(sh.duration - elapsed)} more (of {_fmt(sh.duration)})")
    if n < sh.min_comparisons:
        waiting.append(f"shadow.min_comparisons: {n} of {sh.min_comparisons} requests compared")
    if waiting:
        return StageVerdict("wait", "waiting for " + "; ".join(waiting), waiting_for=waiting, facts=facts)

    checks = [_agreement(summary, sh.agreement_floor), _error_rate(rows, labels, sh.error_alpha),
              _latency(summary, sh.max_latency_ratio, cfg.rollout.latency_slack_ms)]
    bad = [c for c in checks if not c.passed]
    if bad:
        return StageVerdict("fail", "shadow failed " + "; ".join(f"{c.name}: {c.reason}" for c in bad), checks, facts=facts)
    return StageVerdict("pass", f"shadow passed on {n} requests: " + "; ".join(c.reason for c in checks), checks, facts=facts)


def _agreement(summary: Mapping[str, Any], minimum: float) -> Check:
    rate = summary["agreement_rate"]
    if rate is None:
        return Check("agreement", False, None, minimum, "the challenger answered no request successfully")
    ok = rate >= minimum
    return Check("agreement", ok, rate, minimum, f"agreement {rate:.1%} {'>=' if ok else '<'} {minimum:.1%}")


def _error_rate(rows: Sequence[Any], labels: Mapping[str, float], alpha: float) -> Check:
    n, champion, challenger = error_counts(rows, labels)
    rates = f"challenger {challenger}/{n} vs champion {champion}/{n}"
    try:
        _, p = two_proportion_ztest(champion, n, challenger, n, alternative="larger")
    except StatisticsError:  # no error at all (or only errors) in both: nothing tells them apart
        return Check("error_rate", True, None, alpha, f"error rate {rates}: no difference to test")
    ok = p >= alpha
    verdict = "not significantly above" if ok else "significantly above"
    return Check("error_rate", ok, p, alpha, f"error rate {rates}: {verdict} the champion's (one-sided p={p:.3g}, alpha {alpha})")


def _latency(summary: Mapping[str, Any], ratio: float, slack_ms: float) -> Check:
    shadow = summary["shadow_latency_ms"]["p99"]
    champion = summary["champion_latency_ms"]["p99"]
    if shadow is None or champion is None:
        return Check("latency", True, None, None, "p99 latency: not recorded for both models, not judged")
    bound = ratio * champion + slack_ms
    ok = shadow <= bound
    return Check("latency", ok, shadow, bound, f"p99 latency {shadow:.2f} ms {'<=' if ok else '>'} {ratio:g} x "
                 f"champion's {champion:.2f} ms + {slack_ms:g} ms")


def _fmt(d: timedelta) -> str:
    s = int(max(d.total_seconds(), 0))
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60}m"


__all__ = ["Check", "StageVerdict", "error_counts", "judge_shadow"]
