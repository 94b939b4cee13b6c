"""Read-only questions to the store that the CLI (`auditor store info`) and reports ask."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from auditor.errors import ConfigError
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


def store_info(conn: sqlite3.Connection) -> StoreInfo:
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
        findings_by_status=by_status,
    )


def set_finding_status(conn: sqlite3.Connection, alert_id: str, status: str) -> int:
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
    with conn:
        conn.execute("UPDATE findings SET status = ? WHERE alert_id = ?", (status, found))
    return 1
