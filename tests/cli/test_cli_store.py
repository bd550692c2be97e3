"""`retrainer store init | upgrade | stats` through the real entry point."""

from __future__ import annotations

import json

from retrainer.cli import main
from retrainer.store import Store


def test_init_stats_and_upgrade(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'retrainer.db'}"
    assert main(["store", "init", "--url", url, "--json"]) == 0
    init = json.loads(capsys.readouterr().out)
    assert init["revision"] == Store.head_revision()
    assert main(["store", "stats", "--url", url, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["dialect"] == "sqlite" and stats["rows"]["predictions"] == 0 and stats["unmatched_labels"] == 0
    assert main(["store", "upgrade", "--url", url, "--json"]) == 0
    upgraded = json.loads(capsys.readouterr().out)
    assert upgraded["from"] == upgraded["to"] == Store.head_revision()


def test_a_missing_store_says_to_init_and_is_not_created(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    cfg = tmp_path / "retrainer.yaml"
    cfg.write_text(f"model: {{name: m}}\nstore: {{url: '{url}'}}\ndata: {{source: {{table: t}}, features: [{{name: x}}]}}\n")
    assert main(["history", "--config", str(cfg)]) == 2
    assert "retrainer store init" in capsys.readouterr().err
    assert not (tmp_path / "empty.db").exists()


def test_stats_show_each_models_label_delay(tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    from retrainer.config import FeatureSpec
    from retrainer.store import LabelRecord, PredictionRecord

    url = f"sqlite:///{tmp_path / 'retrainer.db'}"
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
    with Store.open(url) as store:
        store.init()
        store.log_predictions("churn", [PredictionRecord(f"r{i}", {"x": 1.0}, 1.0, t0 + timedelta(hours=i))
                                        for i in range(100)], [FeatureSpec(name="x")])
        # Labels two days late; the last 48 predictions are still waiting for theirs.
        store.log_labels([LabelRecord(f"r{i}", 1.0, t0 + timedelta(hours=i, days=2)) for i in range(52)])
    assert main(["store", "stats", "--url", url, "--json"]) == 0
    delay = json.loads(capsys.readouterr().out)["label_delay"]["churn"]
    assert delay["p50_s"] == delay["p95_s"] == 2 * 86400
    # As of the newest arrival (hour 99): predictions of hours 0..98 made before it, 52 labelled.
    assert delay["n"] == 52 and delay["n_predictions"] == 99 and delay["share_labelled"] == 52 / 99
    assert main(["store", "stats", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "churn: p50 2d, p95 2d, 53% of the last 30d's predictions labelled (52 labels" in " ".join(out.split())


def test_stats_table_prints_no_raw_python_dict(tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    from retrainer.config import FeatureSpec
    from retrainer.store import PredictionRecord

    url = f"sqlite:///{tmp_path / 'retrainer.db'}"
    t0 = datetime(2026, 3, 1, 6, tzinfo=timezone.utc)
    with Store.open(url) as store:
        store.init()
        store.log_predictions("churn.eu", [PredictionRecord(f"r{i}", {"x": 1.0}, 1.0, t0 + timedelta(hours=i))
                                           for i in range(1200)], [FeatureSpec(name="x")])
    assert main(["store", "stats", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'count'" not in out
    row = next(line for line in out.splitlines() if "churn.eu" in line)
    # model | predictions | oldest | newest, the count with a thousands separator
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "churn.eu", "1,200", "2026-03-01 06:00:00 UTC", "2026-04-20 05:00:00 UTC"]


def test_label_delay_lines_keep_negative_delays_readable_and_say_why():
    from retrainer.cli.store_cmd import label_delay_lines

    # A store written before label times were clamped: one label dated 245 days before its prediction.
    text = label_delay_lines({"churn": {"as_of": "2026-03-01T00:00:00+00:00", "lookback_s": 30 * 86400.0, "n": 1,
                                        "p50_s": -245 * 86400.0, "p95_s": -245 * 86400.0, "share_labelled": 0.0,
                                        "n_predictions": 0}})
    line = " ".join(text.split())
    assert "p50 -245d, p95 -245d" in line and "-21168000s" not in line
    assert "no prediction made in the 30d before 2026-03-01" in line and "0%" not in line
    assert "(1 label, as of 2026-03-01)" in line and "labels dated before their predictions" in line
