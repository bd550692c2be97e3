"""The retrain flow: load -> train -> evaluate both -> gate -> register -> challenger -> test -> roll out.

It orchestrates the tasks in :mod:`retrainer.tasks` and the promotion in
:mod:`retrainer.deployments.rollout.promotion`; the logic lives there. What this module owns is the
order of the steps, the outcome (:class:`RetrainResult`), and the bookkeeping around them: a
retrain-run row in the store, the ledger, and the success/failure events.

Retries are safe: the registration is keyed by the flow run id, so a retried task (or a retried
flow run) finds the version it registered instead of registering a second one; promotion is a
compare-and-set against the champion this run evaluated against, so a run that lost a race ends
``superseded`` instead of overwriting the winner.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from retrainer.config import RetrainerConfig
from retrainer.fleet_config import load_model_config
from retrainer.deployments.rollout.promotion import resolve_champion, resolved_champion_info

if TYPE_CHECKING:
    from retrainer.registry import Registry
    from retrainer.store import Store

RetrainStatus = Literal["success", "no_improvement", "superseded", "failed", "skipped"]
ACTOR = "retrain-flow"


@dataclass
class RetrainResult:
    """What one retrain run did. ``status`` is the one word a caller branches on."""

    status: RetrainStatus
    model: str
    reasons: list[str]
    version: str | None = None
    champion_version: str | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    # Δ_off = candidate - champion on the gate metric, same holdout rows: {metric, mean, se, n,
    # interval_95, disagreement}; None without a champion. The rollout's prior starts from it.
    offline_delta: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    rollout: str | None = None
    run_id: int | None = None
    flow_run_id: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _flow_run_id() -> str:
    # Outside a flow run (plain function calls in tests) there is no id: make a unique key.
    return str(current_flow_run.id or f"local-{uuid.uuid4()}")


def _metrics(values: Any) -> dict[str, float]:
    return {k: float(v) for k, v in dict(values).items()}


@flow(name="retrain", log_prints=False, validate_parameters=True)
def retrain(
    config_path: str,
    reasons: list[str] | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Retrain the model of ``config_path`` and roll the result out per its config.

    ``reasons`` are the trigger labels that asked for it (from the monitor's event). Without
    reasons, the policy is checked first and the run is ``skipped`` when it would not retrain;
    ``force`` retrains regardless (reason ``manual``). ``now`` pins the evaluation time
    (backfills, the demo's simulated days); default: the current time.
    """
    cfg = load_model_config(config_path)  # a retrainer.yaml, or fleet.yaml#model
    return run_retrain(cfg, reasons=reasons or [], force=force, now=now or _utc_now()).to_dict()


def run_retrain(
    cfg: RetrainerConfig, *, reasons: list[str], force: bool = False, now: datetime
) -> RetrainResult:
    """The steps of the flow, callable from within any flow (the monitor runs it as a subflow)."""
    from retrainer.store import Store

    with Store.from_config(cfg) as store:  # closed however the run ends
        return _run_with(cfg, store, reasons=reasons, force=force, now=now)


def _run_with(cfg: RetrainerConfig, store: Store, *, reasons: list[str], force: bool, now: datetime) -> RetrainResult:
    if not reasons and not force:
        from retrainer.registry import Registry
        from retrainer.triggers.check import run_check

        champion = resolved_champion_info(Registry.from_config(cfg), store)  # store first, alias repaired
        check = run_check(cfg, store=store, now=now, champion=champion)
        if not check.should_retrain:
            return RetrainResult(status="skipped", model=cfg.model.name, reasons=[])
        reasons = list(check.reasons)
    reasons = reasons or ["manual"]
    flow_run_id = _flow_run_id()
    # Measured on the monotonic clock: ``now`` may be pinned (backfills, the demo), so
    # finished_at - started_at says nothing about what a retrain costs. cost_benefit reads it.
    started = time.monotonic()
    run_id = store.start_run(cfg.model.name, flow_run_id=flow_run_id, reasons=reasons, started_at=now)
    result = RetrainResult(status="failed", model=cfg.model.name, reasons=reasons, run_id=run_id, flow_run_id=flow_run_id)
    try:
        _steps(cfg, store, result, now=now)
    except Exception as exc:
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        _record_failure(cfg, store, result, now=now)
        raise
    store.finish_run(
        run_id,
        status=result.status,
        metrics={"candidate": result.candidate_metrics, "champion": result.champion_metrics, "gate": result.gate,
                 "offline_delta": result.offline_delta, "duration_s": time.monotonic() - started},
        version=result.version,
        error=None,
        finished_at=now,
    )
    from retrainer.tasks.notify import RETRAIN_SUCCEEDED, emit_task

    emit_task(RETRAIN_SUCCEEDED, cfg.model.name, {"status": result.status, "version": result.version, "reasons": reasons})
    return result


def _steps(cfg: RetrainerConfig, store: Store, result: RetrainResult, *, now: datetime) -> None:
    from retrainer.tasks.promote import reject_task
    from retrainer.profiles import build_reference_profile
    from retrainer.tasks.register import holdout_calibration
    from retrainer.registry import Registry
    from retrainer.tasks import (
        evaluate_model_task,
        holdout_difference_task,
        LatencyRule,
        gate_task,
        integration_test_task,
        load_training_data_task,
        register_candidate_task,
        set_challenger_task,
        train_model_task,
    )

    logger = get_run_logger()
    registry = Registry.from_config(cfg)
    registry.ensure_experiment()
    name = cfg.model.name

    data = load_training_data_task(cfg.data, now=now, store=store, model_name=name)
    result.data = data.summary()
    logger.info("loaded %d training and %d holdout rows", data.train_samples, data.holdout_samples)

    candidate = train_model_task(cfg.estimator, cfg.data.features, data)
    # The champion this run competes with; promotion later expects exactly this one.
    champion_version = resolve_champion(registry, store)
    result.champion_version = champion_version
    result.candidate_metrics = _metrics(evaluate_model_task(candidate, data.X_holdout, data.y_holdout))
    if champion_version is not None:
        champion = registry.load_model(champion_version, flavor="sklearn")
        result.champion_metrics = _metrics(evaluate_model_task(champion, data.X_holdout, data.y_holdout))
        delta = holdout_difference_task(candidate, champion, data.X_holdout, data.y_holdout, cfg.gate.metric)
        result.offline_delta = delta.to_dict()

    verdict = gate_task(result.candidate_metrics, result.champion_metrics, cfg.gate)
    result.gate = verdict.to_dict()
    if not verdict.accepted:
        result.status = "no_improvement"
        reject_task(registry, store, version=None, actor=ACTOR, reason=verdict.reason, run_id=result.run_id, at=now)
        logger.info("gate rejected the candidate: %s", verdict.reason)
        return

    profile = build_reference_profile(
        data.X_train, cfg.data.features, model_version=None, registered_at=now
    )
    # How the candidate's scores map to probabilities: what estimated_performance reads later.
    profile["calibration"] = holdout_calibration(candidate, data.X_holdout, data.y_holdout)
    # The report only has to live until MLflow has copied it into the run's artifacts.
    with tempfile.TemporaryDirectory(prefix="retrainer-report-") as report_dir:
        artifacts = {}
        if cfg.mlflow.drift_report:
            from retrainer.tasks.report import evidently_drift_report_task

            # What the new model learnt from vs the latest data, the slice that made this run worth doing.
            artifacts["reports"] = evidently_drift_report_task(
                data.X_train, data.X_holdout, Path(report_dir) / "drift_report.html"
            )
        registered = register_candidate_task(
            candidate,
            registry=registry,
            idempotency_key=f"flow-run-{result.flow_run_id}",
            metrics={
                **{f"candidate_{k}": v for k, v in result.candidate_metrics.items()},
                **{f"champion_{k}": v for k, v in (result.champion_metrics or {}).items()},
                **_offline_delta_metrics(result.offline_delta),
                "train_samples": data.train_samples,
                "holdout_samples": data.holdout_samples,
            },
            reasons=result.reasons,
            data_window=(data.window_start, data.window_end),
            flow_run_id=result.flow_run_id,
            input_example=data.X_holdout.head(5),
            reference_profile=profile,
            extra_artifacts=artifacts,
        )
    version = str(registered.version)
    result.version = version
    # The holdout figures travel with the profile: cost_benefit's "what a fresh model reaches"
    # when the store has no retrain runs to read them from (e.g. a model registered elsewhere).
    store.save_reference_profile(name, version, {**profile, "model_version": version,
                                                 "holdout_metrics": dict(result.candidate_metrics)})
    set_challenger_task(registry, version)
    # Raises RegistryError naming each failed check: the run fails, the challenger never goes live.
    # Its own version, not the alias: a concurrent run may move the alias before this test ends.
    integration_test_task(registry, version, data.X_holdout.head(200), labels=sorted(set(data.y_train)),
                          champion=result.champion_version, latency=LatencyRule(
                              cfg.rollout.latency_ratio, cfg.rollout.latency_slack_ms, cfg.rollout.latency_budget_ms))
    _roll_out(cfg, store, registry, result, now=now)


def _offline_delta_metrics(delta: dict[str, Any] | None) -> dict[str, float]:
    """Δ_off and its standard error as MLflow metrics of the version (finite values only)."""
    if not delta:
        return {}
    pairs = {"offline_delta": delta.get("mean"), "offline_delta_se": delta.get("se")}
    return {k: float(v) for k, v in pairs.items() if v is not None}


def _roll_out(cfg: RetrainerConfig, store: Store, registry: Registry, result: RetrainResult, *, now: datetime) -> None:
    from retrainer.tasks.promote import promote_task

    mode = cfg.rollout.resolved_mode
    result.rollout = mode
    version = str(result.version)
    if mode == "direct" or result.champion_version is None:
        # With no champion there is nothing to shadow or test against: the first model goes live.
        outcome = promote_task(
            registry, store, version=version, expected_champion=result.champion_version,
            actor=ACTOR, reason="gate passed: " + ", ".join(result.reasons), run_id=result.run_id, at=now,
        )
        result.status = "success" if outcome.status == "promoted" else "superseded"
        result.rollout = "direct"
        return
    # shadow / ab: a rollout starts (or queues); the rollout flow moves it on from here, woken by
    # this event, and servers pick the traffic change up on reload.
    from retrainer.deployments.rollout.advance import admit_challenger
    from retrainer.flows.rollout import emit_step

    step = admit_challenger(cfg, store, registry, version=version, now=now, actor=ACTOR, run_id=result.run_id)
    emit_step(cfg, step)
    result.status = "success"


def _record_failure(cfg: RetrainerConfig, store: Store, result: RetrainResult, *, now: datetime) -> None:
    """Failure leaves a failed run row, the failure event, and (if configured) a notification."""
    from retrainer.tasks.notify import RETRAIN_FAILED, emit, notify_failure

    try:
        store.finish_run(result.run_id, status="failed", metrics=None, version=result.version,
                         error=result.error, finished_at=now)
    finally:
        emit(RETRAIN_FAILED, cfg.model.name, {"error": result.error, "reasons": result.reasons,
                                              "flow_run_id": result.flow_run_id})
        notify_failure(cfg.notifications.block, model_name=cfg.model.name, error=str(result.error))
