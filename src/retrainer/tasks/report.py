"""Evidently's data drift report (HTML) of two frames: one function for the retrain flow, which
attaches it to the registered version, and the demo report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retrainer.tasks._retry import io_task


def evidently_drift_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path) -> Path:
    """Write Evidently's ``DataDriftPreset`` comparing ``current`` with ``reference`` to ``path``."""
    from evidently import Report  # heavy import (~10 s once per process): only when a report is made
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current_data=current.reset_index(drop=True),
                                               reference_data=reference.reset_index(drop=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


# Writes a file; a failure is worth one retry (disk), nothing more.
evidently_drift_report_task = io_task(evidently_drift_report, name="drift-report", retries=1)
