"""schedule, model_age, data_volume: the time- and count-based built-ins."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from retrainer.errors import InvalidTriggerParams
from retrainer.testing import make_context
from retrainer.triggers import ChampionInfo, TriggerContext
from retrainer.triggers.data_volume import DataVolumeTrigger
from retrainer.triggers.model_age import ModelAgeTrigger
from retrainer.triggers.schedule import ScheduleTrigger

NOW = datetime(2025, 3, 5, 12, tzinfo=timezone.utc)  # a Wednesday


def ctx(last=None, champion=None, source=None):
    return TriggerContext("m", NOW, source=source, last_retrain_at=last, champion=champion)


class TestSchedule:
    def test_interval_fires_once_elapsed(self):
        t = ScheduleTrigger({"interval": "30d"})
        assert not t.evaluate(ctx(NOW - timedelta(days=29))).fired
        d = t.evaluate(ctx(NOW - timedelta(days=30)))
        assert d.fired and d.value == pytest.approx(30) and d.threshold == pytest.approx(30)

    def test_default_interval_is_30_days(self):
        assert ScheduleTrigger().evaluate(ctx(NOW - timedelta(days=31))).fired
        assert not ScheduleTrigger().evaluate(ctx(NOW - timedelta(days=1))).fired

    def test_never_trained_fires_and_says_so(self):
        d = ScheduleTrigger({"cron": "0 3 * * 1"}).evaluate(ctx())
        assert d.fired and "never retrained" in d.reason and d.evidence["never_trained"] is True

    def test_cron_fires_after_an_occurrence_since_the_last_retrain(self):
        t = ScheduleTrigger({"cron": "0 3 * * 1"})  # Mondays 03:00 UTC
        assert t.evaluate(ctx(datetime(2025, 3, 3, 2, tzinfo=timezone.utc))).fired  # Monday 02:00, then 03:00 passed
        d = t.evaluate(ctx(datetime(2025, 3, 3, 4, tzinfo=timezone.utc)))  # after this Monday's run
        assert not d.fired and d.evidence["due_at"] == "2025-03-10T03:00:00+00:00"

    def test_cron_reads_its_time_zone(self):
        # 03:00 in Tokyo is 18:00 UTC the day before.
        d = ScheduleTrigger({"cron": "0 3 * * *", "timezone": "Asia/Tokyo"}).evaluate(
            ctx(datetime(2025, 3, 5, 11, tzinfo=timezone.utc)))
        assert d.evidence["due_at"] == "2025-03-05T18:00:00+00:00" and not d.fired

    @pytest.mark.parametrize("params", [{"cron": "every monday"}, {"interval": "1d", "cron": "0 3 * * 1"},
                                        {"timezone": "Mars/Olympus"}, {"interval": "0s"}])
    def test_bad_params_are_rejected(self, params):
        with pytest.raises(InvalidTriggerParams):
            ScheduleTrigger(params)


class TestModelAge:
    def test_fires_past_max_age(self):
        t = ModelAgeTrigger({"max_age": "30d"})
        old = ChampionInfo("4", created_at=NOW - timedelta(days=31))
        young = ChampionInfo("5", created_at=NOW - timedelta(days=2))
        d = t.evaluate(ctx(champion=old))
        assert d.fired and d.value == pytest.approx(31) and d.threshold == 30 and "version 4" in d.reason
        assert t.evaluate(ctx(champion=young)).status == "ok"

    def test_uses_the_champion_not_the_last_retrain(self):
        # A recent retrain whose candidate lost the gate leaves the old champion in production.
        old = ChampionInfo("4", created_at=NOW - timedelta(days=100))
        assert ModelAgeTrigger().evaluate(ctx(last=NOW - timedelta(days=1), champion=old)).fired

    def test_no_champion_or_no_time_is_insufficient(self):
        assert ModelAgeTrigger().evaluate(ctx()).status == "insufficient_data"
        assert ModelAgeTrigger().evaluate(ctx(champion=ChampionInfo("1"))).status == "insufficient_data"


class TestDataVolume:
    def log(self, n_old, n_new, labelled_after=None):
        rows = [NOW - timedelta(days=20, minutes=i) for i in range(n_old)] + [
            NOW - timedelta(days=2, minutes=i) for i in range(n_new)]
        return {"ts": rows, "y_true": [1] * len(rows), "y_pred": [1] * len(rows),
                "labelled_at": [t + (labelled_after or timedelta(0)) for t in rows]}

    def test_counts_labelled_rows_since_last_retrain(self):
        c = make_context(self.log(50, 30), now=NOW, last_retrain_at=NOW - timedelta(days=10))
        d = DataVolumeTrigger({"min_samples": 30}).evaluate(c)
        assert d.fired and d.value == 30
        assert not DataVolumeTrigger({"min_samples": 31}).evaluate(c).fired

    def test_never_trained_counts_the_lookback(self):
        c = make_context(self.log(50, 30), now=NOW)
        assert DataVolumeTrigger({"min_samples": 80, "lookback": "30d"}).evaluate(c).value == 80
        assert DataVolumeTrigger({"min_samples": 80, "lookback": "7d"}).evaluate(c).value == 30

    def test_labels_not_yet_arrived_do_not_count(self):
        c = make_context(self.log(0, 30, labelled_after=timedelta(days=5)), now=NOW)
        assert DataVolumeTrigger({"min_samples": 1}).evaluate(c).value == 0

    def test_seed_defaults(self):
        p = DataVolumeTrigger().params
        assert (p.min_samples, p.lookback) == (1000, timedelta(days=30))
