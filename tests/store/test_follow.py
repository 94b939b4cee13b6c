"""The store follower: a live sensor's folder written into the store step by step, one transaction each.

The folder is written here as the sensor writes it (flows.jsonl through the same RotatingJsonl, status.json,
devices.json, alerts-current.jsonl). Whatever happens between steps (growth, rotation, a torn last line, a
rotated file deleted, a kill -9 inside a step), each flow line must be counted exactly once: the totals
equal a one-shot `ingest_run` of the same flows.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from auditor.errors import StoreError
from auditor.output._text import iso_time
from auditor.output.rotating import RotatingJsonl, file_stamp
from auditor.store import connect, ingest_run, open_store
from auditor.store.backend import StoreConnection, is_url
from auditor.store.follow import (
    FileCursor,
    SensorFollower,
    SensorSession,
    file_time,
    start_cursor,
)
from tests.store import ROOT, alert_doc, flow_doc, table_contents, write_run

STARTED_NS = 1_795_000_000_000_000_000  # 2026-11-18
HOUR = "2026-11-02T{:02d}:00:00.000000Z"
FLOW_COLUMNS = ("hour, src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, direction, flows, bytes_out, "
                "bytes_in, packets_out, packets_in, first_ns, last_ns")


def flows(n: int, first: int = 0) -> list[dict[str, Any]]:
    """n flow documents over a few hours and destinations, so they fill several hourly rows."""
    return [flow_doc(i, dst_ip=f"203.0.113.{i % 7}", start=HOUR.format(i % 5), bytes_out=100 + i)
            for i in range(first, first + n)]


def device_doc(mac: str, model: str, last: str = "2026-11-02T09:30:00Z") -> dict[str, Any]:
    return {"mac": mac, "first_seen": "2026-11-02T09:00:00Z", "last_seen": last,
            "ips": [{"ip": "192.168.1.10", "first_seen": "2026-11-02T09:00:00Z", "last_seen": last}],
            "oui": {"organization": "Maker Ltd"},
            "vendor": {"id": "maker", "name": "Maker Ltd", "class": "camera", "model": model, "confidence": 0.9}}


class FakeSensor:
    """A sensor's folder, written the way auditor/live/sensor.py writes it."""

    def __init__(self, folder: Path, *, started_ns: int = STARTED_NS, max_bytes: int = 1 << 20, keep: int = 30,
                 sensor: str = "host1") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.started_ns = folder, started_ns
        self.start = start_cursor(folder, started_ns)  # as the sensor takes it before its writer appends
        self.session = SensorSession(folder, sensor, "eth1", started_ns, "test", {"geoip": []})
        self.file = RotatingJsonl(folder / "flows.jsonl", max_bytes, keep)
        self.written: list[dict[str, Any]] = []

    def write(self, docs: list[dict[str, Any]]) -> None:
        self.file.write_lines([json.dumps(d).encode() for d in docs])
        self.written += docs

    def status(self, *, received: int = 1000, state: str = "running", ended: int | None = None) -> None:
        doc = {"@timestamp": iso_time(self.started_ns + 60 * 10**9),
               "event": {"kind": "metric", "start": iso_time(self.started_ns)},
               "observer": {"hostname": "host1", "version": "test"},
               "auditor": {"state": state, "packets": {"received": received, "dropped": 3},
                           "flows": {"active": 0, "ended": len(self.written) if ended is None else ended},
                           "rules": [{"path": "/etc/auditor/policies/site.yaml", "sha256": "ab" * 32}]}}
        (self.folder / "status.json").write_text(json.dumps(doc))

    def devices(self, *docs: dict[str, Any]) -> None:
        _replace(self.folder / "devices.json", json.dumps({"devices": list(docs)}))

    def alerts(self, *docs: dict[str, Any]) -> None:
        _replace(self.folder / "alerts-current.jsonl", "".join(json.dumps(d) + "\n" for d in docs))

    def follower(self, conn: StoreConnection, **kwargs: Any) -> SensorFollower:
        return SensorFollower(conn, self.session, self.start, **kwargs)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # the sensor replaces these whole (output.files.replacing)
    tmp.write_text(text)
    os.replace(tmp, path)


def stored_flows(conn: StoreConnection) -> list[tuple[Any, ...]]:
    """flows_hourly without run ids, sorted."""
    return sorted(tuple(r) for r in conn.execute(f"SELECT {FLOW_COLUMNS} FROM flows_hourly").fetchall())


def ingested_flows(tmp_path: Path, docs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """flows_hourly of a one-shot ingest of the same flows, in a store of its own."""
    out = write_run(tmp_path / "oneshot", tmp_path / "oneshot.pcap", flows=docs)
    conn = open_store(tmp_path / "oneshot.sqlite")
    ingest_run(conn, out)
    rows = stored_flows(conn)
    conn.close()
    return rows


def follow_counters(conn: StoreConnection) -> dict[str, Any]:
    (text,) = conn.execute("SELECT counters FROM runs WHERE kind = 'sense'").fetchone()
    return json.loads(text)["follow"]  # type: ignore[no-any-return]


@pytest.fixture
def store(target: str) -> StoreConnection:
    return open_store(target)


def test_file_time_is_the_sensors_file_stamp() -> None:
    before = file_stamp()
    now = file_time(time.time_ns())
    after = file_stamp()
    assert len(now) == len(before) and before <= now <= after


def test_steps_over_a_growing_file_count_each_line_once(tmp_path: Path, store: StoreConnection) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(store)
    sensor.write(flows(3))
    assert follower.step().flows == 3
    sensor.write(flows(2, first=3))
    with open(sensor.folder / "flows.jsonl", "ab") as fh:  # the writer is half-way through a line
        fh.write(json.dumps(flow_doc(5, start=HOUR.format(1))).encode()[:40])
    assert follower.step().flows == 2  # the torn line waits for its end
    with open(sensor.folder / "flows.jsonl", "ab") as fh:
        fh.write(json.dumps(flow_doc(5, start=HOUR.format(1))).encode()[40:] + b"\n")
    sensor.written.append(flow_doc(5, start=HOUR.format(1)))
    sensor.write(flows(1, first=6))
    assert follower.step().flows == 2
    assert follower.step().flows == 0  # nothing new: nothing added
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written)
    run = store.execute("SELECT kind, sensor, interface, started_ns, flows, skipped_lines FROM runs").fetchone()
    assert tuple(run) == ("sense", "host1", "eth1", STARTED_NS, 7, 0)
    (offset,) = store.execute("SELECT offset_bytes FROM run_cursors").fetchone()
    assert offset == (sensor.folder / "flows.jsonl").stat().st_size


def test_files_rotated_between_steps_are_read_to_their_end_first(tmp_path: Path, store: StoreConnection) -> None:
    sensor = FakeSensor(tmp_path / "eth1", max_bytes=3_000, keep=100)  # a few lines per file
    follower = sensor.follower(store)
    sensor.write(flows(2))
    follower.step()
    for first in range(2, 40, 3):  # several rotations between two steps
        sensor.write(flows(3, first=first))
    assert len(list(sensor.folder.glob("flows-*.jsonl"))) >= 5
    assert follower.step().flows == 39
    sensor.write(flows(4, first=41))
    assert follower.step().flows == 4
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written)
    assert follow_counters(store)["flow_files_lost"] == 0


def test_a_session_starts_after_what_an_earlier_one_wrote(tmp_path: Path, store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    earlier = FakeSensor(folder, max_bytes=3_000)
    earlier.write(flows(12))  # rotated files and a current one, with a torn last line of a killed writer
    earlier.file.close()
    with open(folder / "flows.jsonl", "ab") as fh:
        fh.write(b'{"event": {"start": "2026-11-02T0')
    later = FakeSensor(folder, started_ns=STARTED_NS + 10**9)  # its writer cuts the torn line off
    later.write(flows(5, first=100))
    result = later.follower(store).step()
    assert (result.flows, result.skipped_lines) == (5, 0)
    assert stored_flows(store) == ingested_flows(tmp_path, later.written)


def test_a_restart_is_a_new_run_and_its_steps_do_not_touch_the_old_one(tmp_path: Path, store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    first = FakeSensor(folder)
    first.write(flows(4))
    first.follower(store).step()
    second = FakeSensor(folder, started_ns=STARTED_NS + 3_600 * 10**9)
    second.write(flows(2, first=50))
    second.follower(store).step()
    runs = store.execute("SELECT id, started_ns, flows FROM runs ORDER BY started_ns").fetchall()
    assert [tuple(r)[1:] for r in runs] == [(STARTED_NS, 4), (STARTED_NS + 3_600 * 10**9, 2)]
    per_run = store.execute("SELECT run_id, sum(flows) FROM flows_hourly GROUP BY run_id ORDER BY run_id").fetchall()
    assert [tuple(r) for r in per_run] == [(runs[0][0], 4), (runs[1][0], 2)]


def test_a_held_file_is_read_to_its_end_though_rotation_deleted_it(tmp_path: Path, caplog: Any) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1", max_bytes=3_000, keep=0)  # every rotated file is deleted at once
    follower = sensor.follower(store)
    sensor.write(flows(2))
    follower.step()  # flows.jsonl is now held open
    sensor.write(flows(3, first=2))
    sensor.write(flows(3, first=5))  # rotates: the first file is renamed, then deleted
    assert not list(sensor.folder.glob("flows-*.jsonl"))
    sensor.status()
    with caplog.at_level(logging.WARNING):
        assert follower.step(final=True).flows == 6
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written)
    assert follow_counters(store)["flow_files_lost"] == 0 and follow_counters(store)["flow_lines_lost"] == 0
    assert "deleted" not in caplog.text


def test_a_file_deleted_before_a_new_follower_read_it_is_counted_lost(tmp_path: Path, caplog: Any) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1", max_bytes=3_000, keep=0)
    sensor.write(flows(2))
    sensor.follower(store).step()
    sensor.write(flows(3, first=2))  # the rest of the file the cursor is in
    sensor.write(flows(3, first=5))  # rotated away and deleted
    sensor.status()
    restarted = sensor.follower(open_store(tmp_path / "store.sqlite"))  # a new feed process: nothing held
    with caplog.at_level(logging.WARNING):
        result = restarted.step(final=True)
    assert (result.flows, result.lost_files, result.lines_lost) == (3, 1, 3)  # lost: the 3 written after the step
    assert "was deleted (keep_rotated) before the rest was read" in caplog.text
    assert "3 flows the sensor ended never reached the store" in caplog.text
    counters = follow_counters(store)
    assert (counters["flow_files_lost"], counters["flow_lines_lost"], counters["flow_lines"]) == (1, 3, 5)
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written[:2] + sensor.written[5:])
    assert restarted.step().lost_files == 0  # counted once


def test_damaged_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    sensor.write(flows(2))
    sensor.file.write_lines([b"{not json", b'{"event": {}}', json.dumps(flow_doc(9)).encode()])
    result = sensor.follower(store).step()
    assert (result.flows, result.skipped_lines) == (3, 2)
    assert any("flows.jsonl@" in p for p in result.problems)
    assert tuple(store.execute("SELECT flows, skipped_lines FROM runs").fetchone()) == (3, 2)


@pytest.mark.parametrize("max_step_bytes", [2_000, 100])  # 100: less than one line, which is read all the same
def test_a_step_reads_at_most_max_step_bytes_and_the_next_ones_catch_up(tmp_path: Path, max_step_bytes: int) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1", max_bytes=5_000)
    sensor.write(flows(30))
    follower = sensor.follower(store, max_step_bytes=max_step_bytes, batch=4)
    steps = [follower.step() for _ in range(40)]
    assert steps[0].more and 0 < steps[0].flows < 30
    assert sum(s.flows for s in steps) == 30 and not steps[-1].more
    assert stored_flows(store) == ingested_flows(tmp_path, sensor.written)


def test_a_torn_last_line_of_a_rotated_file_is_counted_as_damage(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(store)
    sensor.write(flows(2))
    with open(sensor.folder / "flows.jsonl", "ab") as fh:
        fh.write(b'{"event": {"start": "2026-11-02T0')  # never finished: the file is rotated after it
    follower.step()
    sensor.file.rotate()
    sensor.write(flows(1, first=2))
    result = follower.step()
    assert (result.flows, result.skipped_lines) == (1, 1)
    assert tuple(store.execute("SELECT flows, skipped_lines FROM runs").fetchone()) == (3, 1)


def test_devices_findings_and_the_status_are_the_latest_ones(tmp_path: Path, store: StoreConnection) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(store)
    (sensor.folder / "status.json").write_text(json.dumps({"event": {"start": "2026-01-01T00:00:00Z"},
                                                           "auditor": {"packets": {"received": 99}}}))
    follower.step()  # the status of an earlier session is not this run's
    assert tuple(store.execute("SELECT packets, drops FROM runs").fetchone()) == (0, None)

    sensor.devices(device_doc("AA-BB-CC-00-00-01", "C1"))
    sensor.alerts(alert_doc("a1"), alert_doc("a2"))
    sensor.status(received=500)
    follower.step()
    sensor.devices(device_doc("AA-BB-CC-00-00-01", "C2", last="2026-11-02T10:30:00Z"),
                   device_doc("AA-BB-CC-00-00-02", "C1"))
    grown = alert_doc("a1")
    grown["auditor"]["flows"], grown["network"]["bytes"] = 5, 900  # sums since the session started
    sensor.alerts(grown, alert_doc("a2"))
    sensor.status(received=800)
    follower.step()
    assert tuple(store.execute("SELECT packets, drops FROM runs").fetchone()) == (800, 3)
    assert sorted(tuple(r) for r in store.execute("SELECT mac, model FROM devices")) == [
        ("AA-BB-CC-00-00-01", "C2"), ("AA-BB-CC-00-00-02", "C1")]
    assert store.execute("SELECT count(*) FROM device_history").fetchone()[0] == 2  # one per device and run
    # replaced, not added: a1's sums are 5 flows / 900 bytes, not 6 / 1050
    assert sorted(tuple(r) for r in store.execute("SELECT alert_id, flows, bytes FROM findings")) == [
        ("a1", 5, 900), ("a2", 1, 150)]
    assert store.execute("SELECT count(*) FROM finding_runs").fetchone()[0] == 2
    assert [tuple(r) for r in store.execute("SELECT path, sha256 FROM run_rules")] == [
        ("/etc/auditor/policies/site.yaml", "ab" * 32)]


def test_a_person_s_acknowledgement_survives_the_steps(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(store)
    sensor.alerts(alert_doc("a1"))
    follower.step()
    store.execute("UPDATE findings SET status = 'acknowledged'")
    grown = alert_doc("a1")
    grown["auditor"]["flows"] = 4
    sensor.alerts(grown)
    follower.step()
    assert tuple(store.execute("SELECT status, flows FROM findings").fetchone()) == ("acknowledged", 4)


def test_sums_kept_aside_by_a_rule_reload_count_beside_the_new_ones(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    earlier = sensor.folder / f"alerts-current-{file_time(STARTED_NS - 10**9)}.jsonl"  # an earlier session's
    earlier.write_text(json.dumps(alert_doc("a1")) + "\n")
    follower = sensor.follower(store)
    sensor.alerts(alert_doc("a1"))
    follower.step()
    # SIGHUP: the sums under the old rules are moved aside, the new judge starts from nothing
    os.replace(sensor.folder / "alerts-current.jsonl",
               sensor.folder / f"alerts-current-{file_time(STARTED_NS + 30 * 10**9)}.jsonl")
    follower.step()
    assert tuple(store.execute("SELECT flows FROM findings").fetchone()) == (1,)
    sensor.alerts(alert_doc("a1"), alert_doc("a2"))
    follower.step()
    assert sorted(tuple(r) for r in store.execute("SELECT alert_id, flows FROM findings")) == [("a1", 2), ("a2", 1)]


def test_a_locked_store_fails_the_step_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    open_store(db).close()
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(connect(db, busy_timeout_s=0.1))
    sensor.write(flows(3))
    follower.step()
    sensor.write(flows(4, first=3))
    other = connect(db)
    with other.transaction():  # another writer holds the lock past the follower's patience
        with pytest.raises(StoreError, match="locked"):
            follower.step()
        sensor.write(flows(2, first=7))
    (offset,) = other.execute("SELECT offset_bytes FROM run_cursors").fetchone()
    assert offset < (sensor.folder / "flows.jsonl").stat().st_size
    assert follower.step().flows == 6
    assert stored_flows(follower.conn) == ingested_flows(tmp_path, sensor.written)


def test_a_cursor_on_a_reused_inode_is_not_taken_for_its_file(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    sensor.write(flows(3))
    st = (sensor.folder / "flows.jsonl").stat()
    # the cursor names this inode, but a file whose first line differs: the old file is gone
    stale = FileCursor(st.st_dev, st.st_ino, "0" * 16, file_time(STARTED_NS), 100)
    result = SensorFollower(store, sensor.session, stale).step()
    assert (result.flows, result.lost_files) == (3, 1)


def test_a_damaged_cursor_is_refused_rather_than_guessed(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store.sqlite")
    sensor = FakeSensor(tmp_path / "eth1")
    follower = sensor.follower(store)
    follower.step()
    store.execute("UPDATE run_cursors SET file_key = 'garbage'")
    sensor.write(flows(2))
    with pytest.raises(StoreError, match="not a flow file cursor"):
        follower.step()
    assert store.execute("SELECT sum(flows) FROM flows_hourly").fetchone()[0] is None


KILLED = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import auditor.store.follow as follow
    from auditor.store import open_store

    real = follow._write_flows

    def slow(conn, run_id, rows):
        out = real(conn, run_id, rows)
        print(len(rows), flush=True)
        time.sleep(0.05)  # keep the transaction open long enough to be killed inside it
        return out

    follow._write_flows = slow
    conn = open_store(sys.argv[1])
    if conn.dialect == "sqlite":
        conn.raw.execute("PRAGMA cache_size = 20")  # dirty pages spill into the WAL before the commit
    session = follow.SensorSession(Path(sys.argv[2]), "host1", "eth1", int(sys.argv[3]), "test", {"geoip": []})
    start = follow.FileCursor.from_key(sys.argv[4], int(sys.argv[5]))
    follow.SensorFollower(conn, session, start, batch=500).step()
    print("committed", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_inside_a_step_leaves_the_store_unchanged_and_the_next_step_counts_once(
        tmp_path: Path, target: str) -> None:
    store = open_store(target)
    sensor = FakeSensor(tmp_path / "eth1", max_bytes=2 << 20)
    sensor.write(flows(5))
    sensor.alerts(alert_doc("a1"))
    sensor.follower(store).step()
    before = table_contents(store, volatile=True)
    cursor_before = store.execute("SELECT file_key, offset_bytes, updated_ns FROM run_cursors").fetchall()
    many = [flow_doc(i, dst_ip=f"10.{i % 250}.{i // 250 % 250}.1", start=HOUR.format(i % 24))
            for i in range(10, 6_010)]
    sensor.write(many[:3_000])
    sensor.write(many[3_000:])  # rotates at 2 MiB: the step crosses a rotation too
    assert list(sensor.folder.glob("flows-*.jsonl"))
    sensor.alerts(alert_doc("a1"), alert_doc("a2"))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = sensor.start
    child = subprocess.Popen([sys.executable, "-c", KILLED, target, str(sensor.folder), str(STARTED_NS), start.key,
                              str(start.offset)], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        wal = Path(target + "-wal")
        for _ in range(30):  # until many batches are in, and (SQLite) uncommitted pages have reached the WAL
            seen = child.stdout.readline()
            assert seen.strip().isdigit(), seen
            if is_url(target) or (wal.exists() and wal.stat().st_size > 100_000):
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    after = open_store(target)
    assert table_contents(after, volatile=True) == before
    assert after.execute("SELECT file_key, offset_bytes, updated_ns FROM run_cursors").fetchall() == cursor_before
    result = sensor.follower(after).step()  # a new feed process: it resumes at the committed cursor
    assert result.flows == 6_000
    assert stored_flows(after) == ingested_flows(tmp_path, sensor.written)
    assert sorted(tuple(r) for r in after.execute("SELECT alert_id, flows FROM findings")) == [("a1", 1), ("a2", 1)]


def test_the_feed_process_writes_to_postgresql_and_never_shows_its_password(
        tmp_path: Path, pg_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    from urllib.parse import urlsplit

    from auditor.live.store_feed import FeedConfig, StoreFeed
    from tests.pg import PASSWORD, PASSWORD_ROLE

    name = urlsplit(pg_url).path.lstrip("/")
    url = pg_url.replace("postgres@", f"{PASSWORD_ROLE}:{PASSWORD}@", 1)
    assert PASSWORD in url and name in url
    sensor = FakeSensor(tmp_path / "eth1")
    sensor.write(flows(8))
    sensor.status()
    wrong = StoreFeed(FeedConfig(url.replace(PASSWORD, PASSWORD + "x"), str(sensor.folder), "host1", "eth1",
                                 STARTED_NS, sensor.start.key, sensor.start.offset), interval_s=0.2)
    feed = StoreFeed(FeedConfig(url, str(sensor.folder), "host1", "eth1", STARTED_NS, sensor.start.key,
                                sensor.start.offset), interval_s=0.2)
    deadline = time.monotonic() + 20
    while (feed.status()["steps"] < 1 or wrong.status()["failed_steps"] < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    feed.finish()
    wrong.finish(timeout_s=5)
    assert feed.status()["flows"] == 8 and feed.status()["last_error"] is None
    failed = wrong.status()
    assert failed["steps"] == 0 and "password authentication failed" in failed["last_error"]
    shown = json.dumps([feed.status(), failed]) + "".join(capfd.readouterr())
    assert PASSWORD not in shown and f"{PASSWORD_ROLE}:***@" in feed.status()["target"]
    assert stored_flows(open_store(pg_url)) == ingested_flows(tmp_path, sensor.written)


# -- catch-up: a new session stores what an earlier one's missing final step left ---------------------------------

HOUR_NS = 3_600 * 10**9


def run_flows(conn: StoreConnection, run_id: int) -> list[tuple[Any, ...]]:
    """flows_hourly of one run, without its id, sorted."""
    return sorted(tuple(r) for r in conn.execute(f"SELECT {FLOW_COLUMNS} FROM flows_hourly WHERE run_id = ?",
                                                 (run_id,)).fetchall())


def run_of(conn: StoreConnection, started_ns: int) -> tuple[int, int, dict[str, Any]]:
    """(id, flows, counters.follow) of the sense run that started at `started_ns`."""
    run_id, n, text = conn.execute("SELECT id, flows, counters FROM runs WHERE kind = 'sense' AND started_ns = ?",
                                   (started_ns,)).fetchone()
    return int(run_id), int(n), json.loads(text)["follow"]


def test_a_new_session_stores_what_an_unfinished_one_left_and_only_that(tmp_path: Path, store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    old = FakeSensor(folder)
    old.write(flows(4))
    old.follower(store).step()
    old.write(flows(6, first=4))  # written after its last step; its final step never ran (killed)
    old.file.close()
    new = FakeSensor(folder, started_ns=STARTED_NS + HOUR_NS)
    new.write(flows(3, first=100))
    follower = new.follower(store)
    caught = follower.catch_up()
    assert caught.done and [(r.flows, r.lost_files, r.finished) for r in caught.runs] == [(6, 0, True)]
    follower.step()
    old_id, old_flows, old_follow = run_of(store, STARTED_NS)
    new_id, new_flows, new_follow = run_of(store, new.started_ns)
    assert run_flows(store, old_id) == ingested_flows(tmp_path / "old", old.written)
    assert run_flows(store, new_id) == ingested_flows(tmp_path / "new", new.written)
    assert (old_flows, new_flows) == (10, 3)
    assert (old_follow["final"], old_follow["caught_up_lines"], old_follow["flow_lines"]) == (True, 6, 10)
    assert "final" not in new_follow and "caught_up_lines" not in new_follow
    # a restarted feed of the same session, then a later session once this one finished: nothing more
    before = stored_flows(store)
    assert new.follower(store).catch_up().runs == []
    new.follower(store).step(final=True)
    later = FakeSensor(folder, started_ns=STARTED_NS + 2 * HOUR_NS)
    assert later.follower(store).catch_up().runs == []
    assert stored_flows(store) == before
    assert run_of(store, STARTED_NS)[1:] == (old_flows, old_follow)


def test_catch_up_reads_rotated_files_and_stops_at_the_new_session_s_start(tmp_path: Path,
                                                                          store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    old = FakeSensor(folder, max_bytes=3_000)
    old.write(flows(2))
    old.follower(store).step()
    old.write(flows(12, first=2))  # rotated between its cursor and the new start
    old.file.close()
    assert list(folder.glob("flows-*.jsonl"))
    new = FakeSensor(folder, started_ns=STARTED_NS + HOUR_NS, max_bytes=3_000)
    new.write(flows(12, first=100))  # rotates the file the new start cursor is in: old and new lines
    follower = new.follower(store)
    assert [r.flows for r in follower.catch_up().runs] == [12]
    assert follower.step().flows == 12
    old_id, old_flows, old_follow = run_of(store, STARTED_NS)
    new_id, new_flows, _ = run_of(store, new.started_ns)
    assert run_flows(store, old_id) == ingested_flows(tmp_path / "old", old.written)
    assert run_flows(store, new_id) == ingested_flows(tmp_path / "new", new.written)
    assert (old_flows, new_flows, old_follow["final"], old_follow["flow_files_lost"]) == (14, 12, True, 0)


def test_catch_up_stops_each_unfinished_run_where_the_next_session_began(tmp_path: Path,
                                                                        store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    first = FakeSensor(folder, max_bytes=3_000)
    first.write(flows(3))
    first.follower(store).step()
    first.write(flows(5, first=3))
    first.file.close()
    second = FakeSensor(folder, started_ns=STARTED_NS + HOUR_NS, max_bytes=3_000)
    second.write(flows(2, first=50))
    second.follower(store).step()
    second.write(flows(9, first=52))
    second.file.close()
    third = FakeSensor(folder, started_ns=STARTED_NS + 2 * HOUR_NS)
    third.write(flows(1, first=200))
    follower = third.follower(store, max_step_bytes=1_000)  # several transactions per run
    assert [(r.flows, r.finished) for r in follower.catch_up().runs] == [(5, True), (9, True)]
    follower.step()
    for sensor, n in ((first, 8), (second, 11), (third, 1)):
        run_id, stored, _ = run_of(store, sensor.started_ns)
        assert stored == n and run_flows(store, run_id) == ingested_flows(tmp_path / str(n), sensor.written)


def test_catch_up_counts_lines_keep_rotated_deleted_as_lost(tmp_path: Path, store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    old = FakeSensor(folder, max_bytes=3_000, keep=0)
    old.write(flows(2))
    old.follower(store).step()
    old.write(flows(3, first=2))
    old.write(flows(3, first=5))  # the cursor's file rotated away and deleted
    old.file.close()
    new = FakeSensor(folder, started_ns=STARTED_NS + HOUR_NS)
    [run] = new.follower(store).catch_up().runs
    assert (run.flows, run.lost_files, run.finished) == (3, 1, True)
    old_id, old_flows, old_follow = run_of(store, STARTED_NS)
    assert (old_flows, old_follow["flow_files_lost"], old_follow["caught_up_files_lost"]) == (5, 1, 1)
    assert run_flows(store, old_id) == ingested_flows(tmp_path, old.written[:2] + old.written[5:])


def test_a_run_from_before_the_marker_with_nothing_after_its_cursor_counts_as_finished(
        tmp_path: Path, store: StoreConnection) -> None:
    folder = tmp_path / "eth1"
    old = FakeSensor(folder)
    old.write(flows(4))
    old.status()
    old.follower(store).step(final=True)
    old.file.close()
    (text,) = store.execute("SELECT counters FROM runs").fetchone()
    counters = json.loads(text)
    for key in ("final", "start", "folder"):
        del counters["follow"][key]
    with store.transaction():
        store.execute("UPDATE runs SET counters = ?", (json.dumps(counters),))
    new = FakeSensor(folder, started_ns=STARTED_NS + HOUR_NS)
    new.write(flows(2, first=10))
    follower = new.follower(store)
    assert [(r.flows, r.finished) for r in follower.catch_up().runs] == [(0, True)]
    follower.step()
    assert run_of(store, STARTED_NS)[1] == 4 and run_of(store, STARTED_NS)[2]["final"] is True
    assert run_of(store, new.started_ns)[1] == 2
