"""The demo's release manager: shadow for a day, then an A/B test, then promotion (or not).

It makes the calls a person would make with ``retrainer shadow report``, ``retrainer ab start``,
``retrainer ab analyze`` and ``retrainer ab stop``, through the same functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.config import RetrainerConfig
from retrainer.deployments.analysis import analyze
from retrainer.deployments.promotion import reject
from retrainer.deployments.rollout import shadow_state, start_ab, stop_ab, stop_shadow
from retrainer.deployments.shadow_report import summarize
from retrainer.registry import Registry

if TYPE_CHECKING:
    from retrainer.store import Store

ACTOR = "demo"


class Rollout:
    def __init__(self, cfg: RetrainerConfig, store: Store, config_path: Path) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = Registry.from_config(cfg)
        self.name = cfg.model.name
        self.shadow_since: datetime | None = None

    def active(self) -> bool:
        """A challenger is in shadow or in an A/B test: no new retrain until it is decided."""
        return self.store.active_ab_test(self.name) is not None or self.shadow_since is not None

    def begin_shadow(self, now: datetime, version: str) -> list[str]:
        # The retrain flow (rollout.mode: shadow) has already put the challenger in shadow.
        self.shadow_since = now
        return [f"version {version} in shadow"]

    def advance(self, now: datetime, max_ab_days: int, result: Any) -> list[str]:
        events: list[str] = []
        if self.shadow_since is not None and now - self.shadow_since >= self.cfg.rollout.shadow.duration:
            events += self._review_shadow(now, result)
        test = self.store.active_ab_test(self.name)
        if test is not None:
            events += self._review_ab(test, now, max_ab_days, result)
        return events

    def _review_shadow(self, now: datetime, result: Any) -> list[str]:
        version = shadow_state(self.cfg, self.store, self.registry).version
        stats = summarize(self.store.shadow_rows(self.name, since=self.shadow_since, shadow_version=version))
        summary = stats.get(str(version), {"n": 0, "agreement_rate": None})
        result.shadow.append({"version": version, "at": now.isoformat(), **summary})
        stop_shadow(self.cfg, self.store, self.registry, actor=ACTOR, at=now,
                    reason=f"shadow review: {summary['n']} comparisons, agreement {summary['agreement_rate']}")
        self.shadow_since = None
        agreement = summary["agreement_rate"]
        if summary["n"] == 0 or agreement is None or agreement < self.cfg.rollout.shadow.min_agreement:
            reject(self.registry, self.store, version=str(version), actor=ACTOR, at=now,
                   reason=f"shadow agreement {agreement} below {self.cfg.rollout.shadow.min_agreement}")
            return [f"shadow of version {version} rejected (agreement {agreement})"]
        test = start_ab(self.cfg, self.store, self.registry, challenger=str(version), actor=ACTOR, at=now)
        return [f"shadow of version {version}: {summary['n']} comparisons, agreement {agreement:.1%}; "
                f"A/B test {test.id} started ({test.split:.0%} to the challenger)"]

    def _review_ab(self, test: Any, now: datetime, max_ab_days: int, result: Any) -> list[str]:
        analysis = analyze(self.store, test, gate=self.cfg.gate, as_of=now)
        result.ab.append({"at": now.isoformat(), **analysis.to_dict()})
        if analysis.verdict == "promote_challenger":
            stopped = stop_ab(self.cfg, self.store, self.registry, promote=True, actor=ACTOR, at=now)
            return [f"A/B test {test.id}: {analysis.decision.reason} -> challenger {test.challenger_version} "
                    f"{stopped.status}"]
        if analysis.verdict == "keep_champion" or now - test.started_at >= timedelta(days=max_ab_days):
            stop_ab(self.cfg, self.store, self.registry, promote=False, actor=ACTOR, at=now)
            reject(self.registry, self.store, version=test.challenger_version, actor=ACTOR, at=now,
                   reason=f"A/B test {test.id}: {analysis.verdict}")
            return [f"A/B test {test.id} stopped ({analysis.verdict}); champion {test.champion_version} stays"]
        return []
