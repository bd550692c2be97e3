"""Re-binning: a new champion's frozen bins, counted once over the raw columnar chunks.

The chunks stay the source of truth; the histograms are derived from them. When a version
becomes champion, its bins differ from its predecessor's, so the counts kept so far say nothing
about them. :func:`rebin` builds the bins from the version's reference profile, recounts the
model's raw chunks from ``since`` (all of them by default) day by day, and registers the bins,
all in one write transaction under the histogram lock: the writer either committed before it
(its rows are recounted here) or waits and counts its rows on the new bins after.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.profiles import load_reference_profile
from retrainer.stats.histogram import DEFAULT_FINE_BINS, DEFAULT_TOP_K, frozen_bins
from retrainer.store.histograms import BUCKET_SECONDS, CountingRef, add_counts, count_rows, lock_model
from retrainer.store.predictions import features_window
from retrainer.store.schema import feature_chunks, feature_histograms, histogram_refs

_DAY = 86_400.0


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def rebin(
    conn: Connection, model_name: str, version: str, profile: Mapping[str, Any], *, since: float | None = None,
    bucket_seconds: float = BUCKET_SECONDS, fine: int = DEFAULT_FINE_BINS, top_k: int = DEFAULT_TOP_K,
) -> CountingRef:
    """Register ``version``'s bins and count the model's logged rows with ts >= ``since`` on them."""
    lock_model(conn, model_name)
    loaded = load_reference_profile(profile)
    bins = {name: frozen_bins(ref, fine=fine, top_k=top_k) for name, ref in loaded.features.items()}
    complete_from = 0.0 if since is None else math.floor(since / bucket_seconds) * bucket_seconds
    registered = None if loaded.registered_at is None else loaded.registered_at.timestamp()
    ref = CountingRef(version, bucket_seconds, complete_from, registered, bins)
    where = (feature_histograms.c.model_name == model_name, feature_histograms.c.version == version)
    conn.execute(sa.delete(feature_histograms).where(*where))
    conn.execute(sa.delete(histogram_refs).where(histogram_refs.c.model_name == model_name,
                                                 histogram_refs.c.version == version))
    lo, hi = conn.execute(sa.select(sa.func.min(feature_chunks.c.ts_min), sa.func.max(feature_chunks.c.ts_max))
                          .where(feature_chunks.c.model_name == model_name)).one()
    if lo is not None:
        # Day-long steps on bucket boundaries: a bucket is never split between two steps.
        step = max(1, round(_DAY / bucket_seconds)) * bucket_seconds
        at = max(math.floor(lo / bucket_seconds) * bucket_seconds, complete_from)
        while at <= hi:
            window = features_window(conn, model_name, _utc(at), _utc(at + step), list(bins))
            if len(window):
                add_counts(conn, model_name, ref, count_rows(ref, window.ts, window.columns), merge=False)
            at += step
    conn.execute(sa.insert(histogram_refs).values(
        model_name=model_name, version=version, bins={name: b.to_dict() for name, b in bins.items()},
        bucket_seconds=bucket_seconds, complete_from=complete_from, registered_at=registered, created_at=time.time(),
    ))
    return ref
