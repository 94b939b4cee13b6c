"""The store: SQLite (WAL) beside the sensor or a shared PostgreSQL, one versioned schema with migrations,
idempotent transactional ingest of a run's output files, the queries reports ask, and the record of reports."""

from __future__ import annotations

from auditor.store.backend import StoreConnection, connect, display_target, is_url, mask_url
from auditor.store.follow import FileCursor, SensorFollower, SensorSession, StepResult, start_cursor
from auditor.store.ingest import IngestResult, ingest_run, open_store, run_key
from auditor.store.query import (
    EarlierReports,
    ReportRecord,
    RunInfo,
    StoreInfo,
    earlier_reports,
    record_report,
    set_finding_status,
    store_info,
)
from auditor.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "EarlierReports",
    "FileCursor",
    "IngestResult",
    "ReportRecord",
    "RunInfo",
    "SensorFollower",
    "SensorSession",
    "StepResult",
    "StoreConnection",
    "StoreInfo",
    "connect",
    "display_target",
    "earlier_reports",
    "ingest_run",
    "is_url",
    "mask_url",
    "migrate",
    "open_store",
    "record_report",
    "run_key",
    "schema_version",
    "set_finding_status",
    "start_cursor",
    "store_info",
]
