"""The demo's volume-dependent settings, derived from its traffic, and whether a story fits.

Every setting of the demo's retrainer.yaml that counts rows — the training window and
``data.min_rows``, the trigger windows and the shadow's comparisons — is sized here from ``--rows-per-day``, so the same story runs at 50 or 5,000 requests a day. At 200 a
day (the default) the figures are the ones the story was first written with. The rollout itself
is not sized here: ``rollout.mode: auto`` (a paired shadow) decides with ``rollout.decision``'s
defaults, whatever the traffic, and keeps collecting while it lacks evidence (docs/rollout.md).

Labels arrive ``lo``..``hi`` days after the prediction (uniformly, :class:`StreamSpec`). A trailing
window of ``W >= hi`` days ending now then holds on average ``r * (W - (lo + hi) / 2)`` labelled
rows: the window's youngest days are still waiting for theirs. A window of predictions (labelled
or not) holds ``r * W``.

:func:`plan_story` refuses, in one line saying what would work, a combination of days, drift day
and traffic that cannot tell the story (no quiet days before the drift, too few after it to detect
it and retrain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from retrainer.demo.data import StreamSpec
from retrainer.errors import ConfigError

LABEL_DELAY_DAYS = StreamSpec().label_delay_days  # when the demo's labels arrive, in days after the prediction
# Below this, a window holding enough predictions for the triggers' statistics spans weeks at a
# time and the story would need months; the range the demo is tested on starts here.
MIN_ROWS_PER_DAY = 50
# Labelled rows the training window should hold on average; ``data.min_rows`` is 3/4 of it, room
# for the day-to-day variation of arrivals and label delays (200/day: a 5-day window, 400 rows).
TRAIN_ROWS = 400
MIN_TRAIN_ROWS = 300
# Predictions a drift or estimate window should hold: the triggers' default minimum (200,
# ``min_samples`` / ``min_predictions``) with room to spare, so a check rarely says insufficient_data.
WINDOW_PREDICTIONS = 300
# Matured labels the performance window should hold (its ``min_labels`` is 200).
PERFORMANCE_LABELS = 250
# The shortest windows, whatever the traffic: the story was written for these.
MIN_DRIFT_DAYS = 3
MIN_PERFORMANCE_DAYS = 7
# The policy's `consecutive` (checks in a row) and the shadow's one day.
CONSECUTIVE_CHECKS = 3
SHADOW_DAYS = 1
# The shadow judges its p99 latency on the comparisons it collected: below 100 the p99 is the single
# slowest call, which one hiccup of a busy machine decides (seen at 50/day: 47 comparisons, rejected).
MIN_SHADOW_COMPARISONS = 100
QUIET_DAYS_BEFORE_DRIFT = 2  # monitored days before the drift: the story shows the triggers quiet


@dataclass(frozen=True)
class StorySizing:
    """What the demo's retrainer.yaml sets at ``rows_per_day`` (windows in whole days)."""

    rows_per_day: int
    train_days: int  # data.window
    min_rows: int  # data.min_rows
    drift_days: int  # the drift and estimated_performance windows
    performance_days: int  # the performance window (judged where its labels have matured)
    shadow_comparisons: int  # rollout.shadow.min_comparisons

    @property
    def detection_days(self) -> int:
        """Days from the drift's onset until the slowest trigger the policy waits for can have
        fired ``CONSECUTIVE_CHECKS`` times: performance judges the window whose labels are in
        (ending the longest label delay ago) and sees the drift once half of it is drifted."""
        performance = math.ceil(LABEL_DELAY_DAYS[1]) + math.ceil(self.performance_days / 2)
        return max(performance, self.drift_days) + CONSECUTIVE_CHECKS - 1

    @property
    def shadow_days(self) -> int:
        """Days the shadow stage takes: its duration, or until it has its comparisons."""
        return days_holding(self.shadow_comparisons, self.rows_per_day, at_least=SHADOW_DAYS)

    @property
    def days_after_drift(self) -> int:
        """Days the story needs after the onset: detect it, retrain, the shadow's shortest run and
        its first look. Promotion may come later: the rule decides when the paired evidence does."""
        return self.detection_days + self.shadow_days + 1


def days_holding(count: int, rows_per_day: int, *, at_least: int) -> int:
    """The shortest whole-day window holding ``count`` predictions at ``rows_per_day``, never under ``at_least``.

    >>> days_holding(300, 50, at_least=3), days_holding(300, 200, at_least=3)
    (6, 3)
    """
    return max(at_least, math.ceil(count / rows_per_day))


def labelled_days_holding(count: int, rows_per_day: int, label_delay: tuple[float, float] = LABEL_DELAY_DAYS) -> int:
    """The shortest trailing window (ending now) holding ``count`` labelled rows on average.

    A window of ``W >= hi`` days holds ``r * (W - mean delay)`` labelled rows (module docstring).

    >>> labelled_days_holding(400, 200), labelled_days_holding(400, 50)
    (5, 11)
    """
    lo, hi = label_delay
    return max(math.ceil(hi), math.ceil((lo + hi) / 2 + count / rows_per_day))


def size_for(rows_per_day: int) -> StorySizing:
    """Every volume-dependent setting of the demo at ``rows_per_day``.

    >>> s = size_for(200)
    >>> (s.train_days, s.min_rows, s.drift_days, s.performance_days, s.shadow_comparisons)
    (5, 300, 3, 7, 100)
    """
    return StorySizing(
        rows_per_day=rows_per_day,
        train_days=labelled_days_holding(TRAIN_ROWS, rows_per_day),
        min_rows=MIN_TRAIN_ROWS,
        drift_days=days_holding(WINDOW_PREDICTIONS, rows_per_day, at_least=MIN_DRIFT_DAYS),
        performance_days=days_holding(PERFORMANCE_LABELS, rows_per_day, at_least=MIN_PERFORMANCE_DAYS),
        shadow_comparisons=max(rows_per_day // 2, MIN_SHADOW_COMPARISONS),  # half a day's traffic, or more
    )


def plan_story(*, days: int, rows_per_day: int, drift_day: int, history_days: int) -> StorySizing:
    """The sizing at ``rows_per_day``, or a :class:`ConfigError` (one line) naming what would work."""
    if rows_per_day < MIN_ROWS_PER_DAY:
        raise ConfigError(
            f"--rows-per-day {rows_per_day} is too few for the demo's story (its windows would span weeks): "
            f"use --rows-per-day {MIN_ROWS_PER_DAY} or more"
        )
    sizing = size_for(rows_per_day)
    if sizing.train_days > history_days:  # pragma: no cover - not reachable at MIN_ROWS_PER_DAY or more
        raise ConfigError(f"at {rows_per_day} requests a day the first model needs {sizing.train_days} days of "
                          f"history, more than {history_days}: use more --rows-per-day")
    earliest_drift = history_days + QUIET_DAYS_BEFORE_DRIFT
    if drift_day < earliest_drift:
        raise ConfigError(
            f"--drift-day {drift_day} leaves no quiet days to monitor before the drift (the first model is trained "
            f"on days 0-{history_days - 1}): use --drift-day {earliest_drift} or later"
        )
    needed = sizing.days_after_drift
    if days - drift_day < needed:
        raise ConfigError(
            f"--days {days} leaves {max(days - drift_day, 0)} day(s) after the drift on day {drift_day}; at {rows_per_day} "
            f"requests a day detecting it, retraining and rolling out need {needed}: use --days {drift_day + needed} "
            f"or more, or an earlier --drift-day (from {earliest_drift})"
        )
    return sizing
