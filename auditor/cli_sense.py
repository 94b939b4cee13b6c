"""`auditor sense` (the live sensor) and `auditor status` (what running sensors last reported)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from auditor.cli import _geo, _geo_for_rules, _rule_set, _signatures, _vendor_catalog, app, err_console, geo_databases
from auditor.errors import AuditorError
from auditor.paths import state_dir


@app.command()
def sense(
    interface: Annotated[str, typer.Option("--interface", "-i", help="Capture interface (the SPAN or mirror port).")],
    bpf: Annotated[str | None, typer.Option("--bpf", help="Capture filter, tcpdump syntax (\\[sensor] bpf).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="auditor.toml settings file.")] = None,
    rules: Annotated[
        list[Path] | None, typer.Option("--rules", "-r", help="Rule file or folder (repeat; \\[sensor] rules).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: the state directory's INTERFACE/).")
    ] = None,
    vendors: Annotated[Path | None, typer.Option("--vendors", help="Vendor catalog.")] = None,
    signatures: Annotated[Path | None, typer.Option("--signatures", help="Protocol signatures.")] = None,
    flush_interval: Annotated[
        float | None,
        typer.Option("--flush-interval", help="Seconds between output flushes (\\[sensor] flush_interval_s)."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds (tests, trials).")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Also write to this store at each flush interval: a SQLite path or a "
                                  "postgresql:// URL (\\[sensor] store; default: none)."),
    ] = None,
) -> None:
    """Capture on INTERFACE until stopped, with the same engine as `analyze`: devices, flows and alerts
    are written to the output folder as they happen. SIGHUP reloads the rule files (a bad one is
    refused and the old rules stay); SIGTERM or SIGINT flush everything and exit 0. Sends READY,
    STATUS and WATCHDOG to systemd ($NOTIFY_SOCKET) when run as a Type=notify service. With --db, a
    process of its own writes the devices, flows and findings to the store as they are written (a store
    that cannot be written is retried each interval and shown by `auditor status`; the capture goes on)."""
    from dataclasses import replace

    from auditor.config import load_settings
    from auditor.devices.oui import OuiRegistry
    from auditor.live.sensor import Sensor, SensorInputs
    from auditor.runtime import bound_heap_growth

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    bound_heap_growth()
    try:
        settings = load_settings(config)
        overrides: dict[str, Any] = {}
        if bpf is not None:
            overrides["bpf"] = bpf
        if flush_interval is not None:
            if flush_interval <= 0:
                raise typer.BadParameter("must be above 0", param_hint="--flush-interval")
            overrides["flush_interval_s"] = flush_interval
        if db is not None:
            overrides["store"] = db
        if overrides:
            settings = replace(settings, sensor=replace(settings.sensor, **overrides))
        catalog = _vendor_catalog(vendors)
        rule_paths = list(rules or [Path(p) for p in settings.sensor.rules]) or None

        def load_rules() -> Any:
            return _rule_set(rule_paths, catalog)

        load_rules()  # a bad rule file stops the start, before any capture
        geo = _geo(settings)
        inputs = SensorInputs(
            interface=interface, settings=settings, out_dir=out or state_dir() / _safe(interface),
            catalog=catalog, signatures=_signatures(signatures, catalog), registry=OuiRegistry.default(state_dir()),
            load_rules=load_rules, geo=geo, geo_databases=tuple(geo_databases(geo)),
            rule_warnings=lambda r: _geo_for_rules(r, settings),
        )
        sensor = Sensor(inputs)
    except AuditorError as exc:
        err_console.print(f"error: {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        err_console.print(f"error: cannot write the sensor's outputs: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(sensor.run(max_seconds=duration))


def _safe(interface: str) -> str:
    """An interface name as a folder name (they are short and plain, but never trust a path part)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in interface).lstrip(".") or "_"


@app.command()
def status(
    folder: Annotated[
        Path | None, typer.Option("--state-dir", help="Where sensors write (default: the state directory).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status records as JSON.")] = False,
) -> None:
    """Show what each sensor last reported: packets received and dropped, skipped, active flows,
    findings, alerts, and how long ago. Exit 1 when a running sensor's report is stale, the kernel
    dropped frames, the sensor stopped on an error, or it reached a limit (alerts, devices)."""
    base = folder or state_dir()
    records = []
    for path in sorted(base.glob("*/status.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            err_console.print(f"warning: {escape(str(path))}: unreadable: {escape(str(exc))}", highlight=False)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("auditor", {}), dict):
            err_console.print(f"warning: {escape(str(path))}: not a sensor status record", highlight=False)
            continue
        records.append(record)
    if not records:
        err_console.print(f"no sensor status under {escape(str(base))}", highlight=False)
        raise typer.Exit(2)
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    bad = False
    now = time.time()
    for r in records:
        a = r.get("auditor", {})
        iface = r.get("observer", {}).get("ingress", {}).get("interface", {}).get("name", "?")
        age = now - _epoch(r.get("@timestamp", ""))
        stale = a.get("state") == "running" and age > 3 * float(a.get("flush_interval_s", 60))
        packets = a.get("packets", {})
        # the kernel's drops are frames the capture lost; the interface's (Linux rx_dropped) also count
        # frames the host stack ignores (VLAN tags or IPv6 it is not set up for) after capture saw them
        drops = int(packets.get("dropped", 0))
        limits = {k: v for k, v in (a.get("limits") or {}).items() if isinstance(v, int) and v > 0}
        failed = a.get("state") == "failed"
        store_line, store_bad = _store_status(a, now, _epoch(r.get("event", {}).get("start", "")))
        bad |= stale or drops > 0 or failed or bool(limits) or store_bad
        if not as_json:
            note = " STALE (no report for 3 intervals: is it running?)" if stale else ""
            typer.echo(
                f"{iface}: {a.get('state')}{note}, reported {age:,.0f} s ago; packets received "
                f"{packets.get('received', 0):,}, dropped {packets.get('dropped', 0):,} (kernel) "
                f"{packets.get('interface_dropped', 0):,} (interface); skipped {a.get('skipped_total', 0):,}; "
                f"flows active {a.get('flows', {}).get('active', 0):,}; findings {a.get('findings', 0):,}; "
                f"alerts {a.get('alerts', 0):,}; rule reloads {a.get('rule_reloads', 0)} "
                f"(failed {a.get('rule_reload_failures', 0)})"
            )
            if limits:
                typer.echo("  limits reached (something is no longer tracked): "
                           + ", ".join(f"{k} {v:,}" for k, v in sorted(limits.items())))
            if a.get("last_error"):
                typer.echo(f"  last error: {_inert(str(a['last_error']))}")
            if store_line:
                typer.echo(store_line)
    if bad:
        raise typer.Exit(1)


def _store_status(a: dict[str, Any], now: float, started: float) -> tuple[str, bool]:
    """Return the status line of a sensor's store feed ('' when it has none) and whether it is in trouble: its
    last step failed, or no step succeeded for 3 intervals of a running sensor."""
    store = a.get("store")
    if not isinstance(store, dict):
        return "", False
    last = store.get("last_step")
    age = now - (_epoch(last) if last else started)
    late = a.get("state") == "running" and age > 3 * float(a.get("flush_interval_s", 60))
    done = f"last step {age:,.0f} s ago" if last else "no step yet"
    line = (f"  store {_inert(str(store.get('target')))}: {done}, {store.get('flows', 0):,} flows stored "
            f"(run {store.get('run_id')}), failed steps {store.get('failed_steps', 0):,}, "
            f"process restarts {store.get('restarts', 0):,}")
    if late:
        line += " LATE (no step for 3 intervals)"
    lost = [f"{k.replace('_', ' ')} {store[k]:,}" for k in ("flow_files_lost", "flow_lines_lost")
            if isinstance(store.get(k), int) and store[k] > 0]
    if lost:
        line += "\n  store lost: " + ", ".join(lost)
    if store.get("last_error"):
        line += f"\n  store error: {_inert(str(store['last_error']))}"
    return line, late or bool(store.get("last_error")) or bool(lost)


def _inert(text: str) -> str:
    """Text from a status file, with control characters shown as \\xNN (it may quote wire data)."""
    from auditor.cli import _CONTROLS

    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _epoch(text: str) -> float:
    import datetime

    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0
