"""`auditor store ...`: ingest a run's output folder into the SQLite store and say what the store holds.

Each command opens the store and calls one library function (auditor.store), so anything done here can
be done from Python too. Registered on the main app as `app.add_typer(store_app, name="store")`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from auditor.errors import AuditorError
from auditor.paths import state_dir

if TYPE_CHECKING:
    import sqlite3

store_app = typer.Typer(help="The store: ingest runs into SQLite and show what it holds.", no_args_is_help=True)
_err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")

DB_HELP = "SQLite store (default: auditor.sqlite in the state directory)."


def default_db() -> Path:
    """Return the store's default path, in the state directory."""
    return state_dir() / "auditor.sqlite"


def _fail(exc: AuditorError) -> typer.Exit:
    _err.print(f"error: {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


def _existing(db: Path | None) -> Path:
    """Return the store's path; exit 4 when there is none (reading commands never create one)."""
    path = db or default_db()
    if not path.exists():
        _err.print(f"error: {escape(str(path))}: no store there (ingest a run first)", highlight=False)
        raise typer.Exit(4)
    return path


def _with_store(path: Path, work: Callable[[sqlite3.Connection], T]) -> T:
    """Open the store, run `work` on it, close it; an AuditorError becomes its one-line exit."""
    from auditor.store import open_store  # SQLite is loaded by the store commands only

    try:
        conn = open_store(path)
        try:
            return work(conn)
        finally:
            conn.close()
    except AuditorError as exc:
        raise _fail(exc) from None


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@store_app.command("ingest")
def store_ingest(
    out_dir: Annotated[Path, typer.Argument(help="An `auditor analyze --out` folder (summary.json, flows.jsonl ...).")],
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option("--capture", help="A capture file of the run, to hash (repeatable; default: the names in "
                                       "summary.json)."),
    ] = None,
) -> None:
    """Write one run to the store in one transaction; ingesting the same captures again replaces that run."""
    from auditor.store import ingest_run

    result = _with_store(db or default_db(), lambda conn: ingest_run(conn, out_dir, capture or None))
    verb = "replaced" if result.replaced else "added"
    typer.echo(f"{verb} run {result.run_id}: {result.devices} devices, {result.flows} flows in {result.flow_rows} "
               f"hourly rows, {result.alerts} alerts ({result.findings_new} new findings)")
    if result.skipped_lines:
        _err.print(f"warning: {result.skipped_lines} damaged line(s) skipped", highlight=False)
        for problem in result.problems:
            _err.print(f"  {escape(problem)}", highlight=False)


@store_app.command("info")
def store_info_command(db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None) -> None:
    """Show the store's schema version, its runs, and its device and finding counts."""
    path = _existing(db)
    from auditor.store import store_info

    info = _with_store(path, store_info)
    typer.echo(f"store: {path} (schema version {info.schema_version})")
    typer.echo(f"runs: {len(info.runs)}")
    for run in info.runs:
        files = ", ".join(run.files) or "-"
        typer.echo(f"  {run.id}: {run.kind} {_when(run.started_ns)} .. {_when(run.ended_ns)}, {run.packets} packets, "
                   f"{run.flows} flows, files: {files}")
    typer.echo(f"devices: {info.devices}")
    typer.echo(f"hourly flow rows: {info.flow_rows}")
    statuses = ", ".join(f"{count} {status}" for status, count in info.findings_by_status.items())
    typer.echo(f"findings: {sum(info.findings_by_status.values())} ({statuses})")


@store_app.command("ack")
def store_ack(
    finding_id: Annotated[str, typer.Argument(help="A finding (alert) id, or at least its first 6 characters.")],
    db: Annotated[Path | None, typer.Option("--db", help=DB_HELP)] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Set it back to new.")] = False,
) -> None:
    """Mark a finding acknowledged (a person has seen it); later runs keep that status. Reports show it."""
    from auditor.store import set_finding_status

    status = "new" if undo else "acknowledged"
    changed = _with_store(_existing(db), lambda conn: set_finding_status(conn, finding_id, status))
    typer.echo(f"{finding_id}: {'set back to new' if undo else 'acknowledged'}" if changed else
               f"{finding_id}: unchanged (already so, or waived)")
