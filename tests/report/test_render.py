"""Every format renders the demo report; wire strings are escaped (HTML), neutralised (CSV) and cannot break
a Markdown table; the HTML is one self-contained file with no script and nothing fetched."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from auditor.errors import ConfigError
from auditor.report import FORMATS, build_report, period_bounds, render
from auditor.report.model import Report, parse_time
from auditor.report.render import CSV_COLUMNS, PDF_MISSING, md
from auditor.store import open_store
from tests.report._demo import FORMULA, HOSTILE, NOW, add_hostile_device, build_demo_store, copy_store


def _report(db: Path) -> Report:
    start, end = period_bounds("7d", None, None, NOW)
    conn = open_store(db)
    try:
        return build_report(conn, start, end, now_ns=parse_time(NOW))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return _report(build_demo_store(tmp_path_factory.mktemp("report-render")))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("report-hostile")
    db = copy_store(build_demo_store(tmp), tmp, "hostile.sqlite")
    add_hostile_device(db)
    return _report(db)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pdf"])
def test_render_every_format(demo: Report, fmt: str) -> None:
    data = render(demo, fmt)
    assert len(data) > 500
    assert b"C0-9B-F4-B1-02-15" in data  # the scanner's finding is in every format


def test_render_json_is_the_model(demo: Report) -> None:
    doc = orjson.loads(render(demo, "json"))
    assert doc["summary"]["findings_open"] == 6 and doc["summary"]["findings_waived"] == 1
    assert len(doc["devices"]) == 10
    assert doc["header"]["coverage"]["drops"] is None
    assert [c["country"] for c in doc["summary"]["bytes_by_country"]] == ["CN", "IE", "US"]


def test_render_csv_one_row_per_finding(demo: Report) -> None:
    rows = list(csv.reader(io.StringIO(render(demo, "csv").decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 7
    scanner = dict(zip(CSV_COLUMNS, next(r for r in rows if r[0] == "C0-9B-F4-B1-02-15"), strict=True))
    assert (scanner["severity"], scanner["country"], scanner["bytes"], scanner["status"]) == (
        "critical", "CN", "4924", "new")


def test_render_html_self_contained(demo: Report) -> None:
    html = render(demo, "html").decode()
    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html and "<svg" in html and "<rect" in html
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(src|href|action|srcset)\s*=""", html, re.IGNORECASE)
    assert "url(" not in html and "@import" not in html
    assert "6,844" in html  # bytes to CN in the country table and chart
    for section in ("Coverage", "Executive summary", "Device inventory", "Findings per device", "Waivers applied",
                    "Methodology and limits"):
        assert f"<h2>{section}</h2>" in html


def test_render_html_escapes_wire_strings(hostile: Report) -> None:
    html = render(hostile, "html").decode()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;list&lt;/b&gt;" in html
    assert "<b>list</b>" not in html
    # the formula appears as text; its URL is in no attribute
    assert "=HYPERLINK(&#34;http://x&#34;)" in html
    assert not re.search(r"""(src|href)\s*=""", html, re.IGNORECASE)


def test_render_csv_neutralises_formulas(hostile: Report) -> None:
    rows = list(csv.reader(io.StringIO(render(hostile, "csv").decode())))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    row = dict(zip(CSV_COLUMNS, next(r for r in rows if r[0] == "02-00-00-00-00-66"), strict=True))
    assert row["maker"] == "'" + FORMULA
    assert row["destination_name"] == "'" + FORMULA
    assert row["rule_id"] == "'+rule"
    assert row["rule_name"] == HOSTILE  # CSV is not HTML: markup stays text, only formulas are neutralised


def test_render_md_keeps_tables_whole(hostile: Report) -> None:
    text = render(hostile, "md").decode()
    assert "<script>" not in text and "&lt;script&gt;" in text
    rows = [line for line in text.splitlines() if "02-00-00-00-00-66" in line and line.startswith("| ")]
    assert rows
    inventory_row = next(r for r in rows if "camera" in r)
    unescaped_pipes = len(re.findall(r"(?<!\\)\|", inventory_row))
    assert unescaped_pipes == 11  # 10 columns: no pipe from the wire splits a cell
    assert "\\`x\\`" in inventory_row and "next" in inventory_row
    for line in text.splitlines():  # every table row has the same number of cells as its header
        assert not line.startswith("next")


def test_md_escape() -> None:
    assert md("a|b`c<d\ne\r\tf") == "a\\|b\\`c&lt;d e  f"
    assert md("[x](http://y)") == "\\[x\\](http://y)"
    assert md(None) == "" and md(0.5) == "0.500"


def test_render_unknown_format(demo: Report) -> None:
    with pytest.raises(ConfigError, match="unknown report format 'docx'"):
        render(demo, "docx")


def test_render_pdf_without_weasyprint(demo: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint raises ImportError
    with pytest.raises(ConfigError) as info:
        render(demo, "pdf")
    assert str(info.value) == PDF_MISSING
    assert "PDF needs the optional 'pdf' extra (weasyprint)" in PDF_MISSING


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_render_html_in_headless_chromium(hostile: Report, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    page.write_bytes(render(hostile, "html"))
    chromium = shutil.which("chromium")
    assert chromium is not None
    subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}", "--window-size=1280,2000",
         f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
        check=True, timeout=60, capture_output=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank 1280x2000 page is a few kB
    # no console message from the page (a script error, a blocked fetch, a CSP violation): chromium
    # logs them to stderr as CONSOLE lines with --enable-logging
    logged = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
         "--dump-dom", f"--user-data-dir={tmp_path / 'profile2'}", page.as_uri()],
        check=True, timeout=60, capture_output=True, text=True,
    )
    console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert "<h1" in logged.stdout  # the page was loaded and laid out
