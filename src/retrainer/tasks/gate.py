"""The promotion gate: the candidate must score at least ``min_ratio`` x the champion.

>>> from retrainer.config import GateConfig
>>> gate({"f1": 0.76}, {"f1": 0.80}, GateConfig()).accepted   # 0.76 == 0.95 x 0.80
True
>>> gate({"f1": 0.7599}, {"f1": 0.80}, GateConfig()).accepted
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from prefect import task

from retrainer.config import GateConfig

# Products like 0.95 x 0.8 land a hair off the decimal value (0.7599999999999999): compare with
# a tolerance far below any meaningful metric difference so "exactly 0.95x" really accepts.
_REL_TOL = 1e-9


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    metric: str
    candidate_value: float
    champion_value: float | None
    required: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(metrics: Mapping[str, Any], metric: str, who: str) -> float:
    if metric not in metrics:
        raise KeyError(f"{who} metrics lack {metric!r} (have: {', '.join(sorted(metrics))})")
    value = metrics[metric]
    return math.nan if value is None else float(value)


def gate(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, cfg: GateConfig) -> GateResult:
    """Accept when ``candidate[m] >= cfg.min_ratio * champion[m]`` (inclusive); no champion accepts."""
    m = cfg.metric
    cand = _value(candidate, m, "candidate")
    if math.isnan(cand):
        return GateResult(False, m, cand, None, None, f"candidate {m} is NaN (undefined on this holdout): rejected")
    if champion is None:
        return GateResult(True, m, cand, None, None, f"no champion yet: candidate {m} {cand:.4f} accepted")
    champ = _value(champion, m, "champion")
    if math.isnan(champ):
        return GateResult(
            False, m, cand, champ, None,
            f"champion {m} is NaN on this holdout, so the candidate cannot be compared: rejected",
        )
    required = cfg.min_ratio * champ
    accepted = cand >= required or math.isclose(cand, required, rel_tol=_REL_TOL, abs_tol=1e-12)
    verdict = "accepted" if accepted else "rejected"
    reason = (
        f"candidate {m} {cand:.4f} {'>=' if accepted else '<'} {cfg.min_ratio:g} x champion {champ:.4f} "
        f"= {required:.4f}: {verdict}"
    )
    return GateResult(accepted, m, cand, champ, required, reason)


gate_task = task(gate, name="gate")

__all__ = ["GateResult", "gate", "gate_task"]
