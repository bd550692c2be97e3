"""Checking a fleet: each model's own policy, batched reads, and a fleet-level false-retrain control.

:func:`check_batch` runs :func:`~retrainer.triggers.check.run_check` (the very function behind
``retrainer check``) for hundreds of models on one :class:`BatchStore`: the batch's champions,
ingest-time histograms and last retrains are read in a few queries up front, the audit rows are
written in one transaction at the end, and models sharing triggers and policy share one built
policy. A model's check is unchanged; only its reads are shared.

:func:`fleet_control` then keeps a fleet of quiet models from retraining on noise. Each trigger
that is a statistical test reports a p-value (``evidence["pvalue"]``): ``drift`` the smallest
Benjamini-Hochberg adjusted p-value over its features (the Simes p-value of "no feature drifted"),
``performance`` the Bonferroni combination over its metrics of each metric's one-sided p-value for
"this metric is at least its floor + tolerance" (the p-value of its own cut: it fired exactly when
that p is below its level), ``estimated_performance`` the Bonferroni combination of its lines'
normal tails ("the window's realized metric is at least this line"). A model's p-value combines
its triggers' p-values for what its policy needs: Simes' combination when one fire is enough
(``mode: any``), the partial conjunction p-value of Benjamini & Heller when ``k`` tests must fire
(``at_least``; ``all``: the largest p), less any fires of triggers that are no test.
Benjamini-Hochberg at the fleet's rate over every model that has one decides which fired models
may retrain: of the retrains requested, the expected share asked for by noise is at most the rate.
A held-back model's ``why`` names the triggers whose tests fired and their p-values.

Triggers without a p-value (``schedule``, ``model_age``, ``data_volume``, a nested policy, an error
counted as fired) are not statistical tests: a model whose policy fired on them alone (as many of
them as its policy needs) is not held back, and the summary says so; one that needed a test's fire
as well goes through the control. Nothing here changes what a single model's ``check`` answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from retrainer.config import RetrainerConfig
from retrainer.errors import RetrainerError
from retrainer.fleet_config import policy_key
from retrainer.stats.multiple import benjamini_hochberg, partial_conjunction
from retrainer.triggers.check import run_check
from retrainer.triggers.policy import CheckResult, Policy, build_policy
from retrainer.windows import HistogramWindow

if TYPE_CHECKING:
    from retrainer.store import Store


@dataclass
class ModelCheck:
    """One model's check in a fleet cycle, then its fleet outcome."""

    model: str
    should_retrain: bool = False
    reasons: list[str] = field(default_factory=list)
    pvalue: float | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    check_id: str = ""
    outcome: str = ""  # fired | held_back | quiet | error
    why: str = ""
    adjusted_pvalue: float | None = None
    pvalues: dict[str, float] = field(default_factory=dict)  # per trigger that reports one
    untested: list[str] = field(default_factory=list)  # fired triggers that are no statistical test
    needed: int = 1  # fired triggers the model's policy needs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tests_needed(self) -> int:
        """How many of its tests the policy needs to have found something, beyond its untested fires."""
        return min(max(1, self.needed - len(self.untested)), max(1, len(self.pvalues)))

    @property
    def combination(self) -> str:
        """How the model's p-value combines its tests' (as the summary says it)."""
        k, m = self.tests_needed, len(self.pvalues)
        if k == 1:
            return "Simes"
        return "the largest: every test needed" if k == m else f"partial conjunction: {k} of {m} tests needed"


def simes(pvalues: Sequence[float]) -> float:
    """Simes' combination ``min_i m p_(i) / i``: a valid p-value for "none of these fired for real"."""
    return partial_conjunction(pvalues, 1)


def trigger_pvalues(children: Sequence[Any]) -> dict[str, float]:
    """Each decided trigger's p-value, by label (the triggers that are statistical tests)."""
    return {d.trigger: float(d.evidence["pvalue"]) for d in children
            if d.status in ("fired", "ok") and isinstance(d.evidence.get("pvalue"), (int, float))}


class BatchStore:
    """A :class:`~retrainer.store.Store` whose reads for one batch of models were made up front.

    Serves what ``run_check`` asks per model from the prefetched answers (champion, frozen bins,
    the drift window's counts, last retrain), collects the audit rows, and hands anything else
    (raw windows, labels, profiles, a re-bin) to the store.
    """

    def __init__(self, store: Store, models: Sequence[str], now: datetime, windows: Mapping[str, timedelta]) -> None:
        self._store = store
        self._champions = store.champions(models)
        self._last = store.last_retrains(list(models))
        self._counted: dict[tuple[str, datetime, datetime], HistogramWindow] = {}
        by_window: dict[timedelta, dict[str, str]] = {}
        for model, window in windows.items():
            if model in self._champions:
                by_window.setdefault(window, {})[model] = self._champions[model]
        for window, champions in by_window.items():
            start = now - window
            for model, counted in store.fleet_histograms(champions, start, now).items():
                if counted is not None:
                    self._counted[(model, start, now)] = counted
        self.audit: list[tuple[str, datetime, Sequence[Mapping[str, Any]]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def champion(self, model_name: str) -> str | None:
        return self._champions.get(model_name)

    def last_retrain_at(self, model_name: str) -> datetime | None:
        return self._last.get(model_name)

    def ensure_histograms(self, model_name: str, version: str, **kwargs: Any) -> Any:
        for (model, _, _), counted in self._counted.items():
            if model == model_name and counted.version == version:
                return counted  # has what run_check reads of it: registered_at
        return self._store.ensure_histograms(model_name, version, **kwargs)  # a new champion: re-bin once

    def feature_histograms(self, model_name: str, version: str, start: datetime, end: datetime,
                           columns: Sequence[str] | None = None) -> HistogramWindow | None:
        counted = self._counted.get((model_name, start, end))
        if counted is None or counted.version != version:
            return self._store.feature_histograms(model_name, version, start, end, columns)
        if columns is None:
            return counted
        keep = [c for c in columns if c in counted.bins]
        return HistogramWindow(counted.start, counted.end, counted.version, {c: counted.bins[c] for c in keep},
                               {c: counted.histograms[c] for c in keep}, counted.registered_at)

    def record_evaluations(self, model_name: str, evaluated_at: datetime, rows: Sequence[Mapping[str, Any]]) -> int:
        self.audit.append((model_name, evaluated_at, list(rows)))
        return len(rows)

    def flush(self) -> int:
        """Write the batch's audit rows in one transaction."""
        written = self._store.record_evaluations_many(self.audit) if self.audit else 0
        self.audit = []
        return written


def drift_window(cfg: RetrainerConfig) -> timedelta | None:
    """The window of the model's first drift trigger (what the batch prefetches counts for)."""
    from retrainer.durations import parse_duration

    for t in cfg.triggers:
        if t.type == "drift":
            window = t.params.get("window", "1d")
            return window if isinstance(window, timedelta) else parse_duration(str(window))
    return None


def model_check(model: str, result: CheckResult, check_id: str = "") -> ModelCheck:
    """A model's check as the fleet control reads it: its verdict, its triggers' p-values (and
    their combination for what its policy needs), and which fired triggers are no statistical test."""
    pvalues = trigger_pvalues(result.children)
    # The evidence stays in the audit rows (check_id): a cycle's summary carries the verdicts only.
    checks = {d.trigger: {"fired": d.fired, "status": d.status, "value": d.value, "threshold": d.threshold,
                          "reason": d.reason, "pvalue": pvalues.get(d.trigger)} for d in result.children}
    c = ModelCheck(model, bool(result.should_retrain), list(result.reasons), None, checks, None, check_id,
                   pvalues=pvalues, untested=[t for t in result.counted if t not in pvalues],
                   needed=int(result.raw.evidence.get("needed", 1)))
    # The tests must supply what the policy needs beyond its untested fires: "fewer than that many of
    # them found something" is the null (mode any: Simes; mode all: the largest p).
    c.pvalue = partial_conjunction(list(pvalues.values()), c.tests_needed) if pvalues else None
    return c


def check_batch(configs: Sequence[RetrainerConfig], store: Store, *, now: datetime,
                policies: dict[str, Policy] | None = None, write_audit: bool = True) -> list[ModelCheck]:
    """Every model's own check (its policy, its audit rows), on reads shared by the batch.

    A model whose check fails is reported with its error; it does not sink the batch."""
    policies = {} if policies is None else policies
    windows = {c.model.name: w for c in configs if (w := drift_window(c)) is not None}
    view = BatchStore(store, [c.model.name for c in configs], now, windows)
    out = []
    for cfg in configs:
        try:
            key = policy_key(cfg)
            if key not in policies:
                policies[key] = build_policy(cfg)
            result = run_check(cfg, store=view, now=now, policy=policies[key], write_audit=write_audit)  # type: ignore[arg-type]
        except RetrainerError as exc:
            out.append(ModelCheck(cfg.model.name, error=f"{type(exc).__name__}: {exc}", outcome="error", why=str(exc)))
            continue
        out.append(model_check(cfg.model.name, result, result.check_id))
    if write_audit:
        view.flush()
    return out


@dataclass
class FleetSummary:
    """One fleet cycle: every model's outcome and the fleet control's figures."""

    fleet: str
    checked_at: str
    control: str
    rate: float
    n_models: int
    n_tested: int
    bh_cutoff: float | None
    fired: list[str]
    held_back: list[str]
    errors: list[str]
    checks: list[ModelCheck]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["n_fired"], out["n_held_back"], out["n_errors"] = len(self.fired), len(self.held_back), len(self.errors)
        out["n_own_verdict_fired"] = len(self.fired) + len(self.held_back)
        return out


def fleet_control(checks: Sequence[ModelCheck], *, rate: float = 0.05, control: str = "bh", fleet: str = "fleet",
                  checked_at: datetime | None = None) -> FleetSummary:
    """Decide which fired models retrain: Benjamini-Hochberg at ``rate`` over the models' p-values."""
    tested = [c for c in checks if c.pvalue is not None and c.error is None]
    cutoff: float | None = None
    if tested:
        rejected, adjusted = benjamini_hochberg([c.pvalue for c in tested], alpha=rate)  # type: ignore[misc]
        for c, adj, rej in zip(tested, adjusted, rejected, strict=True):
            c.adjusted_pvalue = float(adj)
        k = int(rejected.sum())
        cutoff = k / len(tested) * rate if k else None
        discovered = {id(c) for c, rej in zip(tested, rejected, strict=True) if rej}
    else:
        discovered = set()
    fired, held, errors = [], [], []
    m = len(tested)
    for c in checks:
        if c.error is not None:
            errors.append(c.model)
            c.outcome = "error"
            continue
        if not c.should_retrain:
            c.outcome, c.why = "quiet", "its policy did not fire"
            continue
        if c.pvalue is None:
            c.outcome, c.why = "fired", "no trigger of it reports a p-value (not a statistical test): not subject to the fleet control"
        elif c.untested and len(c.untested) >= c.needed:
            c.outcome, c.why = "fired", (f"fired by {', '.join(c.untested)}, not a statistical test, which its policy "
                                         "needs no more of: not subject to the fleet control")
        elif control == "none":
            c.outcome, c.why = "fired", f"fleet control off ({_tests(c)})"
        elif id(c) in discovered:
            c.outcome, c.why = "fired", (f"{_tests(c)}, BH-adjusted {c.adjusted_pvalue:.3g} <= {rate:g} "
                                         f"over {m} models")
        else:
            c.outcome = "held_back"
            c.why = (f"held back by the fleet control: {_tests(c)}, BH-adjusted {c.adjusted_pvalue:.3g} > {rate:g} "
                     f"over {m} models: its own test fired, but at this fleet size that many quiet models fire "
                     "by chance")
        (fired if c.outcome == "fired" else held).append(c.model)
    at = "" if checked_at is None else checked_at.isoformat()
    return FleetSummary(fleet, at, control, rate, len(checks), m, cutoff, fired, held, errors, list(checks))


def _tests(c: ModelCheck) -> str:
    """The fired tests and the model's p-value, as the summary's ``why`` says them:
    "performance's test p = 0.004 (model p = 0.008, Simes with drift p = 0.61)"."""
    fired = [t for t in c.reasons if t in c.pvalues]
    if not fired:  # a check built by hand (tests, an older summary): the model's p only
        return f"p = {c.pvalue:.3g}"
    tests = ", ".join(f"{t}'s test p = {c.pvalues[t]:.3g}" for t in fired)
    others = [t for t in c.pvalues if t not in fired]
    if not others:
        return tests if len(fired) == 1 else f"{tests} (model p = {c.pvalue:.3g}, {c.combination})"
    rest = ", ".join(f"{t} p = {c.pvalues[t]:.3g}" for t in others)
    return f"{tests} (model p = {c.pvalue:.3g}, {c.combination} with {rest})"


def summary_markdown(summary: FleetSummary, *, limit: int = 50) -> str:
    """The fleet cycle as markdown: the figures, then the models that fired or were held back."""
    lines = [
        f"### retrainer fleet `{summary.fleet}` at {summary.checked_at}", "",
        f"{summary.n_models} models checked; {len(summary.fired)} retrain requests; {len(summary.held_back)} held back "
        f"by the fleet control ({summary.control}, rate {summary.rate:g}, {summary.n_tested} models with a p-value); "
        f"{len(summary.errors)} errors.", "",
        "| model | outcome | p | adjusted p | reasons | why |", "|---|---|---|---|---|---|",
    ]
    shown = [c for c in summary.checks if c.outcome in ("fired", "held_back", "error")][:limit]
    for c in shown:
        p = "" if c.pvalue is None else f"{c.pvalue:.3g}"
        adj = "" if c.adjusted_pvalue is None else f"{c.adjusted_pvalue:.3g}"
        why = (c.why or "").replace("|", "\\|")
        lines.append(f"| {c.model} | {c.outcome} | {p} | {adj} | {', '.join(c.reasons)} | {why} |")
    more = sum(c.outcome in ("fired", "held_back", "error") for c in summary.checks) - len(shown)
    if more > 0:
        lines.append(f"\n... and {more} more (the flow's return value has every model).")
    return "\n".join(lines)


__all__ = ["BatchStore", "FleetSummary", "ModelCheck", "check_batch", "drift_window", "fleet_control", "model_check",
           "simes", "summary_markdown", "trigger_pvalues"]
