"""End to end: `auditor evidence FINDING_ID --db DB --out FILE.pcap [--capture FILE ...]`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from auditor.cli_evidence import evidence_cli
from auditor.store import ingest_run, open_store
from tests.pg import fresh_database
from tests.store import DEMO, demo_out


def run(*args: str) -> Result:
    """Invoke `evidence` on the main app when it registers the command, else on evidence_cli alone."""
    from auditor.cli import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "evidence" in names:
        return CliRunner().invoke(app, ["evidence", *args])
    return CliRunner().invoke(evidence_cli, list(args))


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_out(tmp_path_factory)


def store_of(tmp_path: Path, demo: Path, capture: Path | None = None,
             db: Path | str | None = None) -> tuple[Path | str, str]:
    """Return a store holding the demo run (a SQLite file unless `db` names one) and the id of the scanner's
    critical finding in it."""
    db = db or tmp_path / "s.sqlite"
    conn = open_store(db)
    try:
        ingest_run(conn, demo, [capture] if capture else None)
        (alert_id,) = conn.execute("SELECT alert_id FROM findings WHERE severity = 'critical' AND "
                                   "dst_ip = '203.0.113.80'").fetchone()
    finally:
        conn.close()
    return db, str(alert_id)


def test_evidence_writes_the_scanner_connection(tmp_path: Path, demo: Path) -> None:
    db, alert_id = store_of(tmp_path, demo)
    out = tmp_path / "e.pcap"
    result = run(alert_id, "--db", str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote 12 packets to {out} (from 1 capture file)" in result.stdout
    assert out.stat().st_size > 24


@pytest.mark.oracle
def test_evidence_pcap_reads_in_tshark(tmp_path: Path, demo: Path, tshark: str) -> None:
    db, alert_id = store_of(tmp_path, demo)
    out = tmp_path / "e.pcap"
    assert run(alert_id, "--db", str(db), "--out", str(out)).exit_code == 0
    read = subprocess.run([tshark, "-r", str(out)], capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    filtered = subprocess.run([tshark, "-r", str(DEMO), "-Y", "ip.addr==203.0.113.80 && tcp.port==8080"],
                              capture_output=True, text=True, check=True)
    assert len(read.stdout.splitlines()) == len(filtered.stdout.splitlines()) == 12


def test_evidence_unknown_finding_exits_2(tmp_path: Path, demo: Path) -> None:
    db, _ = store_of(tmp_path, demo)
    out = tmp_path / "e.pcap"
    result = run("0123456789abcdef", "--db", str(db), "--out", str(out))
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: finding '0123456789abcdef' is not in the store (see `auditor report`)"
    assert not out.exists()


def test_evidence_refuses_a_capture_changed_after_ingest(tmp_path: Path, demo: Path) -> None:
    copy = tmp_path / "copy.pcap"
    shutil.copy(DEMO, copy)
    db, alert_id = store_of(tmp_path, demo, copy)
    data = bytearray(copy.read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))
    result = run(alert_id, "--db", str(db), "--out", str(tmp_path / "e.pcap"))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "changed since it was ingested" in result.stderr and "copy.pcap" in result.stderr
    assert not (tmp_path / "e.pcap").exists()


def test_evidence_capture_option_finds_a_moved_copy(tmp_path: Path, demo: Path) -> None:
    copy = tmp_path / "copy.pcap"
    shutil.copy(DEMO, copy)
    db, alert_id = store_of(tmp_path, demo, copy)
    moved = tmp_path / "archive" / "site-2026-11-02.pcap"
    moved.parent.mkdir()
    copy.rename(moved)
    missing = run(alert_id, "--db", str(db), "--out", str(tmp_path / "e.pcap"))
    assert missing.exit_code == 2
    assert "copy.pcap" in missing.stderr and "--capture" in missing.stderr
    found = run(alert_id, "--db", str(db), "--out", str(tmp_path / "e.pcap"), "--capture", str(moved))
    assert found.exit_code == 0, found.output
    assert "wrote 12 packets" in found.stdout


def test_evidence_without_a_store_exits_4(tmp_path: Path) -> None:
    result = run("abc", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "e.pcap"))
    assert result.exit_code == 4
    assert "no store there" in result.stderr


def test_evidence_on_a_broken_store_exits_4(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    result = run("abc", "--db", str(db), "--out", str(tmp_path / "e.pcap"))
    assert result.exit_code == 4
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_evidence_on_a_damaged_store_exits_4(tmp_path: Path, demo: Path) -> None:
    db, alert_id = store_of(tmp_path, demo)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DROP TABLE finding_runs")
    conn.commit()
    conn.close()
    result = run(alert_id, "--db", str(db), "--out", str(tmp_path / "e.pcap"))
    assert result.exit_code == 4
    assert "cannot read finding" in result.stderr


def test_evidence_from_a_postgres_store(tmp_path: Path, demo: Path) -> None:
    url, alert_id = store_of(tmp_path, demo, db=fresh_database())
    out = tmp_path / "e.pcap"
    result = run(alert_id[:10], "--db", str(url), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote 12 packets to {out} (from 1 capture file)" in result.stdout


def test_evidence_has_help_text() -> None:
    result = CliRunner().invoke(evidence_cli, ["--help"])
    assert result.exit_code == 0
    assert "Write the packets of the flows behind a finding" in result.output and "--capture" in result.output
