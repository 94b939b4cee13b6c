"""The store on a PostgreSQL server, through psycopg 3 (the optional 'postgres' extra), for sites where many
sensors share one store. Same tables as SQLite (auditor.store.dialect renders them); the schema version lives in
a one-row table `schema_version` instead of SQLite's PRAGMA user_version; writers serialise on an advisory lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import TupleRow

from auditor.errors import StoreError
from auditor.store.backend import Cursor, StoreConnection, describe, mask_url, url_secrets, without_nul
from auditor.store.dialect import POSTGRESQL, to_postgres

logger = logging.getLogger(__name__)

WRITE_LOCK = 0x7370_616E_6175_6431
"""The advisory lock key ("spanaud1") every store writer holds for its transaction: ingests take turns."""
CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "span-auditor"
"""Shown in pg_stat_activity, so a DBA sees which sessions are the auditor's."""


class PostgresConnection(StoreConnection):
    """The store in a PostgreSQL database; psycopg in autocommit mode, transactions opened explicitly."""

    dialect = POSTGRESQL
    errors = (psycopg.Error,)

    def __init__(self, raw: psycopg.Connection[TupleRow], target: str) -> None:
        self.raw = raw
        """The psycopg connection (autocommit), for PostgreSQL-only work."""
        self.target = target

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if sql.strip().upper() == "BEGIN IMMEDIATE":  # sqlite3-style callers get the same serialised writer
            self.raw.execute("BEGIN")
            return self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        return self.raw.execute(to_postgres(sql), without_nul(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(to_postgres(sql), map(without_nul, rows))

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    @contextlib.contextmanager
    def _begin_write(self) -> Iterator[None]:
        with self.raw.transaction():
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield

    @contextlib.contextmanager
    def _begin_read(self) -> Iterator[None]:
        with self.raw.transaction():
            self.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def read_version(self) -> int:
        # a catalog query, not to_regclass(): that answers from this session's cache, which can miss a table
        # another migrator committed while this one waited for the write lock
        found = self.raw.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = "
                                 "current_schema() AND tablename = 'schema_version')").fetchone()
        if not (found and found[0]):
            return 0
        row = self.raw.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def write_version(self, version: int) -> None:
        self.raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, "
                         "one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one))")
        self.raw.execute("INSERT INTO schema_version (version) VALUES (%s) "
                         "ON CONFLICT (one) DO UPDATE SET version = excluded.version", (int(version),))

    def close(self) -> None:
        self.raw.close()


def connect_postgres(url: str, *, busy_timeout_s: float) -> PostgresConnection:
    """Return a connection to the PostgreSQL store at `url`; StoreError (password masked) when it fails."""
    shown = mask_url(url)
    conninfo: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if "application_name=" not in url:  # the URL's own name wins
        conninfo["application_name"] = APPLICATION_NAME
    try:
        raw = psycopg.connect(url, autocommit=True, **conninfo)
    except psycopg.Error as exc:
        # `from None`: the driver's own exception may quote the connection string
        raise StoreError(f"{shown}: cannot open the store: {describe(exc, url_secrets(url))}") from None
    try:
        # a writer waits for another as long as SQLite's busy timeout lets it, then gives up with an error
        raw.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(busy_timeout_s * 1000)}ms",))
    except psycopg.Error as exc:
        raw.close()
        raise StoreError(f"{shown}: cannot open the store: {describe(exc, url_secrets(url))}") from None
    logger.debug("connected to %s", shown)
    return PostgresConnection(raw, shown)
