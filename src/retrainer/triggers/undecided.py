"""A policy that could not decide says so: the share of its checks that were ``insufficient_data``.

One rule for ``simulate``, ``backtest`` and ``check``: a check could not decide when the policy's
raw outcome is ``insufficient_data`` (every trigger that did not error lacked data). Over many
checks the share is reported; above half, a one-line flag names why, with the reason the
lacking trigger gave at the latest such check (e.g. "Not enough labels to judge performance: the
90d window ending 1998-09-20 00:00 (7 labelled predictions; min_samples 147 ...)").

>>> from retrainer.triggers.decision import Decision
>>> lacking = Decision.insufficient("performance", reason="the 7d window holds 7 labelled predictions, min_samples 200")
>>> u = Undecided.of([(lacking, (lacking,)), (Decision.ok("p", reason="fine"), ())])
>>> u.share, u.flagged
(0.5, False)
>>> Undecided.of([(lacking, (lacking,))]).flag("cost_benefit")
'cost_benefit could not decide at 1 of 1 checks (100%): performance: the 7d window holds 7 labelled predictions, min_samples 200'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from retrainer.triggers.decision import Decision

INSUFFICIENT = "insufficient_data"
FLAG_ABOVE = 0.5  # a policy undecided at more than half of its checks is flagged


def why_undecided(raw: Decision, children: Sequence[Decision]) -> str:
    """The reason a check could not decide: the first lacking trigger's own reason (a
    combination's "0 of 2 fired" says nothing), or "" when it did decide."""
    if raw.status != INSUFFICIENT:
        return ""
    lacking = next((d for d in children if d.status == INSUFFICIENT), raw)
    return f"{lacking.trigger}: {lacking.reason}"


@dataclass(frozen=True)
class Undecided:
    """How many of ``checks`` were undecided, and why at the latest of them."""

    checks: int
    undecided: int
    why: str = ""

    @classmethod
    def of(cls, outcomes: Iterable[tuple[Decision, Sequence[Decision]]]) -> Undecided:
        """From (raw policy decision, its children) per check, oldest first."""
        checks = undecided = 0
        why = ""
        for raw, children in outcomes:
            checks += 1
            if raw.status == INSUFFICIENT:
                undecided += 1
                why = why_undecided(raw, children)
        return cls(checks, undecided, why)

    @classmethod
    def from_reasons(cls, reasons: Sequence[str]) -> Undecided:
        """From one reason per check ("" where it decided), oldest first."""
        lacking = [r for r in reasons if r]
        return cls(len(reasons), len(lacking), lacking[-1] if lacking else "")

    @property
    def share(self) -> float:
        return self.undecided / self.checks if self.checks else 0.0

    @property
    def flagged(self) -> bool:
        return self.share > FLAG_ABOVE

    def flag(self, policy: str) -> str:
        """One line for the report: who, how often, and why."""
        return (f"{policy} could not decide at {self.undecided} of {self.checks} checks ({self.share:.0%}): "
                f"{self.why}")

    def to_dict(self) -> dict[str, object]:
        return {"checks": self.checks, "undecided": self.undecided, "share": self.share,
                "flagged": self.flagged, "why": self.why or None}


__all__ = ["FLAG_ABOVE", "INSUFFICIENT", "Undecided", "why_undecided"]
