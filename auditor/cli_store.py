"""`auditor store ...`: ingest a run's output folder into the store (a SQLite file, or a shared PostgreSQL given
as a postgresql:// URL) and say what the store holds.

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

from auditor.errors import AuditorError, StoreError
from auditor.paths import state_dir

if TYPE_CHECKING:
    from auditor.store import StoreConnection

store_app = typer.Typer(help="The store: ingest runs into SQLite or PostgreSQL and show what it holds.",
                        no_args_is_help=True)
_err = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")

DB_HELP = ("The store: a SQLite file (default: auditor.sqlite in the state directory) or a shared PostgreSQL as "
           "postgresql://USER@HOST/DB (password from ~/.pgpass or PGPASSWORD, never shown).")


def default_db() -> Path:
    """Return the store's default path, in the state directory."""
    return state_dir() / "auditor.sqlite"


def store_target(db: str | None) -> str:
    """Return the store `--db` names: a path or a postgresql:// URL (default: the SQLite file in the state
    directory). A string, not a Path: a Path would fold a URL's // into one /."""
    return db or str(default_db())


def missing_store(target: str) -> bool:
    """Whether `target` is a SQLite path with no file there (a URL is never missing here: the server says)."""
    from auditor.store import is_url

    return not is_url(target) and not Path(target).exists()


def _fail(exc: AuditorError) -> typer.Exit:
    _err.print(f"error: {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


def _existing(db: str | None) -> str:
    """Return the store's path or URL; exit 4 when no SQLite file is there (reading commands never create one)."""
    target = store_target(db)
    if missing_store(target):
        _err.print(f"error: {escape(target)}: no store there (ingest a run first)", highlight=False)
        raise typer.Exit(4)
    return target


def _with_store(target: str, work: Callable[[StoreConnection], T]) -> T:
    """Open the store, run `work` on it, close it; an AuditorError becomes its one-line exit."""
    from auditor.store import open_store  # SQLite is loaded by the store commands only
    from auditor.store.backend import describe

    try:
        conn = open_store(target)
        try:
            return work(conn)
        except conn.errors as exc:  # a damaged table, a server gone: one line, not a traceback
            raise StoreError(f"{conn.target}: {describe(exc)}") from exc
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
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option("--capture", help="A capture file of the run, to hash (repeatable; default: the names in "
                                       "summary.json)."),
    ] = None,
) -> None:
    """Write one run to the store in one transaction; ingesting the same captures again replaces that run."""
    from auditor.store import ingest_run

    result = _with_store(store_target(db), lambda conn: ingest_run(conn, out_dir, capture or None))
    verb = "replaced" if result.replaced else "added"
    typer.echo(f"{verb} run {result.run_id}: {result.devices} devices, {result.flows} flows in {result.flow_rows} "
               f"hourly rows, {result.alerts} alerts ({result.findings_new} new findings)")
    if result.skipped_lines:
        _err.print(f"warning: {result.skipped_lines} damaged line(s) skipped", highlight=False)
        for problem in result.problems:
            _err.print(f"  {escape(problem)}", highlight=False)


@store_app.command("info")
def store_info_command(db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None) -> None:
    """Show the store's schema version, its runs, its device and finding counts, and the reports recorded."""
    target = _existing(db)
    from auditor.store import display_target, store_info

    info = _with_store(target, store_info)
    typer.echo(f"store: {display_target(target)} (schema version {info.schema_version})")
    typer.echo(f"runs: {len(info.runs)}")
    for run in info.runs:
        files = ", ".join(run.files) or "-"
        typer.echo(f"  {run.id}: {run.kind} {_when(run.started_ns)} .. {_when(run.ended_ns)}, {run.packets} packets, "
                   f"{run.flows} flows, files: {files}")
    typer.echo(f"devices: {info.devices}")
    typer.echo(f"hourly flow rows: {info.flow_rows}")
    statuses = ", ".join(f"{count} {status}" for status, count in info.findings_by_status.items())
    typer.echo(f"findings: {sum(info.findings_by_status.values())} ({statuses})")
    typer.echo(f"reports recorded: {info.reports}")


@store_app.command("ack")
def store_ack(
    finding_id: Annotated[str, typer.Argument(help="A finding (alert) id, or at least its first 6 characters.")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Set it back to new.")] = False,
) -> None:
    """Mark a finding acknowledged (a person has seen it); later runs keep that status. Reports show it."""
    from auditor.store import set_finding_status

    status = "new" if undo else "acknowledged"
    changed = _with_store(_existing(db), lambda conn: set_finding_status(conn, finding_id, status))
    typer.echo(f"{finding_id}: {'set back to new' if undo else 'acknowledged'}" if changed else
               f"{finding_id}: unchanged (already so, or waived)")
