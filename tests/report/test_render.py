"""Every format renders the demo report; wire strings are escaped (HTML), neutralised (CSV) and cannot break
a Markdown table; the HTML is one self-contained file with no script and nothing fetched, fits a 1280 px and an
800 px window in headless Chromium, and prints to an A4 PDF (weasyprint; checked with poppler's pdfinfo,
pdftoppm and pdftotext) that fetches nothing and logs no warning."""

from __future__ import annotations

import csv
import html as htmllib
import importlib
import io
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from auditor.errors import ConfigError
from auditor.report import FORMATS, build_report, period_bounds, render
from auditor.report.model import Report, parse_time
from auditor.report.render import CSV_COLUMNS, PDF_MISSING, FetchRefused, html_to_pdf, md
from auditor.store import open_store
from tests.report._demo import (
    FETCHING,
    FORMULA,
    HOSTILE,
    LONG_MODEL,
    LONG_NAME,
    NOW,
    add_hostile_device,
    add_long_device,
    build_demo_store,
    copy_store,
)

# the module, not the `render` function that auditor.report exports under the same name
render_module = importlib.import_module("auditor.report.render")
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
A4_PT = (595.28, 841.89)
PAGE_MARGIN_X_PT = 12 / 25.4 * 72  # @page margin: 12 mm left and right (report.css.j2)


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


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """The hostile report plus a device with long unbroken strings and markup that would fetch."""
    tmp = tmp_path_factory.mktemp("report-long")
    db = copy_store(build_demo_store(tmp), tmp, "long.sqlite")
    add_hostile_device(db)
    add_long_device(db)
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


def test_render_pdf_without_pango(demo: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_load(name: str) -> None:
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(render_module.importlib, "import_module", cannot_load)
    with pytest.raises(ConfigError, match=r"^PDF needs the Pango library .*cannot load library 'libpango-1.0-0'"):
        render(demo, "pdf")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          check=True, timeout=60, capture_output=True, text=True)


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")


@needs_chromium
def test_render_html_in_headless_chromium(hostile: Report, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    page.write_bytes(render(hostile, "html"))
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # a blank 1280x2000 page is a few kB
    # no console message from the page (a script error, a blocked fetch, a CSP violation): chromium
    # logs them to stderr as CONSOLE lines with --enable-logging
    logged = _chromium(tmp_path / "profile2", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert "<h1" in logged.stdout  # the page was loaded and laid out


# The report has no script (and its CSP forbids one), so the measuring script goes into a test copy without
# the CSP. It writes what it measured into the DOM for --dump-dom: the page's scroll width, every element
# whose right edge is past the window, and every table cell whose content is wider than the cell.
LAYOUT_PROBE = """<script>
const vw = document.documentElement.clientWidth, overflow = [];
for (const el of document.body.querySelectorAll("*")) {
  const what = el.tagName + " " + el.textContent.trim().slice(0, 60);
  if (el.getBoundingClientRect().right > vw + 0.5) overflow.push("past the window: " + what);
  if ((el.tagName === "TD" || el.tagName === "TH") && el.scrollWidth > el.clientWidth + 1)
    overflow.push("wider than its cell: " + what);
}
const out = document.createElement("pre");
out.id = "layout-probe";
out.textContent = JSON.stringify({innerWidth, clientWidth: vw, scrollWidth: document.documentElement.scrollWidth,
                                  overflow});
document.body.append(out);
</script>"""
CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def measure_layout(html: str, width: int, tmp_path: Path) -> dict[str, object]:
    """What LAYOUT_PROBE measured in a copy of `html` in a `width` px wide headless Chromium window."""
    probe_copy, csp_found = CSP_META.subn("", html)
    assert csp_found == 1
    page = tmp_path / f"probe-{width}.html"
    page.write_text(probe_copy.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path / f"profile-{width}", f"--window-size={width},900", "--dump-dom", page.as_uri()).stdout
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    result: dict[str, object] = orjson.loads(htmllib.unescape(found.group(1)))
    return result


@needs_chromium
@pytest.mark.parametrize("width", [1280, 800])
def test_render_html_fits_the_window(long: Report, tmp_path: Path, width: int) -> None:
    layout = measure_layout(render(long, "html").decode(), width, tmp_path)
    assert layout["innerWidth"] == width  # the window had the size asked for
    assert layout["overflow"] == []
    assert isinstance(layout["scrollWidth"], int) and isinstance(layout["clientWidth"], int)
    assert layout["scrollWidth"] <= layout["clientWidth"]  # no horizontal scrolling


@needs_chromium
def test_measure_layout_sees_a_page_wider_than_the_window(tmp_path: Path) -> None:
    html = ('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
            '</head><body><table><tr><td>' + "x" * 400 + '</td></tr></table></body></html>')
    layout = measure_layout(html, 800, tmp_path)
    assert isinstance(layout["scrollWidth"], int) and layout["scrollWidth"] > 800
    assert layout["overflow"]


# ------------------------------------------------------------------------------------------------- pdf
def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian poppler-utils)")
    return path


def _need_weasyprint() -> None:
    try:
        importlib.import_module("weasyprint")
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries are missing
        pytest.skip(f"weasyprint (the 'pdf' extra) cannot be imported: {exc}")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Printed:
    path: Path
    warnings: list[str]
    """What weasyprint logged at WARNING or above while printing."""
    fetched: list[str]
    """Every URL weasyprint asked for (each refused)."""


def print_pdf(make: object, path: Path) -> Printed:
    """Run `make()` (returning PDF bytes) to `path`, recording weasyprint's warnings and the URLs it asked for."""
    assert callable(make)
    records, fetched = _Records(), []
    weasy_logger = logging.getLogger("weasyprint")

    def record_refusal(url: str) -> None:
        fetched.append(url)
        raise FetchRefused(url)

    weasy_logger.addHandler(records)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(render_module, "refuse_fetch", record_refusal)
            path.write_bytes(make())
    finally:
        weasy_logger.removeHandler(records)
    return Printed(path, records.messages, fetched)


@pytest.fixture(scope="module")
def demo_pdf(demo: Report, tmp_path_factory: pytest.TempPathFactory) -> Printed:
    _need_weasyprint()
    return print_pdf(lambda: render(demo, "pdf"), tmp_path_factory.mktemp("pdf") / "demo.pdf")


@pytest.fixture(scope="module")
def long_pdf(long: Report, tmp_path_factory: pytest.TempPathFactory) -> Printed:
    _need_weasyprint()
    return print_pdf(lambda: render(long, "pdf"), tmp_path_factory.mktemp("pdf") / "long.pdf")


def pdf_info(pdf: Path) -> dict[str, str]:
    out = subprocess.run([_need("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True, timeout=30).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def pdf_pages_text(pdf: Path) -> list[str]:
    """The text of each page (pdftotext ends every page with a form feed)."""
    out = subprocess.run([_need("pdftotext"), str(pdf), "-"], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return out.split("\f")[:-1]


def pdf_words(pdf: Path, tmp: Path) -> Iterator[tuple[float, float, str]]:
    """(xMin, xMax, word) of every word pdftotext finds on the pages."""
    out = tmp / (pdf.stem + "-bbox.html")
    subprocess.run([_need("pdftotext"), "-bbox", str(pdf), str(out)], check=True, capture_output=True, timeout=30)
    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>',
                         out.read_text(encoding="utf-8")):
        yield float(m.group(1)), float(m.group(2)), htmllib.unescape(m.group(3))


def _squeeze(text: str) -> str:
    """Text without the line breaks a wrapped cell adds (and the zero-width space a <wbr> prints as)."""
    return re.sub(r"[\s\u200b]+", "", text)


def test_render_pdf_is_a4_and_logs_nothing(demo_pdf: Printed) -> None:
    data = demo_pdf.path.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    assert demo_pdf.warnings == []  # our own CSS and HTML give weasyprint nothing to warn about
    assert demo_pdf.fetched == []
    info = pdf_info(demo_pdf.path)
    width, height = (float(x) for x in re.findall(r"[\d.]+", info["Page size"])[:2])
    assert (round(width), round(height)) == (round(A4_PT[0]), round(A4_PT[1]))
    assert info["Title"].startswith("Network audit report")


def test_render_pdf_page_count_and_first_page(demo_pdf: Printed, tmp_path: Path) -> None:
    from PIL import Image, ImageStat  # weasyprint depends on Pillow

    pages = int(pdf_info(demo_pdf.path)["Pages"])
    subprocess.run([_need("pdftoppm"), "-r", "30", "-png", str(demo_pdf.path), str(tmp_path / "page")],
                   check=True, capture_output=True, timeout=60)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    assert 3 <= pages <= 8  # the demo prints to 5 A4 pages
    with Image.open(images[0]) as first:
        assert abs(first.size[0] - A4_PT[0] * 30 / 72) < 1.5 and abs(first.size[1] - A4_PT[1] * 30 / 72) < 1.5
        assert ImageStat.Stat(first.convert("L")).stddev[0] > 20  # a blank page is 0


def test_render_pdf_margins_and_repeated_headers(demo_pdf: Printed) -> None:
    pages = pdf_pages_text(demo_pdf.path)
    period = "2026-10-27T00:00:00Z to 2026-11-03T00:00:00Z (UTC)"
    for number, text in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in text
        if number > 1:  # the first page has the title itself, not in its margin
            assert "Network audit report" in text and period in text
    # the inventory's header row is repeated on every page it runs onto (evidence text is in it only)
    inventory = [text for text in pages if "identified by" in text]
    assert len(inventory) >= 2
    assert all("MAC / addresses" in text for text in inventory)


def test_render_pdf_wraps_long_strings_and_fetches_nothing(long_pdf: Printed, tmp_path: Path) -> None:
    assert long_pdf.fetched == []  # FETCHING is text: no <img>, <link> or @import reached weasyprint
    assert long_pdf.warnings == []
    words = list(pdf_words(long_pdf.path, tmp_path))
    assert words
    right = A4_PT[0] - PAGE_MARGIN_X_PT
    outside = [(x0, x1, w) for x0, x1, w in words if x0 < PAGE_MARGIN_X_PT - 1 or x1 > right + 1]
    assert outside == []  # nothing overflows into the margin or off the page
    text = _squeeze("".join(pdf_pages_text(long_pdf.path)))
    for wire in (LONG_NAME, LONG_MODEL, FETCHING, HOSTILE):
        assert _squeeze(wire) in text  # shown whole, as text


def test_html_to_pdf_refuses_every_url(tmp_path: Path) -> None:
    _need_weasyprint()
    urls = ["http://192.0.2.1/a.png", "https://192.0.2.1/b.css", "http://192.0.2.1/c.css", "file:///etc/hostname"]
    html = (f'<!DOCTYPE html><html><head><link rel="stylesheet" href="{urls[1]}">'
            f'<style>@import url({urls[2]});</style></head>'
            f'<body><p>x</p><img src="{urls[0]}"><img src="{urls[3]}"></body></html>')
    printed = print_pdf(lambda: html_to_pdf(html), tmp_path / "fetching.pdf")
    assert sorted(printed.fetched) == sorted(urls)
    assert printed.path.read_bytes().startswith(b"%PDF-")
    assert any("refused" in message for message in printed.warnings)  # weasyprint says what it went without


def test_print_pdf_records_weasyprint_warnings(tmp_path: Path) -> None:
    _need_weasyprint()
    printed = print_pdf(lambda: html_to_pdf('<p style="frobnicate: 1">x</p>'), tmp_path / "warn.pdf")
    assert any("frobnicate" in message for message in printed.warnings)
