"""The store's schema and its migrations, one definition for SQLite and PostgreSQL.

Statements are written once, in the SQLite dialect with their types in upper case; auditor.store.dialect renders
them for PostgreSQL (BIGINT for INTEGER, identity ids, byte-order text).

The schema version lives in `PRAGMA user_version` on SQLite and in a one-row table `schema_version` on
PostgreSQL. `MIGRATIONS` is an ordered list of (version, statements); `migrate()` applies every step above the
store's version, each in its own write transaction together with the new version number (PostgreSQL's DDL is
transactional too), so a crash mid-migration leaves the old version. A store written by a newer auditor (a
version above `SCHEMA_VERSION`) is refused, never guessed at.

Times are integer nanoseconds since the epoch (`*_ns`), hours are epoch hours (`ns // 3600e9`).
Text from the wire (domains, maker names, models) is stored as given: escaping is the report's job.
Columns that take part in a primary key are NOT NULL, with '' or 0 for "absent", because SQLite
treats NULLs as distinct in a key and an upsert would then never match.
"""

from __future__ import annotations

import logging

from auditor.errors import StoreError
from auditor.store.backend import StoreConnection
from auditor.store.dialect import render_ddl

logger = logging.getLogger(__name__)

_V1: tuple[str, ...] = (
    # one row per ingested job; run_key identifies the traffic (kind + the set of capture sha256s), so the
    # same captures ingested again replace their run instead of adding one
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('analyze', 'sense')),
        sensor TEXT,
        interface TEXT,
        started_ns INTEGER,
        ended_ns INTEGER,
        packets INTEGER NOT NULL DEFAULT 0,
        drops INTEGER,
        flows INTEGER NOT NULL DEFAULT 0,
        skipped_lines INTEGER NOT NULL DEFAULT 0,
        auditor_version TEXT,
        databases TEXT NOT NULL DEFAULT '{}',
        counters TEXT NOT NULL DEFAULT '{}',
        ingested_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE run_files (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes INTEGER,
        frames INTEGER,
        PRIMARY KEY (run_id, name)
    )""",
    "CREATE INDEX run_files_sha256 ON run_files(sha256)",
    """CREATE TABLE run_rules (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        ruleset TEXT,
        PRIMARY KEY (run_id, path)
    )""",
    # the current verdict of each MAC: the one of the run that saw the device last (verdict_ns)
    """CREATE TABLE devices (
        mac TEXT PRIMARY KEY,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        oui_organization TEXT,
        vendor_id TEXT,
        maker TEXT,
        brand TEXT,
        class TEXT,
        model TEXT,
        firmware TEXT,
        confidence REAL,
        how TEXT,
        oem_relabel TEXT,
        lists TEXT NOT NULL DEFAULT '[]',
        verdict_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        verdict_ns INTEGER
    )""",
    # a row when a device's verdict differs from its previous one (in order of when the runs saw it)
    """CREATE TABLE device_history (
        mac TEXT NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seen_ns INTEGER NOT NULL,
        vendor_id TEXT,
        maker TEXT,
        class TEXT,
        model TEXT,
        firmware TEXT,
        confidence REAL,
        PRIMARY KEY (mac, run_id)
    )""",
    """CREATE TABLE device_addresses (
        mac TEXT NOT NULL REFERENCES devices(mac) ON DELETE CASCADE,
        ip TEXT NOT NULL,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        PRIMARY KEY (mac, ip)
    )""",
    # bounded by design: one row per run x device x destination x service x hour, never one per flow.
    # Every flow of the run is counted (direction says which were outbound); a flow counts in the hour
    # it started.
    """CREATE TABLE flows_hourly (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        hour INTEGER NOT NULL,
        src_mac TEXT NOT NULL,
        src_ip TEXT NOT NULL,
        dst_ip TEXT NOT NULL,
        dst_domain TEXT NOT NULL,
        country TEXT NOT NULL,
        asn INTEGER NOT NULL,
        protocol INTEGER NOT NULL,
        port INTEGER NOT NULL,
        direction TEXT NOT NULL,
        flows INTEGER NOT NULL,
        bytes_out INTEGER NOT NULL,
        bytes_in INTEGER NOT NULL,
        packets_out INTEGER NOT NULL,
        packets_in INTEGER NOT NULL,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        PRIMARY KEY (run_id, hour, src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, direction)
    ) WITHOUT ROWID""",
    "CREATE INDEX flows_hourly_hour ON flows_hourly(hour)",
    # one row per alert id (stable across runs); status is a person's decision and survives re-ingest
    """CREATE TABLE findings (
        alert_id TEXT PRIMARY KEY,
        rule_id TEXT NOT NULL,
        rule_name TEXT,
        ruleset TEXT,
        severity TEXT,
        device TEXT,
        src_ip TEXT,
        dst_ip TEXT,
        dst_domain TEXT,
        country TEXT,
        asn INTEGER,
        services TEXT NOT NULL DEFAULT '[]',
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        flows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('new', 'acknowledged', 'waived')),
        waiver_id TEXT,
        community_ids TEXT NOT NULL DEFAULT '[]',
        evidence TEXT NOT NULL DEFAULT '[]',
        first_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        last_run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL
    )""",
    "CREATE INDEX findings_device ON findings(device)",
    # what each run contributed to a finding, so re-ingesting a run replaces rather than adds
    """CREATE TABLE finding_runs (
        alert_id TEXT NOT NULL REFERENCES findings(alert_id) ON DELETE CASCADE,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        first_ns INTEGER NOT NULL,
        last_ns INTEGER NOT NULL,
        flows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        alert_status TEXT NOT NULL,
        PRIMARY KEY (alert_id, run_id)
    )""",
    "CREATE INDEX finding_runs_run ON finding_runs(run_id)",
)

_V2: tuple[str, ...] = (
    # where a live sensor's follower has read each of its files up to; committed in the same transaction
    # as the rows read, so a restart resumes exactly there
    """CREATE TABLE run_cursors (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        file_key TEXT NOT NULL,
        offset_bytes INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (run_id, source)
    )""",
    # each report written to a file, and the findings it listed: "new" means not listed in an earlier one
    """CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        generated_ns INTEGER NOT NULL,
        period_from_ns INTEGER NOT NULL,
        period_to_ns INTEGER NOT NULL,
        format TEXT NOT NULL,
        title TEXT NOT NULL,
        out_path TEXT,
        sha256 TEXT
    )""",
    "CREATE INDEX reports_period_to ON reports(period_to_ns)",
    # no foreign key to findings: a report stays what it was when a later ingest drops one of its findings
    """CREATE TABLE report_findings (
        report_id INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
        alert_id TEXT NOT NULL,
        PRIMARY KEY (report_id, alert_id)
    )""",
    "CREATE INDEX report_findings_alert ON report_findings(alert_id)",
)

MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [(1, _V1), (2, _V2)]
"""(version, statements) in order; append a step to change the schema, never edit a released one."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The schema version this code writes and reads."""


def schema_version(conn: StoreConnection) -> int:
    """Return the store's schema version (0 for a new, empty store)."""
    return conn.read_version()


def migrate(conn: StoreConnection, migrations: list[tuple[int, tuple[str, ...]]] | None = None) -> int:
    """Bring the store up to the last version of `migrations` and return it; StoreError when the store is newer
    than the code. Driver errors of a failing step propagate after its rollback. Two processes migrating at once
    take turns: each step re-reads the version under the write lock and skips what the other did."""
    steps = MIGRATIONS if migrations is None else migrations
    latest = steps[-1][0] if steps else 0
    versions = [v for v, _ in steps]
    if versions != sorted(set(versions)) or any(v < 1 for v in versions):
        raise ValueError(f"migration versions must be positive and strictly increasing: {versions}")
    current = schema_version(conn)
    if current > latest:
        raise StoreError(f"the store's schema is version {current}, newer than this auditor knows ({latest}); "
                         f"upgrade the auditor or use another --db")
    for version, statements in steps:
        if version <= current:
            continue
        with conn.transaction():
            current = schema_version(conn)
            if current >= version:  # another process applied it while this one waited for the lock
                continue
            for statement in statements:
                conn.execute(render_ddl(statement, conn.dialect))
            conn.write_version(version)
        logger.info("store schema migrated to version %d", version)
        current = version
    return current
