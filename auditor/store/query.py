"""Questions to the store that the CLI (`auditor store info`) and reports ask, a person's decision on a finding,
and the record of the reports written (which findings each listed, so the next one can tell what is new)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from auditor.errors import ConfigError
from auditor.store.backend import StoreConnection
from auditor.store.schema import schema_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One ingested run, as `store info` lists it."""

    id: int
    kind: str
    started_ns: int | None
    ended_ns: int | None
    files: tuple[str, ...]
    packets: int
    flows: int
    skipped_lines: int
    ingested_ns: int


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What the store holds."""

    schema_version: int
    runs: tuple[RunInfo, ...]
    devices: int
    flow_rows: int
    findings_by_status: dict[str, int]
    reports: int = 0
    """Reports recorded (written to a file)."""


def store_info(conn: StoreConnection) -> StoreInfo:
    """Return the schema version, the runs (oldest first), and device, flow-row and finding counts."""
    runs = []
    for row in conn.execute("SELECT id, kind, started_ns, ended_ns, packets, flows, skipped_lines, ingested_ns "
                            "FROM runs ORDER BY coalesce(started_ns, ingested_ns), id").fetchall():
        names = conn.execute("SELECT name FROM run_files WHERE run_id = ? ORDER BY name", (row[0],))
        files = tuple(str(r[0]) for r in names)
        runs.append(RunInfo(id=row[0], kind=row[1], started_ns=row[2], ended_ns=row[3], files=files, packets=row[4],
                            flows=row[5], skipped_lines=row[6], ingested_ns=row[7]))
    by_status = {"new": 0, "acknowledged": 0, "waived": 0}
    for status, count in conn.execute("SELECT status, count(*) FROM findings GROUP BY status"):
        by_status[str(status)] = int(count)
    return StoreInfo(
        schema_version=schema_version(conn), runs=tuple(runs),
        devices=int(conn.execute("SELECT count(*) FROM devices").fetchone()[0]),
        flow_rows=int(conn.execute("SELECT count(*) FROM flows_hourly").fetchone()[0]),
        findings_by_status=by_status, reports=int(conn.execute("SELECT count(*) FROM reports").fetchone()[0]),
    )


def set_finding_status(conn: StoreConnection, alert_id: str, status: str) -> int:
    """Mark findings (by id, or a unique prefix of at least 6 characters) 'acknowledged' or back to 'new';
    return how many changed. A waived finding stays waived: its waiver, not a person, decides."""
    if status not in ("acknowledged", "new"):
        raise ValueError(f"status must be 'acknowledged' or 'new', not {status!r}")
    if len(alert_id) < 6:
        raise ConfigError(f"{alert_id!r}: give at least 6 characters of the finding id")
    rows = conn.execute("SELECT alert_id, status FROM findings WHERE alert_id LIKE ? ESCAPE '\\'",
                        (alert_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)).fetchall()
    if not rows:
        raise ConfigError(f"no finding {alert_id!r} in the store")
    if len(rows) > 1:
        raise ConfigError(f"{alert_id!r} names {len(rows)} findings: give more of the id")
    (found, current), = rows
    if current == "waived" or current == status:
        return 0
    with conn.transaction():
        conn.execute("UPDATE findings SET status = ? WHERE alert_id = ?", (status, found))
    return 1


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """A report written to a file, as the store records it."""

    generated_ns: int
    period_from_ns: int
    period_to_ns: int
    """The report's period, [from, to)."""
    format: str
    title: str
    out_path: str | None = None
    sha256: str | None = None
    """Of the rendered bytes, so a file can be matched to its record."""
    id: int | None = None
    """Set on records read back from the store."""


@dataclass(frozen=True, slots=True)
class EarlierReports:
    """The recorded reports that count as earlier than a report's period, and what they listed."""

    count: int
    latest: ReportRecord | None
    """The one whose period ended last (the last generated of those): the report this one follows."""
    alert_ids: frozenset[str]
    """Every finding any of them listed."""


_EARLIER = "period_to_ns <= ?"


def record_report(conn: StoreConnection, report: ReportRecord, alert_ids: Iterable[str]) -> int:
    """Record a written report and the findings it listed; return its id. Inside the caller's open transaction
    it is part of that one (so the caller can commit it only once the file is written); otherwise it is its own."""
    if not conn.in_transaction:
        with conn.transaction():
            return record_report(conn, report, alert_ids)
    report_id = int(conn.execute(
        "INSERT INTO reports (generated_ns, period_from_ns, period_to_ns, format, title, out_path, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (report.generated_ns, report.period_from_ns, report.period_to_ns, report.format, report.title,
         report.out_path, report.sha256),
    ).fetchone()[0])
    conn.executemany("INSERT INTO report_findings (report_id, alert_id) VALUES (?, ?)",
                     [(report_id, alert_id) for alert_id in sorted(set(alert_ids))])
    logger.info("recorded report %d (%s)", report_id, report.out_path or "-")
    return report_id


def earlier_reports(conn: StoreConnection, period_from_ns: int) -> EarlierReports:
    """Return the recorded reports whose period ended at or before `period_from_ns`, this report's start.
    Reports that end inside this period do not count: the morning's daily report must not make the weekly
    one's findings look old, nor a report of this period rendered again (or a --since re-run minutes later)."""
    bounds = (period_from_ns,)
    rows = conn.execute(
        "SELECT id, generated_ns, period_from_ns, period_to_ns, format, title, out_path, sha256 FROM reports "
        f"WHERE {_EARLIER} ORDER BY period_to_ns DESC, generated_ns DESC, id DESC", bounds,
    ).fetchall()
    latest = None
    if rows:
        r = rows[0]
        latest = ReportRecord(id=int(r[0]), generated_ns=int(r[1]), period_from_ns=int(r[2]), period_to_ns=int(r[3]),
                              format=str(r[4]), title=str(r[5]), out_path=r[6], sha256=r[7])
    listed = conn.execute(
        f"SELECT DISTINCT alert_id FROM report_findings WHERE report_id IN (SELECT id FROM reports WHERE {_EARLIER})",
        bounds,
    )
    return EarlierReports(count=len(rows), latest=latest, alert_ids=frozenset(str(r[0]) for r in listed))
