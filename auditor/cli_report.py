"""`auditor report`: read the store back and write a dated report for a period.

`report()` is a plain typer command function; the main app registers it with
`app.command("report")(report)`. `report_cli` is a Typer app with it as its only command (for tests and
for running it alone). Errors are one line on stderr: a bad flag, date or format, or an empty store
exits 2; a store that cannot be opened or an output that cannot be written exits 4.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.errors import AuditorError, ConfigError, OutputError
from auditor.output.files import replacing
from auditor.paths import state_dir

_err = Console(stderr=True, soft_wrap=True)


def _fail(exc: AuditorError) -> typer.Exit:
    _err.print(f"error: {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


def _write(data: bytes, out: Path | None) -> None:
    if out is None or str(out) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(out, "wb") as fh:  # a reader (a mail job, a web server) never sees half a report
            fh.write(data)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report ({exc.strerror or exc})") from None


def report(
    db: Annotated[Path | None, typer.Option("--db", help="SQLite store (default: auditor.sqlite in the state "
                                                         "directory).")] = None,
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
) -> None:
    """Write a report of the store for a period: coverage, executive summary, device inventory, findings
    per device, waivers and methodology, as html (one self-contained file), pdf, json, csv (findings) or md."""
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
        path = db or state_dir() / "auditor.sqlite"
        if str(path) != ":memory:" and not path.exists():
            raise ConfigError(f"{path}: no store there (record a run with `auditor analyze --db` first)")
        conn = open_store(path)
        try:
            model = build_report(conn, start, end, now_ns=now_ns, title=title)
        finally:
            conn.close()
        _write(render(model, fmt), out)
    except AuditorError as exc:
        raise _fail(exc) from None
    if out is not None and str(out) != "-":
        s = model.summary
        _err.print(f"wrote {escape(str(out))}: {s.devices} devices, {s.findings_open} open findings, "
                   f"{s.findings_waived} waived ({model.header.period.start} to {model.header.period.end})",
                   highlight=False)


report_cli = typer.Typer(help="Reports from the store.", add_completion=False)
report_cli.command("report")(report)
