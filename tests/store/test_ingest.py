"""Ingest of an `auditor analyze` run: the demo's numbers, idempotency, a person's status surviving
re-ingest, damaged lines, and wire strings stored as given.

flows_hourly counts every flow of the run (all directions; `direction` tells outbound ones apart), so
the demo's 29 flows sum to 29 there and the outbound ones to summary.json's outbound count.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.errors import ConfigError, StoreError
from auditor.store import StoreConnection, ingest_run, open_store, store_info
from tests.store import DEMO, alert_doc, demo_out, flow_doc, table_contents, write_run


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_out(tmp_path_factory)


@pytest.fixture
def conn(tmp_path: Path) -> StoreConnection:
    return open_store(tmp_path / "store.sqlite")


def test_ingest_demo_stores_its_devices_flows_and_findings(conn: StoreConnection, demo: Path) -> None:
    result = ingest_run(conn, demo)
    assert (result.devices, result.flows, result.alerts, result.findings_new, result.skipped_lines) == (10, 29, 7, 7, 0)
    assert not result.replaced
    info = store_info(conn)
    assert info.devices == 10
    assert info.findings_by_status == {"new": 6, "acknowledged": 0, "waived": 1}
    assert conn.execute("SELECT sum(flows) FROM flows_hourly").fetchone()[0] == 29
    assert result.flow_rows == info.flow_rows <= 29
    docs = [json.loads(line) for line in (demo / "flows.jsonl").read_text().splitlines()]
    outbound = sum(doc["network"]["direction"] == "outbound" for doc in docs)
    assert conn.execute("SELECT sum(flows) FROM flows_hourly WHERE direction = 'outbound'").fetchone()[0] == outbound
    flow_bytes = sum(doc["network"]["bytes"] for doc in docs)
    assert conn.execute("SELECT sum(bytes_out + bytes_in) FROM flows_hourly").fetchone()[0] == flow_bytes
    run = conn.execute("SELECT kind, packets, flows, started_ns < ended_ns, databases FROM runs").fetchone()
    assert run[:4] == ("analyze", 217, 29, 1)
    assert json.loads(run[4])["geoip"][0]["build_date"]
    assert conn.execute("SELECT name FROM run_files").fetchall() == [(str(DEMO),)]
    assert conn.execute("SELECT count(*) FROM run_rules WHERE length(sha256) = 64").fetchone()[0] == 1
    # the waived finding names its waiver; a listed device keeps its verdict and a history row
    assert conn.execute("SELECT waiver_id FROM findings WHERE status = 'waived'").fetchall() == [("ezviz-upnp-search",)]
    assert conn.execute("SELECT maker, class FROM devices WHERE mac = 'C0-9B-F4-B1-02-15'").fetchone() == (
        "Nuctech Company Limited", "screening-scanner")
    assert conn.execute("SELECT count(*) FROM device_history").fetchone()[0] == 10
    assert conn.execute("SELECT count(*) FROM device_addresses WHERE mac = '00-0C-42-1A-2B-01'").fetchone()[0] == 2
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_ingest_demo_twice_changes_nothing(conn: StoreConnection, demo: Path) -> None:
    ingest_run(conn, demo)
    before = table_contents(conn)
    again = ingest_run(conn, demo)
    assert again.replaced and again.findings_new == 0
    assert table_contents(conn) == before


def test_ingest_keeps_acknowledged_status_and_waives_what_the_alert_waives(conn: StoreConnection,
                                                                            demo: Path) -> None:
    ingest_run(conn, demo)
    conn.execute("UPDATE findings SET status = 'acknowledged' WHERE status = 'new'")
    ingest_run(conn, demo)
    assert store_info(conn).findings_by_status == {"new": 0, "acknowledged": 6, "waived": 1}


def test_ingest_waiver_applied_later_wins_and_expired_waiver_reopens(conn: StoreConnection, tmp_path: Path) -> None:
    one = write_run(tmp_path / "one", tmp_path / "one.pcap", alerts=[alert_doc("a1", start="2026-11-02T09:00:00Z")])
    two = write_run(tmp_path / "two", tmp_path / "two.pcap",
                    alerts=[alert_doc("a1", status="waived", waiver="w1", start="2026-11-03T09:00:00Z")])
    three = write_run(tmp_path / "three", tmp_path / "three.pcap",
                      alerts=[alert_doc("a1", start="2026-11-04T09:00:00Z")])
    first = ingest_run(conn, one).run_id
    conn.execute("UPDATE findings SET status = 'acknowledged'")
    second = ingest_run(conn, two).run_id
    assert conn.execute("SELECT status, waiver_id FROM findings").fetchone() == ("waived", "w1")
    third = ingest_run(conn, three).run_id
    row = conn.execute("SELECT status, waiver_id, flows, bytes, first_run_id, last_run_id FROM findings").fetchone()
    assert row == ("new", None, 3, 450, first, third)
    assert second not in (first, third)


def test_ingest_findings_keep_the_earliest_first_seen_whatever_the_order(conn: StoreConnection,
                                                                         tmp_path: Path) -> None:
    late = write_run(tmp_path / "late", tmp_path / "late.pcap", alerts=[alert_doc("a1", start="2026-11-05T09:00:00Z")])
    early = write_run(tmp_path / "early", tmp_path / "early.pcap",
                      alerts=[alert_doc("a1", start="2026-11-01T09:00:00Z")])
    late_id = ingest_run(conn, late).run_id
    early_id = ingest_run(conn, early).run_id
    first_run, last_run, first_ns = conn.execute("SELECT first_run_id, last_run_id, first_ns FROM findings").fetchone()
    assert (first_run, last_run) == (early_id, late_id)
    assert first_ns == 1_793_523_600 * 10**9  # 2026-11-01T09:00:00Z, the early run's
    assert first_ns == conn.execute("SELECT first_ns FROM finding_runs WHERE run_id = ?", (early_id,)).fetchone()[0]


def test_ingest_two_different_captures_adds_their_flows(conn: StoreConnection, tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", tmp_path / "a.pcap", flows=[flow_doc(1), flow_doc(2)])
    b = write_run(tmp_path / "b", tmp_path / "b.pcap", flows=[flow_doc(3)])
    assert ingest_run(conn, a).run_id != ingest_run(conn, b).run_id
    assert conn.execute("SELECT sum(flows), sum(bytes_out) FROM flows_hourly").fetchone() == (3, 300)
    ingest_run(conn, a)
    assert conn.execute("SELECT sum(flows), sum(bytes_out), count(DISTINCT run_id) FROM flows_hourly").fetchone() == (
        3, 300, 2)


def test_ingest_same_captures_under_new_rules_replaces_the_run(conn: StoreConnection, tmp_path: Path) -> None:
    capture = tmp_path / "x.pcap"
    old = write_run(tmp_path / "old", capture, flows=[flow_doc(1)], alerts=[alert_doc("gone")], rules_sha="aa" * 32)
    new = write_run(tmp_path / "new", capture, flows=[flow_doc(1)], alerts=[alert_doc("kept")], rules_sha="bb" * 32)
    ingest_run(conn, old)
    result = ingest_run(conn, new)
    assert result.replaced
    assert conn.execute("SELECT sha256 FROM run_rules").fetchall() == [("bb" * 32,)]
    assert conn.execute("SELECT alert_id FROM findings").fetchall() == [("kept",)]
    assert conn.execute("SELECT count(*), sum(flows) FROM flows_hourly").fetchone() == (1, 1)


def test_ingest_aggregates_flows_per_device_destination_and_hour(conn: StoreConnection, tmp_path: Path) -> None:
    flows = [flow_doc(i) for i in range(50)]
    flows += [flow_doc(100, start="2026-11-02T10:30:00Z"), flow_doc(101, dst_ip="198.51.100.1")]
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", flows=flows)
    result = ingest_run(conn, out, batch=7)  # groups span batches: the upsert adds them up
    assert result.flow_rows == 3
    rows = conn.execute("SELECT hour, dst_ip, flows, bytes_out, bytes_in FROM flows_hourly ORDER BY hour, dst_ip")
    hour = 1_793_610_000 // 3600
    assert rows.fetchall() == [(hour, "198.51.100.1", 1, 100, 50), (hour, "203.0.113.9", 50, 5000, 2500),
                               (hour + 1, "203.0.113.9", 1, 100, 50)]


def test_ingest_damaged_flow_lines_are_skipped_and_counted(conn: StoreConnection, tmp_path: Path) -> None:
    bad = [b"{not json", b'{"event": {}}', json.dumps(flow_doc(9, bytes_out=-5)).encode(), b"[1, 2]",
           json.dumps({**flow_doc(8), "event": {"start": "yesterday", "end": "x"}}).encode()]
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", flows=[flow_doc(1), flow_doc(2)], extra_flow_lines=bad)
    with open(out / "alerts.jsonl", "a") as fh:
        fh.write("cut in the midd\n")
    result = ingest_run(conn, out)
    assert (result.flows, result.skipped_lines, result.alerts) == (2, 6, 0)
    assert result.problems and "flows.jsonl:3" in result.problems[0]
    assert conn.execute("SELECT flows, skipped_lines FROM runs").fetchone() == (2, 6)


def test_ingest_stores_wire_strings_as_given(conn: StoreConnection, tmp_path: Path) -> None:
    hostile = "<script>alert('x')</script>=cmd|' /C calc'!A0\u202e"
    device = {"mac": "aa-bb-cc-00-00-01", "first_seen": "2026-11-02T09:00:00Z", "last_seen": "2026-11-02T09:01:00Z",
              "ips": [], "vendor": {"id": "v", "name": hostile, "class": "camera", "model": hostile,
                                    "firmware": "1.0", "confidence": 0.5}}
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", flows=[flow_doc(1, domain=hostile)],
                    alerts=[alert_doc("a1", domain=hostile)], devices=[device])
    ingest_run(conn, out)
    assert conn.execute("SELECT dst_domain FROM flows_hourly").fetchone() == (hostile,)
    assert conn.execute("SELECT dst_domain FROM findings").fetchone() == (hostile,)
    assert conn.execute("SELECT mac, maker, model FROM devices").fetchone() == ("AA-BB-CC-00-00-01", hostile, hostile)


def test_ingest_device_history_gets_a_row_only_when_the_verdict_changes(conn: StoreConnection,
                                                                        tmp_path: Path) -> None:
    def device(day: int, firmware: str) -> dict[str, object]:
        return {"mac": "AA-BB-CC-00-00-01", "first_seen": f"2026-11-0{day}T09:00:00Z",
                "last_seen": f"2026-11-0{day}T10:00:00Z", "ips": [{"ip": "192.168.1.10",
                "first_seen": f"2026-11-0{day}T09:00:00Z", "last_seen": f"2026-11-0{day}T10:00:00Z"}],
                "vendor": {"id": "v", "name": "V", "class": "camera", "firmware": firmware, "confidence": 0.9}}
    for day, firmware in ((1, "1.0"), (2, "1.0"), (3, "2.0")):
        ingest_run(conn, write_run(tmp_path / str(day), tmp_path / f"{day}.pcap", devices=[device(day, firmware)]))
    assert [r[0] for r in conn.execute("SELECT firmware FROM device_history ORDER BY seen_ns")] == ["1.0", "2.0"]
    assert conn.execute("SELECT firmware FROM devices").fetchone() == ("2.0",)
    address = conn.execute("SELECT first_ns < last_ns FROM device_addresses").fetchone()
    assert address == (1,)


def test_ingest_missing_capture_or_run_is_a_config_error(conn: StoreConnection, tmp_path: Path) -> None:
    out = write_run(tmp_path / "o", tmp_path / "o.pcap")
    with pytest.raises(ConfigError, match="--capture"):
        ingest_run(conn, out, [tmp_path / "absent.pcap"])
    with pytest.raises(ConfigError, match=r"summary\.json"):
        ingest_run(conn, tmp_path / "empty")
    assert store_info(conn).runs == ()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 10**6)),
                max_size=40), st.integers(1, 9))
def test_ingest_round_trips_totals_and_twice_changes_nothing(
        tmp_path_factory: pytest.TempPathFactory, spec: list[tuple[int, int, int, int]], batch: int) -> None:
    base = tmp_path_factory.mktemp("prop")
    flows = [flow_doc(i, dst_ip=f"203.0.113.{d}", start=f"2026-11-02T0{h}:15:00Z", bytes_out=o, bytes_in=n)
             for i, (h, d, o, n) in enumerate(spec)]
    out = write_run(base / "o", base / "o.pcap", flows=flows)
    conn = open_store(base / "s.sqlite")
    ingest_run(conn, out, batch=batch)
    once = table_contents(conn)
    ingest_run(conn, out, batch=batch + 1)
    assert table_contents(conn) == once
    totals = conn.execute("SELECT coalesce(sum(flows), 0), coalesce(sum(bytes_out), 0), coalesce(sum(bytes_in), 0) "
                          "FROM flows_hourly").fetchone()
    assert totals == (len(spec), sum(o for *_, o, _ in spec), sum(n for *_, n in spec))
    assert len(once["flows_hourly"]) == len({(h, d) for h, d, _, _ in spec})
    conn.close()


def test_ingest_refuses_to_run_inside_the_callers_transaction(conn: StoreConnection, tmp_path: Path) -> None:
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", flows=[flow_doc(1)])
    conn.execute("BEGIN")
    conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES ('mine', 'sense', 1)")
    with pytest.raises(StoreError, match="outside a transaction"):
        ingest_run(conn, out)
    assert conn.in_transaction  # the caller's work is left to the caller
    conn.execute("COMMIT")
    assert conn.execute("SELECT run_key FROM runs").fetchall() == [("mine",)]
