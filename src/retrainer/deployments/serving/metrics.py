"""Service metrics in the Prometheus text exposition format (0.0.4), written by hand.

A handful of counters and one latency histogram per arm do not justify a dependency; the
format is small and stable. Gauges (queue depths, drops) are read from their owners at
scrape time through callbacks, so they are never stale.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable

# Seconds. Dense below 10 ms, where a model server should live.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class _Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0


class ServiceMetrics:
    """Requests and latency per arm, plus gauges read at scrape time."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}  # (route, arm, status) -> count
        self._latency: dict[str, _Histogram] = {}
        self._rows: dict[str, int] = {}  # arm -> predicted rows
        self._gauges: list[tuple[str, str, str, Callable[[], float]]] = []

    def observe_prediction(self, arm: str, seconds: float, rows: int) -> None:
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            key = ("predict", arm, "ok")
            self._requests[key] = self._requests.get(key, 0) + 1
            self._rows[arm] = self._rows.get(arm, 0) + rows
            h = self._latency.get(arm)
            if h is None:
                h = self._latency[arm] = _Histogram()
            h.counts[i] += 1
            h.sum += seconds
            h.count += 1

    def count_request(self, route: str, status: str, arm: str = "") -> None:
        with self._lock:
            key = (route, arm, status)
            self._requests[key] = self._requests.get(key, 0) + 1

    def gauge(self, name: str, help_text: str, read: Callable[[], float], kind: str = "gauge") -> None:
        """Register a value read at scrape time (``kind`` 'counter' for monotonic ones)."""
        self._gauges.append((name, help_text, kind, read))

    def render(self) -> str:
        model = ("model", self.model_name)
        with self._lock:
            requests = dict(self._requests)
            rows = dict(self._rows)
            hists = {arm: (list(h.counts), h.sum, h.count) for arm, h in self._latency.items()}
        out: list[str] = [
            "# HELP retrainer_requests_total Requests handled, by route, A/B arm and outcome.",
            "# TYPE retrainer_requests_total counter",
        ]
        for (route, arm, status), n in sorted(requests.items()):
            out.append(f"retrainer_requests_total{_labels([model, ('route', route), ('arm', arm), ('status', status)])} {n}")
        out += [
            "# HELP retrainer_predicted_rows_total Instances predicted, by A/B arm.",
            "# TYPE retrainer_predicted_rows_total counter",
        ]
        for arm, n in sorted(rows.items()):
            out.append(f"retrainer_predicted_rows_total{_labels([model, ('arm', arm)])} {n}")
        out += [
            "# HELP retrainer_predict_latency_seconds Time to answer /predict (routing + model + enqueueing), by arm.",
            "# TYPE retrainer_predict_latency_seconds histogram",
        ]
        for arm, (counts, total, count) in sorted(hists.items()):
            running = 0
            for bound, c in zip((*LATENCY_BUCKETS, float("inf")), counts):
                running += c
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f"retrainer_predict_latency_seconds_bucket{_labels([model, ('arm', arm), ('le', le)])} {running}")
            out.append(f"retrainer_predict_latency_seconds_sum{_labels([model, ('arm', arm)])} {total!r}")
            out.append(f"retrainer_predict_latency_seconds_count{_labels([model, ('arm', arm)])} {count}")
        for name, help_text, kind, read in self._gauges:
            try:
                value = float(read())
            except Exception:  # noqa: BLE001, S112 - a broken gauge must not break the scrape
                continue
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{_labels([model])} {_fmt(value)}"]
        return "\n".join(out) + "\n"


def _fmt(v: float) -> str:
    return str(int(v)) if v.is_integer() else repr(v)


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "ServiceMetrics"]
