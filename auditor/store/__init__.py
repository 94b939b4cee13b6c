"""The embedded store: SQLite (WAL), a versioned schema with migrations, idempotent transactional ingest
of a run's output files, and the queries reports ask."""

from __future__ import annotations

from auditor.store.ingest import IngestResult, ingest_run, open_store, run_key
from auditor.store.query import RunInfo, StoreInfo, set_finding_status, store_info
from auditor.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "IngestResult",
    "RunInfo",
    "StoreInfo",
    "ingest_run",
    "migrate",
    "open_store",
    "run_key",
    "schema_version",
    "set_finding_status",
    "store_info",
]
