from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_the_harness(prefect_harness: None) -> None:
    """The demo runs its flows on the session's Prefect test harness."""
