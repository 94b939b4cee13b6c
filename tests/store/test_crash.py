"""kill -9 in the middle of an ingest leaves the store as it was: one transaction, WAL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from auditor.store import open_store, store_info
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
    conn.execute("PRAGMA cache_size = 20")  # a tiny cache: dirty pages spill into the WAL before the commit
    ingest_run(conn, Path(sys.argv[2]), batch=2_000, progress=progress)
    print("committed", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_during_ingest_leaves_the_earlier_run_intact(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    earlier = write_run(tmp_path / "earlier", tmp_path / "earlier.pcap", flows=[flow_doc(1), flow_doc(2)])
    conn = open_store(db)
    ingest_run(conn, earlier)
    before = table_contents(conn, volatile=True)
    conn.close()

    big = tmp_path / "big"
    write_run(big, tmp_path / "big.pcap")
    line = json.dumps(flow_doc(0)).encode()
    with open(big / "flows.jsonl", "wb") as fh:
        for i in range(FLOWS):  # distinct hours and destinations: many rows to write
            fh.write(line.replace(b'"203.0.113.9"', f'"10.{i % 250}.{i // 250 % 250}.1"'.encode()) + b"\n")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(big)], stdout=subprocess.PIPE, env=env)
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
