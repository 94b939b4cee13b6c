"""The same store on SQLite and PostgreSQL: the demo run ingests to the same rows and reports the same numbers,
a person's status survives re-ingest, concurrent ingests take turns, and a URL's password never shows."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.errors import ConfigError, StoreError
from auditor.report import build_report, period_bounds
from auditor.report.model import SINCE_REPORT, parse_time
from auditor.store import (
    ReportRecord,
    StoreConnection,
    earlier_reports,
    ingest_run,
    open_store,
    record_report,
    set_finding_status,
    store_info,
)
from auditor.store.evidence import finding_flows
from tests.pg import PASSWORD, PASSWORD_ROLE, PgServer
from tests.store import alert_doc, demo_out, flow_doc, table_contents, write_run

NOW = "2026-11-03T00:00:00Z"  # the demo capture is 2026-11-02T09:00Z


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_out(tmp_path_factory)


@pytest.fixture
def both(tmp_path: Path, pg_url: str, demo: Path) -> Iterator[tuple[StoreConnection, StoreConnection]]:
    """The demo run ingested into a SQLite store and a PostgreSQL store."""
    lite, pg = open_store(tmp_path / "s.sqlite"), open_store(pg_url)
    for conn in (lite, pg):
        ingest_run(conn, demo)
    yield lite, pg
    lite.close()
    pg.close()


def test_demo_ingest_gives_the_same_rows_on_sqlite_and_postgres(both: tuple[StoreConnection, StoreConnection],
                                                               demo: Path) -> None:
    lite, pg = both
    rows = table_contents(pg)
    assert rows == table_contents(lite)
    assert len(rows["devices"]) == 10 and len(rows["findings"]) == 7 and rows["flows_hourly"]
    again = ingest_run(pg, demo)  # the same captures again: replaced, nothing doubled
    assert again.replaced and again.findings_new == 0
    assert table_contents(pg) == rows
    pg_info, lite_info = store_info(pg), store_info(lite)
    assert dataclasses.replace(pg_info, runs=()) == dataclasses.replace(lite_info, runs=())
    assert [dataclasses.replace(r, ingested_ns=0) for r in pg_info.runs] == [
        dataclasses.replace(r, ingested_ns=0) for r in lite_info.runs]


def test_demo_report_is_the_same_on_sqlite_and_postgres(both: tuple[StoreConnection, StoreConnection]) -> None:
    start, end = period_bounds("7d", None, None, NOW)
    reports = [build_report(conn, start, end, now_ns=parse_time(NOW)) for conn in both]
    assert dataclasses.asdict(reports[0]) == dataclasses.asdict(reports[1])
    s = reports[1].summary
    assert (s.devices, s.findings_open, s.findings_waived) == (10, 6, 1)
    assert [(c.country, c.bytes_out) for c in s.bytes_by_country] == [("CN", 6844), ("IE", 838), ("US", 832)]
    assert all(type(c.bytes_out) is int for c in s.bytes_by_country)  # PostgreSQL's sum() is numeric


def test_report_records_and_new_since_the_last_report_are_the_same_on_both(
        both: tuple[StoreConnection, StoreConnection]) -> None:
    week1 = period_bounds(None, "2026-10-27", "2026-11-02", NOW)
    week2 = period_bounds(None, "2026-11-03", "2026-11-09", NOW)
    results = []
    for conn in both:
        first = build_report(conn, *week1, now_ns=parse_time(NOW))
        record_report(conn, ReportRecord(parse_time(NOW), *week1, "html", "w1", "/srv/w1.html", "ab" * 32),
                      [f.alert_id for f in first.all_findings()[:3]])
        earlier = earlier_reports(conn, week2[0])
        later = build_report(conn, *week2, now_ns=parse_time(NOW))
        results.append((earlier, dataclasses.asdict(later)))
    assert results[0] == results[1]
    earlier = results[1][0]
    assert earlier.count == 1 and len(earlier.alert_ids) == 3
    assert earlier.latest is not None and earlier.latest.out_path == "/srv/w1.html" and earlier.latest.id == 1
    assert results[1][1]["header"]["new_findings_rule"] == SINCE_REPORT


def test_finding_evidence_sources_are_the_same_on_both(both: tuple[StoreConnection, StoreConnection]) -> None:
    lite, pg = both
    (alert_id,) = pg.execute("SELECT alert_id FROM findings WHERE severity = 'critical'").fetchone()
    flows = finding_flows(pg, alert_id[:8])  # a prefix works on PostgreSQL's substr too
    assert flows == finding_flows(lite, alert_id[:8])
    assert flows.alert_id == alert_id and flows.community_ids and len(flows.captures) == 1


def test_ingest_keeps_acknowledged_status_and_prefix_ack_works(target: str, demo: Path) -> None:
    conn = open_store(target)
    try:
        ingest_run(conn, demo)
        (alert_id,) = conn.execute("SELECT alert_id FROM findings WHERE severity = 'critical'").fetchone()
        assert set_finding_status(conn, alert_id[:7], "acknowledged") == 1
        conn.execute("UPDATE findings SET status = 'acknowledged' WHERE status = 'new'")
        ingest_run(conn, demo)
        assert store_info(conn).findings_by_status == {"new": 0, "acknowledged": 6, "waived": 1}
        with pytest.raises(ConfigError, match="no finding"):
            set_finding_status(conn, "%%%%%%", "new")  # LIKE wildcards are escaped, not matched
    finally:
        conn.close()


def test_two_ingests_at_once_take_turns_and_add_up(target: str, tmp_path: Path) -> None:
    """Two sensors ingesting at once: the second waits for the first's transaction; both raise the same finding,
    whose totals count both runs."""
    a = write_run(tmp_path / "a", tmp_path / "a.pcap", flows=[flow_doc(i) for i in range(200)],
                  alerts=[alert_doc("shared", start="2026-11-02T09:00:00Z")])
    b = write_run(tmp_path / "b", tmp_path / "b.pcap", flows=[flow_doc(i, dst_ip="198.51.100.7") for i in range(200)],
                  alerts=[alert_doc("shared", start="2026-11-03T09:00:00Z")])
    open_store(target).close()  # migrated before the race: this test is about ingest
    events: list[str] = []
    a_inside = threading.Event()
    failures: list[BaseException] = []

    def slow(flows: int) -> None:
        events.append("a")
        a_inside.set()
        threading.Event().wait(0.2)  # hold the transaction open

    def ingest(out: Path, progress: object, wait: threading.Event | None) -> None:
        try:
            if wait is not None:
                wait.wait(10)
            conn = open_store(target)
            try:
                ingest_run(conn, out, batch=50, progress=progress)  # type: ignore[arg-type]
            finally:
                conn.close()
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=ingest, args=(a, slow, None)),
               threading.Thread(target=ingest, args=(b, lambda n: events.append("b"), a_inside))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert events == ["a"] * 4 + ["b"] * 4  # b read nothing into the store until a had committed
    conn = open_store(target)
    try:
        assert conn.execute("SELECT flows, bytes, first_run_id != last_run_id FROM findings").fetchone() == (2, 300, 1)
        assert conn.execute("SELECT sum(flows), count(DISTINCT run_id) FROM flows_hourly").fetchone() == (400, 2)
    finally:
        conn.close()


def test_counts_near_the_64_bit_limit_survive(target: str, tmp_path: Path) -> None:
    big = 2**61
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", flows=[flow_doc(1, bytes_out=big), flow_doc(2, bytes_out=big)])
    conn = open_store(target)
    try:
        ingest_run(conn, out)
        assert conn.execute("SELECT bytes_out FROM flows_hourly").fetchall() == [(2 * big,)]
    finally:
        conn.close()


def test_a_wrong_password_is_a_store_error_that_never_shows_it(pg_server: PgServer, pg_url: str) -> None:
    dbname = pg_url.split("/")[3].split("?")[0]
    wrong = "wrong-Secret-4711"
    with pytest.raises(StoreError) as info:
        open_store(pg_server.url(dbname, PASSWORD_ROLE, wrong))
    message = str(info.value)
    assert "password authentication failed" in message and f"{PASSWORD_ROLE}:***@" in message
    assert wrong not in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the driver's text is not chained
    conn = open_store(pg_server.url(dbname, PASSWORD_ROLE, PASSWORD))  # the right one opens it
    try:
        assert conn.target == pg_server.url(dbname, PASSWORD_ROLE, PASSWORD).replace(PASSWORD, "***")
        assert PASSWORD not in conn.target
    finally:
        conn.close()


def test_no_server_there_is_a_store_error_without_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match="cannot open the store") as info:
        open_store(f"postgresql://auditor:hunter2@/audit?host={tmp_path}&port=5999")
    assert "hunter2" not in str(info.value) and "auditor:***@" in str(info.value)
    assert info.value.exit_code == 4


def test_a_database_that_does_not_exist_is_a_store_error(pg_server: PgServer) -> None:
    with pytest.raises(StoreError, match='database "no_such_db" does not exist'):
        open_store(pg_server.url("no_such_db"))
