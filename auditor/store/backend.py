"""One connection type for the store, over SQLite (a file beside the sensor) or PostgreSQL (a server shared by
many sensors), so every store and report function is written once.

`StoreConnection` keeps sqlite3's calling style: `conn.execute(sql, params)` returns a cursor to `fetchone()`,
`fetchall()` or iterate (rows are tuples), `conn.executemany(sql, rows)`, `?` placeholders and SQL in the SQLite
dialect (see auditor.store.dialect for what is rendered for PostgreSQL). Writes go through
`with conn.transaction():`, which serialises writers on both: SQLite's BEGIN IMMEDIATE takes the database's
write lock; on PostgreSQL a transaction-scoped advisory lock does the same, so two sensors ingesting at once
take turns instead of racing on the same findings. Outside a transaction every statement commits on its own.

`connect(target)` takes a path (SQLite) or a `postgresql://` / `postgres://` URL. The URL's password never
appears in a message or a log line: `display_target()` masks it, and error text is masked too.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from auditor.errors import ConfigError, StoreError
from auditor.store.dialect import SQLITE

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another one (a sensor and a report at the same time) before giving up."""
URL_SCHEMES = ("postgresql://", "postgres://")
MASK = "***"


class Cursor(Protocol):
    """What `StoreConnection.execute` returns: sqlite3's and psycopg's cursors both are one."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class StoreConnection(ABC):
    """A connection to the store, SQLite or PostgreSQL (see the module docstring)."""

    dialect: str
    """auditor.store.dialect.SQLITE or POSTGRESQL."""
    target: str
    """Where the store is, fit for messages: the path, or the URL with its password masked."""
    errors: tuple[type[Exception], ...]
    """The driver's error classes, for `except conn.errors` where a failure becomes a StoreError."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (SQLite dialect, `?` placeholders) and return its cursor."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection."""

    @abstractmethod
    def _begin_write(self) -> contextlib.AbstractContextManager[None]:
        """Open a write transaction holding the store's write lock; commit on exit, roll back on error."""

    @abstractmethod
    def _begin_read(self) -> contextlib.AbstractContextManager[None]:
        """Open a read-only transaction that sees one snapshot of the store."""

    @abstractmethod
    def read_version(self) -> int:
        """Return the schema version the store records (0 for a new, empty store)."""

    @abstractmethod
    def write_version(self, version: int) -> None:
        """Record the schema version; call inside `transaction()`, with the migration step it completes."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block as one write transaction, serialised with every other writer of the store: committed
        when the block ends, rolled back when it raises. StoreError when a transaction is already open."""
        if self.in_transaction:
            raise StoreError("a store transaction is already open on this connection")
        with self._begin_write():
            yield

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Run the block's reads against one consistent snapshot (a writer committing meanwhile is not seen);
        inside an open transaction, that transaction is the snapshot."""
        if self.in_transaction:
            yield
            return
        with self._begin_read():
            yield


class SqliteConnection(StoreConnection):
    """The store in a SQLite file: WAL, foreign keys on, a busy timeout for writers."""

    dialect = SQLITE
    errors = (sqlite3.Error,)

    def __init__(self, raw: sqlite3.Connection, target: str) -> None:
        self.raw = raw
        """The sqlite3 connection, in autocommit mode (isolation_level None), for SQLite-only work (PRAGMAs)."""
        self.target = target

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(sql, without_nul(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, map(without_nul, rows))

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @contextlib.contextmanager
    def _begin(self, statement: str) -> Iterator[None]:
        self.raw.execute(statement)
        try:
            yield
        except BaseException:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def _begin_write(self) -> contextlib.AbstractContextManager[None]:
        return self._begin("BEGIN IMMEDIATE")  # the write lock now, not at the first write: no deadlock

    def _begin_read(self) -> contextlib.AbstractContextManager[None]:
        return self._begin("BEGIN")  # WAL: the first read fixes the snapshot until COMMIT

    def read_version(self) -> int:
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def write_version(self, version: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(version)}")

    def close(self) -> None:
        self.raw.close()


def is_url(target: Path | str) -> bool:
    """Whether `target` names a PostgreSQL store (a postgresql:// or postgres:// URL) rather than a file."""
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


NUL_STANDIN = "\ufffd"


def without_nul(params: Sequence[Any]) -> Sequence[Any]:
    """Return `params` with every NUL in a text value replaced by U+FFFD. Text from the wire (a DHIP firmware
    string, an SSDP header) may hold NUL, which PostgreSQL's text type refuses: one such value would fail
    every write of a run, and a sensor's follower would never move past it. Both backends store the same."""
    if not any(isinstance(v, str) and "\x00" in v for v in params):
        return params
    return [v.replace("\x00", NUL_STANDIN) if isinstance(v, str) else v for v in params]


def _userinfo(url: str) -> tuple[str, str, str | None, str]:
    """Split a URL into (scheme://, user, password or None, the rest after the user info). The user info runs
    to the last '@' before the first '/': a password may hold '#' or '?', which libpq accepts and urlsplit
    takes for the start of a query or fragment (it then finds no password at all), and an unescaped '@'
    is masked with the password rather than shown."""
    scheme, sep, rest = url.partition("://")
    slash = rest.find("/")
    at = rest.rfind("@", 0, slash if slash >= 0 else len(rest))
    if at >= 0:
        user, colon, password = rest[:at].partition(":")
        return scheme + sep, user, password if colon else None, rest[at + 1:]
    return scheme + sep, "", None, rest


def _query_pairs(rest: str) -> tuple[str, list[str]]:
    """Return (what precedes the query, the query's key=value pairs)."""
    before, mark, query = rest.partition("?")
    return before, query.split("&") if mark and query else []


def url_secrets(url: str) -> list[str]:
    """Return the password(s) a URL carries (in its user info or a password= parameter), raw and decoded."""
    _, _, password, rest = _userinfo(url)
    found = [password] if password else []
    for pair in _query_pairs(rest)[1]:
        key, _, value = pair.partition("=")
        if unquote(key).lower() == "password" and value:
            found.append(value)
    return [s for raw in found for s in {raw, unquote(raw)} if s]


def mask_url(url: str) -> str:
    """Return `url` with its password (user info or password= parameter) replaced by ***."""
    head, user, password, rest = _userinfo(url)
    if password is not None:
        head += f"{user}:{MASK}@"
    elif user or url[len(head):].startswith("@"):
        head += f"{user}@"
    before, pairs = _query_pairs(rest)
    masked = [f"{key}={MASK}" if eq and unquote(key).lower() == "password" else pair
              for pair in pairs for key, eq, _ in [pair.partition("=")]]
    return head + before + ("?" + "&".join(masked) if masked else "")


def display_target(target: Path | str) -> str:
    """Return where a store is, fit for messages: the path, or the URL with its password masked."""
    return mask_url(str(target)) if is_url(target) else str(target)


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Return a driver error as one line (PostgreSQL adds LINE/HINT lines), with `secrets` masked."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def connect(target: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> StoreConnection:
    """Return a connection to the store at `target` (a SQLite path, created if absent, or a PostgreSQL URL),
    without migrating its schema (open_store does that). StoreError when it cannot be opened, ConfigError when a
    URL is given and psycopg is not installed."""
    if is_url(target):
        try:
            import psycopg  # noqa: F401  (loaded for URLs only: an optional extra)
        except ImportError as exc:
            raise ConfigError(f"{display_target(target)}: a PostgreSQL store needs the optional 'postgres' extra "
                              f"(pip install 'span-auditor[postgres]'): {exc}") from None
        from auditor.store.postgres import connect_postgres

        return connect_postgres(str(target), busy_timeout_s=busy_timeout_s)
    return _connect_sqlite(target, busy_timeout_s)


def _wal_mode(raw: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch to WAL, waiting like any writer would: the switch needs an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy handler, while another process is creating the same new
    store (a sensor, its store feed and a report starting together)."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            raw.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _connect_sqlite(path: Path | str, busy_timeout_s: float) -> SqliteConnection:
    raw: sqlite3.Connection | None = None
    try:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
        raw.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        _wal_mode(raw, busy_timeout_s)
        # WAL + NORMAL survives a killed process (the transaction is in the WAL or not at all); only a power
        # cut can lose the last commit, never corrupt the file
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA foreign_keys = ON")
    except (sqlite3.Error, OSError) as exc:
        if raw is not None:
            raw.close()
        raise StoreError(f"{path}: cannot open the store: {exc}") from exc
    return SqliteConnection(raw, str(path))
