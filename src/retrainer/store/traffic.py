"""What a model's traffic looks like, measured: the inputs of the rollout plan.

Over ``[start, as_of)`` with ``start = max(as_of - lookback, first prediction)`` (a young log is
not diluted by days it did not exist):

* **requests a day**: predictions made in the window / its length in days;
* **label delay**: :func:`retrainer.store.labels.label_delay` (p50, p95 of label time - prediction
  time over the labels that *arrived* in the lookback);
* **label rate**: the share of *matured* predictions labelled by ``as_of``: those made before
  ``as_of - p95 delay``, which have had the time most labels take. (The share of all recent
  predictions would count ones whose labels are merely late as never coming.) When no prediction
  is that old, the share of all of them, a lower bound, said so in ``label_rate_basis``;
* **champion accuracy**: of the window's labelled predictions (an A/B test's per-request variance);
* **disagreement**: the share of shadowed requests on which the shadow model answered differently
  from the champion (of ``shadow_version`` when given, else of any shadow in the window).

Reads are clamped at ``as_of`` (a prediction counts as labelled only if its label had arrived).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.store import labels
from retrainer.store.records import from_epoch, to_epoch
from retrainer.store.schema import predictions as p
from retrainer.store.schema import shadow_comparisons as sc

DAY_S = 86400.0


@dataclass(frozen=True)
class TrafficMeasure:
    """Measured traffic of one model (module docstring: how each figure is read)."""

    model_name: str
    as_of: datetime
    start: datetime | None  # None: no prediction in the lookback
    days: float
    n_predictions: int
    requests_per_day: float
    label_rate: float
    label_rate_basis: str
    n_matured: int
    label_delay_p50_days: float | None
    label_delay_p95_days: float | None
    n_delays: int
    champion_accuracy: float | None
    n_labelled: int
    disagreement: float | None
    n_shadow_pairs: int
    shadow_version: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat()
        out["start"] = None if self.start is None else self.start.isoformat()
        return out


def _days(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds() / DAY_S


def _labelled_share(conn: Connection, model_name: str, lo: float, hi: float, as_of: float) -> tuple[int, int, int]:
    """(made, labelled by as_of, labelled and right) among predictions made in [lo, hi)."""
    labelled = p.c.label_ts <= as_of
    made, n_lab, n_right = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((labelled, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((labelled & (p.c.label == p.c.prediction), 1), else_=0)), 0),
        ).where(p.c.model_name == model_name, p.c.ts >= lo, p.c.ts < hi)
    ).one()
    return int(made), int(n_lab), int(n_right)


def _disagreement(conn: Connection, model_name: str, lo: float, hi: float,
                  shadow_version: str | None) -> tuple[int, int]:
    """(answered pairs, pairs answered differently) of the shadow in [lo, hi)."""
    where = [sc.c.model_name == model_name, sc.c.ts >= lo, sc.c.ts < hi, sc.c.shadow_prediction.is_not(None)]
    if shadow_version is not None:
        where.append(sc.c.shadow_version == str(shadow_version))
    differ = sa.case((sc.c.shadow_prediction != sc.c.champion_prediction, 1), else_=0)
    n, n_diff = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(differ), 0)).where(*where)).one()
    return int(n), int(n_diff)


def measure(conn: Connection, model_name: str, as_of: datetime, lookback: timedelta,
            shadow_version: str | None = None) -> TrafficMeasure:
    """The model's traffic over the ``lookback`` before ``as_of`` (module docstring)."""
    hi = to_epoch(as_of)
    first = conn.execute(
        sa.select(sa.func.min(p.c.ts)).where(p.c.model_name == model_name, p.c.ts >= hi - lookback.total_seconds(),
                                             p.c.ts < hi)
    ).scalar_one()
    delay = labels.label_delay(conn, model_name, as_of, lookback)
    p50, p95 = _days(delay.p50), _days(delay.p95)
    if first is None:
        return TrafficMeasure(model_name, as_of, None, 0.0, 0, 0.0, 0.0, "no predictions in the lookback", 0,
                              p50, p95, delay.n, None, 0, None, 0, shadow_version)
    lo = float(first)
    days = max((hi - lo) / DAY_S, 1.0)  # a log younger than a day still counts per day, not per second
    made, n_lab, n_right = _labelled_share(conn, model_name, lo, hi, hi)
    matured_hi = hi - (p95 or 0.0) * DAY_S
    n_matured, n_matured_lab, _ = _labelled_share(conn, model_name, lo, matured_hi, hi) if matured_hi > lo else (0, 0, 0)
    if n_matured:
        rate = n_matured_lab / n_matured
        basis = (f"{n_matured_lab} of {n_matured} predictions older than the p95 label delay "
                 f"({p95 or 0:.1f}d) are labelled")
    else:
        rate = n_lab / made
        basis = (f"lower bound: no prediction is older than the p95 label delay yet; {n_lab} of {made} "
                 "recent predictions are labelled")
    n_pairs, n_diff = _disagreement(conn, model_name, lo, hi, shadow_version)
    return TrafficMeasure(
        model_name=model_name, as_of=as_of, start=from_epoch(lo), days=days, n_predictions=made,
        requests_per_day=made / days, label_rate=rate, label_rate_basis=basis, n_matured=n_matured,
        label_delay_p50_days=p50, label_delay_p95_days=p95, n_delays=delay.n,
        champion_accuracy=n_right / n_lab if n_lab else None, n_labelled=n_lab,
        disagreement=n_diff / n_pairs if n_pairs else None, n_shadow_pairs=n_pairs, shadow_version=shadow_version,
    )
