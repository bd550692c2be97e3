"""A synthetic credit-default stream: numeric and categorical features, a drift onset part-way
through, and labels that arrive days after the prediction. Nothing is downloaded.

The drift is both covariate shift and concept drift. Covariate shift: after the onset half the
applicants come through a broker, with lower incomes and debt ratios right at an affordability limit
that tracks income, where the rules' debt and income terms cancel; the regional mix moves too.
These applicants are borderline, so a calibrated model's own scores already show its f1 falling
(what ``estimated_performance`` sees before any label is back). Concept drift: after the onset one
product (the card) turns risky, which only matured labels show. A model trained before the onset
measurably loses accuracy after it, and retraining on fresh data wins part of it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec

FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(name="income", type="numeric"),
    FeatureSpec(name="debt_ratio", type="numeric"),
    FeatureSpec(name="age", type="numeric"),
    FeatureSpec(name="credit_lines", type="numeric"),
    FeatureSpec(name="months_employed", type="numeric", nullable=True),
    FeatureSpec(name="region", type="categorical"),
    FeatureSpec(name="product", type="categorical"),
)
REGIONS = ("north", "south", "east", "west")
PRODUCTS = ("card", "loan", "mortgage")
# After the onset: the share of brokered applicants, their mean log income (others: 10.8), and where
# their debt ratio puts them on the old rules' logit (0: the debt and income terms cancel).
BROKERED_SHARE = 0.5
BROKERED_LOG_INCOME = 10.3
BROKERED_LOGIT = 0.0
CARD_RISK_AFTER_ONSET = 2.0  # the concept drift: the card's added log-odds of default


@dataclass(frozen=True)
class StreamSpec:
    start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)
    days: int = 60
    rows_per_day: int = 500
    drift_day: int | None = 40  # None: no drift at all
    label_delay_days: tuple[float, float] = (1.0, 5.0)  # labels arrive uniformly within this delay
    seed: int = 7


def _features(rng: np.random.Generator, n: int, drifted: np.ndarray) -> pd.DataFrame:
    brokered = drifted & (rng.random(n) < BROKERED_SHARE)
    income = rng.lognormal(mean=np.where(brokered, BROKERED_LOG_INCOME, 10.8), sigma=0.45, size=n)
    # A broker lends up to an affordability limit that rises with income; it sits where the old
    # rules' debt and income terms cancel (P(y | x) itself is unchanged): borderline applicants.
    limit = 0.3 + (BROKERED_LOGIT + 7.0 * (np.log(income) - 10.8)) / 24.0
    debt_ratio = np.where(brokered, limit + rng.normal(0.0, 0.03, size=n), rng.beta(2.0, 5.0, size=n))
    debt_ratio = np.clip(debt_ratio, 0, 1.5)
    age = np.clip(rng.normal(42, 12, size=n), 18, 90).round()
    credit_lines = rng.poisson(4, size=n).astype(float)
    months_employed = rng.gamma(2.0, 30.0, size=n).round()
    months_employed[rng.random(n) < 0.05] = np.nan  # optional field, sometimes missing
    region_p = np.where(drifted[:, None], [0.1, 0.5, 0.2, 0.2], [0.3, 0.2, 0.25, 0.25])
    region = np.array(REGIONS)[(rng.random(n)[:, None] > np.cumsum(region_p, axis=1)).sum(axis=1)]
    product = rng.choice(PRODUCTS, size=n, p=[0.5, 0.35, 0.15])
    return pd.DataFrame(
        {
            "income": income,
            "debt_ratio": debt_ratio,
            "age": age,
            "credit_lines": credit_lines,
            "months_employed": months_employed,
            "region": region,
            "product": product,
        }
    )


def _default_probability(x: pd.DataFrame, drifted: np.ndarray) -> np.ndarray:
    # The concept drift is one product turning risky; it stays mild on purpose: a stronger one (debt
    # mattering less, age and credit lines reversing) made the brokered applicants' new labels
    # contradict the old model so often that a good challenger failed the shadow's agreement floor.
    logit = (
        -0.6
        + 24.0 * (x["debt_ratio"].to_numpy() - 0.3)
        - 7.0 * (np.log(x["income"].to_numpy()) - 10.8)
        - 0.05 * (x["age"].to_numpy() - 40)
        + 0.5 * (x["credit_lines"].to_numpy() - 4)
        - 0.01 * np.nan_to_num(x["months_employed"].to_numpy(), nan=60.0)
        + np.where((x["product"].to_numpy() == "card") & drifted, CARD_RISK_AFTER_ONSET, 0.0)
        + np.where(x["region"].to_numpy() == "south", 1.0, 0.0)
    )
    return 1.0 / (1.0 + np.exp(-logit))


def generate_stream(spec: StreamSpec = StreamSpec()) -> pd.DataFrame:
    """Rows ordered by time: request_id, unit_id, ts, the features, label, label_ts.

    >>> frame = generate_stream(StreamSpec(days=2, rows_per_day=10, drift_day=1))
    >>> len(frame), frame["ts"].is_monotonic_increasing, set(frame["label"].unique()) <= {0.0, 1.0}
    (20, True, True)
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.days * spec.rows_per_day
    offsets = np.sort(rng.uniform(0, spec.days * 86400.0, size=n))
    day = (offsets // 86400).astype(int)
    drifted = np.zeros(n, bool) if spec.drift_day is None else day >= spec.drift_day
    frame = _features(rng, n, drifted)
    label = (rng.random(n) < _default_probability(frame, drifted)).astype(float)
    ts = pd.to_datetime(spec.start) + pd.to_timedelta(offsets, unit="s")
    lo, hi = spec.label_delay_days
    label_ts = ts + pd.to_timedelta(rng.uniform(lo, hi, size=n) * 86400.0, unit="s")
    frame.insert(0, "ts", ts)
    frame.insert(0, "unit_id", [f"customer-{u}" for u in rng.integers(0, max(n // 3, 1), size=n)])
    frame.insert(0, "request_id", [f"req-{spec.seed}-{i:08d}" for i in range(n)])
    frame["label"] = label
    frame["label_ts"] = label_ts
    return frame


def day_start(spec: StreamSpec, day: int) -> datetime:
    return spec.start + timedelta(days=day)
