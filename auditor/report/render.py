"""Render a Report as json, md, csv, html or pdf; each renderer returns bytes.

Every string in a Report may come from the wire (DHCP host names, SSDP SERVER headers, SNI). So:
HTML goes through Jinja2 with autoescape on; Markdown escapes the characters that would break a table
or inject markup; CSV cells that a spreadsheet would run as a formula get a leading quote. The HTML is
one self-contained file: inline CSS and SVG, no script, nothing fetched.
"""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from auditor.errors import ConfigError
from auditor.output.devices import neutralise
from auditor.report.model import Finding, Report

if TYPE_CHECKING:
    import jinja2

FORMATS = ("html", "pdf", "json", "csv", "md")
TEMPLATES = Path(__file__).resolve().parent / "templates"
PDF_MISSING = "PDF needs the optional 'pdf' extra (weasyprint): pip install 'span-auditor[pdf]'"
CSV_COLUMNS = (
    "device", "maker", "severity", "status", "waiver_id", "new", "rule_id", "rule_name", "destination_name",
    "destination_ip", "country", "asn", "services", "flows", "bytes", "first_seen", "last_seen", "alert_id",
)
CHART_WIDTH = 360
"""Width in px of the longest bar of an inline SVG chart."""


def render(report: Report, fmt: str) -> bytes:
    """Return `report` in format `fmt` (one of FORMATS); ConfigError for an unknown format or a missing
    optional dependency."""
    renderers: dict[str, Callable[[Report], bytes]] = {
        "json": render_json, "md": render_md, "csv": render_csv, "html": render_html, "pdf": render_pdf,
    }
    renderer = renderers.get(fmt)
    if renderer is None:
        raise ConfigError(f"unknown report format {fmt!r} (use one of {', '.join(FORMATS)})")
    return renderer(report)


# ------------------------------------------------------------------------------------------------ json
def render_json(report: Report) -> bytes:
    """The model as indented JSON (the dataclasses field by field)."""
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# ------------------------------------------------------------------------------------------------- csv
def _csv_row(device_maker: str | None, f: Finding) -> list[Any]:
    row: list[Any] = [
        f.device or "", device_maker or "", f.severity or "", f.status, f.waiver_id or "", "yes" if f.new else "no",
        f.rule_id, f.rule_name or "", f.dst_domain or "", f.dst_ip or "", f.country or "",
        "" if f.asn is None else f.asn, " ".join(f.services), f.flows, f.bytes, f.first_seen, f.last_seen, f.alert_id,
    ]
    return [neutralise(cell) if isinstance(cell, str) else cell for cell in row]


def render_csv(report: Report) -> bytes:
    """The findings table, one row per finding of the period (formula-looking cells neutralised)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for group in report.findings:
        for finding in group.findings:
            writer.writerow(_csv_row(group.maker, finding))
    return out.getvalue().encode("utf-8")


# -------------------------------------------------------------------------------------------- markdown
_MD_ESCAPES = str.maketrans({
    "\\": "\\\\", "|": "\\|", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "#": "\\#",
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": " ", "\n": " ", "\t": " ",
})


def md(value: object) -> str:
    """Return `value` as text safe inside a Markdown table cell: no pipe, backtick, tag, link or newline
    from the wire can end the cell or add markup. None is an empty cell."""
    if value is None:
        return ""
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return text.translate(_MD_ESCAPES)


def _md_table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(md(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _country(code: str | None) -> str:
    return code or "unknown"


def render_md(report: Report) -> bytes:
    """A Markdown document with the report's sections as tables."""
    h, s, t = report.header, report.summary, report.summary.trend
    cov = h.coverage
    lines = [f"# {md(h.title)}", "",
             f"Period {md(h.period.start)} to {md(h.period.end)} (previous period from {md(h.period.previous_start)}); "
             f"generated {md(h.generated)}.", "", "## Coverage", ""]
    lines += _md_table(("runs", "sensors", "packets", "drops", "flows", "first", "last", "gaps"), [(
        cov.runs, ", ".join(h.sensors), cov.packets, "unknown" if cov.drops is None else cov.drops, cov.flows,
        cov.first, cov.last, "; ".join(f"{g.start} to {g.end}" for g in cov.gaps) or "none")])
    lines += ["### Runs and capture files", ""]
    lines += _md_table(("run", "kind", "sensor", "started", "ended", "packets", "drops", "file", "sha256"), [
        (r.id, r.kind, r.sensor or r.interface, r.started, r.ended, r.packets,
         "unknown" if r.drops is None else r.drops, f.name, f.sha256)
        for r in h.runs for f in (r.files or ())])
    lines += ["### Rule files and databases", ""]
    lines += _md_table(("rule file", "ruleset", "sha256"), [(r.path, r.ruleset, r.sha256) for r in h.rule_files])
    lines += _md_table(("database", "build date"), [(d.kind, d.build_date) for d in h.databases])

    lines += ["## Executive summary", ""]
    lines += _md_table(("measure", "this period", "previous period"), [
        ("devices seen", s.devices, t.devices_previous),
        ("listed-vendor devices present", len(s.listed.present), ""),
        ("listed-vendor devices new", len(s.listed.new), ""),
        ("listed-vendor devices gone", len(s.listed.gone), ""),
        ("devices with unapproved egress", len(s.unapproved_egress), ""),
        ("open findings", t.findings_open, t.findings_open_previous),
        ("waived findings", s.findings_waived, ""),
        ("bytes sent off-site", t.egress_bytes, t.egress_bytes_previous),
    ])
    lines += ["### Bytes by destination country", ""]
    lines += _md_table(("country", "bytes sent", "bytes received", "flows"),
                       [(_country(c.country), c.bytes_out, c.bytes_in, c.flows) for c in s.bytes_by_country])
    lines += ["### Findings by severity", ""]
    lines += _md_table(("severity", "open", "waived"), [(x.severity, x.open, x.waived) for x in s.by_severity])

    lines += ["## Device inventory", ""]
    lines += _md_table(
        ("MAC", "maker", "brand", "class", "model", "firmware", "lists", "confidence", "new", "evidence"),
        [(d.mac, d.maker, d.brand, d.device_class, d.model, d.firmware,
          "; ".join(f"{x.name}: {x.clause}" if x.clause else x.name for x in d.lists), d.confidence,
          "yes" if d.new else "", d.evidence) for d in report.devices])

    lines += ["## Findings per device", ""]
    for group in report.findings:
        lines += [f"### {md(group.device)} {md(group.maker)}".rstrip(), ""]
        lines += _md_table(
            ("severity", "rule", "destination", "IP", "country", "ASN", "services", "bytes", "first seen", "last seen",
             "status", "new"),
            [(f.severity, f.rule_id, f.dst_domain, f.dst_ip, f.country, f.asn, " ".join(f.services), f.bytes,
              f.first_seen, f.last_seen, f.status + (f" ({f.waiver_id})" if f.waiver_id else ""),
              "yes" if f.new else "") for f in group.findings])
    if not report.findings:
        lines += ["No findings in this period.", ""]

    lines += ["## Waivers applied", ""]
    lines += (_md_table(("waiver", "device", "rule", "destination", "finding"),
                        [(w.waiver_id, w.device, w.rule_id, w.destination, w.alert_id) for w in report.waivers])
              if report.waivers else ["No waiver applied in this period.", ""])
    lines += ["## Methodology and limits", ""]
    for section in report.methodology:
        lines += [f"**{md(section.title)}.** {md(section.text)}", ""]
    return "\n".join(lines).encode("utf-8")


# ------------------------------------------------------------------------------------------------ html
def _bars(items: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Rows of a horizontal bar chart: label, value and bar width scaled to the largest value."""
    top = max((v for _, v in items), default=0)
    return [{"label": label, "value": value, "width": round(CHART_WIDTH * value / top, 1) if top else 0.0}
            for label, value in items]


def _environment() -> jinja2.Environment:
    import jinja2  # only the HTML (and PDF) report needs templates: other commands do not load it
    import markupsafe

    def iso_time(value: str | None) -> markupsafe.Markup:
        # a break opportunity after the date, so a narrow column wraps a time there and not mid-number
        date, sep, rest = (value or "").partition("T")
        return markupsafe.Markup("{}<wbr>T{}").format(date, rest) if sep else markupsafe.escape(value or "")

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["num"] = lambda n: "" if n is None else f"{n:,}"
    env.filters["country"] = _country
    env.filters["time"] = iso_time
    return env


def render_html(report: Report) -> bytes:
    """One self-contained, print-friendly HTML file (inline CSS and SVG, no script, nothing fetched)."""
    s = report.summary
    country_bars = _bars([(_country(c.country), c.bytes_out) for c in s.bytes_by_country])
    severity_bars = _bars([(x.severity, x.open) for x in s.by_severity])
    html = _environment().get_template("report.html.j2").render(
        r=report, country_bars=country_bars, severity_bars=severity_bars, chart_width=CHART_WIDTH,
    )
    return html.encode("utf-8")


# ------------------------------------------------------------------------------------------------- pdf
def refuse_fetch(url: str) -> NoReturn:
    """Raise FetchRefused: the report is one self-contained file, so a URL weasyprint meets (an escaping bug)
    is never fetched."""
    raise FetchRefused(url)


class FetchRefused(ValueError):
    """weasyprint asked for a URL; it logs this as a warning and renders without the resource."""

    def __init__(self, url: str) -> None:
        super().__init__(f"the report fetches nothing: refused {url[:200]!r}")
        self.url = url


def html_to_pdf(html: str) -> bytes:
    """`html` printed to an A4 PDF by weasyprint (the optional 'pdf' extra); ConfigError without it. Every URL
    in `html` goes to refuse_fetch: nothing is read from the network or from files."""
    try:
        weasyprint = importlib.import_module("weasyprint")
    except ImportError:
        raise ConfigError(PDF_MISSING) from None
    except OSError as exc:  # weasyprint is installed but cannot load Pango, a system library
        message = f"PDF needs the Pango library that weasyprint loads (Debian: libpango-1.0-0): {exc}"
        raise ConfigError(message) from None

    class RefuseAll(weasyprint.urls.URLFetcher):  # type: ignore[misc,name-defined]
        # weasyprint >= 68 takes a fetcher object (a plain function is no longer called)
        def fetch(self, url: str, headers: object = None) -> NoReturn:
            refuse_fetch(url)

    # base_url None: no relative URL resolves to a local file either
    pdf = weasyprint.HTML(string=html, base_url=None, url_fetcher=RefuseAll()).write_pdf()
    return bytes(pdf)


def render_pdf(report: Report) -> bytes:
    """The HTML report printed to PDF (its print stylesheet: A4, title, period and page numbers in the
    margins, table headers repeated on each page); ConfigError without weasyprint."""
    return html_to_pdf(render_html(report).decode("utf-8"))
