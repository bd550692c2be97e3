"""The performance trigger's judged window never ends in the future (issue 20)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from retrainer.triggers.performance import maturity_lag
from retrainer.windows import LabelDelay


def test_a_negative_label_delay_judges_the_window_ending_now():
    # Labels dated before their predictions (a store written before label times were clamped)
    # measure a p95 of -1 h: the trigger must judge the window ending now, not raise on a negative lag.
    delay = LabelDelay.from_delays(np.array([-3600.0, -7200.0]), as_of=datetime(2026, 3, 1, tzinfo=timezone.utc),
                                   lookback=timedelta(days=30), n_predictions=2, n_labelled=2)
    assert delay.p95 == timedelta(hours=-1)
    assert maturity_lag("auto", delay) == timedelta(0)
    positive = LabelDelay.from_delays(np.array([3600.0]), as_of=datetime(2026, 3, 1, tzinfo=timezone.utc),
                                      lookback=timedelta(days=30), n_predictions=1, n_labelled=1)
    assert maturity_lag("auto", positive) == timedelta(hours=1)
