"""Policies: every child evaluated, on_error, nesting; the guard: cooldown and M-of-N; CheckResult."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Literal

import pytest

from retrainer.config import PolicyConfig, TriggerSpec
from retrainer.errors import TriggerError, TriggerEvaluationError
from retrainer.triggers import (
    AllOf,
    AnyOf,
    AtLeast,
    Decision,
    Guard,
    InvalidTriggerParams,
    NeverTrigger,
    Trigger,
    TriggerContext,
    apply_guard,
    build_policy,
    register,
)

NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
CTX = TriggerContext(model_name="m", now=NOW)


class Scripted(Trigger):
    """Answers what it is told, and counts its calls."""

    name = "scripted"

    class Params(Trigger.Params):
        outcome: Literal["fire", "ok", "insufficient", "raise", "mislabel"] = "ok"

    def __init__(self, params=None, *, label=None) -> None:  # noqa: ANN001
        super().__init__(params, label=label)
        self.calls = 0

    def evaluate(self, ctx: TriggerContext) -> Decision:
        self.calls += 1
        outcome = self.params.outcome
        if outcome == "raise":
            raise RuntimeError(f"{self.label} exploded")
        if outcome == "fire":
            return Decision.fire(self.label, f"{self.label} saw a problem.", value=1.0, threshold=0.5)
        if outcome == "insufficient":
            return Decision.insufficient(self.label, "Too few rows.")
        if outcome == "mislabel":
            return Decision.ok("someone_else", "Wrong label.")
        return Decision.ok(self.label, "All fine.", value=0.1, threshold=0.5)


def s(outcome: str, label: str) -> Scripted:
    return Scripted({"outcome": outcome}, label=label)


def test_any_of_evaluates_every_child_even_after_one_fired() -> None:
    kids = [s("fire", "a"), s("ok", "b"), s("fire", "c"), s("insufficient", "d")]
    d = AnyOf(kids).evaluate(CTX)
    assert [k.calls for k in kids] == [1, 1, 1, 1]
    assert (d.fired, d.status, d.value, d.threshold) == (True, "fired", 2.0, 1.0)
    assert d.trigger == "any_of"
    assert d.reason == "2 of 4 triggers fired (a, c), 1 needed."
    assert [c["trigger"] for c in d.evidence["children"]] == ["a", "b", "c", "d"]
    assert [c["status"] for c in d.evidence["children"]] == ["fired", "ok", "fired", "insufficient_data"]


def test_all_of_and_at_least() -> None:
    assert AllOf([s("fire", "a"), s("fire", "b")]).evaluate(CTX).fired
    d = AllOf([s("fire", "a"), s("insufficient", "b")]).evaluate(CTX)
    assert (d.fired, d.status, d.value, d.threshold) == (False, "ok", 1.0, 2.0)  # insufficient is not fired
    assert AtLeast(2, [s("fire", "a"), s("ok", "b"), s("fire", "c")]).evaluate(CTX).fired
    d = AtLeast(2, [s("fire", "a"), s("ok", "b"), s("insufficient", "c")]).evaluate(CTX)
    assert (d.fired, d.value, d.threshold) == (False, 1.0, 2.0)
    only_insufficient = AnyOf([s("insufficient", "a"), s("insufficient", "b")]).evaluate(CTX)
    assert only_insufficient.status == "insufficient_data"
    assert AnyOf([]).evaluate(CTX).status == "ok" and not AllOf([]).evaluate(CTX).fired


def test_policies_nest_and_still_evaluate_every_leaf() -> None:
    leaves = [s("fire", "a"), s("ok", "b"), s("fire", "c"), s("ok", "d")]
    inner_all = AllOf(leaves[:2], label="both")  # does not fire
    inner_two = AtLeast(1, leaves[2:], label="one_of_cd")  # fires
    outer = AnyOf([inner_all, inner_two], label="policy")
    d = outer.evaluate(CTX)
    assert d.fired and [k.calls for k in leaves] == [1, 1, 1, 1]
    assert d.evidence["counted"] == ("one_of_cd",)
    nested = d.evidence["children"][1]["evidence"]["children"]
    assert [(c["trigger"], c["fired"]) for c in nested] == [("c", True), ("d", False)]
    assert not AllOf([inner_all, inner_two]).evaluate(CTX).fired


def test_on_error_ignore_leaves_the_child_out() -> None:
    d = AnyOf([s("raise", "boom"), s("ok", "b")], on_error="ignore").evaluate(CTX)
    assert (d.fired, d.status, d.value) == (False, "ok", 0.0)
    child = d.evidence["children"][0]
    assert (child["status"], child["fired"]) == ("error", False)
    assert child["reason"] == "boom raised RuntimeError: boom exploded"
    assert d.evidence["errors"] == ("boom",) and d.evidence["considered"] == 1
    assert "1 raised (boom) and was ignored" in d.reason
    # all-of over the children that did not raise
    assert AllOf([s("raise", "boom"), s("fire", "b")], on_error="ignore").evaluate(CTX).fired
    every = AnyOf([s("raise", "x"), s("raise", "y")]).evaluate(CTX)
    assert (every.status, every.fired) == ("error", False)


def test_on_error_fire_counts_the_child_as_fired() -> None:
    d = AnyOf([s("raise", "boom"), s("ok", "b")], on_error="fire").evaluate(CTX)
    assert (d.fired, d.value) == (True, 1.0)
    assert d.evidence["counted"] == ("boom",)
    assert d.evidence["children"][0]["status"] == "error"  # still reported as an error, not as fired
    assert not AllOf([s("raise", "boom"), s("ok", "b")], on_error="fire").evaluate(CTX).fired


def test_on_error_fail_raises_naming_the_child_even_when_nested() -> None:
    with pytest.raises(TriggerEvaluationError, match="trigger 'boom' failed and policy.on_error is 'fail'.*exploded"):
        AnyOf([s("ok", "a"), s("raise", "boom")], on_error="fail").evaluate(CTX)
    inner = AllOf([s("raise", "deep")], on_error="fail", label="inner")
    with pytest.raises(TriggerEvaluationError, match="'deep'"):
        AnyOf([inner], on_error="ignore").evaluate(CTX)


def test_contract_violations_become_errors() -> None:
    d = AnyOf([s("mislabel", "liar")]).evaluate(CTX)
    assert d.evidence["children"][0]["status"] == "error"
    assert "labelled 'someone_else', not 'liar'" in d.evidence["children"][0]["reason"]


def test_construction_errors() -> None:
    with pytest.raises(TriggerError, match="share the label a"):
        AnyOf([s("ok", "a"), s("ok", "a")])
    with pytest.raises(InvalidTriggerParams, match="k = 3 but only 2"):
        AtLeast(3, [s("ok", "a"), s("ok", "b")])
    with pytest.raises(InvalidTriggerParams, match="on_error"):
        AnyOf([], on_error="explode")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Trigger instances"):
        AnyOf(["drift"])  # type: ignore[list-item]


# --- guard -----------------------------------------------------------------------------------

FIRED = Decision.fire("policy", "1 of 1 triggers fired (a), 1 needed.", value=1, threshold=1)
QUIET = Decision.ok("policy", "0 of 1 triggers fired, 1 needed.", value=0, threshold=1)


def ctx_after(last: timedelta | None) -> TriggerContext:
    return TriggerContext(model_name="m", now=NOW, last_retrain_at=None if last is None else NOW - last)


def test_cooldown_suppresses_a_fire_too_soon_after_the_last_retrain() -> None:
    cfg = PolicyConfig(cooldown="1d")
    d = apply_guard(FIRED, ctx_after(timedelta(hours=23)), cfg, [])
    assert (d.fired, d.status) == (False, "ok")
    assert d.reason == (
        "1 of 1 triggers fired (a), 1 needed; suppressed by cooldown until 2025-03-01T01:00:00+00:00 "
        "(last retrain 2025-02-28T01:00:00+00:00, cooldown 1d)."
    )
    assert d.evidence["suppressed_by"] == ("cooldown",)
    assert d.evidence["cooldown_until"] == "2025-03-01T01:00:00+00:00"
    assert d.evidence["raw"]["fired"] is True
    assert (d.value, d.threshold) == (1.0, 1.0)
    assert apply_guard(FIRED, ctx_after(timedelta(days=1)), cfg, []) is FIRED  # the boundary is free
    assert apply_guard(FIRED, ctx_after(None), cfg, []) is FIRED  # never retrained
    assert apply_guard(QUIET, ctx_after(timedelta(hours=1)), cfg, []) is QUIET


@pytest.mark.parametrize(
    ("history", "fires", "fired_count", "evaluations"),
    [
        ([], False, 1, 1),
        ([True], True, 2, 2),
        ([True, False], True, 2, 3),
        ([False, True], True, 2, 3),
        ([False, False], False, 1, 3),
        ([True, False, False], False, 1, 3),  # the True is older than the last 3
        ([True, True, True, False, True], True, 2, 3),
    ],
)
def test_hysteresis_two_of_last_three(history: list[bool], fires: bool, fired_count: int, evaluations: int) -> None:
    cfg = PolicyConfig(cooldown="0s", consecutive=2, of_last=3)
    d = apply_guard(FIRED, ctx_after(None), cfg, history)
    assert d.fired is fires
    if not fires:
        assert d.evidence["suppressed_by"] == ("hysteresis",)
        assert (
            f"suppressed by hysteresis ({fired_count} of the last {evaluations} evaluations fired, 2/3 needed)"
            in d.reason
        )
        assert d.evidence["hysteresis"] == {"fired": fired_count, "evaluations": evaluations, "needed": 2, "of_last": 3}


def test_consecutive_without_of_last_means_m_in_a_row_and_a_quiet_check_never_fires() -> None:
    g = Guard(consecutive=3)
    assert g.apply(FIRED, CTX, [True, True]).fired
    assert not g.apply(FIRED, CTX, [False, True]).fired
    assert not g.apply(FIRED, CTX, [True, True, True, False]).fired
    assert g.apply(QUIET, CTX, [True, True, True]) is QUIET


def test_both_suppressions_are_reported() -> None:
    d = Guard(cooldown=timedelta(days=1), consecutive=2).apply(FIRED, ctx_after(timedelta(hours=1)), [False])
    assert d.evidence["suppressed_by"] == ("hysteresis", "cooldown")
    assert "hysteresis (1 of the last 2 evaluations fired, 2/2 needed) and by cooldown until" in d.reason


# --- build_policy and CheckResult ---------------------------------------------------------------


def test_build_policy_check_and_json_shape() -> None:
    specs = [
        TriggerSpec(type="scripted", name="drift", outcome="fire"),
        TriggerSpec(type="scripted", name="perf", outcome="ok"),
        TriggerSpec(type="never"),
    ]
    with register(Scripted), register(NeverTrigger):
        policy = build_policy(specs, PolicyConfig(mode="any", cooldown="1d"))
    result = policy.check(ctx_after(timedelta(days=2)))
    assert result.should_retrain and result.reasons == ["drift"]
    assert [c.trigger for c in result.children] == ["drift", "perf", "never"]
    out = json.loads(result.to_json())
    for child in result.children:  # each check carries its trigger's evidence
        assert out["checks"][child.trigger].pop("evidence") == child.to_dict()["evidence"]
    assert out == {
        "should_retrain": True,
        "reasons": ["drift"],
        "checks": {
            "drift": {"fired": True, "status": "fired", "value": 1.0, "threshold": 0.5, "reason": "drift saw a problem."},
            "perf": {"fired": False, "status": "ok", "value": 0.1, "threshold": 0.5, "reason": "All fine."},
            "never": {"fired": False, "status": "ok", "value": None, "threshold": None,
                      "reason": "The null trigger never fires."},
        },
    }
    cooled = policy.check(ctx_after(timedelta(hours=2)))
    assert not cooled.should_retrain and cooled.reasons == []
    assert cooled.raw.fired and cooled.children[0].fired  # the evidence still shows what fired
    assert "suppressed by cooldown" in cooled.decision.reason
    explained = cooled.to_dict()
    assert explained["suppressed_by"] == ["cooldown"]
    assert explained["until"] == cooled.decision.evidence["cooldown_until"] is not None


def test_build_policy_modes_from_a_whole_config() -> None:
    from retrainer.config import parse_config

    cfg = parse_config({
        "model": {"name": "m"},
        "data": {"features": [{"name": "x"}]},
        "triggers": [{"type": "scripted", "name": "a", "outcome": "fire"},
                     {"type": "scripted", "name": "b", "outcome": "raise"},
                     {"type": "scripted", "name": "c", "outcome": "ok"}],
        "policy": {"mode": "at_least", "k": 2, "on_error": "fire", "cooldown": "0s"},
    })
    with register(Scripted):
        policy = build_policy(cfg)
    assert isinstance(policy.root, AtLeast) and policy.root.label == "policy"
    result = policy.check(CTX)
    assert result.should_retrain and result.reasons == ["a", "b"]
    assert result.to_dict()["checks"]["b"]["status"] == "error"
    assert build_policy([s("fire", "x")], PolicyConfig(mode="all")).check(CTX).should_retrain
