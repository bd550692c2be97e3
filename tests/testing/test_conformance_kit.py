"""check_trigger passes a well-behaved trigger and catches each kind of broken one."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, Field

from retrainer.testing import ConformanceError, check_trigger, make_context, standard_contexts
from retrainer.triggers import AnyOf, AtLeast, Decision, NeverTrigger, Trigger, TriggerContext


class MeanShift(Trigger):
    """Fires when the mean of a feature over the last day moves away from the reference mean."""

    name = "mean_shift"

    class Params(Trigger.Params):
        column: str = "x1"
        threshold: float = Field(1.0, gt=0)
        window: timedelta = timedelta(days=1)
        min_rows: int = 10

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        values = np.asarray(ctx.features(p.window, [p.column]).columns[p.column], dtype=float)
        values = values[~np.isnan(values)]
        if len(values) < p.min_rows or ctx.reference is None:
            return Decision.insufficient(self.label, f"Only {len(values)} usable rows; {p.min_rows} needed.",
                                         evidence={"rows": int(len(values))})
        ref = np.asarray(ctx.reference["columns"][p.column], dtype=float)
        shift = abs(float(values.mean()) - float(np.nanmean(ref)))
        evidence = {"rows": int(len(values)), "shift": shift}
        if shift > p.threshold:
            return Decision.fire(self.label, f"Mean of {p.column} moved by {shift:.2f}, above {p.threshold}.",
                                 value=shift, threshold=p.threshold, evidence=evidence)
        return Decision.ok(self.label, f"Mean of {p.column} moved by {shift:.2f}.", value=shift,
                           threshold=p.threshold, evidence=evidence)


def test_a_well_behaved_trigger_passes_and_really_was_exercised() -> None:
    check_trigger(MeanShift)
    check_trigger(MeanShift, params={"column": "x2", "threshold": 0.5})
    verdicts = {name: MeanShift().evaluate(ctx).status for name, ctx in standard_contexts().items()}
    assert verdicts == {"normal": "ok", "drifted": "fired", "empty": "insufficient_data",
                        "nan": "insufficient_data", "no_champion": "ok"}


def test_null_trigger_and_policies_pass() -> None:
    check_trigger(NeverTrigger)
    check_trigger(AnyOf([MeanShift(label="shift"), NeverTrigger()]))
    check_trigger(AtLeast(1, [MeanShift(label="shift")], on_error="fire", label="at_least_one"))


def test_custom_contexts_are_used() -> None:
    ctx = make_context({"ts": ["2025-01-14T00:00Z"], "x1": [5.0]}, reference={"columns": {"x1": [0.0]}})
    check_trigger(MeanShift, params={"min_rows": 1}, contexts=[ctx])
    assert MeanShift({"min_rows": 1}).evaluate(ctx).fired


# --- deliberately broken toys -------------------------------------------------------------------


class Nondeterministic(MeanShift):
    name = "nondeterministic"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok(self.label, "Coin tossed.", value=random.random())


class Mutating(MeanShift):
    name = "mutating"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        x = ctx.features(timedelta(days=1), ["x1"]).columns["x1"]
        if len(x):
            x.flags.writeable = True  # defeats the guard rail on purpose
            x[0] = 1e9
        return Decision.ok(self.label, "Scribbled on shared data.")


class Unpicklable(MeanShift):
    name = "unpicklable"

    def __init__(self, params: Any = None, *, label: str | None = None) -> None:
        super().__init__(params, label=label)
        self.scale = lambda v: v * 2


class Mute(MeanShift):
    name = "mute"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.fire(self.label, "")


class Opaque(MeanShift):
    name = "opaque"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok(self.label, "At this instant.", evidence={"when": ctx.now})


class Sneaky(MeanShift):
    name = "sneaky"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        d = Decision.ok(self.label, "Smuggled.")
        object.__setattr__(d, "evidence", {"rows": np.int64(3)})
        return d


class SelfNamed(MeanShift):
    name = "self_named"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok(self.name, "Labelled with the type, not the label.")


class EmptyHostile(MeanShift):
    name = "empty_hostile"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        x = ctx.features(timedelta(days=1), ["x1"]).columns["x1"]
        return Decision.ok(self.label, "First value.", value=float(x[0]) if not np.isnan(x[0]) else None)


class LaxParams(Trigger):
    name = "lax"

    class Params(BaseModel):  # forgets extra="forbid"
        threshold: float = 1.0

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok(self.label, "ok")


class Nameless(Trigger):
    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.ok("x", "ok")


@pytest.mark.parametrize(
    ("toy", "check", "context", "fragment"),
    [
        (Nondeterministic, "deterministic", "normal", "two evaluations on the same context differ"),
        (Mutating, "does_not_mutate_context", "normal", "values changed"),
        (Unpicklable, "picklable", None, "does not survive pickle"),
        (Mute, "reason_when_fired", "normal", "empty reason"),
        (Opaque, "evidence_json_serialisable", "normal", "evidence of 'opaque_under_check'['when'] is a datetime"),
        (Sneaky, "evidence_json_serialisable", "normal", "int64 is not JSON serializable"),
        (SelfNamed, "decision_label", "normal", "'self_named', expected the label 'self_named_under_check'"),
        (EmptyHostile, "evaluate_returns_decision", "empty", "evaluate raised IndexError"),
        (LaxParams, "params_validated", None, "Params must forbid unknown keys"),
        (Nameless, "class_shape", None, "`name`"),
    ],
)
def test_broken_toys_fail_the_right_check(toy: type, check: str, context: str | None, fragment: str) -> None:
    with pytest.raises(ConformanceError) as info:
        check_trigger(toy)
    err = info.value
    assert isinstance(err, AssertionError)
    assert (err.check, err.context) == (check, context)
    assert str(err).startswith(f"check_trigger({toy.__qualname__}) failed check {check!r}")
    assert fragment in str(err)


class Vandal(MeanShift):
    name = "vandal"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        ctx.source._features["x1"][:] = 0.0  # type: ignore[union-attr]  # reaches behind the context
        return Decision.ok(self.label, "Rewrote history.")


def test_mutation_of_the_source_data_is_caught_too() -> None:
    ctxs = {"normal": standard_contexts()["normal"]}
    with pytest.raises(ConformanceError, match=r"'does_not_mutate_context' on context 'normal'.*ctx\['source'\]"):
        check_trigger(Vandal, contexts=ctxs)
