"""End to end: `auditor store ingest` and `auditor store info` through the CLI."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from auditor.cli_store import store_app
from tests.pg import PASSWORD, PASSWORD_ROLE, fresh_database, shared_server
from tests.store import demo_out, write_run


def _app() -> typer.Typer:
    """The main app when it registers `store`, else a small app around store_app."""
    from auditor.cli import app

    if any(g.name == "store" for g in app.registered_groups):
        return app
    wrapper = typer.Typer()
    wrapper.add_typer(store_app, name="store")

    @wrapper.callback()
    def _root() -> None:
        """Test wrapper."""

    return wrapper


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_out(tmp_path_factory)


def test_store_ingest_then_info_reports_the_demo(tmp_path: Path, demo: Path) -> None:
    db = tmp_path / "s.sqlite"
    runner = CliRunner()
    first = runner.invoke(_app(), ["store", "ingest", str(demo), "--db", str(db)])
    assert first.exit_code == 0, first.output
    assert "added run 1: 10 devices, 29 flows" in first.output
    again = runner.invoke(_app(), ["store", "ingest", str(demo), "--db", str(db)])
    assert again.exit_code == 0 and "replaced run 1" in again.output
    info = runner.invoke(_app(), ["store", "info", "--db", str(db)])
    assert info.exit_code == 0, info.output
    assert "schema version 2" in info.output
    assert "runs: 1" in info.output and "devices: 10" in info.output
    assert "findings: 7 (6 new, 0 acknowledged, 1 waived)" in info.output


def test_store_ingest_capture_option_hashes_the_given_file(tmp_path: Path, demo: Path) -> None:
    moved = tmp_path / "elsewhere.pcap"
    shutil.copy(_capture_of(demo), moved)
    db = tmp_path / "s.sqlite"
    result = CliRunner().invoke(_app(), ["store", "ingest", str(demo), "--db", str(db), "--capture", str(moved)])
    assert result.exit_code == 0, result.output
    assert sqlite3.connect(db).execute("SELECT name FROM run_files").fetchall() == [(str(moved),)]


def _capture_of(demo: Path) -> Path:
    return Path(json.loads((demo / "summary.json").read_text())["files"][0]["name"])


def test_store_ingest_missing_capture_exits_2_naming_it(tmp_path: Path) -> None:
    out = write_run(tmp_path / "o", tmp_path / "o.pcap")
    (tmp_path / "o.pcap").unlink()
    result = CliRunner().invoke(_app(), ["store", "ingest", str(out), "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2
    assert "o.pcap" in result.output and "--capture" in result.output


def test_store_ingest_warns_about_damaged_lines(tmp_path: Path) -> None:
    out = write_run(tmp_path / "o", tmp_path / "o.pcap", extra_flow_lines=[b"{cut"])
    result = CliRunner().invoke(_app(), ["store", "ingest", str(out), "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0
    assert "1 damaged line(s) skipped" in result.output


def test_store_info_refuses_a_newer_store_with_exit_4(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite"
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 7")
    raw.close()
    result = CliRunner().invoke(_app(), ["store", "info", "--db", str(db)])
    assert result.exit_code == 4
    assert "newer than this auditor knows" in result.output


def test_store_info_without_a_store_exits_4(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["store", "info", "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 4 and "no store there" in result.output
    assert not (tmp_path / "none.sqlite").exists()


def test_store_commands_have_help_text() -> None:
    for command in store_app.registered_commands:
        assert command.callback is not None and command.callback.__doc__
    result = CliRunner().invoke(_app(), ["store", "--help"])
    assert result.exit_code == 0 and "ingest" in result.output and "info" in result.output


def test_analyze_db_records_the_run_and_a_second_run_replaces_it(tmp_path: Path) -> None:
    import sqlite3

    from auditor.cli import app as main_app

    root = Path(__file__).resolve().parents[1]
    db = tmp_path / "store.sqlite"
    args = ["analyze", str(root / "pcaps" / "demo-site.pcap"), "-o", str(tmp_path / "out"), "-q",
            "--rules", str(root / "rules" / "examples"), "--db", str(db)]
    runner = CliRunner()
    for _ in range(2):  # the same capture twice: one run, nothing doubled
        result = runner.invoke(main_app, args)
        assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        flows = conn.execute("SELECT sum(flows) FROM flows_hourly").fetchone()[0]
        findings = dict(conn.execute("SELECT status, count(*) FROM findings GROUP BY status").fetchall())
    assert (runs, devices, flows) == (1, 10, 29)
    # without GeoIP databases the country guard cannot fire: cameras-to-vms and scanner-lane decide
    assert sum(findings.values()) >= 6 and findings.get("waived") == 1


def test_analyze_with_a_store_it_cannot_open_stops_before_any_packet(tmp_path: Path) -> None:
    from auditor.cli import app as main_app

    bad = tmp_path / "not-a-db.sqlite"
    bad.write_text("this is not SQLite", encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(main_app, ["analyze", str(root / "pcaps" / "demo-site.pcap"), "-o",
                                           str(tmp_path / "out"), "-q", "--db", str(bad)])
    assert result.exit_code == 4
    assert not (tmp_path / "out" / "flows.jsonl").exists()


def test_a_finding_acknowledged_by_a_person_stays_so_when_the_run_is_ingested_again(tmp_path: Path) -> None:
    from auditor.cli import app as main_app

    root = Path(__file__).resolve().parents[1]
    db, out = tmp_path / "store.sqlite", tmp_path / "out"
    args = ["analyze", str(root / "pcaps" / "demo-site.pcap"), "-o", str(out), "-q",
            "--rules", str(root / "rules" / "examples"), "--db", str(db)]
    runner = CliRunner()
    assert runner.invoke(main_app, args).exit_code == 0
    with sqlite3.connect(db) as conn:
        (alert_id,) = conn.execute("SELECT alert_id FROM findings WHERE rule_id = 'scanner-lane'").fetchone()
        (waived,) = conn.execute("SELECT alert_id FROM findings WHERE status = 'waived'").fetchone()
    acked = runner.invoke(main_app, ["store", "ack", alert_id[:8], "--db", str(db)])
    assert acked.exit_code == 0 and "acknowledged" in acked.stdout
    assert runner.invoke(main_app, ["store", "ack", waived, "--db", str(db)]).stdout.endswith(
        "unchanged (already so, or waived)\n")  # a waiver decides a waived finding, not a person
    assert runner.invoke(main_app, args).exit_code == 0  # the same capture again
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("SELECT alert_id, status FROM findings").fetchall())
    assert statuses[alert_id] == "acknowledged" and statuses[waived] == "waived"
    undone = runner.invoke(main_app, ["store", "ack", alert_id, "--undo", "--db", str(db)])
    assert undone.exit_code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM findings WHERE alert_id = ?", (alert_id,)).fetchone() == ("new",)
    for bad in ("abc", "zzzzzzzz"):
        result = runner.invoke(main_app, ["store", "ack", bad, "--db", str(db)])
        assert result.exit_code == 2, result.output


def test_store_commands_take_a_postgres_url_and_never_print_its_password(demo: Path) -> None:
    fresh = fresh_database()
    dbname = fresh.split("/")[3].split("?")[0]
    url = shared_server().url(dbname, PASSWORD_ROLE, PASSWORD)
    runner = CliRunner()
    first = runner.invoke(_app(), ["store", "ingest", str(demo), "--db", url])
    assert first.exit_code == 0, first.output
    assert "added run 1: 10 devices, 29 flows" in first.output
    info = runner.invoke(_app(), ["store", "info", "--db", url])
    assert info.exit_code == 0, info.output
    assert f"store: postgresql://{PASSWORD_ROLE}:***@/{dbname}?host=" in info.output
    assert "(schema version 2)" in info.output and "findings: 7 (6 new, 0 acknowledged, 1 waived)" in info.output
    assert "reports recorded: 0" in info.output
    from auditor.store import open_store

    conn = open_store(url)
    (alert_id,) = conn.execute("SELECT alert_id FROM findings WHERE rule_id = 'scanner-lane'").fetchone()
    conn.close()
    acked = runner.invoke(_app(), ["store", "ack", alert_id[:8], "--db", url])
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    wrong = url.replace(PASSWORD, "Not-The-Password-99")
    refused = runner.invoke(_app(), ["store", "info", "--db", wrong])
    assert refused.exit_code == 4 and "password authentication failed" in refused.output
    for result in (first, info, acked, refused):
        assert PASSWORD not in result.output and "Not-The-Password-99" not in result.output


def test_store_info_on_a_damaged_store_is_one_line_exit_4(tmp_path: Path, demo: Path) -> None:
    db = tmp_path / "s.sqlite"
    assert CliRunner().invoke(_app(), ["store", "ingest", str(demo), "--db", str(db)]).exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE flows_hourly")
    result = CliRunner().invoke(_app(), ["store", "info", "--db", str(db)])
    assert result.exit_code == 4
    assert result.stderr.startswith(f"error: {db}: no such table: flows_hourly")
    assert len(result.stderr.strip().splitlines()) == 1
