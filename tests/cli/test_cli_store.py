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
