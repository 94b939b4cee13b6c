"""`auditor report` as a command: every format to a file, one-line errors with the right exit codes, reports
written to a file recorded in the store (SQLite or PostgreSQL) so the next one tells what is new."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from auditor.cli_report import report_cli
from tests.pg import fresh_database
from tests.report._demo import NOW, build_demo_store, copy_store

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("cli-report"))


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(report_cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("fmt", ["html", "json", "csv", "md"])
def test_cli_report_writes_each_format(demo_db: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    code, _, err = _run("--db", str(demo_db), "--since", "7d", "--now", NOW, "--format", fmt, "--out", str(out))
    assert code == 0, err
    assert out.stat().st_size > 500
    assert "10 devices, 6 open findings, 1 waived" in err
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_report_json_to_stdout_from_to(demo_db: Path) -> None:
    code, out, err = _run("--db", str(demo_db), "--from", "2026-11-02", "--to", "2026-11-02", "--format", "json")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["header"]["period"]["start"] == "2026-11-02T00:00:00Z"
    assert doc["header"]["period"]["end"] == "2026-11-03T00:00:00Z"
    assert doc["summary"]["devices"] == 10


@pytest.mark.parametrize(("args", "message"), [
    (("--format", "docx"), "unknown report format 'docx'"),
    (("--since", "soon"), "not a duration"),
    (("--from", "2026-99-01"), "not an ISO 8601"),
    (("--since", "7d", "--from", "2026-11-01"), "not both"),
    (("--format", "pdf"), "--format pdf needs --out"),
])
def test_cli_report_bad_flags_exit_2(demo_db: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = _run("--db", str(demo_db), "--now", NOW, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_report_pdf_without_weasyprint(demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "weasyprint", None)
    out = tmp_path / "r.pdf"
    code, _, err = _run("--db", str(demo_db), "--now", NOW, "--format", "pdf", "--out", str(out))
    assert code == 2
    assert "PDF needs the optional 'pdf' extra (weasyprint)" in err
    assert not out.exists()


def test_cli_report_of_an_empty_store_warns_and_a_missing_store_exits_2(tmp_path: Path) -> None:
    from auditor.store import open_store

    open_store(tmp_path / "empty.sqlite").close()
    code, out, err = _run("--db", str(tmp_path / "empty.sqlite"), "--format", "json")
    assert code == 0 and "warning: no run recorded" in err
    assert orjson.loads(out)["header"]["coverage"]["runs"] == 0
    code, _, err = _run("--db", str(tmp_path / "absent.sqlite"))
    assert code == 2 and "no store there" in err
    assert not (tmp_path / "absent.sqlite").exists()


def test_cli_report_store_error_exit_4(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not SQLite" * 100)
    code, _, err = _run("--db", str(bad), "--format", "json")
    assert code == 4 and err.startswith("error: ")


def test_cli_report_unwritable_out_exit_4(demo_db: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run("--db", str(demo_db), "--now", NOW, "--format", "md", "--out", str(blocker / "r.md"))
    assert code == 4 and "cannot write the report" in err


def _recorded(db: Path | str) -> list[tuple[str, str | None, int]]:
    """(format, out_path, number of findings listed) of each report the store recorded."""
    from auditor.store import open_store

    conn = open_store(db)
    try:
        return [(r[0], r[1], int(r[2])) for r in conn.execute(
            "SELECT format, out_path, (SELECT count(*) FROM report_findings WHERE report_id = id) FROM reports "
            "ORDER BY id")]
    finally:
        conn.close()


def _unreported(demo_db: Path, tmp_path: Path) -> Path:
    """A copy of the demo store without the reports earlier tests (writing with --out) recorded in it."""
    from auditor.store import open_store

    db = copy_store(demo_db, tmp_path, "unreported.sqlite")
    conn = open_store(db)
    conn.execute("DELETE FROM reports")
    conn.close()
    return db


def test_cli_report_to_a_file_is_recorded_and_the_next_one_counts_against_it(demo_db: Path, tmp_path: Path) -> None:
    db = _unreported(demo_db, tmp_path)
    week = ("--db", str(db), "--from", "2026-10-27", "--to", "2026-11-02", "--now", NOW)
    code, out, err = _run(*week, "--format", "json")  # to stdout: a look, not a report sent
    assert code == 0 and "not recorded" not in err
    code, _, err = _run(*week, "--format", "json", "--out", str(tmp_path / "draft.json"), "--no-record")
    assert code == 0 and err.rstrip().endswith(", not recorded")
    assert _recorded(db) == []
    code, _, err = _run(*week, "--format", "json", "--out", str(tmp_path / "w.json"))
    assert code == 0 and ", recorded as report 1" in err
    assert _recorded(db) == [("json", str(tmp_path / "w.json"), 7)]
    assert orjson.loads((tmp_path / "w.json").read_bytes())["header"]["new_findings_rule"] == "first-seen"

    code, out, _ = _run("--db", str(db), "--from", "2026-11-03", "--to", "2026-11-09", "--now", NOW, "-f", "json")
    doc = orjson.loads(out)  # the next week counts against report 1
    assert doc["header"]["new_findings_rule"] == "since-report" and doc["header"]["previous_report"]["id"] == 1
    for period in (week, ("--db", str(db), "--from", "2026-10-28", "--to", "2026-11-02", "--now", NOW)):
        # the recorded week again, or a period ending inside it: report 1 does not count
        code, out, _ = _run(*period, "--format", "json")
        assert orjson.loads(out)["header"]["new_findings_rule"] == "first-seen"


def test_cli_report_that_cannot_be_written_is_not_recorded(demo_db: Path, tmp_path: Path) -> None:
    db = _unreported(demo_db, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run("--db", str(db), "--now", NOW, "--format", "md", "--out", str(blocker / "r.md"))
    assert code == 4 and "cannot write the report" in err
    assert _recorded(db) == []


def test_cli_report_on_a_postgres_store(tmp_path: Path) -> None:
    """analyze --db URL records the run; report --db URL reads it back and records the report there."""
    from auditor.cli import app

    url = fresh_database()
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(app, ["analyze", str(root / "pcaps" / "demo-site.pcap"), "-o", str(tmp_path / "o"),
                                      "-q", "--rules", str(root / "rules" / "examples"), "--db", url])
    assert result.exit_code == 0, result.output
    out = tmp_path / "r.json"
    code, _, err = _run("--db", url, "--since", "7d", "--now", NOW, "--format", "json", "--out", str(out))
    assert code == 0, err
    assert "10 devices" in err and "recorded as report 1" in err
    assert orjson.loads(out.read_bytes())["summary"]["devices"] == 10
    assert _recorded(url) == [("json", str(out), 7)]
