"""Policies: how trigger decisions combine, and the guard that stops retrain storms.

``AnyOf``, ``AllOf`` and ``AtLeast`` are triggers themselves, so they nest. They evaluate every
child even after one fired: the audit row then shows the whole picture, not the first hit. A
child that raises becomes an ``error`` Decision and ``on_error`` says what it means: ``ignore``
(left out of the count), ``fire`` (counted as fired) or ``fail`` (raise TriggerEvaluationError).

The :class:`Guard` sits above the raw combined decision: cooldown (no retrain too soon after the
last one) and M-of-N hysteresis (one noisy check is not an incident). It is a pure function of
the raw decision, the context and the explicit history of earlier raw outcomes.

>>> from datetime import datetime, timezone
>>> from retrainer.triggers.base import NeverTrigger
>>> ctx = TriggerContext(model_name="m", now=datetime(2025, 1, 1, tzinfo=timezone.utc))
>>> AnyOf([NeverTrigger(label="a"), NeverTrigger(label="b")]).evaluate(ctx).reason
'0 of 2 triggers fired, 1 needed.'
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from retrainer.config import PolicyConfig, RetrainerConfig, TriggerSpec
from retrainer.durations import format_duration
from retrainer.errors import TriggerError, TriggerEvaluationError
from retrainer.triggers.base import InvalidTriggerParams, Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.frozen import thaw
from retrainer.triggers.decision import Decision
from retrainer.triggers.undecided import why_undecided

OnError = Literal["ignore", "fire", "fail"]


class Combination(Trigger):
    """A trigger made of triggers; subclasses say how many fired children are needed."""

    class Params(Trigger.Params):
        on_error: OnError = "ignore"

    triggers: tuple[Trigger, ...]

    def __init__(
        self, triggers: Sequence[Trigger], *, on_error: OnError = "ignore", label: str | None = None, **params: Any
    ) -> None:
        super().__init__({"on_error": on_error, **params}, label=label)
        self.triggers = tuple(triggers)
        for t in self.triggers:
            if not isinstance(t, Trigger):
                raise TypeError(f"{self.label}: children must be Trigger instances, not {type(t).__name__}")
        labels = [t.label for t in self.triggers]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            # Labels key the report; two equal labels would overwrite each other's evidence.
            raise TriggerError(f"{self.label}: two triggers share the label {', '.join(dupes)}: give one a `name`")

    @abstractmethod
    def needed(self, considered: int) -> int:
        """How many counted children make the combination fire, out of ``considered``."""

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return self.evaluate_children(ctx)[0]

    def _run(self, child: Trigger, ctx: TriggerContext) -> Decision:
        try:
            decision = child.evaluate(ctx)
            if not isinstance(decision, Decision):
                raise TypeError(f"evaluate returned {type(decision).__name__}, not a Decision")
            if decision.trigger != child.label:
                raise ValueError(f"evaluate returned a Decision labelled {decision.trigger!r}, not {child.label!r}")
        except TriggerEvaluationError:
            raise  # a nested policy set to fail has already named the culprit
        except Exception as exc:  # noqa: BLE001 - any plugin bug becomes data, then on_error decides
            decision = Decision.error(child.label, exc)
        if decision.status == "error" and self.params.on_error == "fail":
            raise TriggerEvaluationError(
                f"trigger {child.label!r} failed and policy.on_error is 'fail': {decision.reason}"
            )
        return decision

    def evaluate_children(self, ctx: TriggerContext) -> tuple[Decision, tuple[Decision, ...]]:
        """The combined decision and every child's decision, in configuration order."""
        on_error = self.params.on_error
        children = tuple(self._run(child, ctx) for child in self.triggers)  # every child, always
        errors = [d.trigger for d in children if d.status == "error"]
        counted = [d.trigger for d in children if d.fired or (d.status == "error" and on_error == "fire")]
        considered = len(children) - (len(errors) if on_error == "ignore" else 0)
        needed = self.needed(considered)
        hit = considered > 0 and len(counted) >= needed

        reason = f"{len(counted)} of {considered} triggers fired"
        reason += f" ({', '.join(counted)}), {needed} needed." if counted else f", {needed} needed."
        if errors:
            fate = {"ignore": "ignored", "fire": "counted as fired"}[on_error]
            reason += f" {len(errors)} raised ({', '.join(errors)}) and {'was' if len(errors) == 1 else 'were'} {fate}."
        if hit:
            status = "fired"
        elif children and len(errors) == len(children):
            status = "error"
        elif considered and all(d.status == "insufficient_data" for d in children if d.status != "error"):
            status = "insufficient_data"
        else:
            status = "ok"
        evidence = {
            "mode": self.name,
            "needed": needed,
            "considered": considered,
            "counted": counted,
            "errors": errors,
            "on_error": on_error,
            "children": [d.to_dict() for d in children],
        }
        decision = Decision(self.label, hit, status, reason, len(counted), needed, evidence)
        return decision, children

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.triggers)!r}, label={self.label!r}, on_error={self.params.on_error!r})"


class AnyOf(Combination):
    """Fires when at least one child fires (the usual hybrid policy)."""

    name = "any_of"

    def needed(self, considered: int) -> int:
        return 1


class AllOf(Combination):
    """Fires when every considered child fires (children ignored after an error are not considered)."""

    name = "all_of"

    def needed(self, considered: int) -> int:
        return max(considered, 1)


class AtLeast(Combination):
    """Fires when at least ``k`` children fire."""

    name = "at_least"

    class Params(Combination.Params):
        k: int = Field(ge=1, description="How many children must fire.")

    def __init__(
        self, k: int, triggers: Sequence[Trigger], *, on_error: OnError = "ignore", label: str | None = None
    ) -> None:
        super().__init__(triggers, on_error=on_error, label=label, k=k)
        if self.params.k > len(self.triggers):
            raise InvalidTriggerParams(
                f"{self.label}: k = {self.params.k} but only {len(self.triggers)} triggers are given, so it could never fire"
            )

    def needed(self, considered: int) -> int:
        return self.params.k


@dataclass(frozen=True)
class Guard:
    """Cooldown and M-of-N hysteresis over a policy's raw decision.

    ``history`` holds the earlier *raw* outcomes, oldest first; the current evaluation must fire
    too (a check that says all is well never starts a retrain).
    """

    cooldown: timedelta = timedelta(0)
    consecutive: int = 1
    of_last: int | None = None

    @classmethod
    def from_config(cls, config: PolicyConfig) -> Guard:
        return cls(cooldown=config.cooldown, consecutive=config.consecutive, of_last=config.of_last)

    @property
    def window(self) -> int:
        return self.of_last or self.consecutive

    def apply(self, raw: Decision, ctx: TriggerContext, history: Sequence[bool] = ()) -> Decision:
        if not raw.fired:
            return raw
        recent = [bool(h) for h in list(history)[-(self.window - 1):]] if self.window > 1 else []
        fired_recent, evaluations = sum(recent) + 1, len(recent) + 1
        blocked: list[str] = []
        parts: list[str] = []
        if fired_recent < self.consecutive:
            blocked.append("hysteresis")
            parts.append(
                f"hysteresis ({fired_recent} of the last {evaluations} evaluations fired, "
                f"{self.consecutive}/{self.window} needed)"
            )
        until = None
        if ctx.last_retrain_at is not None and ctx.now < ctx.last_retrain_at + self.cooldown:
            until = ctx.last_retrain_at + self.cooldown
            blocked.append("cooldown")
            parts.append(
                f"cooldown until {until.isoformat()} (last retrain {ctx.last_retrain_at.isoformat()}, "
                f"cooldown {format_duration(self.cooldown)})"
            )
        if not blocked:
            return raw
        return Decision.ok(
            raw.trigger,
            reason=f"{raw.reason.rstrip('.')}; suppressed by {' and by '.join(parts)}.",
            value=raw.value,
            threshold=raw.threshold,
            evidence={
                "suppressed_by": blocked,
                "cooldown_until": None if until is None else until.isoformat(),
                "hysteresis": {"fired": fired_recent, "evaluations": evaluations,
                               "needed": self.consecutive, "of_last": self.window},
                "raw": raw.to_dict(),
            },
        )


def apply_guard(raw: Decision, ctx: TriggerContext, config: PolicyConfig, history: Sequence[bool] = ()) -> Decision:
    """Functional form of :meth:`Guard.apply` driven by ``policy:`` in retrainer.yaml."""
    return Guard.from_config(config).apply(raw, ctx, history)


@dataclass(frozen=True)
class CheckResult:
    """One monitoring check: the guarded decision, the raw one, and each configured trigger's."""

    decision: Decision
    raw: Decision
    children: tuple[Decision, ...]
    counted: tuple[str, ...] = ()

    @property
    def should_retrain(self) -> bool:
        return self.decision.fired

    @property
    def reasons(self) -> list[str]:
        """Labels of the triggers that caused the retrain (empty when there is none)."""
        return list(self.counted) if self.should_retrain else []

    @property
    def undecided(self) -> str:
        """Why this check could not decide (its raw outcome is insufficient_data), else ""."""
        return why_undecided(self.raw, self.children)

    @property
    def suppressed_by(self) -> list[str]:
        """Why a trigger fired and still no retrain: ``cooldown``/``hysteresis`` (the guard) or
        ``k_not_reached`` (fewer triggers fired than the policy mode needs). Empty otherwise."""
        if self.should_retrain or not any(d.fired for d in self.children):
            return []
        if self.raw.fired:
            return list(self.decision.evidence.get("suppressed_by", ()))
        return ["k_not_reached"]

    def to_dict(self) -> dict[str, Any]:
        """``{should_retrain, reasons, checks}``; a "no" although a trigger fired adds
        ``suppressed_by``, ``until`` (end of a cooldown, else None) and ``explanation``."""
        out: dict[str, Any] = {
            "should_retrain": self.should_retrain,
            "reasons": self.reasons,
            "checks": {
                d.trigger: {"fired": d.fired, "status": d.status, "value": d.value,
                            "threshold": d.threshold, "reason": d.reason, "evidence": thaw(d.evidence)}
                for d in self.children
            },
        }
        if self.undecided:  # a check that could not decide says so, and why
            out["undecided"] = self.undecided
        by = self.suppressed_by
        if by:
            out["suppressed_by"] = by
            out["until"] = self.decision.evidence.get("cooldown_until") if "cooldown" in by else None
            out["explanation"] = self.decision.reason if self.raw.fired else self.raw.reason
        return out

    def to_json(self, **dumps_kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **dumps_kwargs)


@dataclass(frozen=True)
class Policy:
    """A root trigger (usually a combination) plus its guard. ``check`` is what the monitor flow calls."""

    root: Trigger
    guard: Guard = field(default_factory=Guard)

    def check(self, ctx: TriggerContext, history: Sequence[bool] = ()) -> CheckResult:
        if isinstance(self.root, Combination):
            raw, children = self.root.evaluate_children(ctx)
            counted = tuple(raw.evidence["counted"])
        else:
            raw = self.root.evaluate(ctx)
            children, counted = (raw,), ((raw.trigger,) if raw.fired else ())
        return CheckResult(self.guard.apply(raw, ctx, history), raw, children, counted)


_MODES = {"any": AnyOf, "all": AllOf}


def build_policy(
    config: RetrainerConfig | Sequence[TriggerSpec | Mapping[str, Any] | Trigger],
    policy: PolicyConfig | None = None,
    *,
    extra: Mapping[str, type[Trigger]] | None = None,
) -> Policy:
    """The policy of a whole config, or of ``(triggers, policy)``; triggers may be specs or instances."""
    from retrainer.triggers.registry import build_triggers  # registry imports policy's siblings only

    if isinstance(config, RetrainerConfig):
        specs, policy = config.triggers, config.policy
    else:
        specs, policy = config, policy or PolicyConfig()
    triggers = build_triggers(specs, extra=extra)
    if policy.mode == "at_least":
        assert policy.k is not None  # PolicyConfig guarantees it
        root: Trigger = AtLeast(policy.k, triggers, on_error=policy.on_error, label="policy")
    else:
        root = _MODES[policy.mode](triggers, on_error=policy.on_error, label="policy")
    return Policy(root, Guard.from_config(policy))


__all__ = [
    "AllOf", "AnyOf", "AtLeast", "CheckResult", "Combination", "Guard", "OnError", "Policy",
    "apply_guard", "build_policy",
]
