"""Decision: the invariant, strict JSON evidence, immutability."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from retrainer.triggers import Decision, EvidenceNotSerialisable


def test_constructors_set_status_and_fired() -> None:
    assert (Decision.fire("d", "x").fired, Decision.fire("d", "x").status) == (True, "fired")
    assert (Decision.ok("d", "x").fired, Decision.ok("d", "x").status) == (False, "ok")
    assert Decision.insufficient("d", "x").status == "insufficient_data"
    err = Decision.error("d", KeyError("income"))
    assert (err.fired, err.status) == (False, "error")
    assert err.reason == "d raised KeyError: 'income'"
    assert err.evidence == {"error_type": "KeyError", "error": "'income'"}


@pytest.mark.parametrize(("fired", "status"), [(True, "ok"), (False, "fired"), (True, "error"), (True, "insufficient_data")])
def test_fired_iff_status_fired(fired: bool, status: str) -> None:
    with pytest.raises(ValueError, match="fired is True exactly when status is 'fired'"):
        Decision("d", fired, status, "reason")  # type: ignore[arg-type]


def test_unknown_status_and_empty_label_rejected() -> None:
    with pytest.raises(ValueError, match="not one of fired, ok, insufficient_data, error"):
        Decision("d", False, "maybe", "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="label"):
        Decision.ok("", "r")


def test_evidence_must_be_strict_json_and_the_error_names_the_key() -> None:
    with pytest.raises(EvidenceNotSerialisable, match=r"\['counts'\]\[1\] is a int64.*int\(\)"):
        Decision.ok("d", "r", evidence={"counts": [1, np.int64(2)]})
    with pytest.raises(EvidenceNotSerialisable, match="NaN"):
        Decision.ok("d", "r", evidence={"psi": float("nan")})
    with pytest.raises(EvidenceNotSerialisable, match="key 1"):
        Decision.ok("d", "r", evidence={1: "x"})
    with pytest.raises(EvidenceNotSerialisable, match="set"):
        Decision.ok("d", "r", evidence={"cols": {"a"}})
    assert isinstance(EvidenceNotSerialisable("x"), TypeError)


def test_value_and_threshold_are_finite_floats_or_none() -> None:
    d = Decision.fire("d", "r", value=np.float32(0.5), threshold=1)
    assert d.value == 0.5 and type(d.value) is float and type(d.threshold) is float
    with pytest.raises(ValueError, match="use None"):
        Decision.ok("d", "r", value=float("inf"))
    with pytest.raises(TypeError, match="number or None"):
        Decision.ok("d", "r", value="0.3")
    with pytest.raises(TypeError, match="number or None"):
        Decision.ok("d", "r", threshold=True)


def test_evidence_is_a_frozen_copy() -> None:
    raw = {"columns": {"income": [1.0, 2.0]}}
    d = Decision.fire("d", "r", evidence=raw)
    raw["columns"]["income"].append(3.0)
    raw["new"] = 1
    assert d.to_dict()["evidence"] == {"columns": {"income": [1.0, 2.0]}}
    with pytest.raises(TypeError, match="read-only"):
        d.evidence["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        d.evidence["columns"].update(a=1)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        d.fired = False  # type: ignore[misc]


def test_to_dict_is_json_and_pickle_round_trips() -> None:
    d = Decision.fire("drift", "PSI 0.3 > 0.25.", value=0.3, threshold=0.25, evidence={"psi": {"x": 0.3}, "n": 10})
    assert json.loads(json.dumps(d.to_dict())) == {
        "trigger": "drift", "fired": True, "status": "fired", "value": 0.3, "threshold": 0.25,
        "reason": "PSI 0.3 > 0.25.", "evidence": {"psi": {"x": 0.3}, "n": 10},
    }
    again = pickle.loads(pickle.dumps(d))
    assert again == d and hash(again) == hash(d)
