"""retrainer.yaml, validated.

Load with :func:`load_config`. Every problem is reported at once as a :class:`ConfigError`
that names the field path (``triggers[1].params.threshold``) and, for choices, the allowed
values. Secrets and URLs can be overridden from the environment (see ``ENV_OVERRIDES``) so a
checked-in file never needs to hold a password.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from retrainer.durations import Duration
from retrainer.errors import ConfigError
from retrainer.identifiers import is_plain_identifier

MAX_NAME_LENGTH = 63


class _Model(BaseModel):
    # Unknown keys are typos far more often than intent: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str, *, qualified: bool = False) -> str:
    parts = value.split(".") if qualified else [value]
    if len(parts) > 2 or not all(is_plain_identifier(p) for p in parts):
        raise ValueError(
            f"{value!r} is not a plain SQL name: use letters, digits and underscores, "
            "starting with a letter or underscore (at most 63 characters)"
        )
    return value


class FeatureSpec(_Model):
    """One model input column."""

    name: str = Field(description="Column name in the training source and the inference log.")
    type: Literal["numeric", "categorical"] = Field("numeric", description="How drift is measured.")
    nullable: bool = Field(False, description="Whether a missing value (null/NaN) is acceptable.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return _check_identifier(v)


class SourceConfig(_Model):
    """Where training data comes from: a table, or a parameterised query."""

    url: str = Field("sqlite:///training.db", description="SQLAlchemy URL of the training database.")
    table: str | None = Field(None, description="Table (or schema.table) to read; or give `query`.")
    query: str | None = Field(
        None, description="SELECT with :named parameters (bound, never interpolated); or give `table`."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Values for the query's :named parameters.")

    @field_validator("table")
    @classmethod
    def _table_is_plain(cls, v: str | None) -> str | None:
        return None if v is None else _check_identifier(v, qualified=True)

    @model_validator(mode="after")
    def _one_of_table_or_query(self) -> SourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        if self.query is not None and not self.query.lstrip().lower().startswith(("select", "with")):
            raise ValueError("`query` must be a SELECT (or WITH ... SELECT) statement")
        return self


class DataConfig(_Model):
    """Training data and the schema of the model's inputs."""

    source: SourceConfig = Field(default_factory=lambda: SourceConfig(table="training"))
    timestamp_column: str = Field("ts", description="Event-time column; the holdout is the latest slice.")
    label_column: str = Field("label", description="Ground-truth column.")
    features: list[FeatureSpec] = Field(min_length=1, description="Model inputs, in order.")
    window: Duration | None = Field(None, description="Train only on rows newer than this (e.g. 90d).")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Latest share of rows kept for evaluation.")
    min_rows: int = Field(200, ge=1, description="Fewer training rows than this fails the run.")
    min_rows_per_class: int = Field(
        10, ge=1,
        description="Fewer labelled rows of a class than this (or a single class) fails the run before training.",
    )
    include_inference_log: bool = Field(False, description="Also train on labelled predictions from the store.")

    @field_validator("timestamp_column", "label_column")
    @classmethod
    def _plain_columns(cls, v: str) -> str:
        return _check_identifier(v)

    @model_validator(mode="after")
    def _distinct_columns(self) -> DataConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique; repeated: {', '.join(dupes)}")
        for special in (self.timestamp_column, self.label_column):
            if special in names:
                raise ValueError(f"{special!r} is the timestamp or label column and cannot also be a feature")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


class EstimatorConfig(_Model):
    """The scikit-learn estimator or pipeline to train."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_path: str = Field(
        "sklearn.ensemble.HistGradientBoostingClassifier",
        alias="class",
        description="Import path of an estimator class (module.Class).",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the class.")
    trusted_types: list[str] = Field(
        default_factory=list,
        description="Extra type names a saved model may reference (sklearn, numpy, scipy and the estimator's package are trusted).",
    )

    @field_validator("class_path")
    @classmethod
    def _dotted(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) < 2 or not all(p.isidentifier() for p in parts):
            raise ValueError(f"{v!r} is not an import path like 'sklearn.linear_model.LogisticRegression'")
        return v


class TriggerSpec(_Model):
    """One trigger: ``type`` is the entry-point name; other keys are that trigger's params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Entry-point name in the group `retrainer.triggers`.")
    name: str | None = Field(None, description="Label in reports when one type is used twice (default: type).")
    params: dict[str, Any] = Field(default_factory=dict, description="Validated by the trigger's Params model.")

    @model_validator(mode="before")
    @classmethod
    def _flat_params(cls, data: Any) -> Any:
        # Accept `{type: drift, threshold: 0.3}` as shorthand for `{type: drift, params: {threshold: 0.3}}`.
        if isinstance(data, Mapping):
            own = {"type", "name", "params"}
            extra = {k: v for k, v in data.items() if k not in own}
            if extra:
                merged = dict(data.get("params") or {})
                clash = sorted(set(extra) & set(merged))
                if clash:
                    raise ValueError(f"params given twice (inline and under `params`): {', '.join(clash)}")
                merged.update(extra)
                data = {k: v for k, v in data.items() if k in own} | {"params": merged}
        return data

    @property
    def label(self) -> str:
        return self.name or self.type


class PolicyConfig(_Model):
    """How trigger decisions combine, and what stops one incident from causing a retrain storm."""

    mode: Literal["any", "all", "at_least"] = Field("any", description="any: one trigger suffices.")
    k: int | None = Field(None, ge=1, description="With mode at_least: how many triggers must fire.")
    cooldown: Duration = Field(timedelta(days=1), description="No second retrain within this after one.")
    consecutive: int = Field(1, ge=1, description="Fire only after this many firing evaluations (M of N)...")
    of_last: int | None = Field(None, ge=1, description="...among the last N evaluations (default N = M).")
    on_error: Literal["ignore", "fire", "fail"] = Field(
        "ignore", description="A trigger that raises: ignore it, count it as fired, or fail the check."
    )

    @model_validator(mode="after")
    def _k_matches_mode(self) -> PolicyConfig:
        if self.mode == "at_least" and self.k is None:
            raise ValueError("mode 'at_least' needs `k` (how many triggers must fire)")
        if self.mode != "at_least" and self.k is not None:
            raise ValueError("`k` only applies to mode 'at_least'")
        if self.of_last is not None and self.of_last < self.consecutive:
            raise ValueError("`of_last` must be at least `consecutive`")
        return self


class GateConfig(_Model):
    """The candidate must score at least ``min_ratio`` x the champion on the same holdout."""

    metric: Literal["f1", "accuracy", "precision", "recall", "roc_auc"] = Field("f1", description="Compared on the holdout.")
    min_ratio: float = Field(0.95, gt=0, description="Candidate metric >= min_ratio x champion metric.")


class ShadowConfig(_Model):
    """Shadow rollout: the challenger answers a copy of live traffic; only the champion's answer is returned."""

    sample: float = Field(1.0, gt=0, le=1, description="Share of requests mirrored to the shadow model.")
    duration: Duration = Field(
        timedelta(days=1), description="Rollout flow: the shortest a shadow runs before it may promote (a reject needs no wait)."
    )
    queue_size: int = Field(1000, ge=1, description="Bounded queue; overflow is dropped and counted.")
    isolation: Literal["process", "thread"] = Field(
        "process",
        description="process: the shadow model runs in its own worker process(es), loaded there from the "
        "configured registry, so it never competes with requests for the GIL; thread: worker threads in the "
        "server process (no extra process; the shadow's CPU work then slows requests down).",
    )
    workers: int = Field(
        1, ge=1, le=64,
        description="Shadow workers: processes (isolation: process) or threads (isolation: thread). Each "
        "worker predicts every queued job in one batched call, so one is usually enough.",
    )
    nice: int = Field(
        10, ge=0, le=19,
        description="isolation: process: niceness added to the shadow process, so a CPU-saturated host "
        "serves production first.",
    )
    agreement_floor: float = Field(
        0.5, ge=0, le=1,
        description="Sanity floor, not a quality line: a challenger agreeing with the champion on fewer "
        "requests than this is taken to be broken (a guardrail rejection). A better model after drift "
        "disagrees with a stale champion by construction, so keep it low.",
    )
    min_agreement: float | None = Field(
        None, ge=0, le=1,
        description="Obsolete: agreement is no longer a pass line (see rollout.decision). Still accepted so "
        "old files load; read as `agreement_floor` when that is not given.",
    )
    min_comparisons: int = Field(
        200, ge=1,
        description="Rollout flow: stored comparisons needed before the guardrails are judged; no promotion before.",
    )
    max_latency_ratio: float = Field(
        2.0, ge=1,
        description="Rollout flow: shadow p99 latency <= this x the champion's p99 on the same requests "
        "(+ rollout.latency_slack_ms). The shadow's is a batched call's, hence the room.",
    )
    error_alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="Rollout flow: level of the one-sided two-proportion test that the challenger fails (serving "
        "errors) on more of the shadowed requests than the champion, which answered them all: a guardrail. "
        "Wrong answers are judged by rollout.decision's paired rule, not here.",
    )
    on_pass: Literal["ab", "promote"] = Field(
        "ab", description="Rollout flow: what a shadow that passes leads to: an A/B test, or promotion at once."
    )


class ABConfig(_Model):
    """A/B rollout: units are split between champion and challenger by a stable hash."""

    split: float = Field(0.1, gt=0, lt=1, description="Share of units routed to the challenger.")
    salt: str | None = Field(None, description="Assignment salt (default: a fresh one per test).")
    alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="Obsolete: the A/B test decides by rollout.decision (a clustered estimate, no p-value). "
        "Still accepted so old files load.",
    )
    power: float = Field(0.8, gt=0, lt=1, description="Obsolete (see alpha); still accepted so old files load.")
    min_detectable_effect: float = Field(
        0.02, gt=0, lt=1, description="Obsolete (see alpha); still accepted so old files load."
    )
    sequential: bool = Field(True, description="Obsolete (see alpha); still accepted so old files load.")
    srm_alpha: float = Field(0.001, gt=0, lt=0.5, description="Sample-ratio-mismatch alarm level.")
    duration: Duration = Field(
        timedelta(days=14),
        description="Obsolete: use rollout.decision.max_duration (read as it when that is not given). Running "
        "out of time no longer rejects.",
    )


class GuardConfig(_Model):
    """After a rollout promotes a challenger, the replaced champion keeps answering in shadow for
    ``window`` and the new one is rolled back when it is worse on the same requests.

    The paired difference is judged by an anytime-valid bound (every look allowed); a champion
    merely as noisy as the one before, or worse by less than ``error_margin``, is not rolled back.
    """

    enabled: bool = Field(True, description="Watch a champion promoted by the rollout flow for `window`.")
    window: Duration = Field(
        timedelta(days=7),
        description="How long after the promotion the guard watches; the replaced champion answers in shadow "
        "meanwhile, and the next rollout starts after it.",
    )
    baseline: Duration = Field(
        timedelta(days=7),
        description="Serving figures (where recorded) of the replaced champion this long before the promotion "
        "are the baseline of the serving checks.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="False-rollback rate of a champion exactly error_margin worse than the one it replaced "
        "(anytime-valid: every look allowed).",
    )
    error_margin: float = Field(
        0.02, ge=0, lt=1,
        description="Accuracy on the same requests may fall by this much (new - replaced, labelled pairs) "
        "before a rollback.",
    )
    estimated_margin: float = Field(
        0.03, ge=0, lt=1, description="Obsolete: the guard judges labelled pairs on the same requests; still accepted."
    )
    serving_error_margin: float = Field(
        0.01, ge=0, lt=1, description="Serving failure rate may rise by this much (where the service records failures)."
    )
    latency_ratio: float = Field(
        1.5, ge=1, description="p99 latency may be up to this x the replaced champion's (+ rollout.latency_slack_ms)."
    )
    min_labels: int = Field(
        200, ge=1, description="Obsolete: the paired bound is valid from the first label; still accepted."
    )
    min_predictions: int = Field(500, ge=1, description="Requests needed on each side before the serving figures are judged.")


class DecisionConfig(_Model):
    """The one rule every rollout decides by (docs/rollout.md): a posterior for Δ = challenger - champion."""

    margin: float = Field(
        0.01, gt=0, lt=1,
        description="Non-inferiority margin: promote when P(Δ < -margin) <= p_worse_max (and the expected "
        "loss is within bound).",
    )
    p_worse_max: float = Field(0.05, gt=0, lt=0.5, description="Promote when P(Δ < -margin) is at most this.")
    p_harm_reject: float = Field(0.95, gt=0.5, lt=1, description="Reject when P(Δ < 0) is at least this.")
    max_expected_loss: float = Field(
        0.0002, gt=0, lt=1, description="Promote only when E[max(0, -Δ)] (on the gate metric's scale) is at most this."
    )
    kappa: float = Field(
        0.5, ge=-2, le=2,
        description="Prior mean = kappa x the offline holdout difference (how much of it carries over online).",
    )
    tau: float = Field(
        0.03, gt=0, lt=1,
        description="Prior sd = sqrt(tau^2 + se_off^2): how far online may stray from kappa x offline.",
    )
    fit_after: int = Field(
        5, ge=2,
        description="Once the model has this many finished rollouts, kappa and tau are fitted from its own "
        "offline vs online history instead.",
    )
    min_labelled: int = Field(
        500, ge=0,
        description="Labelled pairs needed before the posterior may promote or reject (a guardrail rejects at "
        "once; at max_duration the posterior mean decides whatever the count).",
    )
    max_duration: Duration = Field(
        timedelta(days=42),
        description="Longest a rollout collects; then it decides by the posterior mean (promote if > 0, else "
        "reject, saying so). Never a rejection for running out of time.",
    )


RolloutMode = Literal["direct", "shadow", "ab"]


class RolloutConfig(_Model):
    """How a candidate that passed the gate and its integration test reaches traffic."""

    mode: Literal["auto", "direct", "shadow", "ab"] = Field(
        "auto",
        description="auto: a paired shadow, or an A/B test when outcomes_depend_on_predictions; direct: promote "
        "at once; shadow or ab: that one. `retrainer rollout plan` forecasts how long a decision takes.",
    )
    outcomes_depend_on_predictions: bool = Field(
        False,
        description="The model's answers change what happens next (recommendations, pricing): a shadow cannot "
        "see that effect, so auto picks an A/B test and shadow is refused.",
    )
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    latency_ratio: float = Field(
        1.5, ge=1, description="Integration test: challenger p95 single-row predict <= this x the champion's (+ slack), measured interleaved."
    )
    latency_slack_ms: float = Field(2.0, ge=0, description="Added to the ratio's bound: sub-millisecond models jitter.")
    latency_budget_ms: float | None = Field(
        None, gt=0, description="Optional absolute p95 budget as well (a busy machine can fail it: prefer the ratio)."
    )
    on_new_challenger: Literal["queue", "replace"] = Field(
        "queue",
        description="A newer challenger arriving while another is in shadow/A-B: queue it until the current "
        "rollout ends, or replace (abort) the current one.",
    )
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    ab: ABConfig = Field(default_factory=ABConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)

    @model_validator(mode="after")
    def _mode_fits_and_obsolete_keys_carry_over(self) -> RolloutConfig:
        if self.mode == "shadow" and self.outcomes_depend_on_predictions:
            raise ValueError(
                "mode 'shadow' cannot judge a model whose predictions change the outcome "
                "(outcomes_depend_on_predictions: true): use mode 'ab' or 'auto'"
            )
        # Old files keep meaning what they meant where the new key has the same job.
        if "duration" in self.ab.model_fields_set and "max_duration" not in self.decision.model_fields_set:
            decision = self.decision.model_copy(update={"max_duration": self.ab.duration})
            object.__setattr__(self, "decision", decision)
        if self.shadow.min_agreement is not None and "agreement_floor" not in self.shadow.model_fields_set:
            shadow = self.shadow.model_copy(update={"agreement_floor": self.shadow.min_agreement})
            object.__setattr__(self, "shadow", shadow)
        return self

    @property
    def resolved_mode(self) -> RolloutMode:
        """The mode a rollout runs in: ``auto`` resolved (shadow, or ab when outcomes depend on predictions)."""
        if self.mode != "auto":
            return self.mode
        return "ab" if self.outcomes_depend_on_predictions else "shadow"

    @property
    def mode_reason(self) -> str:
        """Why :attr:`resolved_mode`, in one sentence."""
        if self.mode != "auto":
            return f"rollout.mode is {self.mode!r}"
        if self.outcomes_depend_on_predictions:
            return ("rollout.mode auto with outcomes_depend_on_predictions: an A/B test, since a shadow cannot "
                    "see how the challenger's answers change outcomes")
        return ("rollout.mode auto: a paired shadow (both models answer every mirrored request, each labelled "
                "one is a pair; no user sees the challenger)")


class ServingConfig(_Model):
    """`retrainer serve`: the prediction service whose log feeds the triggers."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless you mean otherwise.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    api_token: str | None = Field(None, description="Bearer token for predict/feedback/admin (env RETRAINER_API_TOKEN).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    max_batch: int = Field(1000, ge=1, description="Most instances one /predict call may carry.")
    durability: Literal["committed", "buffered"] = Field(
        "committed",
        description="committed: /predict answers after its rows are durable (see `commit`); "
        "buffered: answers first, logs from a queue (may lose the last queue on a crash).",
    )
    commit: Literal["store", "spool"] = Field(
        "store",
        description="With durability: committed, where a row is durable before the answer: store = a group commit "
        "into the store itself (acknowledged = visible to triggers; nothing on the server's disk); spool = an "
        "fsync'd append-only file on local disk, stored in big batches and replayed by the next start after a "
        "crash (needs a local disk that outlives the server; measured no faster here: docs/serving.md).",
    )
    spool_dir: str | None = Field(
        None,
        description="Directory of the prediction spool (commit: spool). Default: beside a SQLite store "
        "(<store file>-spool), else retrainer-spool next to the config. Local disk that survives the server.",
    )
    coerce_numeric_strings: bool = Field(
        False,
        description="Accept numbers sent as strings (\"3.5\") for numeric features and labels; off: 422 naming the "
        "field. Booleans are never numbers.",
    )


class MlflowConfig(_Model):
    """Where runs are tracked and models registered (aliases champion / challenger)."""

    tracking_uri: str = Field("sqlite:///mlflow.db", description="Relative sqlite paths are next to the config.")
    registry_uri: str | None = Field(None, description="Defaults to the tracking URI.")
    experiment: str | None = Field(None, description="Default: retrainer/<model name>.")
    artifact_location: str | None = Field(None, description="Default: ./mlartifacts next to the config.")
    drift_report: bool = Field(
        True, description="Attach an Evidently drift report (training data vs the latest holdout) to each new version."
    )


class StoreConfig(_Model):
    """The SQL store: inference log, labels, audit, retrain runs, ledger, A/B and shadow state."""

    url: str = Field("sqlite:///retrainer.db", description="SQLAlchemy URL; relative sqlite paths are next to the config.")
    max_batch: int = Field(50_000, ge=1, description="Largest batch one write accepts.")
    max_label_clock_skew: Duration = Field(
        timedelta(minutes=5),
        description="A label timed more than this after it was received is refused (a wrong clock must not "
        "outrank every later correction); one timed ahead by less is stored at its receive time.",
    )


class NotificationsConfig(_Model):
    """Who hears about a failed retrain (the `retrainer.retrain.failed` event is always emitted)."""

    block: str | None = Field(None, description="Name of a Prefect notification block to alert on failure.")


class ModelConfig(_Model):
    """Which model this file is about."""

    name: str = Field(description="Registered model name in MLflow.")
    description: str | None = Field(None, description="Free text for people.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or len(v) > MAX_NAME_LENGTH or not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError("use 1-63 letters, digits, '-', '_' or '.'")
        return v


class RetrainerConfig(_Model):
    """The whole of retrainer.yaml."""

    model: ModelConfig
    store: StoreConfig = Field(default_factory=StoreConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    data: DataConfig
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    triggers: list[TriggerSpec] = Field(default_factory=list, description="Retrain when the policy over these fires.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    # Where the file was read from; relative paths were resolved against it.
    base_dir: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _trigger_labels_unique(self) -> RetrainerConfig:
        labels = [t.label for t in self.triggers]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"two triggers share the label {', '.join(dupes)}: give one of them a `name`")
        if self.policy.mode == "at_least" and self.policy.k is not None and self.policy.k > len(self.triggers):
            raise ValueError(f"policy.k = {self.policy.k} but only {len(self.triggers)} triggers are configured")
        return self


# Environment variable -> dotted path in the config. Applied before validation.
ENV_OVERRIDES: dict[str, str] = {
    "RETRAINER_STORE_URL": "store.url",
    "RETRAINER_MLFLOW_TRACKING_URI": "mlflow.tracking_uri",
    "RETRAINER_MLFLOW_REGISTRY_URI": "mlflow.registry_uri",
    "RETRAINER_DATA_URL": "data.source.url",
    "RETRAINER_API_TOKEN": "serving.api_token",
    "RETRAINER_NOTIFICATION_BLOCK": "notifications.block",
}


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def _resolve_sqlite(url: str, base_dir: Path) -> str:
    """``sqlite:///x.db`` is relative to the config file, not to wherever the command ran."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix):]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base_dir / rest).resolve())
    return url


def _resolve_path(location: str, base_dir: Path) -> str:
    """A plain relative path is relative to the config file; URIs (s3://, file://) stay as given."""
    if "://" in location or Path(location).is_absolute():
        return location
    return str((base_dir / location).resolve())


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "model-")):  # pydantic's internal validator names
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _known_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (its parent path), for spelling suggestions."""
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        model = _inner_model(field.annotation) if field is not None else None
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):  # Optional[X], list[X], dict[str, X]
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validation_problems(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem, ``<source>.<field path>: <what is wrong>``; a misspelt key gets a suggestion."""
    out = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(str(e["loc"][-1]), _known_keys(model, e["loc"]), n=1)
            msg = "unknown key" + (
                f"; did you mean {near[0]!r}?" if near
                else " (check the spelling; `retrainer config schema` lists the keys)"
            )
        where = _location(e["loc"])
        out.append(f"{source}{'' if where.startswith('[') else '.'}{where}: {msg}" if source else f"{where}: {msg}")
    return out


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    lines = [f"{source} is invalid ({err.error_count()} problem{'s' if err.error_count() != 1 else ''}):"]
    lines += [f"  - {line}" for line in validation_problems(err, "", model)]
    return "\n".join(lines)


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    source: str = "configuration",
) -> RetrainerConfig:
    """Validate a mapping as retrainer.yaml, applying env overrides and resolving sqlite paths."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping of keys (model:, data:, ...), not {type(data).__name__}")
    raw: dict[str, Any] = _deep_copy(dict(data))
    env = os.environ if environ is None else environ
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_path(raw, dotted, env[var])
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    try:
        cfg = RetrainerConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, RetrainerConfig)) from None
    updates = {
        "store": cfg.store.model_copy(update={"url": _resolve_sqlite(cfg.store.url, base)}),
        "mlflow": cfg.mlflow.model_copy(
            update={
                "tracking_uri": _resolve_sqlite(cfg.mlflow.tracking_uri, base),
                "registry_uri": _resolve_sqlite(cfg.mlflow.registry_uri, base) if cfg.mlflow.registry_uri else None,
                "artifact_location": _resolve_path(cfg.mlflow.artifact_location or "mlartifacts", base),
            }
        ),
        "data": cfg.data.model_copy(
            update={"source": cfg.data.source.model_copy(update={"url": _resolve_sqlite(cfg.data.source.url, base)})}
        ),
        "serving": cfg.serving.model_copy(
            update={"spool_dir": _resolve_path(cfg.serving.spool_dir, base) if cfg.serving.spool_dir else None}
        ),
        "base_dir": base,
    }
    return cfg.model_copy(update=updates)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> RetrainerConfig:
    """Read and validate a retrainer.yaml file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist: pass --config with the path to retrainer.yaml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        raise ConfigError(f"{p} is empty: start from `retrainer config example`")
    return parse_config(data, base_dir=p.parent, environ=environ, source=str(p))


def example_config_path() -> Path:
    """The commented example shipped with the package."""
    return Path(__file__).parent / "examples" / "retrainer.yaml"


__all__ = [
    "ABConfig",
    "DataConfig",
    "DecisionConfig",
    "ENV_OVERRIDES",
    "EstimatorConfig",
    "FeatureSpec",
    "GateConfig",
    "GuardConfig",
    "MlflowConfig",
    "ModelConfig",
    "NotificationsConfig",
    "PolicyConfig",
    "RetrainerConfig",
    "RolloutConfig",
    "RolloutMode",
    "ServingConfig",
    "ShadowConfig",
    "SourceConfig",
    "StoreConfig",
    "TriggerSpec",
    "example_config_path",
    "load_config",
    "parse_config",
]
