"""What a trigger answers: one frozen :class:`Decision`.

A Decision is stored in the audit table, shown in reports and sent as a Prefect artifact, so it
must be plain data: numbers are finite floats or None, and ``evidence`` is strict JSON.

>>> d = Decision.fire("drift", reason="PSI of income is 0.31, above 0.25.", value=0.31, threshold=0.25)
>>> d.fired, d.status
(True, 'fired')
>>> Decision.ok("drift", reason="PSI of income is 0.02.").to_dict()["status"]
'ok'
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from retrainer.frozen import deep_freeze, thaw

Status = Literal["fired", "ok", "insufficient_data", "error"]
STATUSES: tuple[str, ...] = ("fired", "ok", "insufficient_data", "error")


class EvidenceNotSerialisable(TypeError):
    """A Decision's evidence holds something strict JSON cannot represent."""


def _check_json(value: Any, path: str) -> None:
    # Walk first so the message names the offending key; json.dumps alone says only "Object of type X".
    if value is None or isinstance(value, (bool, str, int)):  # numpy ints are not int subclasses
        return
    if isinstance(value, float):  # numpy.float64 is a float subclass and serialises fine
        if not math.isfinite(value):
            raise EvidenceNotSerialisable(f"{path} is {value!r}: JSON has no NaN/Infinity, use None")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EvidenceNotSerialisable(f"{path} has key {k!r} ({type(k).__name__}): JSON keys are strings")
            _check_json(v, f"{path}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")
        return
    hint = " (convert numpy scalars with float()/int()/bool(), arrays with .tolist())" if type(
        value
    ).__module__ == "numpy" else ""
    raise EvidenceNotSerialisable(f"{path} is a {type(value).__name__}, which is not JSON-serialisable{hint}")


def _as_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"Decision {what} must be a number or None, not {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"Decision {what} is {out!r}: use None when there is no finite value")
    return out


@dataclass(frozen=True)
class Decision:
    """One trigger's verdict at one instant. ``fired`` is True exactly when ``status == "fired"``."""

    trigger: str
    fired: bool
    status: Status
    reason: str
    value: float | None = None
    threshold: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.trigger, str) or not self.trigger:
            raise ValueError("Decision.trigger must be the trigger's label (a non-empty string)")
        if self.status not in STATUSES:
            raise ValueError(f"Decision.status {self.status!r} is not one of {', '.join(STATUSES)}")
        if not isinstance(self.fired, bool):
            raise TypeError(f"Decision.fired must be a bool, not {type(self.fired).__name__}")
        if self.fired != (self.status == "fired"):
            raise ValueError(
                f"Decision for {self.trigger!r}: fired={self.fired} contradicts status={self.status!r} "
                "(fired is True exactly when status is 'fired')"
            )
        if not isinstance(self.reason, str):
            raise TypeError(f"Decision.reason must be a string, not {type(self.reason).__name__}")
        if not isinstance(self.evidence, Mapping):
            raise EvidenceNotSerialisable(f"Decision.evidence must be a mapping, not {type(self.evidence).__name__}")
        _check_json(self.evidence, f"evidence of {self.trigger!r}")
        try:
            json.dumps(self.evidence, allow_nan=False)
        except (TypeError, ValueError) as exc:  # belt and braces: anything the walk let through
            raise EvidenceNotSerialisable(f"evidence of {self.trigger!r} is not JSON-serialisable: {exc}") from None
        # Frozen dataclass: assign the normalised copies through object.__setattr__.
        object.__setattr__(self, "value", _as_number(self.value, "value"))
        object.__setattr__(self, "threshold", _as_number(self.threshold, "threshold"))
        object.__setattr__(self, "evidence", deep_freeze(self.evidence))

    @classmethod
    def fire(cls, trigger: str, reason: str, *, value: Any = None, threshold: Any = None,
             evidence: Mapping[str, Any] | None = None) -> Decision:
        return cls(trigger, True, "fired", reason, value, threshold, evidence or {})

    @classmethod
    def ok(cls, trigger: str, reason: str, *, value: Any = None, threshold: Any = None,
           evidence: Mapping[str, Any] | None = None) -> Decision:
        return cls(trigger, False, "ok", reason, value, threshold, evidence or {})

    @classmethod
    def insufficient(cls, trigger: str, reason: str, *, value: Any = None, threshold: Any = None,
                     evidence: Mapping[str, Any] | None = None) -> Decision:
        return cls(trigger, False, "insufficient_data", reason, value, threshold, evidence or {})

    @classmethod
    def error(cls, trigger: str, exc: BaseException) -> Decision:
        """A trigger that raised, as data: the policy decides what it means (``on_error``)."""
        message = str(exc) or type(exc).__name__
        return cls(
            trigger, False, "error", f"{trigger} raised {type(exc).__name__}: {message}",
            evidence={"error_type": type(exc).__name__, "error": message},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (evidence thawed into dicts and lists)."""
        return {
            "trigger": self.trigger,
            "fired": self.fired,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
            "evidence": thaw(self.evidence),
        }


__all__ = ["Decision", "EvidenceNotSerialisable", "STATUSES", "Status"]
