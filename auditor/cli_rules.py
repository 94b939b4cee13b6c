"""`auditor rules ...`: check rule files, import MUD files, propose rules from traffic, explain verdicts."""

from __future__ import annotations

import datetime
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from auditor.cli import _CONTROLS, _rule_set, _vendor_catalog, _vocabulary, err_console
from auditor.errors import AuditorError, OutputError, RuleFileError
from auditor.policy.evaluate import geo_needs

rules_app = typer.Typer(help="Rule files: check them, import MUD files, learn from traffic, explain verdicts.",
                        no_args_is_help=True)


def _fail(exc: AuditorError) -> typer.Exit:
    err_console.print(f"error: {escape(str(exc))}", highlight=False)
    return typer.Exit(exc.exit_code)


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or folders (YAML, or MUD .json).")],
    vendors: Annotated[
        Path | None, typer.Option("--vendors", help="Vendor catalog (default: the shipped rules/vendors.yaml).")
    ] = None,
    today: Annotated[
        str | None, typer.Option("--today", help="Judge pin and waiver expiry as of this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Validate rule files as `analyze` would: one line `file:line: field: problem` and exit 2 on the
    first error; otherwise what they hold, and warnings (expired waivers and pins)."""
    try:
        day = datetime.date.fromisoformat(today) if today else None
    except ValueError:
        err_console.print(f"error: --today {escape(today or '')!s}: not a date (YYYY-MM-DD)", highlight=False)
        raise typer.Exit(2) from None
    try:
        ruleset = _rule_set(paths, _vendor_catalog(vendors), today=day)
    except AuditorError as exc:
        raise _fail(exc) from None
    sets = len(ruleset.sets or {})
    typer.echo(f"ok: {len(ruleset.sources)} file(s), {len(ruleset.policies)} policies, {sets} destination sets, "
               f"{len(ruleset.waivers)} waivers, {len(ruleset.pins)} pins")
    for loaded in ruleset.policies:
        p = loaded.policy
        kind = f"severity {p.severity}" if p.severity else "guard (no severity: undecided flows go on)"
        typer.echo(f"  {loaded.reference}: {p.id}: {len(p.deny)} deny, {len(p.allow)} allow, {kind}")
    for db, where in geo_needs(ruleset).items():
        typer.echo(f"  needs a GeoIP {db} database: {where}")
    for warning in ruleset.warnings:
        err_console.print(f"warning: {escape(warning)}", highlight=False)


@rules_app.command("import-mud")
def rules_import_mud(
    mud_file: Annotated[Path, typer.Argument(help="A MUD file (RFC 8520, JSON).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Rule file to write (default: stdout).")] = None,
    severity: Annotated[str, typer.Option("--severity", help="Severity of flows the MUD file does not allow.")]
    = "medium",
    mac: Annotated[list[str] | None, typer.Option("--mac", help="Also select this device by MAC (repeat).")] = None,
    vendor: Annotated[
        list[str] | None, typer.Option("--vendor", help="Also select this vendor's devices (a vendor id; repeat).")
    ] = None,
    ruleset: Annotated[str | None, typer.Option("--ruleset", help="Ruleset name (default: from the MUD URL).")]
    = None,
) -> None:
    """Turn a MUD file's from-device ACLs into a rule file: one policy selecting the devices that announce
    its MUD URL (DHCP option 161), with an allow or deny entry per ACE. What cannot be judged passively
    (manufacturer or controller classes, inbound ACLs, source ports) is listed in the file's header."""
    from auditor.policy import mud
    from auditor.policy.load import load_rules

    try:
        conversion = mud.load_mud(mud_file, severity=severity, macs=tuple(mac or ()), vendors=tuple(vendor or ()),
                                  ruleset=ruleset)
        text = mud.to_yaml(conversion)
        # what we print or write must load as a rule file, vendor ids included: check it first, as a
        # run would, so a bad --vendor never leaves a file that only fails later
        with tempfile.TemporaryDirectory() as tmp:
            checked = Path(tmp) / (out.name if out is not None else "mud.yaml")
            checked.write_text(text, encoding="utf-8")
            try:
                load_rules([checked], _vocabulary(_vendor_catalog(None)))
            except RuleFileError as exc:  # name the MUD file, not the temporary copy
                raise RuleFileError(f"{mud_file} (converted)", exc.line, exc.field, exc.message) from None
        if out is None:
            sys.stdout.write(text)
        else:
            try:
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    except AuditorError as exc:
        raise _fail(exc) from None
    for warning in conversion.warnings:
        err_console.print(f"warning: {escape(warning)}", highlight=False)
    if out is not None:
        err_console.print(f"wrote {escape(str(out))}: {len(conversion.warnings)} ACE warning(s)", highlight=False)



RunDir = Annotated[Path, typer.Argument(help="An `auditor analyze` output folder (flows.jsonl, devices.json).")]
RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="Rule file or folder of them (repeat; default: the shipped policies)."),
]
CountryOption = Annotated[Path | None, typer.Option("--geoip-country", help="Country .mmdb.")]
AsnOption = Annotated[Path | None, typer.Option("--geoip-asn", help="ASN .mmdb.")]


class _Rejudged:
    """A judge run over a stored run's flows with the current rule files."""

    def __init__(self, run: Path, rules: list[Path] | None, vendors: Path | None,
                 geoip: tuple[Path | None, Path | None], config: Path | None) -> None:
        from auditor.cli import _geo, _geo_for_rules, _signatures
        from auditor.config import load_settings
        from auditor.devices.evidence import EvidenceTable
        from auditor.devices.oui import OuiRegistry
        from auditor.devices.verdicts import DeviceVerdicts
        from auditor.errors import ConfigError
        from auditor.output.reread import ReadStats, read_devices
        from auditor.paths import state_dir
        from auditor.policy.evaluate import PolicyJudge

        flows_path, devices_path = run / "flows.jsonl", run / "devices.json"
        for needed in (flows_path, devices_path):
            if not needed.is_file():
                raise ConfigError(f"{needed}: missing: give the output folder of an `auditor analyze` run")
        settings = load_settings(config, geoip_country=str(geoip[0]) if geoip[0] else None,
                                 geoip_asn=str(geoip[1]) if geoip[1] else None)
        catalog = _vendor_catalog(vendors)
        self.ruleset = _rule_set(rules, catalog)
        self.geo_missing = _geo_for_rules(self.ruleset, settings)
        self.geo = _geo(settings)
        # verdicts are made again from what each device said on the wire (devices.json `observed`), with
        # the current catalog, signatures and pins: nothing is stuck with the first run's verdicts
        stored = read_devices(devices_path)
        evidence = EvidenceTable(_signatures(None, catalog))
        for mac, facts in stored.facts.items():
            for protocol, field, value, seen_ns in facts:
                evidence.observe(mac, seen_ns, protocol, [(field, value)])
        verdicts = DeviceVerdicts(OuiRegistry.default(state_dir()), catalog, evidence, self.ruleset.pins)
        self.judge = PolicyJudge(self.ruleset, verdicts, geo=self.geo, mud_url_of=verdicts.mud_url)
        self.flows_path = flows_path
        self.read = ReadStats()

    def run(self) -> None:
        from auditor.output.reread import read_flows

        for batch in read_flows(self.flows_path, self.read):
            self.judge.judge(batch)


@rules_app.command("rejudge")
def rules_rejudge(
    run: RunDir,
    rules: RulesOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write alerts.jsonl (default: RUN).")]
    = None,
    vendors: Annotated[Path | None, typer.Option("--vendors", help="Vendor catalog.")] = None,
    geoip_country: CountryOption = None,
    geoip_asn: AsnOption = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="auditor.toml settings file.")] = None,
) -> None:
    """Judge a finished run again with the current rule files, from its flows.jsonl and devices.json,
    without re-reading its captures; replaces OUT/alerts.jsonl and writes OUT/rejudge.json (the rules,
    databases and counts it was judged with). Verdicts follow the rules as they are
    now: nothing is stuck with the rules of the first run."""
    from auditor.cli import _AlertTally, _write_json, geo_databases
    from auditor.output.alerts import write_alerts_jsonl
    from auditor.output.files import replacing
    from auditor.policy.types import SEVERITIES

    try:
        again = _Rejudged(run, rules, vendors, (geoip_country, geoip_asn), config)
        again.run()
        target = out or run
        target.mkdir(parents=True, exist_ok=True)
        tally = _AlertTally()
        with replacing(target / "alerts.jsonl", "wb") as fh:
            write_alerts_jsonl(tally.count(again.judge.iter_alerts()), fh, again.geo.lookup if again.geo else None,
                               geo_databases(again.geo))
        judge = again.judge
        # what judged this alerts.jsonl (summary.json still describes the run that read the captures)
        _write_json(target / "rejudge.json", {
            "rejudged_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "run": str(run),
            "rules": [{"path": r.path, "sha256": r.sha256, "ruleset": r.ruleset} for r in again.ruleset.sources],
            "geoip": geo_databases(again.geo),
            "flows_read": again.read.flows,
            "flow_lines_skipped": again.read.skipped_lines,
            "flows_judged": judge.flows_judged,
            "findings": judge.findings,
            "findings_waived": judge.waived_findings,
            "alerts": sum(tally.by_severity.values()),
            "alerts_by_severity": {sev: tally.by_severity[sev] for sev in SEVERITIES},
            "alerts_waived": tally.waived,
            "warnings": [*again.read.problems, *again.ruleset.warnings, *again.geo_missing],
        })
    except AuditorError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(OutputError(f"{out or run}: cannot write alerts.jsonl: {exc.strerror or exc}")) from None
    for problem in again.read.problems:
        err_console.print(f"warning: {escape(problem)}", highlight=False)
    for warning in (*again.ruleset.warnings, *again.geo_missing):
        err_console.print(f"warning: {escape(warning)}", highlight=False)
    counts = ", ".join(f"{tally.by_severity[s]} {s}" for s in reversed(SEVERITIES) if tally.by_severity[s])
    typer.echo(f"{sum(tally.by_severity.values())} alerts ({counts or 'none'}), {tally.waived} waived, from "
               f"{again.judge.flows_judged} judged of {again.read.flows} flows; wrote {target / 'alerts.jsonl'}")


@rules_app.command("explain")
def rules_explain(
    run: RunDir,
    what: Annotated[str, typer.Argument(help="An alert id (event.id), a Community ID or a flow id (auditor.flow_id).")],
    rules: RulesOption = None,
    vendors: Annotated[Path | None, typer.Option("--vendors", help="Vendor catalog.")] = None,
    geoip_country: CountryOption = None,
    geoip_asn: AsnOption = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="auditor.toml settings file.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Explain at most this many flows.")] = 5,
) -> None:
    """Say, for a flow or an alert of a finished run, which policies were tried under the current rule
    files, which selector and entries matched, and why the flow is or is not a finding."""
    import orjson

    from auditor.output.reread import read_flows
    from auditor.policy.evaluate import explain_flow

    try:
        again = _Rejudged(run, rules, vendors, (geoip_country, geoip_asn), config)
        again.run()  # routers and device flags are known only after every flow has been seen
        wanted_cids: set[str] = set()
        alerts = run / "alerts.jsonl"
        if alerts.is_file():
            with open(alerts, "rb") as fh:
                for raw in fh:
                    try:
                        doc = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        continue
                    event = doc.get("event") if isinstance(doc, dict) else None
                    if isinstance(event, dict) and event.get("id") == what:
                        ids_ = (doc.get("auditor") or {}).get("community_ids") or []
                        wanted_cids.update(c for c in ids_ if isinstance(c, str))
        shown_count = 0
        for batch in read_flows(again.flows_path):
            cids: list[str | None] = list(batch.community_id) if batch.community_id else [None] * len(batch)
            ids = batch.flow_id.tolist()
            for row in range(len(batch)):
                if cids[row] == what or cids[row] in wanted_cids or str(ids[row]) == what:
                    typer.echo(f"flow {ids[row]} ({cids[row]}):")
                    for line in explain_flow(again.judge, batch, row):
                        # names come from the wire: control characters shown as \xNN, never sent raw
                        typer.echo("  " + _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", line))
                    shown_count += 1
                    if shown_count >= limit:
                        return
    except AuditorError as exc:
        raise _fail(exc) from None
    if not shown_count:
        err_console.print(f"error: no flow or alert {escape(what)!s} in {escape(str(run))}", highlight=False)
        raise typer.Exit(2)


@rules_app.command("learn")
def rules_learn(
    captures: Annotated[list[Path], typer.Argument(help="pcap / pcapng files of normal operation.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Rule file to write (a proposal to review).")],
    severity: Annotated[str, typer.Option("--severity", help="Severity of flows the proposal does not allow.")]
    = "medium",
    ruleset: Annotated[str, typer.Option("--ruleset", help="Ruleset name of the proposal.")] = "learned",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="auditor.toml settings file.")] = None,
    local_net: Annotated[
        list[str] | None, typer.Option("--local-net", help="A CIDR that counts as local (repeat).")
    ] = None,
    vendors: Annotated[Path | None, typer.Option("--vendors", help="Vendor catalog.")] = None,
    signatures: Annotated[Path | None, typer.Option("--signatures", help="Protocol signatures.")] = None,
) -> None:
    """Propose an allow-list per device group (maker and class) from the traffic in CAPTURE files: every
    destination the group's devices started flows to, by name where the flow was named and by address
    where not, with flow counts and first/last seen in comments. Review it, then use it with --rules."""
    from collections import Counter

    from auditor.cli import _signatures
    from auditor.config import load_settings
    from auditor.devices.evidence import EvidenceTable
    from auditor.devices.oui import OuiRegistry
    from auditor.devices.table import DeviceTable
    from auditor.devices.verdicts import DeviceVerdicts
    from auditor.flows.localnet import LocalNetworks
    from auditor.names.stage import NameStage
    from auditor.paths import state_dir
    from auditor.pipeline import analyze_files, fingerprint_payloads
    from auditor.policy.learn import Learner
    from auditor.policy.load import load_rules

    try:
        settings = load_settings(config, local_networks=tuple(local_net) if local_net else None)
        catalog = _vendor_catalog(vendors)
        signature_set = _signatures(signatures, catalog)
        local = LocalNetworks(settings.local_networks)
        evidence = EvidenceTable(signature_set)
        names = NameStage()
        payloads = fingerprint_payloads(evidence, Counter(), local, names)
        devices = DeviceTable(local.contains)
        learner = Learner()
        stats = analyze_files(captures, settings, learner, payloads, devices=devices, names=names)
        for line in stats.errors:
            err_console.print(f"error: {escape(line)}", highlight=False)
        if stats.errors and not stats.frames:
            raise typer.Exit(2)
        if not learner.flows:
            err_console.print("error: nothing to learn: no flow was started by a local device", highlight=False)
            raise typer.Exit(2)
        verdicts = DeviceVerdicts(OuiRegistry.default(state_dir()), catalog, evidence)
        text = learner.proposal(verdicts, severity=severity, ruleset=ruleset, sources=[str(c) for c in captures])
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"{out}: cannot write: {exc.strerror or exc}") from exc
        checked = load_rules([out], _vocabulary(catalog))  # what we propose must load as it is
    except AuditorError as exc:
        raise _fail(exc) from None
    except ValueError as exc:  # a bad --severity or --ruleset
        err_console.print(f"error: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    for warning in stats.warnings:
        err_console.print(f"warning: {escape(warning)}", highlight=False)
    typer.echo(f"wrote {out}: {len(checked.policies)} proposed policies from {learner.flows:,} flows of "
               f"{learner.devices:,} devices; review it, then use it with --rules")
