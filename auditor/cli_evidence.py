"""`auditor evidence FINDING_ID --out FILE.pcap`: the packets behind a finding, for Wireshark.

One library call (auditor.store.evidence.write_finding_evidence). Registered on the main app as
`app.command("evidence")(evidence)`; `evidence_cli` holds it alone for tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.cli_store import DB_HELP, missing_store, store_target
from auditor.errors import AuditorError

logger = logging.getLogger(__name__)

_err = Console(stderr=True, soft_wrap=True)


def _say(kind: str, text: str) -> None:
    _err.print(f"{kind}: {escape(text)}", highlight=False)


def evidence(
    finding_id: Annotated[str, typer.Argument(help="The finding's id (alert id), or a unique prefix of it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The pcap file to write (nanosecond timestamps).")],
    db: Annotated[str | None, typer.Option("--db", help=DB_HELP)] = None,
    capture: Annotated[
        list[Path] | None,
        typer.Option("--capture", help="A capture file that moved since the ingest; matched by content (sha256), "
                                       "repeatable."),
    ] = None,
) -> None:
    """Write the packets of the flows behind a finding, read back from the capture files that raised it."""
    target = store_target(db)
    if missing_store(target):
        _say("error", f"{target}: no store there (ingest a run first, or give --db)")
        raise typer.Exit(4)
    try:
        from auditor.store import open_store  # loaded by this command only
        from auditor.store.evidence import write_finding_evidence

        conn = open_store(target)
        try:
            result = write_finding_evidence(conn, finding_id, out, capture or ())
        finally:
            conn.close()
    except AuditorError as exc:
        _say("error", str(exc))
        raise typer.Exit(exc.exit_code) from None
    for warning in result.warnings:
        _say("warning", warning)
    if not result.packets:
        _say("error", f"no packet of finding {finding_id}'s flows in {', '.join(result.files_read)}; nothing written")
        raise typer.Exit(2)
    if result.missing:
        ids = ", ".join(result.missing)
        _say("warning", f"no packet found for {len(result.missing)} of the finding's flows: {ids}")
    files = len(result.files_read)
    typer.echo(f"wrote {result.packets} packets to {out} (from {files} capture file{'s' if files != 1 else ''})")


evidence_cli = typer.Typer(help="Evidence pcaps for findings.")
evidence_cli.command("evidence")(evidence)
