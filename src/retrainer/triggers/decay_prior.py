"""How fast this model's champions fall behind a fresh model, learnt from its own retrain history.

Every retrain measures ``Δ_off`` = candidate − champion on the same holdout rows (a paired
difference: the rows' own difficulty cancels), at the moment the champion is ``age`` old. If the
gap of a champion to a fresh model grows linearly with its age at rate ``r``, then
``Δ_off_i = r · age_i + e_i`` with ``e_i`` the holdout noise of retrain ``i`` — which does not
depend on the age, so ``r`` is the least-squares slope through the origin::

    r̂  = Σ age_i·Δ_i / Σ age_i²        SE(r̂) = s / √(Σ age_i²),   s² = Σ (Δ_i − r̂·age_i)² / (m − 1)

(the textbook no-intercept regression; ``m`` the retrains that measured one). A ratio per retrain
(``Δ_i / age_i``) would give a retrain measured a month after the last one the same weight as one
measured after three years, although its ratio is thirty-six times noisier.

>>> from datetime import datetime, timedelta, timezone
>>> from retrainer.windows import RetrainRecord
>>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
>>> runs = [RetrainRecord(t0 + timedelta(days=d + a), offline_delta={"accuracy": g}, champion_since=t0 + timedelta(days=d))
...         for d, a, g in [(0, 365, 0.021), (400, 200, 0.009), (700, 500, 0.031)]]
>>> p = decay_prior(runs, "accuracy")
>>> p.n, round(p.rate * 365, 4), round(p.se * 365, 4)  # per year (statsmodels OLS without a constant agrees)
(3, 0.0215, 0.0013)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from retrainer.windows import RetrainRecord

_DAY = 86400.0


@dataclass(frozen=True)
class DecayPrior:
    """``rate``: the metric a fresh model gains over the champion per day of the champion's age;
    ``se``: its standard error; ``n``: the retrains it was learnt from; ``df`` = n − 1."""

    rate: float
    se: float
    n: int
    points: tuple[tuple[float, float], ...]  # (age in days, Δ_off) per retrain, most recent first

    @property
    def df(self) -> int:
        return self.n - 1

    def to_dict(self) -> dict[str, object]:
        return {"rate_per_day": self.rate, "se_per_day": self.se, "n": self.n,
                "points": [{"age_days": a, "offline_delta": d} for a, d in self.points]}


def decay_points(records: Iterable[RetrainRecord], metric: str) -> list[tuple[float, float]]:
    """(champion age in days, Δ_off) of each retrain that recorded both (ages > 0)."""
    out = []
    for r in records:
        delta = (r.offline_delta or {}).get(metric)
        if delta is None or r.champion_since is None or not math.isfinite(delta):
            continue
        age = (r.at - r.champion_since).total_seconds() / _DAY
        if age > 0:
            out.append((age, float(delta)))
    return out


def decay_prior(records: Iterable[RetrainRecord], metric: str) -> DecayPrior | None:
    """The decay rate through the origin over the retrains that measured one; None below two."""
    points = decay_points(records, metric)
    m = len(points)
    if m < 2:
        return None
    saa = sum(a * a for a, _ in points)
    rate = sum(a * d for a, d in points) / saa
    s2 = sum((d - rate * a) ** 2 for a, d in points) / (m - 1)
    return DecayPrior(rate=rate, se=math.sqrt(s2 / saa), n=m, points=tuple(points))


__all__ = ["DecayPrior", "decay_points", "decay_prior"]
