"""The `auditor` command: thin typer verbs that parse flags, call the pipeline and render results."""

from __future__ import annotations

import dataclasses
import datetime
import heapq
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from auditor import __version__
from auditor.config import Settings, load_settings
from auditor.devices.evidence import EvidenceTable
from auditor.devices.oui import OuiRegistry, mac_text
from auditor.devices.signatures import SignatureSet, load_signatures
from auditor.devices.table import DeviceTable
from auditor.devices.types import DeviceRecord
from auditor.devices.vendors import VendorCatalog, load_vendors
from auditor.devices.verdicts import DeviceVerdicts, iter_device_records
from auditor.errors import AuditorError, ConfigError, OutputError
from auditor.flows.community_id import with_community_ids
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import FlowRecords, service_text
from auditor.names.stage import NameStage
from auditor.output.alerts import write_alerts_jsonl
from auditor.output.background import BackgroundSink
from auditor.output.devices import write_devices
from auditor.output.ecs import flow_json_lines
from auditor.output.files import replacing
from auditor.output.jsonl import JsonLinesWriter
from auditor.paths import rule_path, state_dir
from auditor.pipeline import RunStats, analyze_files, fingerprint_payloads
from auditor.policy.evaluate import PolicyJudge, geo_needs
from auditor.policy.load import RuleSet, Vocabulary, load_rules
from auditor.policy.types import SEVERITIES, Alert
from auditor.runtime import bound_heap_growth

if TYPE_CHECKING:
    from auditor.geo.reader import GeoReader

app = typer.Typer(
    name="auditor",
    help="Passive auditor: which cameras and scanners are on this network, who made them, where they send data.",
    no_args_is_help=True,
    add_completion=False,
)
err_console = Console(stderr=True, soft_wrap=True)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # newlines and tabs too: a value cannot forge a line


def shown(text: str) -> str:
    """Return wire text safe for the terminal: no rich markup, and no control characters (an escape
    sequence in a device's model name must not repaint the screen); they show as \\xNN."""
    return escape(_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Passive network traffic auditor."""


class _ProgressReporter:
    """Shows a rich progress bar per capture file on stderr."""

    def __init__(self, progress: Any) -> None:  # a rich.progress.Progress
        self._progress = progress
        self._task: Any = None

    def file_started(self, name: str, size_bytes: int | None) -> None:
        self._task = self._progress.add_task(escape(os.path.basename(name)), total=size_bytes)

    def advanced(self, bytes_read: int) -> None:
        self._progress.update(self._task, completed=bytes_read)
        self._progress.refresh()  # refreshed from here: no refresh thread while readers fork

    def file_finished(self, name: str) -> None:
        task = self._progress.tasks[-1]
        self._progress.update(self._task, completed=task.total or task.completed)


class Severity(StrEnum):
    """--fail-on choices, lowest first."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


@app.command()
def analyze(
    captures: Annotated[list[Path], typer.Argument(help="pcap / pcapng files, optionally gzip-compressed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the outputs (created if missing).")],
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", "-r", help="Rule file or folder of them (repeat; default: the shipped policies)."),
    ] = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option("--fail-on", help="Exit 1 when an alert of this severity or higher exists.", case_sensitive=False),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="auditor.toml settings file.")] = None,
    local_net: Annotated[
        list[str] | None,
        typer.Option("--local-net", help="A CIDR that counts as local (repeat; replaces the defaults)."),
    ] = None,
    vendors: Annotated[
        Path | None, typer.Option("--vendors", help="Vendor catalog (default: the shipped rules/vendors.yaml).")
    ] = None,
    signatures: Annotated[
        Path | None,
        typer.Option("--signatures", help="Protocol signatures, a file or folder (default: rules/fingerprints)."),
    ] = None,
    geoip_country: Annotated[
        Path | None, typer.Option("--geoip-country", help="Country .mmdb (MaxMind, DB-IP lite, IPinfo lite).")
    ] = None,
    geoip_asn: Annotated[
        Path | None, typer.Option("--geoip-asn", help="ASN .mmdb (MaxMind, DB-IP lite, IPinfo lite).")
    ] = None,
    db: Annotated[  # a str, not a Path: a Path folds a postgresql:// URL's // into one /
        str | None, typer.Option("--db", help="Also record the run in this store: a SQLite file or a "
                                              "postgresql:// URL (see `auditor store`).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary table.")] = False,
) -> None:
    """Read capture files; judge each flow against the rule files; write OUT/alerts.jsonl (ECS, one per
    device x destination x rule), OUT/flows.jsonl (ECS, one per flow), OUT/devices.json|csv, OUT/summary.json;
    with --db, also record the run in the store (ingesting the same captures again replaces it)."""
    try:
        if db is not None:  # a store that cannot be opened stops the run before any packet
            from auditor.store import open_store

            open_store(db).close()
        run = _analyze(captures, out, config, local_net, quiet, vendors, rules, signatures,
                       geoip=(geoip_country, geoip_asn))
        if db is not None and not run.stats.errors:
            from auditor.store import ingest_run, open_store

            conn = open_store(db)
            try:
                ingest_run(conn, out, captures)
            finally:
                conn.close()
    except AuditorError as exc:
        err_console.print(f"error: {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        sys.stdout.write(json.dumps(run.summary, indent=2) + "\n")
    elif not quiet:
        _print_summary(run, out)
    for line in run.stats.errors:
        err_console.print(f"error: {escape(line)}", highlight=False)
    if run.stats.errors:
        raise typer.Exit(2)
    # findings too many to sum into alerts still count: the worst finding decides, not the worst alert
    if fail_on is not None and run.worst_rank >= SEVERITIES.index(fail_on.value):
        raise typer.Exit(1)


TOP_ALERTS = 10


class _AlertTally:
    """Counts alerts by severity and keeps the top ones for the console, as they stream to the file."""

    def __init__(self) -> None:
        self.by_severity: Counter[str] = Counter()
        self.waived = 0
        self._top: list[tuple[int, int, int, Alert]] = []  # a min-heap of (rank, bytes, -seq, alert)

    def count(self, alerts: Iterable[Alert]) -> Iterator[Alert]:
        for seq, alert in enumerate(alerts):
            if alert.status == "waived":  # written, but neither counted as open nor shown on the console
                self.waived += 1
                yield alert
                continue
            self.by_severity[alert.severity] += 1
            item = (alert.severity_rank, alert.source_bytes + alert.destination_bytes, -seq, alert)
            if len(self._top) < TOP_ALERTS:
                heapq.heappush(self._top, item)
            elif item[:3] > self._top[0][:3]:
                heapq.heapreplace(self._top, item)
            yield alert

    def top(self) -> list[Alert]:
        """Return the most severe alerts, the largest first within a severity."""
        return [item[3] for item in sorted(self._top, key=lambda i: i[:3], reverse=True)]


class _DeviceTally:
    """Counts devices as they stream to devices.json/csv, keeping those the console lists (capped)."""

    SHOWN = 200
    """Devices with a verdict kept for the console table (listed vendors first); devices.json has all."""

    def __init__(self) -> None:
        self.total = 0
        self.known = 0
        self.listed = 0
        self.relabels = 0
        self.shown: list[DeviceRecord] = []

    def count(self, records: Iterable[DeviceRecord]) -> Iterator[DeviceRecord]:
        for d in records:
            self.total += 1
            v = d.vendor
            if v is not None:
                self.known += 1
                self.listed += bool(v.lists)
                self.relabels += bool(v.relabel)
                if len(self.shown) < self.SHOWN or v.lists or v.relabel:
                    # observations are dropped: the console needs the verdict, not every fact
                    self.shown.append(dataclasses.replace(d, observations=()))
                    if len(self.shown) > 4 * self.SHOWN:
                        self.shown.sort(key=lambda r: (not r.vendor.lists, not r.vendor.relabel))  # type: ignore[union-attr]
                        del self.shown[2 * self.SHOWN:]
            yield d


@dataclass(frozen=True, slots=True)
class _Run:
    stats: RunStats
    devices: _DeviceTally
    alerts: _AlertTally
    summary: dict[str, Any]
    worst_rank: int
    geo: Any = None
    """The run's GeoIP lookup (ip text -> GeoInfo), or None."""


def _analyze(
    captures: list[Path],
    out: Path,
    config: Path | None,
    local_net: list[str] | None,
    quiet: bool,
    vendors_file: Path | None,
    rule_paths: list[Path] | None,
    signatures_path: Path | None = None,
    geoip: tuple[Path | None, Path | None] = (None, None),
) -> _Run:
    bound_heap_growth()
    settings = load_settings(config, local_networks=tuple(local_net) if local_net else None,
                             geoip_country=str(geoip[0]) if geoip[0] else None,
                             geoip_asn=str(geoip[1]) if geoip[1] else None)
    # every rule file is read before any packet or output: a bad one stops the run and overwrites nothing
    catalog = _vendor_catalog(vendors_file)
    ruleset = _rule_set(rule_paths, catalog)
    signature_set = _signatures(signatures_path, catalog)
    geo = _geo(settings)  # a missing or wrong database stops the run here, before any packet
    geo_missing = _geo_for_rules(ruleset, settings)
    registry = OuiRegistry.default(state_dir())
    local = LocalNetworks(settings.local_networks)
    devices = DeviceTable(local.contains)
    evidence = EvidenceTable(signature_set)
    rejected: Counter[str] = Counter()
    names = NameStage()
    payloads = fingerprint_payloads(evidence, rejected, local, names)
    verdicts = DeviceVerdicts(registry, catalog, evidence, ruleset.pins)
    judge = PolicyJudge(ruleset, verdicts, geo=geo, mud_url_of=verdicts.mud_url)
    geo_lookup = geo.lookup if geo is not None else None
    databases = geo_databases(geo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        flows_file = open(out / "flows.jsonl", "wb")  # noqa: SIM115 - closed below, after the run
    except OSError as exc:
        raise OutputError(f"{out}: cannot write output: {exc.strerror or exc}") from exc
    with flows_file:
        writer = JsonLinesWriter(flows_file)

        def write_flows(records: FlowRecords) -> None:
            writer.write_lines(flow_json_lines(with_community_ids(records), geo=geo_lookup, geo_databases=databases))

        # Formatting JSON runs in a forked child, beside the packet engine. Nothing here starts a
        # thread (the progress bar is refreshed by hand), so forking stays safe.
        sink = BackgroundSink(write_flows, on_close=writer.close)
        try:
            if not quiet and sys.stderr.isatty():
                from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

                columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
                with Progress(*columns, console=err_console, transient=True, auto_refresh=False) as progress:
                    reporter = _ProgressReporter(progress)
                    stats = analyze_files(captures, settings, sink, payloads, reporter=reporter, devices=devices,
                                          policy=judge, names=names)
            else:
                stats = analyze_files(captures, settings, sink, payloads, devices=devices, policy=judge, names=names)
        finally:
            sink.close()
    records = _DeviceTally()
    alerts = _AlertTally()
    try:
        with replacing(out / "devices.json", "wb") as fj, replacing(out / "devices.csv", "w") as fc:
            write_devices(records.count(iter_device_records(devices, verdicts)), fj, fc)  # one device at a time
        with replacing(out / "alerts.jsonl", "wb") as fa:
            write_alerts_jsonl(alerts.count(judge.iter_alerts()), fa, geo_lookup, databases)  # streamed
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the outputs: {exc.strerror or exc}") from exc
    if judge.dropped_findings:
        stats.run_warnings.append(
            f"{judge.dropped_findings:,} findings not summed into alerts: the alert limit ({judge.max_alerts:,}) "
            f"was reached; the most severe finding was {SEVERITIES[judge.worst_rank]}"
        )
    if geo is not None:
        stats.run_warnings.extend(geo.warnings())
    stats.run_warnings.extend(ruleset.warnings)
    if judge.regrouped_devices:
        stats.run_warnings.append(
            f"{judge.regrouped_devices:,} device(s) were identified only after some of their flows had been judged "
            "(e.g. a camera's SADP announcement after its first cloud call): those flows kept the earlier verdict; "
            f"`auditor rules rejudge {out}` judges every flow by the final verdicts"
        )
    stats.run_warnings.extend(geo_missing)
    if evidence.dropped_devices:
        stats.run_warnings.append(
            f"{evidence.dropped_devices:,} payloads of devices beyond the evidence limit "
            f"({evidence.max_devices:,} devices) were not kept: those devices are judged by their OUI alone"
        )
    summary = stats.to_dict()
    summary["devices"] = records.total
    summary["vendor_catalog"] = catalog.source if catalog else None
    summary["signatures"] = {"files": signature_set.sources, "count": len(signature_set)}
    summary["protocol_records"] = dict(sorted(evidence.records.items()))
    summary["protocol_payloads_refused"] = dict(sorted(rejected.items()))
    summary["evidence_facts_not_kept"] = sum(f.dropped for f in evidence.devices.values())
    summary["evidence_devices_not_kept"] = evidence.dropped_devices
    summary["oem_relabels"] = records.relabels
    summary["geoip"] = [
        {"path": d.path, "database_type": d.database_type, "layout": d.layout,
         "build_date": d.build_date.isoformat(), "age_days": d.age_days}
        for d in (geo.databases() if geo else [])
    ]
    summary["rules"] = [{"path": r.path, "sha256": r.sha256, "ruleset": r.ruleset} for r in ruleset.sources]
    summary["names"] = names.summary()
    summary["flows_judged"] = judge.flows_judged
    summary["findings"] = judge.findings
    summary["findings_waived"] = judge.waived_findings
    summary["devices_regrouped_after_judging"] = judge.regrouped_devices
    summary["findings_after_waiver_expired"] = judge.expired_waiver_findings
    summary["findings_not_summed"] = judge.dropped_findings
    summary["worst_finding"] = SEVERITIES[judge.worst_rank] if judge.worst_rank >= 0 else None
    summary["alerts"] = sum(alerts.by_severity.values())
    summary["alerts_by_severity"] = {sev: alerts.by_severity[sev] for sev in SEVERITIES}
    summary["alerts_waived"] = alerts.waived
    _write_json(out / "summary.json", summary)
    return _Run(stats, records, alerts, summary, judge.worst_rank, geo_lookup)


def _geo(settings: Settings) -> GeoReader | None:
    if settings.geoip_country is None and settings.geoip_asn is None:
        return None
    from auditor.geo.reader import GeoReader  # imported here: maxminddb only when a database is given

    return GeoReader(Path(settings.geoip_country) if settings.geoip_country else None,
                     Path(settings.geoip_asn) if settings.geoip_asn else None)


def _signatures(path: Path | None, catalog: VendorCatalog | None) -> SignatureSet:
    path = path or rule_path("fingerprints")
    if path is None:
        return SignatureSet([], [])
    return load_signatures(path, frozenset(v.id for v in catalog.vendors) if catalog else None)


def _vendor_catalog(path: Path | None) -> VendorCatalog | None:
    path = path or rule_path("vendors.yaml")
    return load_vendors(path) if path is not None else None


def _rule_set(paths: list[Path] | None, catalog: VendorCatalog | None, today: datetime.date | None = None) -> RuleSet:
    if not paths:
        shipped = rule_path("policies")
        if shipped is None:  # judging nothing in silence would pass --fail-on: refuse instead
            raise ConfigError("no rule files found (the shipped rules/policies is missing): give --rules PATH")
        paths = [shipped]
    return load_rules(paths, _vocabulary(catalog), today=today)


def _vocabulary(catalog: VendorCatalog | None) -> Vocabulary:
    """The vendor and list ids rule files may name (None: no catalog, so naming any is an error)."""
    return Vocabulary(
        vendors=frozenset(v.id for v in catalog.vendors) if catalog else None,
        lists=frozenset(catalog.lists) if catalog else None,
    )


def geo_databases(geo: GeoReader | None) -> list[dict[str, str]]:
    """Return each open GeoIP database's type and build date, for the outputs that use its answers."""
    return [{"type": d.database_type, "build_date": d.build_date.isoformat()} for d in (geo.databases() if geo else [])]


def _geo_for_rules(ruleset: RuleSet, settings: Settings) -> list[str]:
    """Return a warning per GeoIP database the rules need but the run was not given. Without it every
    country (or AS) matcher matches nothing: an allow entry then approves nothing (more alerts, the
    safe side), but a deny entry never fires, which the warning must say. Never downloaded: the
    shipped default policy uses countries, and a run without databases must still work."""
    given = {"country": settings.geoip_country, "asn": settings.geoip_asn}
    flags = {"country": "--geoip-country (or geoip_country in auditor.toml)",
             "asn": "--geoip-asn (or geoip_asn in auditor.toml)"}
    warnings = []
    for db, where in geo_needs(ruleset).items():
        if not given[db]:
            kind = "countries" if db == "country" else "AS numbers"
            warnings.append(f"{where} matches {kind}, but no GeoIP {db} database was given ({flags[db]}): "
                            f"those entries matched nothing in this run")
    return warnings


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        with replacing(path, "w") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _print_summary(run: _Run, out: Path) -> None:
    from rich.table import Table  # imported here: runs under systemd or in pipes never need it

    stats = run.stats
    console = Console(stderr=False, highlight=False)
    table = Table(title="span-auditor: analyze", show_header=True, header_style="bold")
    table.add_column("file")
    table.add_column("packets", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("note")
    for f in stats.files:
        note = "[red]not read[/red]" if f.error else (f"{len(f.warnings)} warning(s)" if f.warnings else "")
        table.add_row(escape(f.name), f"{f.frames:,}", f"{f.bytes:,}", note)
    console.print(table)
    skipped = sum(stats.skipped.values())
    console.print(
        f"{stats.frames:,} packets ({stats.ip_packets:,} IP, {stats.arp_frames:,} ARP, "
        f"{stats.other_l2_frames:,} other L2, {skipped:,} skipped) -> {stats.flows:,} flows "
        f"in {stats.elapsed_s:.2f} s"
    )
    if skipped:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.skipped.items()))
        console.print(f"skipped: {escape(reasons)}")
    for w in stats.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    _print_devices(console, run.devices)
    _print_alerts(console, run)
    console.print(
        f"wrote alerts.jsonl, flows.jsonl, devices.json, devices.csv and summary.json in {escape(str(out))}"
    )


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _print_alerts(console: Console, run: _Run) -> None:
    """Say how many alerts of each severity, and show the most severe (then largest) ones."""
    from rich.table import Table

    top, summary = run.alerts.top(), run.summary
    rules = ", ".join(r["path"] for r in summary["rules"]) or "none"
    counts = ", ".join(f"{n} {sev}" for sev, n in reversed(summary["alerts_by_severity"].items()) if n)
    console.print(
        f"{summary['alerts']:,} alerts ({counts or 'none'}) from {summary['findings']:,} of "
        f"{summary['flows_judged']:,} judged flows"
        + (f", {summary['alerts_waived']:,} waived" if summary["alerts_waived"] else "")
        + f"; rules: {escape(rules)}"
    )
    if not top:
        return
    title = f"top findings ({len(top)} of {summary['alerts']:,}; all in alerts.jsonl)"
    table = Table(title=title, show_header=True, header_style="bold")
    for column in ("severity", "device", "destination", "sent", "rule"):
        table.add_column(column, justify="right" if column == "sent" else "left",
                         min_width=17 if column == "device" else None, overflow="fold")
    for a in top:
        device = mac_text(a.device_mac) if a.device_mac else ", ".join(a.source_ips)
        if a.vendor:
            device += f"\n{a.vendor.vendor_id}" + "".join(f" {e.list_id}" for e in a.vendor.lists)
        services = " ".join(service_text(p, q) for p, q in a.services)
        where = ""
        if run.geo is not None and not a.destination_local:
            info = run.geo(a.destination_ip)
            where = " ".join(x for x in (info.country, f"AS{info.asn}" if info.asn else None) if x)
        destination = escape(f"{a.destination_ip} {where}".rstrip())
        # the name comes from the wire: shown() keeps its control characters from reaching the terminal
        destination += f"\n{shown(a.destination_domain)}" if a.destination_domain else "\n(never named)"
        style = SEVERITY_STYLE[a.severity]
        table.add_row(
            f"[{style}]{a.severity}[/{style}]", escape(device), f"{destination}\n{escape(services)}",
            f"{a.source_bytes:,} B\n{a.flows:,} flow{'s' if a.flows > 1 else ''}", escape(a.rule_id),
        )
    console.print(table)


def _print_devices(console: Console, tally: _DeviceTally) -> None:
    """List the devices with a verdict, listed vendors first; count the rest; then the OEM relabels."""
    from rich.table import Table

    known = sorted(tally.shown, key=lambda d: (not d.vendor.lists, d.vendor.vendor_id or "~", d.mac))  # type: ignore[union-attr]
    console.print(
        f"{tally.total:,} devices: {tally.listed:,} from listed vendors, {tally.known - tally.listed:,} other known "
        f"makers or classes, {tally.total - tally.known:,} unidentified"
    )
    if not known:
        return
    relabels = [d for d in known if d.vendor is not None and d.vendor.relabel]
    rows = known[: _DeviceTally.SHOWN]
    more = f"; {tally.known - len(rows):,} more in devices.json" if tally.known > len(rows) else ""
    table = Table(title=f"devices by maker (details in devices.json{more})", show_header=True,
                  header_style="bold")
    for column in ("MAC", "IP", "maker", "class", "model", "lists"):
        table.add_column(column, no_wrap=column == "MAC", overflow="fold")
    for d in rows:
        v = d.vendor
        assert v is not None
        lists = " ".join(m.list_id for m in v.lists) or "-"
        ip = d.addresses[0].ip if d.addresses else "-"
        table.add_row(
            mac_text(d.mac), escape(ip), escape(v.vendor_id or "?"), v.device_class, shown(v.model or "-"),
            f"[red]{escape(lists)}[/red]" if v.lists else lists,
        )
    console.print(table)
    if relabels:
        table = Table(title="OEM relabels: made by one maker, sold or networked as another", header_style="bold")
        for column in ("MAC", "maker", "sold as", "why"):
            table.add_column(column, no_wrap=column == "MAC", overflow="fold")
        for d in relabels:
            v = d.vendor
            assert v is not None
            table.add_row(mac_text(d.mac), escape(v.vendor_id or "?"), shown(v.brand or "-"), shown(v.relabel or ""))
        console.print(table)


oui_app = typer.Typer(help="The IEEE MAC address registry (OUI) table.", no_args_is_help=True)
app.add_typer(oui_app, name="oui")


@oui_app.command("lookup")
def oui_lookup(
    macs: Annotated[list[str], typer.Argument(help="MAC addresses (AA:BB:CC:DD:EE:FF, AA-BB-..., AABB.CCDD.EEFF).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Say which organisation the IEEE registry assigned each MAC's prefix to."""
    from auditor.devices.oui import OuiRegistry, is_group, is_locally_administered, mac_text, parse_mac

    try:
        registry = OuiRegistry.default(state_dir())
        parsed = [parse_mac(m) for m in macs]
    except (AuditorError, ValueError) as exc:
        err_console.print(f"error: {escape(str(exc))}", highlight=False)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
    for mac in parsed:
        match = registry.lookup(mac)
        if is_group(mac):
            note = "group (multicast) address: no vendor"
        elif is_locally_administered(mac):
            note = "locally administered (randomised or virtual): no vendor"
        else:
            note = "unassigned" if match is None else ""
        if as_json:
            row: dict[str, Any] = {"mac": mac_text(mac), "block": match.block if match else None,
                                   "organization": match.organization if match else None, "note": note or None,
                                   "table": {"source": registry.source, "date": registry.date}}
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            # registry names are untrusted text: printed without markup
            text = f"{match.block}  {match.organization}" if match else note
            Console(highlight=False, soft_wrap=True).print(f"{mac_text(mac)}  {escape(text)}", markup=True)


@oui_app.command("update")
def oui_update(
    source: Annotated[Path, typer.Option("--from", help="IEEE CSV folder or file, or Wireshark's manuf file.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the table (default: the state directory).")
    ] = None,
) -> None:
    """Build a fresh OUI table from local registry files; it then takes precedence over the shipped one."""
    from auditor.devices.oui import SNAPSHOT_NAME, write_snapshot
    from auditor.devices.oui_sources import read_source

    target = out or state_dir() / SNAPSHOT_NAME
    try:
        listing = read_source(source)
        count = write_snapshot(listing.entries, listing.source, listing.date.isoformat(), target)
    except AuditorError as exc:
        err_console.print(f"error: {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        err_console.print(f"error: {escape(f'{target}: cannot write: {exc.strerror or exc}')}", highlight=False)
        raise typer.Exit(4) from None
    typer.echo(f"wrote {count:,} assignments ({listing.source}, data of {listing.date.isoformat()}) to {target}")


if __name__ == "__main__":
    app()


# the rules verbs and the live sensor live in their own modules; imported last, as they reuse this
# module's helpers (importing cli_sense registers `sense` and `status` on app)
from auditor import cli_sense  # noqa: E402, F401
from auditor.cli_evidence import evidence  # noqa: E402
from auditor.cli_report import report  # noqa: E402
from auditor.cli_rules import rules_app  # noqa: E402
from auditor.cli_store import store_app  # noqa: E402

app.add_typer(rules_app, name="rules")
app.add_typer(store_app, name="store")
app.command("evidence")(evidence)
app.command("report")(report)
