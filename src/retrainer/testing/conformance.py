"""``check_trigger``: prove a trigger plugin keeps the contract, as scikit-learn's check_estimator does.

Put one line in the plugin's test suite::

    from retrainer.testing import check_trigger
    def test_conforms():
        check_trigger(MyTrigger, params={"threshold": 0.2})

It evaluates the trigger on the standard scenarios (normal, drifted, empty, NaN data, no
champion; or your own contexts) and raises :class:`ConformanceError` naming the first broken
rule: class shape, params validation, picklable, returns a Decision with its own label, does not
mutate the context, deterministic, explains itself when fired, JSON evidence.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from retrainer.errors import ConfigError, TriggerError
from retrainer.testing.fakes import standard_contexts
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision, EvidenceNotSerialisable

_UNKNOWN_KEY = "__conformance_unknown_key__"


class ConformanceError(AssertionError):
    """A trigger broke a rule of the plugin contract; ``check`` names the rule."""

    def __init__(self, check: str, trigger: str, detail: str, context: str | None = None) -> None:
        where = f" on context {context!r}" if context else ""
        super().__init__(f"check_trigger({trigger}) failed check {check!r}{where}: {detail}")
        self.check, self.trigger, self.context, self.detail = check, trigger, context, detail


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _diff(a: Any, b: Any, path: str = "") -> str | None:
    """Where two data structures differ (arrays compared by value, NaN equal to NaN), or None."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape != b_arr.shape:
            return f"{path or 'value'}: shape {a_arr.shape} != {b_arr.shape}"
        try:
            same = np.array_equal(a_arr, b_arr, equal_nan=True)
        except TypeError:  # object arrays: fast path first, then item by item (NaN-aware)
            if a_arr.tolist() == b_arr.tolist():
                return None
            return next((d for i, (x, y) in enumerate(zip(a_arr.tolist(), b_arr.tolist()))
                         if (d := _diff(x, y, f"{path}[{i}]"))), None)
        return None if same else f"{path or 'array'}: values changed"
    if type(a) is not type(b):
        return f"{path or 'value'}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, Mapping):
        if list(a) != list(b):
            return f"{path or 'mapping'}: keys {list(a)} became {list(b)}"
        return next((d for k in a if (d := _diff(a[k], b[k], f"{path}[{k!r}]"))), None)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path or 'sequence'}: length {len(a)} became {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _diff(x, y, f"{path}[{i}]"))), None)
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return _diff(vars(a), vars(b), path)
    try:
        return None if a == b else f"{path or 'value'}: {_short(a, 80)} became {_short(b, 80)}"
    except Exception:  # noqa: BLE001 - an ambiguous comparison is a difference we cannot rule out
        return f"{path or 'value'}: cannot be compared"


def _snapshot(ctx: TriggerContext) -> dict[str, Any]:
    state = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name not in ("source", "_cache")}
    snap: dict[str, Any] = {"context": copy.deepcopy(state)}
    try:
        snap["source"] = copy.deepcopy(ctx.source)
    except Exception:  # noqa: BLE001 - e.g. a live database engine: the cached reads are checked instead
        snap["source"] = None
    return snap


def _fresh(ctx: TriggerContext) -> TriggerContext:
    return dataclasses.replace(ctx)  # same facts, empty read cache


def _reread(ctx: TriggerContext, key: tuple[Any, ...]) -> Any:
    kind, *args = key
    # Window reads are cached by their bounds [start, end), fixed windows and window: auto alike.
    if kind == "features":
        return ctx._features_between(args[0], args[1], args[2])
    if kind == "labelled":
        return ctx._labelled_between(args[0], args[1], args[2])
    if kind == "scored":
        return ctx._scored_between(args[0], args[1], args[2])
    if kind == "count_between":
        return ctx._count_between(args[0], args[1], labelled=args[2])
    if kind == "label_delay":
        return ctx.label_delay(args[0])
    if kind == "retrain_history":
        return ctx.retrain_history(args[0])
    if kind == "histograms":
        return ctx.histograms(args[0], args[1])
    return ctx.count_since(args[0], labelled=args[1])


class _Checker:
    def __init__(self, who: str) -> None:
        self.who = who

    def fail(self, check: str, detail: str, context: str | None = None) -> ConformanceError:
        return ConformanceError(check, self.who, detail, context)

    def evaluate(self, trigger: Trigger, ctx: TriggerContext, cname: str) -> Decision:
        try:
            decision = trigger.evaluate(ctx)
        except EvidenceNotSerialisable as exc:
            raise self.fail("evidence_json_serialisable", str(exc), cname) from exc
        except Exception as exc:  # noqa: BLE001
            raise self.fail(
                "evaluate_returns_decision", f"evaluate raised {type(exc).__name__}: {exc}", cname
            ) from exc
        if not isinstance(decision, Decision):
            raise self.fail("evaluate_returns_decision", f"evaluate returned {_short(decision)}, not a Decision", cname)
        return decision


def _check_class(c: _Checker, cls: type) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Trigger)):
        raise c.fail("class_shape", f"{cls!r} is not a subclass of retrainer.triggers.Trigger")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise c.fail("class_shape", "the class attribute `name` (its entry-point name) must be a non-empty string")
    if not (inspect.isclass(getattr(cls, "Params", None)) and issubclass(cls.Params, BaseModel)):
        raise c.fail("class_shape", "`Params` must be a pydantic BaseModel (derive it from Trigger.Params)")
    if inspect.isabstract(cls):
        raise c.fail("class_shape", f"abstract methods left: {', '.join(sorted(cls.__abstractmethods__))}")


def _check_params(c: _Checker, cls: type[Trigger], construct: bool) -> None:
    bad = {_UNKNOWN_KEY: 1}
    try:
        # Combinations take children positionally; their Params model is checked directly.
        cls(bad) if construct else cls.validate_params(bad)
    except (TriggerError, ConfigError) as exc:
        if _UNKNOWN_KEY not in str(exc):
            raise c.fail("params_validated", f"the error for an unknown key does not name it: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise c.fail(
            "params_validated",
            f"an unknown key raised {type(exc).__name__} ({exc}); expected InvalidTriggerParams "
            "(call super().__init__(params, label=label) and let Trigger validate)",
        ) from None
    else:
        raise c.fail("params_validated", f"params {bad} were accepted: Params must forbid unknown keys (extra='forbid')")
    if not cls.Params.model_config.get("frozen"):
        raise c.fail("params_validated", "Params must be frozen (model_config frozen=True): a trigger's params never change")


def check_trigger(
    trigger: type[Trigger] | Trigger,
    *,
    params: BaseModel | Mapping[str, Any] | None = None,
    contexts: Mapping[str, TriggerContext] | Sequence[TriggerContext] | None = None,
) -> None:
    """Raise :class:`ConformanceError` unless ``trigger`` (a class, or an instance) keeps the contract."""
    is_class = inspect.isclass(trigger)
    cls = trigger if is_class else type(trigger)
    c = _Checker(getattr(cls, "__qualname__", repr(cls)))
    _check_class(c, cls)
    _check_params(c, cls, construct=is_class)

    if is_class:
        label = f"{cls.name}_under_check"  # not the default: catches triggers that label with `name`
        try:
            instance = cls(params, label=label)
        except Exception as exc:  # noqa: BLE001
            raise c.fail("instantiable", f"{cls.__qualname__}({_short(params)}) raised {type(exc).__name__}: {exc}") from exc
    else:
        instance = trigger
    try:
        clone = pickle.loads(pickle.dumps(instance))
    except Exception as exc:  # noqa: BLE001
        raise c.fail("picklable", f"the trigger does not survive pickle: {type(exc).__name__}: {exc}") from exc

    if contexts is None:
        named = standard_contexts()
    elif isinstance(contexts, Mapping):
        named = dict(contexts)
    else:
        named = {f"contexts[{i}]": ctx for i, ctx in enumerate(contexts)}

    for cname, ctx in named.items():
        before = _snapshot(ctx)
        first = c.evaluate(instance, ctx, cname)
        if first.trigger != instance.label:
            raise c.fail("decision_label", f"Decision.trigger is {first.trigger!r}, expected the label {instance.label!r}", cname)

        after = _snapshot(ctx)
        changed = _diff(before, after, "ctx")
        for key, value in list(ctx._cache.items()):  # a read the trigger got, then altered
            changed = changed or _diff(_reread(_fresh(ctx), key), value, f"ctx.{key[0]}{key[1:]!r}")
        if changed:
            raise c.fail("does_not_mutate_context", f"evaluate changed the context: {changed}", cname)

        try:
            json.dumps(first.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise c.fail("evidence_json_serialisable", f"{exc}", cname) from None
        if first.fired and not first.reason.strip():
            raise c.fail("reason_when_fired", "the Decision fired with an empty reason; say why in one sentence", cname)

        again = c.evaluate(instance, ctx, cname)
        anew = c.evaluate(instance, _fresh(ctx), cname)
        for other, how in ((again, "the same context"), (anew, "an equal, fresh context")):
            if other != first:
                raise c.fail(
                    "deterministic",
                    f"two evaluations on {how} differ: {_short(first)} vs {_short(other)}",
                    cname,
                )
        from_clone = c.evaluate(clone, _fresh(ctx), cname)
        if from_clone != first:
            raise c.fail("picklable", f"the unpickled copy decides differently: {_short(from_clone)}", cname)


__all__ = ["ConformanceError", "check_trigger"]
