"""`auditor report`: read the store back and write a dated report for a period.

`report()` is a plain typer command function; the main app registers it with
`app.command("report")(report)`. `report_cli` is a Typer app with it as its only command (for tests and
for running it alone). Errors are one line on stderr: a bad flag, date or format, or a missing store exits 2;
a store that cannot be opened or an output that cannot be written exits 4. A store or period without runs
still gives a report (saying so), with a warning: a scheduled report must not fail on a quiet week.

A report written to a file (--out) is recorded in the store with the findings it listed, in one transaction
committed only once the file is in place; the next report marks a finding new only when no earlier report listed
it. Reports to stdout and --no-record drafts are not recorded.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.cli_store import DB_HELP, missing_store, store_target
from auditor.errors import AuditorError, ConfigError, OutputError, StoreError
from auditor.output.files import replacing

if TYPE_CHECKING:
    from auditor.report.model import Report
    from auditor.store import StoreConnection

_err = Console(stderr=True, soft_wrap=True)


def _fail(exc: AuditorError) -> typer.Exit:
    _err.print(f"error: {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


def _to_file(out: Path | None) -> bool:
    return out is not None and str(out) != "-"


def _write(data: bytes, out: Path | None) -> None:
    if out is None or not _to_file(out):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(out, "wb") as fh:  # a reader (a mail job, a web server) never sees half a report
            fh.write(data)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report ({exc.strerror or exc})") from None


def _write_recorded(conn: StoreConnection, model: Report, data: bytes, out: Path, fmt: str, span: tuple[int, int],
                    now_ns: int) -> int:
    """Write the report file and record it in the store, in one transaction committed once the file is in place
    (a file that cannot be written leaves no record); return the record's id."""
    from auditor.store import ReportRecord, record_report
    from auditor.store.backend import describe

    record = ReportRecord(generated_ns=now_ns, period_from_ns=span[0], period_to_ns=span[1], format=fmt,
                          title=model.header.title, out_path=str(out.absolute()),
                          sha256=hashlib.sha256(data).hexdigest())
    try:
        with conn.transaction():
            report_id = record_report(conn, record, (f.alert_id for f in model.all_findings()))
            _write(data, out)
    except conn.errors as exc:
        raise StoreError(f"{conn.target}: cannot record the report: {describe(exc)}") from exc
    return report_id


def report(
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    since: Annotated[str | None, typer.Option("--since", help="Period ending now: 7d, 24h, 2w, 90m "
                                                              "(default 7d).")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Period start, ISO date or time (UTC unless "
                                                             "zoned).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Period end, exclusive; a bare date includes that day "
                                                        "(default: now).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html, pdf, json, csv or md.")] = "html",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report file (default: stdout; pdf needs "
                                                                 "--out).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="Take this ISO time as now (reproducible "
                                                          "reports, tests).")] = None,
    title: Annotated[str, typer.Option("--title", help="The report's title.")] = "Network audit report",
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not record this report in the store (a draft: the next report still marks its "
                            "findings new).")] = False,
) -> None:
    """Write a report of the store for a period: coverage, executive summary, device inventory, findings
    per device, waivers and methodology, as html (one self-contained file), pdf, json, csv (findings) or md.
    A report written with --out is recorded: the next one marks a finding new only if no earlier report listed it."""
    try:
        # the report and the store are loaded by this command only (every `auditor` start would pay for them)
        from auditor.report import FORMATS, build_report, period_bounds, render
        from auditor.report.model import parse_time
        from auditor.store import open_store

        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ConfigError(f"unknown report format {fmt!r} (use one of {', '.join(FORMATS)})")
        if fmt == "pdf" and (out is None or str(out) == "-"):
            raise ConfigError("--format pdf needs --out FILE")
        start, end = period_bounds(since, from_, to, now)
        now_ns = parse_time(now) if now else time.time_ns()
        target = store_target(db)
        if target != ":memory:" and missing_store(target):
            raise ConfigError(f"{target}: no store there (record a run with `auditor analyze --db` first)")
        conn = open_store(target)
        try:
            model = build_report(conn, start, end, now_ns=now_ns, title=title)
            data = render(model, fmt)
            if out is not None and _to_file(out) and not no_record:
                report_id: int | None = _write_recorded(conn, model, data, out, fmt, (start, end), now_ns)
            else:
                report_id = None
                _write(data, out)
        except conn.errors as exc:  # a PostgreSQL server gone mid-report, a damaged SQLite file
            from auditor.store.backend import describe

            raise StoreError(f"{conn.target}: cannot read the store: {describe(exc)}") from exc
        finally:
            conn.close()
    except AuditorError as exc:
        raise _fail(exc) from None
    if not model.header.coverage.runs:
        _err.print(f"warning: no run recorded from {model.header.period.start} to {model.header.period.end}: the "
                   "report covers no traffic (is the sensor writing to this store?)", highlight=False)
    if out is not None and _to_file(out):
        s = model.summary
        recorded = f", recorded as report {report_id}" if report_id is not None else ", not recorded"
        _err.print(f"wrote {escape(str(out))}: {s.devices} devices, {s.findings_open} open findings, "
                   f"{s.findings_waived} waived ({model.header.period.start} to {model.header.period.end}){recorded}",
                   highlight=False)


report_cli = typer.Typer(help="Reports from the store.", add_completion=False)
report_cli.command("report")(report)
