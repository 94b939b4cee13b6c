"""The sensor's store feed (issue 7): a process of its own writes the sensor's folder into the store.

The first tests drive the feed process (auditor/live/store_feed.py) over a folder written here, as the
sensor writes it: no capture, no root. The `live` ones run `auditor sense --db` on a veth pair in a network
namespace with the demo capture replayed into it (tests/live/test_sensor.py's helpers), and check the store
holds what `auditor analyze --db` stores for the same capture.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from auditor.live.store_feed import FeedConfig, StoreFeed
from auditor.store import open_store
from tests.live import test_sensor
from tests.live.test_sensor import AUDITOR, ROOT, Sensor, _analyze, _child_pids, _received, replay
from tests.store.test_follow import STARTED_NS, FakeSensor, flows, ingested_flows, stored_flows

netns = test_sensor.netns  # the namespace and GeoIP fixtures of test_sensor.py, shared
geo_config = test_sensor.geo_config


def feed_for(sensor: FakeSensor, target: Path | str, interval_s: float = 0.2) -> StoreFeed:
    start = sensor.start
    config = FeedConfig(str(target), str(sensor.folder), "host1", "eth1", STARTED_NS, start.key, start.offset)
    return StoreFeed(config, interval_s=interval_s)


def wait_for(feed: StoreFeed, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = feed.status()
        if check(status):
            return status
        time.sleep(0.02)
    raise AssertionError(f"no such feed status in {timeout} s: {feed.status()}")


def test_the_feed_steps_when_nudged_and_takes_a_final_step_at_the_stop(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, tmp_path / "store.sqlite")
    first = wait_for(feed, lambda s: s["steps"] >= 1)  # at once: the run is there before any flow
    assert (first["process"], first["flows"], first["last_error"]) == ("running", 0, None)
    assert first["last_step"] is not None
    sensor.write(flows(10))
    feed.nudge()
    wait_for(feed, lambda s: s["flows"] == 10)
    sensor.write(flows(5, first=10))
    sensor.status()
    feed.finish()
    final = feed.status()
    assert (final["process"], final["flows"], final["flow_lines_lost"]) == ("stopped", 15, 0)
    assert feed.pid is None
    store = open_store(tmp_path / "store.sqlite")
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written)


def test_a_killed_feed_process_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, tmp_path / "store.sqlite")
    sensor.write(flows(4))
    feed.nudge()
    wait_for(feed, lambda s: s["flows"] == 4)
    pid = feed.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    sensor.write(flows(3, first=4))
    deadline = time.monotonic() + 10
    while feed.pid in (pid, None) and time.monotonic() < deadline:
        feed.nudge()  # the first nudge finds it dead and starts another
        time.sleep(0.05)
    status = wait_for(feed, lambda s: s["flows"] == 7)
    assert status["restarts"] == 1 and status["last_error"] is None  # the new one reported success
    feed.finish()
    assert stored_flows(open_store(tmp_path / "store.sqlite")) == ingested_flows(tmp_path, sensor.written)


def test_a_store_that_cannot_be_written_is_reported_and_retried_without_loss(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    blocker = tmp_path / "db"
    blocker.write_text("a file where the store's folder should be")
    feed = feed_for(sensor, blocker / "store.sqlite")
    sensor.write(flows(3))
    failing = wait_for(feed, lambda s: s["failed_steps"] >= 1)
    assert "cannot open the store" in failing["last_error"] and failing["steps"] == 0
    feed.nudge()
    wait_for(feed, lambda s: s["failed_steps"] >= 2)
    assert feed.pid is not None  # it failed, and lives on to retry
    blocker.unlink()  # the disk has room again / the server is back
    feed.nudge()
    recovered = wait_for(feed, lambda s: s["steps"] >= 1)
    assert recovered["last_error"] is None and recovered["flows"] == 3
    feed.finish()
    assert stored_flows(open_store(blocker / "store.sqlite")) == ingested_flows(tmp_path, sensor.written)


def test_the_final_step_is_taken_in_the_sensor_when_the_feed_process_is_gone(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, tmp_path / "store.sqlite")
    wait_for(feed, lambda s: s["steps"] >= 1)
    assert feed.pid is not None
    os.kill(feed.pid, signal.SIGKILL)
    sensor.write(flows(6))
    sensor.status()
    deadline = time.monotonic() + 10
    while feed.pid is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    feed.finish()
    assert feed.status()["flows"] == 6 and feed.status()["flow_lines_lost"] == 0
    assert stored_flows(open_store(tmp_path / "store.sqlite")) == ingested_flows(tmp_path, sensor.written)


def test_the_feed_ignores_the_stop_signals_the_sensor_gets(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, tmp_path / "store.sqlite")
    wait_for(feed, lambda s: s["steps"] >= 1)
    assert feed.pid is not None
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(feed.pid, sig)
    time.sleep(0.3)
    assert feed.pid is not None and feed.status()["process"] == "running"
    feed.finish()
    assert feed.status()["process"] == "stopped"


# -- auditor sense --db on a real interface (root) ------------------------------------------------------------


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(tuple(r) for r in conn.execute(sql).fetchall())
    finally:
        conn.close()


DEVICES = ("SELECT mac, oui_organization, vendor_id, maker, brand, class, model, firmware, confidence, how, "
           "oem_relabel, lists FROM devices")
FINDINGS = ("SELECT alert_id, rule_id, rule_name, ruleset, severity, device, src_ip, dst_ip, dst_domain, country, "
            "asn, services, flows, bytes, status, waiver_id FROM findings")
# the same flows, hour by hour as the replay's clock saw them: compared without the hour
FLOWS = ("SELECT src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, direction, sum(flows), "
         "sum(bytes_out), sum(bytes_in), sum(packets_out), sum(packets_in) FROM flows_hourly "
         "GROUP BY src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, direction")


def _store_status(s: dict[str, Any]) -> dict[str, Any]:
    return s["auditor"].get("store") or {}


@pytest.mark.live
def test_live_sensor_store_holds_what_analyze_stores(netns: str, tmp_path: Path, geo_config: Path) -> None:
    db = tmp_path / "live.sqlite"
    rules = str(ROOT / "rules/policies")
    sensor = Sensor(netns, tmp_path / "live", "--config", str(geo_config), "--rules", rules, "--db", str(db))
    sensor.wait_status(lambda s: _store_status(s).get("last_step") is not None)
    replay(netns)
    sensor.wait_status(_received(217))
    code, took = sensor.stop()
    assert code == 0 and took < 10
    reference_db = tmp_path / "analyze.sqlite"
    _analyze(tmp_path, geo_config, "--rules", rules, "--db", str(reference_db))

    assert len(_rows(db, DEVICES)) == 10
    assert _rows(db, DEVICES) == _rows(reference_db, DEVICES)
    addresses = "SELECT mac, ip FROM device_addresses"
    assert _rows(db, addresses) == _rows(reference_db, addresses)
    assert len(_rows(db, FINDINGS)) >= 6
    assert _rows(db, FINDINGS) == _rows(reference_db, FINDINGS)
    assert _rows(db, FLOWS) == _rows(reference_db, FLOWS)
    assert _rows(db, "SELECT sum(flows) FROM flows_hourly") == [(29,)]
    (run,) = _rows(db, "SELECT kind, interface, packets, drops, flows, skipped_lines, started_ns <= ended_ns FROM runs")
    assert run == ("sense", "vb", 217, 0, 29, 0, 1)
    status = json.loads((tmp_path / "live" / "status.json").read_text())
    store = _store_status(status)
    assert (store["process"], store["flows"], store["last_error"], store["flow_lines_lost"]) == ("stopped", 29, None, 0)
    assert store["target"] == str(db)
    shown = subprocess.run([str(AUDITOR), "status", "--state-dir",
                            str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert f"store {db}: last step" in shown.stdout and "29 flows stored" in shown.stdout, shown.stdout


@pytest.mark.live
def test_live_sensor_replaces_a_killed_feed_and_stores_everything(netns: str, tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    sensor = Sensor(netns, tmp_path / "live", "--db", str(db))
    sensor.wait_status(lambda s: _store_status(s).get("steps", 0) >= 1)
    (feed,) = [pid for pid in _child_pids(sensor.proc.pid)
               if b"auditor.live.store_feed" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.kill(feed, signal.SIGKILL)
    replay(netns)
    sensor.wait_status(lambda s: _store_status(s).get("restarts", 0) >= 1 and _store_status(s).get("steps", 0) >= 1
                       and s["auditor"]["packets"]["received"] >= 217)
    code, _ = sensor.stop()
    assert code == 0
    assert _rows(db, "SELECT sum(flows) FROM flows_hourly") == [(29,)]
    assert len(_rows(db, "SELECT mac FROM devices")) == 10
    store = _store_status(json.loads((tmp_path / "live" / "status.json").read_text()))
    assert (store["restarts"], store["process"], store["last_error"]) == (1, "stopped", None)
    assert "store feed process ended (exit code -9)" in sensor.log.read_text()


# -- a final step that fails (the store unreachable at the stop) ---------------------------------------------


def _later(seconds: float, action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def _pg_connections(url: str, allowed: bool) -> None:
    """Let a PostgreSQL database take connections, or refuse them and end those it has."""
    import psycopg

    from tests.pg import shared_server

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(shared_server().url(), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def test_a_final_step_that_fails_once_on_sqlite_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    blocker = tmp_path / "db"
    blocker.write_text("a file where the store's folder should be")
    feed = feed_for(sensor, blocker / "store.sqlite")
    wait_for(feed, lambda s: s["failed_steps"] >= 1)
    sensor.write(flows(6))
    sensor.status(state="stopped")
    thread = _later(1.0, blocker.unlink)  # the store is back a second into the stop
    started = time.monotonic()
    feed.finish(timeout_s=20)
    took = time.monotonic() - started
    thread.join()
    status = feed.status()
    assert (status["process"], status["flows"], status["flow_lines_lost"], status["last_error"]) == (
        "stopped", 6, 0, None), status
    assert status["unstored_at_stop"] is None and status["failed_steps"] >= 2
    assert 0.9 < took < 5
    assert stored_flows(open_store(blocker / "store.sqlite")) == ingested_flows(tmp_path, sensor.written)


def test_a_final_step_that_fails_once_on_postgresql_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    from tests.pg import fresh_database

    url = fresh_database()
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, url)
    sensor.write(flows(10))
    sensor.status()
    feed.nudge()
    wait_for(feed, lambda s: s["flows"] == 10)
    sensor.write(flows(1000, first=10))  # the stop: every open flow ended and written
    sensor.status(state="stopped")
    _pg_connections(url, allowed=False)  # a server restart: connections refused for a second
    thread = _later(1.0, lambda: _pg_connections(url, allowed=True))
    started = time.monotonic()
    feed.finish(timeout_s=20)
    took = time.monotonic() - started
    thread.join()
    status = feed.status()
    assert (status["process"], status["flows"], status["flow_lines_lost"], status["last_error"]) == (
        "stopped", 1010, 0, None), status
    assert status["unstored_at_stop"] is None and status["failed_steps"] >= 1
    assert 0.9 < took < 5
    assert stored_flows(open_store(url)) == ingested_flows(tmp_path, sensor.written)


def test_a_final_step_failing_past_the_deadline_says_what_is_not_stored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.pg import fresh_database

    url = fresh_database()
    sensor = FakeSensor(tmp_path / "eth1")
    feed = feed_for(sensor, url)
    sensor.write(flows(10))
    sensor.status()
    feed.nudge()
    before = wait_for(feed, lambda s: s["flows"] == 10)
    sensor.write(flows(1000, first=10))
    sensor.status(state="stopped")
    _pg_connections(url, allowed=False)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="auditor.live.store_feed"):
            feed.finish(timeout_s=3)
        took = time.monotonic() - started
    finally:
        _pg_connections(url, allowed=True)
    assert 2 < took < 3.5
    status = feed.status()
    assert status["process"] != "stopped" and status["flows"] == 10 and status["failed_steps"] >= 3
    unstored = status["unstored_at_stop"]
    assert unstored is not None, status
    assert (unstored["flow_lines"], unstored["run_id"], unstored["folder"]) == (
        1000, before["run_id"], str(sensor.folder))
    assert unstored["cursor_key"] and unstored["cursor_offset"] > 0  # after the 10 flows stored
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    said = [m for m in errors if "1,000 flow lines the sensor wrote are NOT in the store" in m]
    assert said and f"{sensor.folder}/flows*.jsonl" in said[0] and unstored["cursor_key"] in said[0], errors
    assert not any("nothing is lost" in m for m in errors), errors
    # the lines are where the message says: a later feed of the same run stores exactly them
    again = feed_for(sensor, url)
    again.finish()
    assert again.status()["flows"] == 1000
    assert stored_flows(open_store(url)) == ingested_flows(tmp_path, sensor.written)


def test_a_store_unreachable_for_the_whole_session_counts_every_line_at_the_stop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    blocker = tmp_path / "db"
    blocker.write_text("a file where the store's folder should be")
    feed = feed_for(sensor, blocker / "store.sqlite")
    sensor.write(flows(7))
    sensor.status(state="stopped")
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="auditor.live.store_feed"):
        feed.finish(timeout_s=2)
    assert time.monotonic() - started < 2.5
    unstored = feed.status()["unstored_at_stop"]
    assert unstored is not None
    assert (unstored["flow_lines"], unstored["run_id"], unstored["cursor_key"], unstored["cursor_offset"]) == (
        7, None, sensor.start.key, sensor.start.offset)
    assert "cannot open the store" in unstored["error"]
    assert any("7 flow lines the sensor wrote are NOT in the store" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_session_s_feed_stores_what_a_killed_session_left_unstored(tmp_path: Path, backend: str) -> None:
    from tests.pg import fresh_database

    target = str(tmp_path / "store.sqlite") if backend == "sqlite" else fresh_database()
    folder = tmp_path / "eth1"
    old = FakeSensor(folder, max_bytes=3_000)
    feed = feed_for(old, target)
    old.write(flows(4))
    feed.nudge()
    wait_for(feed, lambda s: s["flows"] == 4)
    assert feed.pid is not None
    os.kill(feed.pid, signal.SIGKILL)  # the sensor and its feed killed: no final step
    old.write(flows(12, first=4))  # written after the last step, rotated
    old.file.close()
    new = FakeSensor(folder, started_ns=STARTED_NS + 3_600 * 10**9)
    new.write(flows(3, first=100))
    start = new.start
    config = FeedConfig(target, str(folder), "host1", "eth1", new.started_ns, start.key, start.offset)
    again = StoreFeed(config, interval_s=0.2)
    first = wait_for(again, lambda s: s["steps"] >= 1)
    assert first["flows"] == 3 and first["last_error"] is None  # its own lines only
    new.status()
    again.finish()
    store = open_store(target)
    runs = {int(r[0]): (int(r[1]), json.loads(r[2])["follow"]) for r in
            store.execute("SELECT started_ns, flows, counters FROM runs WHERE kind = 'sense'").fetchall()}
    assert (runs[STARTED_NS][0], runs[new.started_ns][0]) == (16, 3)
    assert runs[STARTED_NS][1]["final"] is True and runs[STARTED_NS][1]["caught_up_lines"] == 12
    assert stored_flows(store) == ingested_flows(tmp_path, old.written + new.written)
