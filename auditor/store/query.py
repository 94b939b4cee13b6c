"""Read-only questions to the store that the CLI (`auditor store info`) and reports ask."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

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
