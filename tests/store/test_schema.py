"""The store's schema, on SQLite and PostgreSQL alike: the latest version on a fresh store, migrations in order and
each step whole or not at all, a newer store refused, two processes migrating at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from auditor.errors import StoreError
from auditor.store import SCHEMA_VERSION, StoreConnection, connect, migrate, open_store, schema_version
from auditor.store.backend import SqliteConnection
from tests.store import TABLES

V2_TABLES = ("run_cursors", "reports", "report_findings")


def _tables(conn: StoreConnection) -> set[str]:
    if conn.dialect == "sqlite":
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = current_schema()")}


def _set_version(conn: StoreConnection, version: int) -> None:
    """Make the store claim a schema version, as a newer auditor would have left it."""
    with conn.transaction():
        conn.write_version(version)


def test_open_store_fresh_store_gets_the_latest_version_and_every_table(target: str) -> None:
    conn = open_store(target)
    try:
        assert SCHEMA_VERSION == 2
        assert schema_version(conn) == 2
        assert set(TABLES) | set(V2_TABLES) <= _tables(conn)
        assert not conn.in_transaction
    finally:
        conn.close()


def test_open_store_sqlite_is_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "sub" / "a.sqlite")
    assert isinstance(conn, SqliteConnection)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    conn.close()


def test_schema_v2_run_cursors_and_reports_take_what_the_follower_and_reports_write(target: str) -> None:
    conn = open_store(target)
    try:
        big = 1_793_610_000 * 10**9  # epoch ns: needs 64 bits, on PostgreSQL too
        run_id = conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES ('k', 'sense', ?) RETURNING id",
                              (big,)).fetchone()[0]
        conn.execute("INSERT INTO run_cursors (run_id, source, file_key, offset_bytes, updated_ns) VALUES "
                     "(?, 'flows', 'dev:ino', ?, ?)", (run_id, 2**40, big))
        with pytest.raises(conn.errors):  # one cursor per run and source
            conn.execute("INSERT INTO run_cursors VALUES (?, 'flows', 'x', 0, 0)", (run_id,))
        with pytest.raises(conn.errors):  # the kind CHECK still holds
            conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES ('k2', 'other', 1)")
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        assert conn.execute("SELECT count(*) FROM run_cursors").fetchone()[0] == 0  # cascades with its run
        report = conn.execute("INSERT INTO reports (generated_ns, period_from_ns, period_to_ns, format, title) "
                              "VALUES (?, ?, ?, 'html', 't') RETURNING id", (big, big - 1, big)).fetchone()[0]
        conn.execute("INSERT INTO report_findings VALUES (?, 'a1')", (report,))
        conn.execute("DELETE FROM reports")
        assert conn.execute("SELECT count(*) FROM report_findings").fetchone()[0] == 0
    finally:
        conn.close()


def test_open_store_twice_keeps_version_and_data(target: str) -> None:
    conn = open_store(target)
    conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES ('k', 'analyze', 1)")
    conn.close()
    again = open_store(target)
    assert schema_version(again) == SCHEMA_VERSION
    assert again.execute("SELECT run_key FROM runs").fetchall() == [("k",)]
    again.close()


def test_open_store_refuses_a_newer_schema_with_a_clear_error(target: str) -> None:
    conn = open_store(target)
    _set_version(conn, 99)
    conn.close()
    with pytest.raises(StoreError, match=rf"version 99, newer than this auditor knows \({SCHEMA_VERSION}\)") as info:
        open_store(target)
    assert info.value.exit_code == 4
    assert str(info.value).startswith(target.split("?")[0].split("@")[0])  # says which store


def test_open_store_refuses_a_newer_sqlite_written_by_another_program(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match=r"version 99, newer") as info:
        open_store(path)
    assert str(path) in str(info.value)


def test_open_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite, just text long enough to fill a header page" * 20)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(path)


def test_migrate_applies_steps_in_order_and_only_those_above_the_current_version(target: str) -> None:
    steps: list[tuple[int, tuple[str, ...]]] = [
        (1, ("CREATE TABLE t (a INTEGER)", "INSERT INTO t VALUES (1)")),
        (2, ("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'",)),
        (3, ("UPDATE t SET b = b || 'y'",)),
    ]
    conn = connect(target)
    try:
        assert schema_version(conn) == 0
        assert migrate(conn, steps[:1]) == 1
        assert migrate(conn, steps) == 3
        assert conn.execute("SELECT a, b FROM t").fetchall() == [(1, "xy")]
        assert migrate(conn, steps) == 3  # nothing left to do: step 3 did not run twice
        assert conn.execute("SELECT b FROM t").fetchall() == [("xy",)]
    finally:
        conn.close()


def test_migrate_failing_step_leaves_the_previous_version_and_no_half_step(target: str) -> None:
    steps: list[tuple[int, tuple[str, ...]]] = [
        (1, ("CREATE TABLE t (a INTEGER)",)),
        (2, ("CREATE TABLE u (a INTEGER)", "THIS IS NOT SQL")),
    ]
    conn = connect(target)
    try:
        with pytest.raises(conn.errors):
            migrate(conn, steps)
        assert schema_version(conn) == 1
        assert not conn.in_transaction
        assert "t" in _tables(conn) and "u" not in _tables(conn)  # PostgreSQL's DDL rolls back too
    finally:
        conn.close()


def test_migrate_rejects_unordered_steps(tmp_path: Path) -> None:
    conn = connect(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="strictly increasing"):
        migrate(conn, [(2, ()), (1, ())])
    conn.close()


def test_two_processes_opening_a_new_store_at_once_migrate_it_once(target: str) -> None:
    """Two sensors starting together on an empty store: one migrates, the other waits and finds it done."""
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_one() -> None:
        try:
            conn = connect(target)
            barrier.wait(timeout=30)
            try:
                migrate(conn)
            finally:
                conn.close()
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    conn = open_store(target)
    assert schema_version(conn) == SCHEMA_VERSION
    conn.close()
