"""TriggerContext: nothing after `now` is visible, reads are cached and read-only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from retrainer.errors import TriggerError
from retrainer.testing import InMemoryWindowSource, make_context
from retrainer.triggers import ChampionInfo, FeatureWindow, LabelledWindow, TriggerContext, WindowSource

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)
EPOCH = NOW.timestamp()  # windows carry epoch seconds


def _log() -> dict[str, list]:
    ts = [NOW - 2 * S, NOW - S, NOW, NOW + S]
    return {
        "ts": ts,
        "x": [1.0, 2.0, 3.0, 4.0],
        "y_true": [1, 0, 1, 1],
        "y_pred": [1, 1, 1, 1],
        "score": [0.9, 0.8, 0.7, 0.6],
        # first label arrives at `now` exactly, second one second after `now`
        "labelled_at": [NOW, NOW + S, NOW, NOW + S],
    }


def test_rows_at_or_after_now_are_never_visible() -> None:
    ctx = make_context(_log(), now=NOW)
    w = ctx.features(timedelta(hours=1), ["x"])
    assert w.columns["x"].tolist() == [1.0, 2.0]  # now is exclusive, now+1s is the future
    assert len(w) == 2
    assert ctx.count_since(timedelta(hours=1)) == 2
    assert ctx.count_since(NOW - S) == 1
    assert ctx.count_since(NOW + timedelta(days=1)) == 0


def test_labels_that_arrive_after_now_are_not_visible() -> None:
    ctx = make_context(_log(), now=NOW)
    lab = ctx.labelled(timedelta(hours=1))
    assert lab.y_true.tolist() == [1]  # row 0 labelled at now (as_of is inclusive); row 1 labelled after now
    assert lab.score.tolist() == [0.9]
    assert lab.n_predictions == 2 and lab.coverage == 0.5
    assert ctx.count_since(timedelta(hours=1), labelled=True) == 1
    later = make_context(_log(), now=NOW + 2 * S)
    assert later.labelled(timedelta(hours=1)).y_true.tolist() == [1, 0, 1, 1]
    assert later.count_since(timedelta(hours=1), labelled=True) == 4


class SloppySource:
    """Ignores `end` and `as_of`: the context must clamp anyway."""

    def features_window(self, model_name, start, end, columns):  # noqa: ANN001, ANN201
        ts = np.array([EPOCH - 1, EPOCH, EPOCH + 1])
        return FeatureWindow(ts=ts, columns={c: np.arange(3.0) for c in columns})

    def labelled_window(self, model_name, start, end, *, as_of, model_version=None):  # noqa: ANN001, ANN201
        ts = np.array([EPOCH - 1, EPOCH + 1])
        return LabelledWindow(y_true=np.array([1, 0]), y_pred=np.array([1, 1]), score=np.array([0.5, 0.5]), ts=ts,
                              n_predictions=2)

    def count_predictions(self, model_name, since, until, *, labelled=False, as_of=None):  # noqa: ANN001, ANN201
        assert until == NOW and as_of == NOW
        return 7


def test_context_clamps_even_a_source_that_ignores_end() -> None:
    src = SloppySource()
    assert isinstance(src, WindowSource)
    ctx = TriggerContext(model_name="m", now=NOW, source=src)
    w = ctx.features(timedelta(days=1), ["x"])
    assert w.columns["x"].tolist() == [0.0] and w.ts.tolist() == [EPOCH - 1] and w.prediction_ids is None
    assert ctx.labelled(timedelta(days=1)).y_true.tolist() == [1]
    assert ctx.count_since(timedelta(days=1)) == 7


class CountingSource(InMemoryWindowSource):
    def __init__(self, data) -> None:  # noqa: ANN001
        super().__init__(data)
        self.calls: list[str] = []

    def features_window(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.calls.append("features")
        return super().features_window(*args, **kwargs)

    def labelled_window(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.calls.append("labelled")
        return super().labelled_window(*args, **kwargs)


def test_reads_are_lazy_and_cached_per_context() -> None:
    src = CountingSource(_log())
    ctx = make_context(source=src, now=NOW)
    assert src.calls == []
    a = ctx.features(timedelta(hours=1), ["x"])
    assert ctx.features(timedelta(hours=1), ("x",)) is a
    assert ctx.labelled(timedelta(hours=1)) is ctx.labelled(timedelta(hours=1))
    assert src.calls == ["features", "labelled"]
    ctx.features(timedelta(hours=2), ["x"])
    assert src.calls == ["features", "labelled", "features"]
    other = make_context(source=src, now=NOW)  # a new context never reuses another's reads
    other.features(timedelta(hours=1), ["x"])
    assert src.calls.count("features") == 3


def test_returned_arrays_and_mappings_are_read_only() -> None:
    ctx = make_context(_log(), now=NOW, reference={"columns": {"x": np.array([1.0, 2.0])}})
    w = ctx.features(timedelta(hours=1), ["x"])
    with pytest.raises(ValueError, match="read-only"):
        w.columns["x"][0] = 99.0
    with pytest.raises(ValueError, match="read-only"):
        w.ts.sort()
    with pytest.raises(TypeError, match="read-only"):
        w.columns["y"] = np.zeros(2)  # type: ignore[index]
    with pytest.raises(ValueError, match="read-only"):
        ctx.labelled(timedelta(hours=1)).y_true[0] = 0
    with pytest.raises(ValueError, match="read-only"):
        ctx.reference["columns"]["x"][0] = 0.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        ctx.now = NOW  # type: ignore[misc]


def test_times_must_be_aware_and_are_normalised_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TriggerContext(model_name="m", now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        TriggerContext(model_name="m", now=NOW, last_retrain_at=datetime(2025, 1, 1))
    paris = timezone(timedelta(hours=1))
    ctx = TriggerContext(model_name="m", now=datetime(2025, 1, 1, 13, tzinfo=paris))
    assert ctx.now == datetime(2025, 1, 1, 12, tzinfo=timezone.utc) and ctx.now.tzinfo is timezone.utc
    assert ChampionInfo("1", created_at=datetime(2025, 1, 1, 13, tzinfo=paris)).created_at.tzinfo is timezone.utc


def test_without_a_source_reads_fail_clearly_and_windows_must_be_positive() -> None:
    ctx = TriggerContext(model_name="churn", now=NOW)
    with pytest.raises(TriggerError, match="'churn' has no window source"):
        ctx.features(timedelta(days=1), ["x"])
    with pytest.raises(ValueError, match="positive timedelta"):
        make_context(_log(), now=NOW).labelled(timedelta(0))
    assert ctx.since_last_retrain() is None
    assert TriggerContext(model_name="m", now=NOW, last_retrain_at=NOW - S).since_last_retrain() == S


def test_model_name_and_version_filter() -> None:
    data = {
        "ts": [NOW - 3 * S, NOW - 2 * S, NOW - S],
        "model_name": ["a", "b", "a"],
        "model_version": ["1", "1", "2"],
        "y_true": [1, 1, 0],
        "y_pred": [1, 1, 1],
        "x": [1.0, 2.0, 3.0],
    }
    ctx = make_context(data, now=NOW, model_name="a")
    assert ctx.features(timedelta(hours=1), ["x"]).columns["x"].tolist() == [1.0, 3.0]
    assert ctx.labelled(timedelta(hours=1), model_version="2").y_true.tolist() == [0]
    assert ctx.count_since(timedelta(hours=1), labelled=True) == 2


def test_the_sql_store_and_the_fake_implement_the_window_protocol_with_the_same_signatures() -> None:
    import inspect

    from retrainer.store import Store
    from retrainer.testing import InMemoryWindowSource
    from retrainer.windows import WindowSource as Protocol_

    def shape(fn: object) -> list[tuple[str, object, bool]]:
        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
        return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in params]

    for impl in (Store, InMemoryWindowSource):
        assert issubclass(impl, Protocol_)
        for method in ("features_window", "labelled_window", "count_predictions"):
            assert shape(getattr(impl, method)) == shape(getattr(Protocol_, method)), (impl, method)
