"""End to end: `auditor report` renders the demo store in every format, and each file holds the same demo data
(its devices and findings), read back with a parser for that format (PDF: poppler's pdftotext)."""

from __future__ import annotations

import csv
import html.parser
import importlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.report import FORMATS
from auditor.report.render import CSV_COLUMNS
from tests.report._demo import NOW, build_demo_store

SECTIONS = ("Coverage", "Executive summary", "Device inventory", "Findings per device", "Waivers applied",
            "Methodology and limits")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each format of the demo report, written by the CLI (pdf only where weasyprint imports)."""
    tmp = tmp_path_factory.mktemp("report-formats")
    db = build_demo_store(tmp)
    written = {}
    for fmt in FORMATS:
        if fmt == "pdf" and not _weasyprint_imports():
            continue
        out = tmp / f"report.{fmt}"
        result = CliRunner().invoke(app, ["report", "--db", str(db), "--now", NOW, "--since", "7d", "--format", fmt,
                                          "--out", str(out)])
        assert result.exit_code == 0, result.stderr
        assert f"wrote {out}: 10 devices, 6 open findings, 1 waived" in result.stderr
        written[fmt] = out
    return written


def _weasyprint_imports() -> bool:
    try:
        importlib.import_module("weasyprint")
    except (ImportError, OSError):  # OSError: the Pango libraries are missing
        return False
    return True


@pytest.fixture(scope="module")
def model(reports: dict[str, Path]) -> dict[str, object]:
    """The JSON report: the model the other formats are checked against."""
    doc: dict[str, object] = orjson.loads(reports["json"].read_bytes())
    return doc


def _macs(model: dict[str, object]) -> list[str]:
    devices = model["devices"]
    assert isinstance(devices, list)
    return [d["mac"] for d in devices]


def _alert_ids(model: dict[str, object]) -> list[str]:
    groups = model["findings"]
    assert isinstance(groups, list)
    return [f["alert_id"] for g in groups for f in g["findings"]]


class _Text(html.parser.HTMLParser):
    """The text of an HTML document, and the tags it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_json_has_the_demo(model: dict[str, object]) -> None:
    assert len(_macs(model)) == 10
    assert len(_alert_ids(model)) == 7  # 6 open and 1 waived
    summary = model["summary"]
    assert isinstance(summary, dict) and summary["findings_open"] == 6


def test_report_html_has_the_demo(reports: dict[str, Path], model: dict[str, object]) -> None:
    doc = _Text()
    doc.feed(reports["html"].read_text(encoding="utf-8"))
    text = " ".join(doc.text)
    assert "script" not in doc.tags and {"style", "svg", "table", "thead"} <= doc.tags
    for heading in SECTIONS:
        assert heading in text
    for mac in _macs(model):
        assert mac in text


def test_report_csv_has_the_demo(reports: dict[str, Path], model: dict[str, object]) -> None:
    rows = list(csv.DictReader(io.StringIO(reports["csv"].read_text(encoding="utf-8"), newline="")))
    assert rows and tuple(rows[0]) == CSV_COLUMNS
    assert sorted(r["alert_id"] for r in rows) == sorted(_alert_ids(model))


def test_report_md_has_the_demo(reports: dict[str, Path], model: dict[str, object]) -> None:
    text = reports["md"].read_text(encoding="utf-8")
    assert text.startswith("# Network audit report\n")
    for heading in SECTIONS:
        assert f"\n## {heading}\n" in text
    for mac in _macs(model):
        assert mac in text
    # every row of a table has as many cells as the table's header row
    cells = None
    for line in text.splitlines():
        if not line.startswith("|"):
            cells = None
            continue
        count = len(re.findall(r"(?<!\\)\|", line))
        cells = cells or count
        assert count == cells, line


def test_report_pdf_has_the_demo(reports: dict[str, Path], model: dict[str, object]) -> None:
    if "pdf" not in reports:
        pytest.skip("weasyprint (the 'pdf' extra) cannot be imported")
    pdf = reports["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF-")
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext not installed (Debian poppler-utils)")
    text = subprocess.run([pdftotext, str(pdf), "-"], check=True, capture_output=True, text=True, timeout=30).stdout
    for heading in SECTIONS:
        assert heading in text
    for mac in _macs(model):
        assert mac in text
