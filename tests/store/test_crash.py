"""kill -9 in the middle of an ingest leaves the store as it was: one transaction (SQLite's WAL; on PostgreSQL the
server rolls back the killed client's transaction)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from auditor.store import StoreConnection, open_store, store_info
from auditor.store.ingest import ingest_run
from tests.store import ROOT, flow_doc, table_contents, write_run

FLOWS = 60_000

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from auditor.store import ingest_run, open_store

    def progress(flows):
        print(flows, flush=True)
        time.sleep(0.05)  # keep the transaction open long enough to be killed inside it

    conn = open_store(sys.argv[1])
    if conn.dialect == "sqlite":
        conn.execute("PRAGMA cache_size = 20")  # a tiny cache: dirty pages spill into the WAL before the commit
    ingest_run(conn, Path(sys.argv[2]), batch=2_000, progress=progress)
    print("committed", flush=True)
""")


def _runs(tmp_path: Path, store: str) -> tuple[dict[str, list[tuple[object, ...]]], Path]:
    """Ingest a small run into `store` and return the store's contents and a big run's folder to kill."""
    earlier = write_run(tmp_path / "earlier", tmp_path / "earlier.pcap", flows=[flow_doc(1), flow_doc(2)])
    conn = open_store(store)
    ingest_run(conn, earlier)
    before = table_contents(conn, volatile=True)
    conn.close()

    big = tmp_path / "big"
    write_run(big, tmp_path / "big.pcap")
    line = json.dumps(flow_doc(0)).encode()
    with open(big / "flows.jsonl", "wb") as fh:
        for i in range(FLOWS):  # distinct hours and destinations: many rows to write
            fh.write(line.replace(b'"203.0.113.9"', f'"10.{i % 250}.{i // 250 % 250}.1"'.encode()) + b"\n")
    return before, big


def _child(store: str, big: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, store, str(big)], stdout=subprocess.PIPE, env=env)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_ingest_leaves_the_earlier_run_intact(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    before, big = _runs(tmp_path, str(db))
    child = _child(str(db), big)
    try:
        assert child.stdout is not None
        wal = db.parent / (db.name + "-wal")
        for _ in range(FLOWS // 2_000 - 5):  # until uncommitted pages have reached the WAL file
            seen = child.stdout.readline()
            assert seen.strip().isdigit(), seen
            if wal.exists() and wal.stat().st_size > 100_000:
                break
        wal_bytes = wal.stat().st_size
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert wal_bytes > 100_000  # killed while writing, not before

    after = open_store(db)
    assert after.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert table_contents(after, volatile=True) == before
    assert len(store_info(after).runs) == 1
    after.close()
    raw = sqlite3.connect(db)  # a plain reader sees the same
    assert raw.execute("SELECT count(*), sum(flows) FROM flows_hourly").fetchone() == (1, 2)
    raw.close()


def _writers(admin: StoreConnection) -> int:
    """Sessions holding the store's write lock (an advisory lock)."""
    return int(admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()[0])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_a_postgres_ingest_leaves_the_earlier_run_intact(tmp_path: Path, pg_url: str) -> None:
    before, big = _runs(tmp_path, pg_url)
    admin = open_store(pg_url)
    child = _child(pg_url, big)
    try:
        assert child.stdout is not None
        for _ in range(5):  # batches sent to the server inside the open transaction
            seen = child.stdout.readline()
            assert seen.strip().isdigit(), seen
        assert _writers(admin) == 1  # killed inside the transaction, holding the write lock
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while _writers(admin) and time.monotonic() < deadline:  # the server notices the closed socket and rolls back
        time.sleep(0.05)
    assert _writers(admin) == 0
    assert table_contents(admin, volatile=True) == before
    assert len(store_info(admin).runs) == 1
    ingest_run(admin, tmp_path / "earlier")  # the store takes writes again: no lock was left behind
    admin.close()
