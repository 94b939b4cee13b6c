"""The report model on the demo store: exact numbers, the period rules, the previous-period trend, and "new"
counted against the reports recorded before."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.errors import ConfigError
from auditor.report import build_report, period_bounds
from auditor.report.model import FIRST_SEEN, SINCE_REPORT, Report, parse_duration, parse_time
from auditor.store import ReportRecord, earlier_reports, open_store, record_report
from tests.report._demo import NOW, WEEK_NS, add_previous_week, build_demo_store, copy_store

NUCTECH, DAHUA, EZVIZ = "C0-9B-F4-B1-02-15", "3C-EF-8C-30-10-30", "58-8F-CF-40-10-40"
HIKVISION, OEM_DAHUA, WIFI_HIK = "4C-BD-8F-21-10-21", "00-1F-54-50-10-50", "24-0A-C4-60-10-60"
LISTED = (OEM_DAHUA, WIFI_HIK, DAHUA, HIKVISION, EZVIZ, NUCTECH)  # in MAC order


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("report-model"))


def _report(db: Path, since: str | None = "7d", from_: str | None = None, to: str | None = None) -> Report:
    start, end = period_bounds(since, from_, to, NOW)
    conn = open_store(db)
    try:
        return build_report(conn, start, end, now_ns=parse_time(NOW))
    finally:
        conn.close()


def _record(db: Path, report: Report, listed: list[str] | None = None) -> int:
    """Record `report` as written (listing `listed`, default all its findings) and return its id."""
    start, end = parse_time(report.header.period.start), parse_time(report.header.period.end)
    conn = open_store(db)
    try:
        ids = [f.alert_id for f in report.all_findings()] if listed is None else listed
        return record_report(conn, ReportRecord(parse_time(report.header.generated), start, end, "html", "t",
                                                f"/srv/reports/{start}.html", "cd" * 32), ids)
    finally:
        conn.close()


def _earlier(db: Path, since: str | None = "7d", from_: str | None = None, to: str | None = None) -> int:
    start, _ = period_bounds(since, from_, to, NOW)
    conn = open_store(db)
    try:
        return earlier_reports(conn, start).count
    finally:
        conn.close()


def test_model_header_on_demo(demo_db: Path) -> None:
    h = _report(demo_db).header
    assert (h.period.start, h.period.end) == ("2026-10-27T00:00:00Z", "2026-11-03T00:00:00Z")
    assert (h.period.previous_start, h.period.previous_end) == ("2026-10-20T00:00:00Z", "2026-10-27T00:00:00Z")
    assert h.period.seconds == 7 * 86_400
    assert h.generated == "2026-11-03T00:00:00Z"
    assert [r.id for r in h.runs] == [1]
    run = h.runs[0]
    assert (run.started, run.ended, run.packets, run.drops, run.flows) == (
        "2026-11-02T09:00:00Z", "2026-11-02T09:00:42Z", 217, None, 29)
    assert len(run.files) == 1
    assert run.files[0].name.endswith("demo-site.pcap") and len(run.files[0].sha256) == 64
    c = h.coverage
    assert (c.runs, c.packets, c.drops, c.flows, c.gaps) == (1, 217, None, 29, ())
    assert [(r.path.endswith("site.yaml"), r.ruleset) for r in h.rule_files] == [(True, "demo-site")]
    assert {d.kind for d in h.databases} == {"GeoLite2-Country", "GeoLite2-ASN"}
    assert all(d.build_date for d in h.databases)


def test_model_summary_on_demo(demo_db: Path) -> None:
    s = _report(demo_db).summary
    assert s.devices == 10
    assert s.listed.present == LISTED
    assert s.listed.new == LISTED
    assert s.listed.gone == ()
    assert s.unapproved_egress == (WIFI_HIK, DAHUA, EZVIZ, NUCTECH)
    assert (s.findings_open, s.findings_waived) == (6, 1)
    assert [(x.severity, x.open, x.waived) for x in s.by_severity] == [
        ("critical", 1, 0), ("high", 5, 1), ("medium", 0, 0), ("low", 0, 0)]
    assert [(c.country, c.bytes_out, c.bytes_in, c.flows) for c in s.bytes_by_country] == [
        ("CN", 6844, 3602, 5), ("IE", 838, 1393, 1), ("US", 832, 1393, 1)]
    t = s.trend
    assert (t.findings_open, t.findings_open_previous, t.findings, t.findings_previous) == (6, 0, 7, 0)
    assert (t.egress_bytes, t.egress_bytes_previous, t.devices, t.devices_previous) == (8514, 0, 10, 0)


def test_model_inventory_and_findings_on_demo(demo_db: Path) -> None:
    r = _report(demo_db)
    devices = {d.mac: d for d in r.devices}
    assert len(devices) == 10
    d = devices[OEM_DAHUA]
    assert (d.maker, d.brand, d.device_class, d.model, d.firmware) == (
        "Zhejiang Dahua Technology Co., Ltd.", "Lorex", "camera", "IPC-HDW2431T-AS-S2", "2.800.0000000.25.R")
    assert [x.id for x in d.lists] == ["ndaa-889", "fcc-covered"]
    assert d.lists[0].name == "NDAA FY2019 section 889" and d.lists[0].clause.startswith("(f)(3)(B)")
    assert d.how == "protocol" and d.confidence == pytest.approx(0.989) and d.new
    assert d.ips == ("192.168.10.50",)
    assert "Lorex Technology Inc." in d.evidence
    assert "signals: dahua-dhip" in devices[DAHUA].evidence
    assert devices[NUCTECH].lists[0].id == "entity-list"

    findings = r.all_findings()
    assert len(findings) == 7
    by_device = {g.device: [f.dst_ip for f in g.findings] for g in r.findings}
    assert by_device[EZVIZ][0] == "198.51.100.41"  # most bytes first within a severity
    assert set(by_device) == {WIFI_HIK, DAHUA, EZVIZ, NUCTECH}
    scanner = next(f for f in findings if f.device == NUCTECH)
    assert (scanner.rule_id, scanner.severity, scanner.dst_ip, scanner.country, scanner.asn, scanner.bytes,
            scanner.status, scanner.new, scanner.egress) == (
        "scanner-lane", "critical", "203.0.113.80", "CN", 64498, 4924, "new", True, True)
    assert (scanner.first_seen, scanner.last_seen) == ("2026-11-02T09:00:41Z", "2026-11-02T09:00:41Z")
    cloud = next(f for f in findings if f.dst_ip == "198.51.100.41")
    assert (cloud.dst_domain, cloud.country, cloud.asn) == ("litedev.ezvizlife.com", "IE", 64497)
    assert [(w.waiver_id, w.device, w.rule_id, w.destination) for w in r.waivers] == [
        ("ezviz-upnp-search", EZVIZ, "cameras-to-vms", "239.255.255.250 (udp/1900)")]
    waived = next(f for f in findings if f.status == "waived")
    assert not waived.egress  # multicast on the site


def test_model_period_without_traffic(demo_db: Path) -> None:
    r = _report(demo_db, None, "2026-10-01", "2026-10-07")
    assert (r.summary.devices, r.summary.findings_open, r.header.runs, r.summary.bytes_by_country) == (0, 0, (), ())
    assert r.header.period.end == "2026-10-08T00:00:00Z"  # a bare --to date includes that day


def test_model_trend_against_previous_week(demo_db: Path, tmp_path: Path) -> None:
    db = copy_store(demo_db, tmp_path, "two-weeks.sqlite")
    add_previous_week(db)
    s = _report(db).summary
    t = s.trend
    assert (t.devices, t.devices_previous) == (10, 11)
    assert (t.findings_open, t.findings_open_previous, t.findings, t.findings_previous) == (6, 4, 7, 5)
    assert (t.egress_bytes, t.egress_bytes_previous) == (8514, 8514)
    assert s.listed.new == () and s.listed.present == LISTED
    assert s.listed.gone == ("02-00-00-00-00-77",)
    r = _report(db)
    assert sorted(f.device for f in r.all_findings() if f.new) == sorted([DAHUA, WIFI_HIK])
    assert [x.id for x in r.header.runs] == [1]  # the earlier run is in the previous period only

    both = _report(db, None, "2026-10-20", "2026-11-02")
    c = both.header.coverage
    assert (c.runs, c.packets, c.drops) == (2, 317, None)
    assert [(g.start, g.end, g.seconds) for g in c.gaps] == [
        ("2026-10-26T09:00:42Z", "2026-11-02T09:00:00Z", 604_757.938)]
    assert both.header.sensors == ("analyze (capture files)", "sensor-a")
    assert len({f.sha256 for r in both.header.runs for f in r.files}) == 2


@pytest.mark.parametrize(("since", "from_", "to", "message"), [
    ("7x", None, None, "not a duration"),
    ("0d", None, None, "not a duration"),
    (None, "yesterday", None, "not an ISO 8601"),
    (None, "2026-11-02", "2026-13-40", "not an ISO 8601"),
    (None, "2026-11-03", "2026-11-01", "the period is empty"),
    ("7d", "2026-11-01", None, "not both"),
    (None, None, "2026-11-01", "--to needs --from"),
])
def test_period_bounds_errors(since: str | None, from_: str | None, to: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        period_bounds(since, from_, to, NOW)


def test_period_bounds_forms() -> None:
    now = parse_time(NOW)
    assert period_bounds("24h", None, None, NOW) == (now - 86_400 * 10**9, now)
    assert period_bounds(None, None, None, NOW) == (now - WEEK_NS, now)  # 7 days by default
    assert period_bounds(None, "2026-11-02T09:00+01:00", None, NOW) == (parse_time("2026-11-02T08:00Z"), now)
    assert parse_duration("2w") == 2 * WEEK_NS


def test_model_of_an_empty_store_is_a_report_of_nothing(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "empty.sqlite")
    try:
        r = build_report(conn, 0, 10)
    finally:
        conn.close()
    assert (r.header.coverage.runs, r.header.coverage.packets, r.summary.devices) == (0, 0, 0)
    assert r.devices == () and r.findings == ()


def test_model_without_an_earlier_report_new_means_first_seen_and_says_so(demo_db: Path) -> None:
    r = _report(demo_db)
    assert (r.header.new_findings_rule, r.header.previous_report, r.header.earlier_reports) == (FIRST_SEEN, None, 0)
    assert all(f.new for f in r.all_findings())  # the demo's findings were all first seen this week
    section = r.methodology[-1]
    assert section.title == "New findings" and "No earlier report is recorded" in section.text


def test_model_new_means_not_listed_in_an_earlier_report(demo_db: Path, tmp_path: Path) -> None:
    db = copy_store(demo_db, tmp_path, "two-weeks.sqlite")
    add_previous_week(db)
    previous = _report(db, None, "2026-10-20", "2026-10-26")
    scanner = [f.alert_id for f in previous.all_findings() if f.device == NUCTECH]
    assert len(previous.all_findings()) == 5 and len(scanner) == 1
    report_id = _record(db, previous, scanner)  # last week's report listed only the scanner's finding

    r = _report(db)
    h = r.header
    assert (h.new_findings_rule, h.earlier_reports) == (SINCE_REPORT, 1)
    assert h.previous_report is not None and h.previous_report.id == report_id
    assert (h.previous_report.start, h.previous_report.end) == ("2026-10-20T00:00:00Z", "2026-10-27T00:00:00Z")
    assert h.previous_report.out_path is not None and h.previous_report.out_path.startswith("/srv/reports/")
    new = {f.alert_id for f in r.all_findings() if f.new}
    assert new == {f.alert_id for f in r.all_findings()} - set(scanner)
    # the EZVIZ camera's findings were first seen last week, yet no report listed them: they are new here
    assert any(f.new and f.device == EZVIZ and f.first_seen < h.period.start for f in r.all_findings())
    assert "none of the 1 earlier report recorded" in r.methodology[-1].text
    assert "2026-10-20T00:00:00Z to 2026-10-27T00:00:00Z" in r.methodology[-1].text


def test_model_rendering_a_period_again_does_not_make_its_findings_old(demo_db: Path, tmp_path: Path) -> None:
    db = copy_store(demo_db, tmp_path, "again.sqlite")
    first = _report(db)
    _record(db, first)
    again = _report(db)
    assert [f.new for f in again.all_findings()] == [f.new for f in first.all_findings()]
    assert again.header.new_findings_rule == FIRST_SEEN  # its own record does not count
    assert _earlier(db) == 0


def test_model_only_reports_ending_by_this_periods_start_count(demo_db: Path, tmp_path: Path) -> None:
    db = copy_store(demo_db, tmp_path, "later.sqlite")
    later = _report(db, None, "2026-10-30", "2026-11-05")  # ends after this week's report: not earlier
    _record(db, later)
    assert _earlier(db) == 0 and all(f.new for f in _report(db).all_findings())
    # the daily report of the week's last day (the shipped timers write it half an hour before the weekly
    # one): it ends inside this week, so the weekly report's findings stay new
    daily = _report(db, None, "2026-11-02", "2026-11-02")
    _record(db, daily)
    assert _earlier(db) == 0 and all(f.new for f in _report(db).all_findings())
    # a --since re-run minutes later covers nearly the same period: it does not count either
    assert _earlier(db, None, "2026-10-27T00:05:00Z", "2026-11-03T00:05:00Z") == 0
    before = _report(db, None, "2026-10-26", "2026-10-26")  # ends when this week starts: earlier
    _record(db, before)
    assert _earlier(db) == 1
    r = _report(db)
    assert r.header.new_findings_rule == SINCE_REPORT
    assert "ended by this one's start" in r.methodology[-1].text
