"""The sensor's file handling, without a capture: the last run's snapshots kept, alert ids
remembered across restarts."""

from __future__ import annotations

from pathlib import Path

import orjson

from auditor.live.sensor import _fired_ids, _keep_previous


def test_the_last_runs_snapshots_are_kept_aside_and_pruned(tmp_path: Path) -> None:
    for run in range(4):
        (tmp_path / "devices.json").write_text(f"run {run}", encoding="utf-8")
        (tmp_path / "alerts-current.jsonl").write_text("", encoding="utf-8")  # empty: nothing to keep
        _keep_previous(tmp_path, keep=2)
    kept = sorted(tmp_path.glob("devices-*.json"))
    assert [p.read_text() for p in kept] == ["run 2", "run 3"]
    assert not (tmp_path / "devices.json").exists()
    assert not list(tmp_path.glob("alerts-current-*.jsonl"))


def test_fired_alert_ids_are_read_back_and_odd_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    lines = [orjson.dumps({"event": {"id": "a1"}}), b"[]", b"{not json", orjson.dumps({"event": {"id": "b2"}}),
             orjson.dumps({"event": None})]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert _fired_ids(path) == {"a1", "b2"}
    assert _fired_ids(tmp_path / "missing.jsonl") == set()
