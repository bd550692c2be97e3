"""The shadow report from stored comparisons (``retrainer shadow report``, rollout evidence, demo):
per shadow version, agreement with the champion, score deltas, latency of both models, errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from retrainer.store.records import ShadowRecord


def latency_percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99)}


def summarize(rows: Sequence[ShadowRecord]) -> dict[str, Any]:
    """Stored comparisons per shadow version: agreement, score deltas, latency of both models, errors."""
    by_version: dict[str, list[ShadowRecord]] = {}
    for r in rows:
        by_version.setdefault(r.shadow_version, []).append(r)
    out: dict[str, Any] = {}
    for version, rs in sorted(by_version.items(), key=lambda kv: (0, int(kv[0]), "") if kv[0].isdigit() else (1, 0, kv[0])):
        ok = [r for r in rs if r.error is None and r.shadow_prediction is not None]
        errors = [r for r in rs if r.error is not None]
        cp = np.array([r.champion_prediction for r in ok], dtype=np.float64)
        sp = np.array([r.shadow_prediction for r in ok], dtype=np.float64)
        cs = np.array([np.nan if r.champion_score is None else r.champion_score for r in ok], dtype=np.float64)
        ss = np.array([np.nan if r.shadow_score is None else r.shadow_score for r in ok], dtype=np.float64)
        lat = np.array([r.latency_ms for r in ok if r.latency_ms is not None], dtype=np.float64)
        champ_lat = np.array([r.champion_latency_ms for r in rs if r.champion_latency_ms is not None], dtype=np.float64)
        delta = (ss - cs)[~(np.isnan(ss) | np.isnan(cs))]
        out[version] = {
            "n": len(rs),
            "compared": len(ok),
            "errors": len(errors),
            "error_rate": len(errors) / len(rs),
            "last_error": errors[-1].error if errors else None,
            "champion_versions": sorted({r.champion_version for r in rs}),
            "agreement_rate": float(np.mean(cp == sp)) if ok else None,
            "score_delta": None if delta.size == 0 else {
                "mean": float(delta.mean()),
                "mean_abs": float(np.abs(delta).mean()),
                "p50_abs": float(np.percentile(np.abs(delta), 50)),
                "p99_abs": float(np.percentile(np.abs(delta), 99)),
                "max_abs": float(np.abs(delta).max()),
            },
            "shadow_latency_ms": latency_percentiles(lat),
            "champion_latency_ms": latency_percentiles(champ_lat),
            "first": min(r.ts for r in rs),
            "last": max(r.ts for r in rs),
        }
    return out


__all__ = ["latency_percentiles", "summarize"]
