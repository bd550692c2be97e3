"""The rollout state machine: move a model's challenger one step when the evidence allows.

``staged -> shadow -> champion`` (``rollout.mode: auto``, or ``shadow`` with ``shadow.on_pass:
promote``), ``staged -> shadow -> ab -> champion`` (``shadow`` with ``on_pass: ab``), ``staged -> ab
-> champion`` (``ab``, or ``auto`` with ``outcomes_depend_on_predictions``); or ``rejected`` saying
why, or ``aborted`` (by hand, replaced by a newer challenger, or the champion moved meanwhile). A
newer challenger arriving mid-rollout waits ``queued`` or replaces the running one
(``rollout.on_new_challenger``); one staged during a guard window starts when the window ends.

Every stage is judged by the one rule (:mod:`retrainer.deployments.rollout.posterior`, docs/rollout.md):
the prior from the version's offline holdout difference, updated with the stage's paired estimate
(shadow: :mod:`~retrainer.deployments.rollout.evidence`, A/B: :mod:`~retrainer.deployments.rollout.analysis`);
promote, reject (worse, or a guardrail failed), or keep collecting; at ``rollout.decision.max_duration``
by the posterior mean: never rejected because its time ran out. Each look's posterior goes into the
rollout's evidence (and its ``trail``, one entry a day) and into the ledger row of every move.

Every stage move is a compare-and-set on the stored rollout with its ledger row in the same
transaction (``Store.transition_rollout``); the side effects around it (shadow switch, A/B
test, promotion, the guard's shadow) are the functions of :mod:`retrainer.deployments.rollout.stages`
and :mod:`retrainer.deployments.rollout.promotion`, so a step here and the same step by hand cannot differ.
Side effects come first and are idempotent, so a step interrupted halfway is finished by the
next call. Time is the caller's ``now``: nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.analysis import analyze
from retrainer.deployments.rollout.evidence import shadow_evidence
from retrainer.deployments.rollout.posterior import judge, prior_for
from retrainer.deployments.rollout.promotion import promote, reject, resolve_champion
from retrainer.deployments.rollout.stages import shadow_state, shadow_target, start_ab, start_shadow, stop_ab, stop_shadow
from retrainer.errors import RolloutError, StatisticsError
from retrainer.profiles import load_calibration
from retrainer.registry import CHALLENGER

if TYPE_CHECKING:
    from retrainer.registry import Registry
    from retrainer.stats.calibration import CalibrationMap
    from retrainer.store import Store
    from retrainer.store.rollouts import Rollout

ACTOR = "rollout-flow"
Action = Literal["started", "queued", "advanced", "promoted", "rejected", "aborted", "rolled_back", "waiting", "idle"]


@dataclass(frozen=True)
class RolloutStep:
    """What one call did to a model's rollout, or what it waits for."""

    model: str
    action: Action
    explanation: str
    rollout_id: int | None = None
    version: str | None = None
    stage_before: str | None = None
    stage: str | None = None
    waiting_for: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        return self.action not in ("waiting", "idle")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- entering: the retrain flow hands a staged challenger over ------------------------------------


def stage_mode(cfg: RetrainerConfig) -> Literal["shadow", "ab"]:
    """The first stage a new rollout runs (``rollout.resolved_mode``): ``auto`` is a paired shadow,
    or an A/B test where the model's answers change the outcome it is judged on."""
    mode = cfg.rollout.resolved_mode
    if mode not in ("shadow", "ab"):
        raise RolloutError(f"rollout.mode is {mode!r}: only auto, shadow and ab roll out through the rollout flow")
    return mode  # type: ignore[return-value]


def admit_challenger(
    cfg: RetrainerConfig, store: Store, registry: Registry, *, version: str, now: datetime,
    actor: str = ACTOR, run_id: int | None = None,
) -> RolloutStep:
    """Start a rollout of ``version`` (:func:`stage_mode`); with one in flight, queue it or replace
    the running one per ``rollout.on_new_challenger``."""
    name = cfg.model.name
    mode = stage_mode(cfg)
    champion = resolve_champion(registry, store)
    busy = store.rollout_in_flight(name)
    if busy is not None and busy.version == version:
        return _step(busy, "waiting", f"version {version} is already rolling out ({busy.stage})", before=busy.stage)
    if busy is not None and cfg.rollout.on_new_challenger == "queue":
        queued = store.create_rollout(
            name, version=version, champion_version=champion, mode=mode, stage="queued", at=now, actor=actor,
            run_id=run_id, reason=f"version {version} queued behind rollout {busy.id} of version {busy.version} "
            "(rollout.on_new_challenger: queue)")
        return _step(queued, "queued", queued.explanation or "", before=None)
    if busy is not None:
        _abort(cfg, store, registry, busy, now=now, actor=actor,
               reason=f"replaced by version {version} (rollout.on_new_challenger: replace)")
    staged = store.create_rollout(name, version=version, champion_version=champion, mode=mode, stage="staged",
                                  at=now, actor=actor, run_id=run_id,
                                  reason=f"version {version} staged against champion {champion} for {mode}")
    return _enter(cfg, store, registry, staged, now=now, actor=actor)


# -- one step ------------------------------------------------------------------------------------


def advance(cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *, actor: str = ACTOR) -> RolloutStep:
    """Move the model's rollout one step if the evidence allows; otherwise say what it waits for."""
    from retrainer.deployments.rollout.guard import release_guard_shadow

    name = cfg.model.name
    # A champion that breaks in its guard window goes first: a rollback outranks any graduation.
    guarded = guard_champion(cfg, store, registry, now, actor=actor)
    if guarded is not None and guarded.action == "rolled_back":
        return guarded
    release_guard_shadow(cfg, store, registry, now, actor=actor)  # the window is over: the old champion stops
    current = store.rollout_in_flight(name)
    if current is None:
        queued = store.rollouts(name, stages=["queued"])
        if queued and guarded is None:
            return _start_queued(cfg, store, registry, queued[0], now=now, actor=actor)
        if guarded is not None:
            return guarded
        return RolloutStep(name, "idle", f"no rollout of {name!r} is in flight or queued")
    if current.stage == "staged":
        return _enter(cfg, store, registry, current, now=now, actor=actor)
    if current.stage == "shadow":
        return _judge_shadow(cfg, store, registry, current, now=now, actor=actor)
    return _judge_ab(cfg, store, registry, current, now=now, actor=actor)


def abort(
    cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *, reason: str, actor: str,
) -> RolloutStep:
    """Stop the model's rollout in flight (shadow off, A/B test aborted, challenger unstaged)."""
    current = store.rollout_in_flight(cfg.model.name)
    if current is None:
        raise RolloutError(f"no rollout of {cfg.model.name!r} is in flight: nothing to abort")
    return _abort(cfg, store, registry, current, now=now, actor=actor, reason=reason)


def guard_champion(
    cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *, actor: str = ACTOR,
) -> RolloutStep | None:
    """One look at the champion a rollout promoted, during ``rollout.guard.window``
    (:func:`retrainer.deployments.rollout.guard.guard_rollout`); None when nothing is guarded at ``now``."""
    from retrainer.deployments.rollout.guard import guard_rollout

    outcome = guard_rollout(cfg, store, registry, now, actor=actor)
    if outcome is None:
        return None
    r = store.rollout(outcome.rollout_id)
    if outcome.action == "rolled_back":
        return RolloutStep(cfg.model.name, "rolled_back", outcome.explanation, rollout_id=outcome.rollout_id,
                           version=outcome.version, stage_before="champion", stage="rolled_back",
                           evidence=outcome.verdict.to_dict())
    until = ((r.evidence or {}).get("guard") or {}).get("until") if r is not None else None
    return RolloutStep(cfg.model.name, "waiting", f"guarding version {outcome.version}"
                       + (f" until {until}" if until else "") + f": {outcome.explanation}",
                       rollout_id=outcome.rollout_id, version=outcome.version, stage_before="champion",
                       stage="champion", waiting_for=[f"guard.window{' until ' + until if until else ''}"],
                       evidence=outcome.verdict.to_dict())


# -- stages --------------------------------------------------------------------------------------


def _start_queued(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime, actor: str) -> RolloutStep:
    champion = resolve_champion(registry, store)
    if champion == r.version:
        moved = store.transition_rollout(r.id, expected="queued", new="aborted", at=now, action="rollout_abort",
                                         actor=actor, reason=f"version {r.version} is the champion already",
                                         decision="aborted")
        return _step(moved or r, "aborted", f"queued version {r.version} is the champion already", before="queued")
    staged = store.transition_rollout(
        r.id, expected="queued", new="staged", at=now, action="rollout_start", actor=actor, decision="staged",
        reason=f"version {r.version} leaves the queue, staged against champion {champion}",
        champion_version=champion, set_champion=True)
    if staged is None:
        return _step(r, "waiting", "the queued rollout was moved by someone else meanwhile", before="queued")
    return _enter(cfg, store, registry, staged, now=now, actor=actor)


def _enter(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime,
           actor: str) -> RolloutStep:
    """staged -> shadow | ab: switch the traffic on first (idempotently), then record the move.
    During a guard window the stage waits: the replaced champion answers in shadow until it ends."""
    from retrainer.deployments.rollout.guard import guarded_rollout

    guarding = guarded_rollout(cfg, store, now)
    if guarding is not None:
        until = guarding.started("champion") + cfg.rollout.guard.window  # type: ignore[operator]
        why = (f"version {r.version} starts after the guard window of version {guarding.version} "
               f"(until {until.isoformat()}): one change at a time")
        return _step(r, "waiting", why, before=r.stage, waiting_for=[f"guard.window until {until.isoformat()}"])
    stage = "ab" if r.mode == "ab" else "shadow"
    ab_test_id = None
    if stage == "shadow":
        if _explicit_shadow(store, r.model_name) != r.version:
            start_shadow(cfg, store, registry, version=r.version, actor=actor, run_id=r.run_id, at=now)
        why = f"version {r.version} shadows champion {r.champion_version}"
    else:
        ab_test_id = _ensure_ab(cfg, store, registry, r, now=now, actor=actor)
        why = f"version {r.version} in A/B test {ab_test_id} against champion {r.champion_version}"
    moved = store.transition_rollout(r.id, expected=r.stage, new=stage, at=now, action="rollout_advance", actor=actor,
                                     reason=why, decision="advanced", ab_test_id=ab_test_id)
    if moved is None:
        return _step(r, "waiting", "the rollout was moved by someone else meanwhile", before=r.stage)
    return _step(moved, "started" if r.stage in ("staged", "queued") else "advanced", why, before=r.stage)


def _explicit_shadow(store: Store, model_name: str) -> str | None:
    """The version the ledger switched shadowing on for, ignoring ``rollout.mode: shadow``'s
    fallback to the challenger alias: a rollout's shadow is always an explicit ledger row."""
    return shadow_target(store.ledger(model_name), rollout_mode="direct", challenger=None, default_sample=1.0)[0]


def _ensure_ab(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime, actor: str) -> int:
    running = store.active_ab_test(cfg.model.name)
    if running is not None and running.challenger_version == r.version:
        return int(running.id)  # started by an interrupted earlier step
    return int(start_ab(cfg, store, registry, challenger=r.version, actor=actor, run_id=r.run_id, at=now).id)


def calibration(store: Store, model_name: str, version: str | None) -> CalibrationMap | None:
    """``version``'s calibration map from its registration profile; None when it has none (or an
    unusable one): the shadow then judges on labelled pairs only."""
    if version is None:
        return None
    try:
        return load_calibration(store.reference_profile(model_name, version))
    except StatisticsError:
        return None


def _judge_shadow(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime,
                  actor: str) -> RolloutStep:
    started = r.started("shadow") or r.stage_started_at
    name = cfg.model.name
    window = store.shadow_window(name, shadow_version=r.version, since=started, until=now, as_of=now)
    online = shadow_evidence(cfg, window, champion_cal=calibration(store, name, r.champion_version),
                             challenger_cal=calibration(store, name, r.version))
    elapsed = now - started
    if elapsed < cfg.rollout.shadow.duration:
        online.not_ready.insert(0, f"shadow.duration: {_fmt(cfg.rollout.shadow.duration - elapsed)} more "
                                f"(of {_fmt(cfg.rollout.shadow.duration)})")
    j = judge(prior_for(cfg.rollout.decision, store, name, r.version), online, cfg.rollout.decision,
              at_max_duration=elapsed >= cfg.rollout.decision.max_duration)
    evidence = _with_trail(r, "shadow", j.evidence, now)
    if j.verdict.action == "continue":
        return _wait(store, r, f"shadow: {j.verdict.reason}", evidence, now,
                     waiting_for=online.not_ready or [_more_evidence(cfg, elapsed)])
    if shadow_state(cfg, store, registry).version == r.version:
        stop_shadow(cfg, store, registry, actor=actor, reason=f"rollout {r.id}: {j.verdict.reason}", at=now)
    why = f"shadow: {j.verdict.reason}"
    if j.verdict.action == "reject":
        return _reject(registry, store, r, why, evidence, now=now, actor=actor)
    if cfg.rollout.mode == "auto" or cfg.rollout.shadow.on_pass == "promote":
        return _promote(cfg, registry, store, r, why, evidence, now=now, actor=actor)
    ab_test_id = _ensure_ab(cfg, store, registry, r, now=now, actor=actor)
    why = f"{why}; A/B test {ab_test_id} started"
    moved = store.transition_rollout(r.id, expected="shadow", new="ab", at=now, action="rollout_advance", actor=actor,
                                     reason=why, decision="advanced", evidence=evidence, ab_test_id=ab_test_id)
    if moved is None:
        return _step(r, "waiting", "the rollout was moved by someone else meanwhile", before="shadow")
    return _step(moved, "advanced", why, before="shadow", evidence=evidence)


def _judge_ab(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime,
              actor: str) -> RolloutStep:
    test = store.ab_test(r.ab_test_id) if r.ab_test_id is not None else None
    if test is None or test.status != "running":
        return _abort(cfg, store, registry, r, now=now, actor=actor,
                      reason=f"the A/B test of rollout {r.id} is no longer running (stopped outside the rollout)")
    analysis = analyze(store, test, gate=cfg.gate, decision=cfg.rollout.decision, as_of=now)
    decision = analysis.decision
    evidence = _with_trail(r, "ab", {**decision.posterior, "ab_test_id": test.id, "srm_p_value": decision.srm_p_value,
                                     "srm_mismatch": decision.srm_mismatch,
                                     "arms": {k: asdict(v) for k, v in analysis.arms.items()}}, now)
    why = f"A/B test {test.id}: {decision.reason}"
    if decision.verdict == "promote_challenger":
        outcome = stop_ab(cfg, store, registry, promote=True, actor=actor, at=now, reason=f"rollout {r.id}: {why}")
        if outcome.status == "promoted":
            why = f"{why}; version {r.version} promoted"
            moved = store.transition_rollout(r.id, expected="ab", new="champion", at=now, action="rollout_advance",
                                             actor=actor, reason=why, decision="promoted", evidence=evidence)
            _guard_shadow(cfg, store, moved or r, now=now)
            return _step(moved or r, "promoted", why, before="ab", evidence=evidence)
        why = f"A/B test {test.id} passed but the champion moved meanwhile (compare-and-set lost)"
        moved = store.transition_rollout(r.id, expected="ab", new="aborted", at=now, action="rollout_abort",
                                         actor=actor, reason=why, decision="superseded", evidence=evidence)
        return _step(moved or r, "aborted", why, before="ab", evidence=evidence)
    if decision.verdict == "keep_champion":
        stop_ab(cfg, store, registry, promote=False, actor=actor, at=now, reason=f"rollout {r.id}: {why}")
        return _reject(registry, store, r, why, evidence, now=now, actor=actor)
    prefix = "sample-ratio mismatch resolved: " if decision.srm_mismatch else "A/B verdict: "
    return _wait(store, r, why, evidence, now, waiting_for=[prefix + decision.reason])


def _more_evidence(cfg: RetrainerConfig, elapsed: timedelta) -> str:
    left = cfg.rollout.decision.max_duration - elapsed
    return (f"more paired evidence (labels maturing); at rollout.decision.max_duration, {_fmt(left)} from now, "
            "the posterior mean decides")


def _with_trail(r: Rollout, stage: str, evidence: dict[str, Any], now: datetime) -> dict[str, Any]:
    """This look's evidence plus the rollout's posterior trail: one entry a day (the day's last look),
    carried over from the rollout's previous look, so status and the demo can show it by day."""
    trail = [dict(t) for t in ((r.evidence or {}).get("trail") or [])]
    post = evidence.get("posterior") or {}
    entry = {"at": now.isoformat(), "stage": stage, "mean": post.get("mean"), "interval": post.get("interval"),
             "p_worse_than_margin": post.get("p_worse_than_margin"), "expected_loss": post.get("expected_loss"),
             "n_labelled": evidence.get("n_labelled"), "n_unlabelled": evidence.get("n_unlabelled"),
             "action": evidence.get("action")}
    if trail and trail[-1]["at"][:10] == entry["at"][:10]:
        trail[-1] = entry
    else:
        trail.append(entry)
    return {**evidence, "trail": trail}


# -- endings -------------------------------------------------------------------------------------


def _guard_shadow(cfg: RetrainerConfig, store: Store, r: Rollout, *, now: datetime) -> None:
    from retrainer.deployments.rollout.guard import ensure_guard_shadow

    ensure_guard_shadow(cfg, store, r, now=now)


def _promote(cfg: RetrainerConfig, registry: Registry, store: Store, r: Rollout, why: str, evidence: dict[str, Any], *,
             now: datetime, actor: str) -> RolloutStep:
    outcome = promote(registry, store, version=r.version, expected_champion=r.champion_version, actor=actor,
                      reason=f"rollout {r.id}: {why}", run_id=r.run_id, at=now)
    if outcome.status != "promoted":
        msg = f"{why}; but the champion moved to {outcome.champion} meanwhile (compare-and-set lost)"
        moved = store.transition_rollout(r.id, expected=r.stage, new="aborted", at=now, action="rollout_abort",
                                         actor=actor, reason=msg, decision="superseded", evidence=evidence)
        return _step(moved or r, "aborted", msg, before=r.stage, evidence=evidence)
    msg = f"{why}; version {r.version} promoted"
    moved = store.transition_rollout(r.id, expected=r.stage, new="champion", at=now, action="rollout_advance",
                                     actor=actor, reason=msg, decision="promoted", evidence=evidence)
    _guard_shadow(cfg, store, moved or r, now=now)
    return _step(moved or r, "promoted", msg, before=r.stage, evidence=evidence)


def _reject(registry: Registry, store: Store, r: Rollout, why: str, evidence: dict[str, Any], *, now: datetime,
            actor: str) -> RolloutStep:
    reject(registry, store, version=r.version, actor=actor, reason=f"rollout {r.id}: {why}", run_id=r.run_id, at=now)
    moved = store.transition_rollout(r.id, expected=r.stage, new="rejected", at=now, action="rollout_reject",
                                     actor=actor, reason=why, decision="rejected", evidence=evidence)
    return _step(moved or r, "rejected", why, before=r.stage, evidence=evidence)


def _abort(cfg: RetrainerConfig, store: Store, registry: Registry, r: Rollout, *, now: datetime, actor: str,
           reason: str) -> RolloutStep:
    if shadow_state(cfg, store, registry).version == r.version:
        stop_shadow(cfg, store, registry, actor=actor, reason=f"rollout {r.id} aborted: {reason}", at=now)
    test = store.active_ab_test(cfg.model.name)
    if test is not None and test.challenger_version == r.version:
        stop_ab(cfg, store, registry, promote=False, actor=actor, at=now, reason=f"rollout {r.id} aborted: {reason}")
    if registry.alias_version(CHALLENGER) == r.version:
        registry.delete_alias(CHALLENGER)
    moved = store.transition_rollout(r.id, expected=r.stage, new="aborted", at=now, action="rollout_abort",
                                     actor=actor, reason=reason, decision="aborted")
    if moved is None:
        raise RolloutError(f"rollout {r.id} was moved by someone else meanwhile: look again with `retrainer rollout status`")
    return _step(moved, "aborted", reason, before=r.stage)


def _wait(store: Store, r: Rollout, why: str, evidence: dict[str, Any], now: datetime, *,
          waiting_for: list[str]) -> RolloutStep:
    store.note_rollout(r.id, at=now, decision="waiting", explanation=why, evidence=evidence)
    return _step(r, "waiting", why, before=r.stage, waiting_for=waiting_for, evidence=evidence)


def _step(r: Rollout, action: Action, why: str, *, before: str | None, waiting_for: list[str] | None = None,
          evidence: dict[str, Any] | None = None) -> RolloutStep:
    return RolloutStep(model=r.model_name, action=action, explanation=why, rollout_id=r.id, version=r.version,
                       stage_before=before, stage=r.stage, waiting_for=waiting_for or [], evidence=evidence or {})


def _fmt(d: timedelta) -> str:
    s = int(max(d.total_seconds(), 0))
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60}m"


__all__ = ["ACTOR", "RolloutStep", "abort", "admit_challenger", "advance", "calibration", "guard_champion", "stage_mode"]
