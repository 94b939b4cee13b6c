"""The store's schema: version 1 on a fresh database, migrations in order, a newer database refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditor.errors import StoreError
from auditor.store import SCHEMA_VERSION, migrate, open_store, schema_version
from tests.store import TABLES


def _conn() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None)


def test_open_store_fresh_database_gets_version_1_wal_and_every_table(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "sub" / "a.sqlite")
    assert SCHEMA_VERSION == 1
    assert schema_version(conn) == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(TABLES) <= names


def test_open_store_twice_keeps_version_and_data(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "a.sqlite")
    conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES ('k', 'analyze', 1)")
    conn.close()
    again = open_store(tmp_path / "a.sqlite")
    assert schema_version(again) == 1
    assert again.execute("SELECT run_key FROM runs").fetchall() == [("k",)]


def test_open_store_refuses_a_newer_schema_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match=r"version 99, newer than this auditor knows \(1\)") as info:
        open_store(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 4


def test_open_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite, just text long enough to fill a header page" * 20)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(path)


def test_migrate_applies_steps_in_order_and_only_those_above_the_current_version() -> None:
    steps: list[tuple[int, tuple[str, ...]]] = [
        (1, ("CREATE TABLE t (a INTEGER)", "INSERT INTO t VALUES (1)")),
        (2, ("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'",)),
        (3, ("UPDATE t SET b = b || 'y'",)),
    ]
    conn = _conn()
    assert migrate(conn, steps[:1]) == 1
    assert migrate(conn, steps) == 3
    assert conn.execute("SELECT a, b FROM t").fetchall() == [(1, "xy")]
    assert migrate(conn, steps) == 3  # nothing left to do: step 3 did not run twice
    assert conn.execute("SELECT b FROM t").fetchall() == [("xy",)]


def test_migrate_failing_step_leaves_the_previous_version_and_no_half_step() -> None:
    steps: list[tuple[int, tuple[str, ...]]] = [
        (1, ("CREATE TABLE t (a INTEGER)",)),
        (2, ("CREATE TABLE u (a INTEGER)", "THIS IS NOT SQL")),
    ]
    conn = _conn()
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, steps)
    assert schema_version(conn) == 1
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchall()


def test_migrate_rejects_unordered_steps() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        migrate(_conn(), [(2, ()), (1, ())])
