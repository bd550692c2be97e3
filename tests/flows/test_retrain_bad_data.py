"""Bad training data through the real retrain flow (issue 20): refused in one line, before anything
is registered, and never retried (only I/O failures are)."""

from __future__ import annotations

import sqlite3

import pytest

from retrainer.flows.retrain import retrain
from retrainer.tasks import load as load_module

from flow_world import NOW


def _rewrite_warehouse(world, select: str) -> None:
    """Replace the training table with ``CREATE TABLE … AS SELECT`` of itself (declared types lost)."""
    with sqlite3.connect(world.dir / "warehouse.db") as conn:
        conn.execute(f"CREATE TABLE copied AS SELECT {select} FROM loans")
        conn.execute("DROP TABLE loans")
        conn.execute("ALTER TABLE copied RENAME TO loans")


def _count_reads(monkeypatch) -> list[int]:
    reads: list[int] = []
    real = load_module._read_source

    def counting(*args, **kwargs):
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(load_module, "_read_source", counting)
    return reads


def _versions(world) -> list[str]:
    reg = world.registry()
    return [str(v.version) for v in reg.client.search_model_versions(f"name = '{reg.model_name}'")]


def _columns(world) -> str:
    return ", ".join([*world.cfg.data.feature_names, "label"])


def test_a_table_copied_with_create_table_as_select_trains(make_world, monkeypatch):
    world = make_world()
    _rewrite_warehouse(world, "*")  # ts declared NUM, values still ISO text
    reads = _count_reads(monkeypatch)
    out = retrain(str(world.config_path), force=True, now=NOW)
    assert out["status"] == "success" and len(reads) == 1


def test_a_timestamp_column_of_numbers_fails_once_in_one_line_naming_the_column(make_world, monkeypatch):
    world = make_world()
    _rewrite_warehouse(world, f"{_columns(world)}, CAST(strftime('%s', ts) AS INTEGER) AS ts")
    reads = _count_reads(monkeypatch)
    with pytest.raises(Exception, match="holds numbers"):
        retrain(str(world.config_path), force=True, now=NOW)
    assert len(reads) == 1  # a data error is not retried (it used to be, 3 times over ~15 s)
    [run] = world.store().runs(world.cfg.model.name)
    assert run.status == "failed" and "\n" not in run.error
    assert run.error.startswith("TrainingDataError: source: column 'ts' (data.timestamp_column) holds numbers such as")
    assert "(column declared INT" in run.error and "ISO-8601 text" in run.error
    assert _versions(world) == []


def test_a_single_class_label_fails_before_registering(make_world, monkeypatch):
    world = make_world()
    with sqlite3.connect(world.dir / "warehouse.db") as conn:
        conn.execute("UPDATE loans SET label = 0")
        n = conn.execute("SELECT count(*) FROM loans WHERE ts > ?", ((NOW - world.cfg.data.window).isoformat(),)).fetchone()[0]
    reads = _count_reads(monkeypatch)
    with pytest.raises(Exception, match="single class"):
        retrain(str(world.config_path), force=True, now=NOW)
    assert len(reads) == 1
    [run] = world.store().runs(world.cfg.model.name)
    assert run.status == "failed" and "\n" not in run.error
    assert run.error.startswith("InsufficientDataError: label column 'label' has a single class in the ")
    assert f"(0: {n:,}): a model trained on it can only answer 0" in run.error
    assert _versions(world) == [] and world.store().champion(world.cfg.model.name) is None
