"""The report's data model: plain frozen dataclasses built from the store for one period.

A period is half-open, [start, end), in UTC. The previous period is the one of equal length just
before it; it feeds 'gone' devices, 'new' findings and the trend. What counts as "in the period":

- a run: its capture time span overlaps the period;
- a device: one of its hourly flow rows overlaps the period, or it was first or last seen in it, or
  a run in the period changed its verdict (a device seen only by ARP in a run spanning the period's
  edges may be missed: the store keeps no per-run presence for flowless devices);
- a finding: one of its per-run rows (finding_runs) overlaps the period; its flows and bytes are the
  sum of those rows, its first/last seen are over the whole store.

A finding is "new" when no earlier recorded report listed it (auditor.store.query.earlier_reports: reports
written to a file whose period ended at or before this one's start; one ending inside this period, such as
the same morning's daily report or this period rendered again, does not count). With no earlier report
recorded it is new when it was first seen in the period. `Header.new_findings_rule` and a methodology
section say which rule applied.

The report reads one snapshot of the store (a sensor committing meanwhile is not half seen), from SQLite or
PostgreSQL alike.

Every string here is as the wire gave it: escaping is the renderer's job. Times are ISO 8601 UTC text.
"""

from __future__ import annotations

import datetime
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from auditor.errors import ConfigError
from auditor.store.query import EarlierReports, earlier_reports

if TYPE_CHECKING:
    from auditor.store.backend import StoreConnection

NS = 10**9
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
SEVERITIES = ("critical", "high", "medium", "low")
OPEN = ("new", "acknowledged")
SINCE_REPORT = "since-report"
"""`Header.new_findings_rule`: new = listed in no earlier recorded report."""
FIRST_SEEN = "first-seen"
"""`Header.new_findings_rule`: no earlier report is recorded, so new = first seen in the period."""

METHODOLOGY: tuple[tuple[str, str], ...] = (
    ("Passive observation",
     "The auditor only listens to a copy of the traffic (a SPAN or mirror port, or capture files). It sends "
     "nothing, logs in to nothing and scans nothing, so a device that stays silent during the period is not "
     "in this report."),
    ("What is judged",
     "Each flow is judged against the site's rule files (their hashes are in the header): a finding is a "
     "device talking to a destination its rules do not approve. Device identity (maker, model, firmware) comes "
     "from the MAC address's OUI and from what the device itself says on the wire (DHCP, mDNS, SSDP, ONVIF, "
     "vendor discovery protocols, TLS SNI, HTTP and RTSP headers), each with a confidence."),
    ("What is not judged",
     "Payload contents (encrypted traffic is not decrypted), traffic the mirror port does not see (other "
     "switches, Wi-Fi clients bridged elsewhere, cellular modems), and whether a listed vendor's device is "
     "lawful to operate: lists and clauses are quoted for the reader to weigh, not a legal opinion."),
    ("Name sources",
     "Destination names come from the DNS answers the device received, the TLS SNI or HTTP Host it sent, or "
     "local names (mDNS, DHCP). A destination without a name was reached by address; a name is what the device "
     "asked for, not proof of who operates the address."),
    ("GeoIP caveats",
     "Countries and autonomous systems come from the GeoIP databases whose build dates are in the header. "
     "They place the address's registration, not the server's physical location; CDNs and anycast make the "
     "country of a cloud service approximate, and addresses move between owners after a database is built."),
    ("Coverage",
     "Packets are as captured; drops are those the capture reported (unknown for capture files). Gaps are "
     "times between runs when nothing was recorded: traffic in a gap is not in this report."),
)


# --------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True, slots=True)
class Period:
    start: str
    end: str
    previous_start: str
    previous_end: str
    seconds: int


@dataclass(frozen=True, slots=True)
class RunFile:
    name: str
    sha256: str
    size_bytes: int | None
    frames: int | None


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    kind: str
    sensor: str | None
    interface: str | None
    started: str | None
    ended: str | None
    packets: int
    drops: int | None
    flows: int
    auditor_version: str | None
    files: tuple[RunFile, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    start: str
    end: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Coverage:
    runs: int
    packets: int
    drops: int | None
    """None when any run in the period did not report its drops (capture files never do)."""
    flows: int
    first: str | None
    last: str | None
    gaps: tuple[Gap, ...]


@dataclass(frozen=True, slots=True)
class RuleFile:
    path: str
    sha256: str
    ruleset: str | None


@dataclass(frozen=True, slots=True)
class Database:
    kind: str
    build_date: str | None


@dataclass(frozen=True, slots=True)
class PreviousReport:
    """The recorded report this one follows (the earlier one whose period ended last)."""

    id: int
    generated: str
    start: str
    end: str
    format: str
    out_path: str | None


@dataclass(frozen=True, slots=True)
class Header:
    title: str
    generated: str
    period: Period
    sensors: tuple[str, ...]
    runs: tuple[Run, ...]
    coverage: Coverage
    rule_files: tuple[RuleFile, ...]
    databases: tuple[Database, ...]
    new_findings_rule: str = FIRST_SEEN
    """What a finding's `new` means here: SINCE_REPORT or FIRST_SEEN (see the module docstring)."""
    previous_report: PreviousReport | None = None
    """The earlier recorded report `new` is counted against (None under FIRST_SEEN)."""
    earlier_reports: int = 0
    """How many earlier recorded reports `new` is counted against."""


@dataclass(frozen=True, slots=True)
class CountryBytes:
    country: str
    """ISO code, or '' when GeoIP did not know the address."""
    bytes_out: int
    bytes_in: int
    flows: int


@dataclass(frozen=True, slots=True)
class SeverityCount:
    severity: str
    open: int
    waived: int


@dataclass(frozen=True, slots=True)
class ListedDevices:
    new: tuple[str, ...]
    present: tuple[str, ...]
    gone: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Trend:
    findings_open: int
    findings_open_previous: int
    findings: int
    findings_previous: int
    egress_bytes: int
    egress_bytes_previous: int
    devices: int
    devices_previous: int


@dataclass(frozen=True, slots=True)
class Summary:
    devices: int
    listed: ListedDevices
    unapproved_egress: tuple[str, ...]
    """MACs of devices with an open finding to a destination outside the site."""
    findings_open: int
    findings_waived: int
    by_severity: tuple[SeverityCount, ...]
    bytes_by_country: tuple[CountryBytes, ...]
    """Outbound traffic only, most bytes sent first."""
    trend: Trend


@dataclass(frozen=True, slots=True)
class ListEntry:
    id: str
    name: str
    clause: str


@dataclass(frozen=True, slots=True)
class Device:
    mac: str
    maker: str | None
    brand: str | None
    device_class: str | None
    model: str | None
    firmware: str | None
    lists: tuple[ListEntry, ...]
    confidence: float | None
    how: str | None
    oui_organization: str | None
    ips: tuple[str, ...]
    first_seen: str
    last_seen: str
    new: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class Finding:
    alert_id: str
    device: str | None
    rule_id: str
    rule_name: str | None
    ruleset: str | None
    severity: str | None
    dst_domain: str | None
    dst_ip: str | None
    country: str | None
    asn: int | None
    services: tuple[str, ...]
    flows: int
    bytes: int
    """Flows and bytes in the period."""
    first_seen: str
    last_seen: str
    """First and last seen over the whole store."""
    status: str
    waiver_id: str | None
    new: bool
    """Listed in no earlier recorded report; with none recorded, first seen in this period (see
    Header.new_findings_rule)."""
    egress: bool
    """The destination is outside the site."""


@dataclass(frozen=True, slots=True)
class DeviceFindings:
    device: str
    maker: str | None
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Waiver:
    waiver_id: str
    alert_id: str
    device: str | None
    rule_id: str
    destination: str


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Report:
    header: Header
    summary: Summary
    devices: tuple[Device, ...]
    findings: tuple[DeviceFindings, ...]
    waivers: tuple[Waiver, ...]
    methodology: tuple[Section, ...]

    def all_findings(self) -> list[Finding]:
        """Every finding of the period, device by device."""
        return [f for group in self.findings for f in group.findings]


# ------------------------------------------------------------------------------------------ the period
def iso(ns: int | None) -> str | None:
    """Return epoch nanoseconds as ISO 8601 UTC text to the second (None stays None)."""
    if ns is None:
        return None
    return (_EPOCH + datetime.timedelta(microseconds=ns // 1_000)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(ns: int) -> str:
    text = iso(ns)
    assert text is not None
    return text


def parse_time(text: str, *, end_of_day: bool = False) -> int:
    """Return ISO 8601 date or time `text` as epoch ns (UTC when it names no zone). A bare date is its
    midnight, or the next midnight with `end_of_day` (so `--to 2026-11-02` includes that day)."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = datetime.date.fromisoformat(raw)
            when = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
            if end_of_day:
                when += datetime.timedelta(days=1)
        else:
            when = datetime.datetime.fromisoformat(raw.replace("z", "Z"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO 8601 date or time (like 2026-11-02 or 2026-11-02T09:00Z)") from None
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def parse_duration(text: str) -> int:
    """Return a duration like 7d, 24h, 2w, 90m or 30s as nanoseconds."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--since {text!r} is not a duration like 7d, 24h, 2w or 90m")
    return int(match.group(1)) * _UNIT_S[match.group(2)] * NS


def period_bounds(
    since: str | None = None, from_: str | None = None, to: str | None = None, now: str | None = None,
) -> tuple[int, int]:
    """Return the [start, end) of the report period in epoch ns: `since` before `now` (default: the
    current time), or `from_` to `to` (default: now). ConfigError on a bad or empty period."""
    now_ns = parse_time(now) if now else time.time_ns()
    if since and (from_ or to):
        raise ConfigError("give either --since or --from/--to, not both")
    if to and not from_:
        raise ConfigError("--to needs --from")
    if from_:
        start, end = parse_time(from_), parse_time(to, end_of_day=True) if to else now_ns
    else:
        end = now_ns
        start = end - parse_duration(since or "7d")
    if end <= start:
        raise ConfigError(f"the period is empty: {_iso(start)} is not before {_iso(end)}")
    return start, end


# ----------------------------------------------------------------------------------------- the builder
def _devices_present(conn: StoreConnection, start: int, end: int) -> set[str]:
    rows = conn.execute(
        "SELECT src_mac FROM flows_hourly WHERE first_ns < ? AND last_ns >= ? AND src_mac != '' "
        "UNION SELECT mac FROM devices WHERE (first_ns >= ? AND first_ns < ?) OR (last_ns >= ? AND last_ns < ?) "
        "UNION SELECT mac FROM device_history WHERE seen_ns >= ? AND seen_ns < ?",
        (end, start, start, end, start, end, start, end),
    )
    known = {str(r[0]) for r in conn.execute("SELECT mac FROM devices")}
    return {str(r[0]) for r in rows} & known


def _findings_in(conn: StoreConnection, start: int, end: int) -> dict[str, tuple[int, int]]:
    """alert_id -> (flows, bytes) of the findings active in [start, end)."""
    rows = conn.execute("SELECT alert_id, sum(flows), sum(bytes) FROM finding_runs WHERE first_ns < ? AND last_ns >= ? "
                        "GROUP BY alert_id", (end, start))
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


def _open_count(conn: StoreConnection, start: int, end: int) -> int:
    """How many of the findings active in [start, end) are open now (a subquery: no parameter list to outgrow
    SQLite's or PostgreSQL's limit on parameters)."""
    return int(conn.execute("SELECT count(*) FROM findings WHERE status IN ('new', 'acknowledged') AND alert_id IN "
                            "(SELECT alert_id FROM finding_runs WHERE first_ns < ? AND last_ns >= ?)",
                            (end, start)).fetchone()[0])


def _egress_bytes(conn: StoreConnection, start: int, end: int) -> int:
    row = conn.execute("SELECT coalesce(sum(bytes_out), 0) FROM flows_hourly WHERE direction = 'outbound' "
                       "AND first_ns < ? AND last_ns >= ?", (end, start)).fetchone()
    return int(row[0])


def _json_list(text: str | None) -> list[Any]:
    try:
        value = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


_RUN_IN_PERIOD = "coalesce(started_ns, ingested_ns) < ? AND coalesce(ended_ns, started_ns, ingested_ns) >= ?"
"""A run whose capture time span overlaps [start, end); parameters (end, start)."""


def _runs(conn: StoreConnection, start: int, end: int) -> list[Run]:
    runs = []
    for r in conn.execute(
        "SELECT id, kind, sensor, interface, started_ns, ended_ns, packets, drops, flows, auditor_version "
        f"FROM runs WHERE {_RUN_IN_PERIOD} ORDER BY coalesce(started_ns, ingested_ns), id", (end, start),
    ).fetchall():
        files = tuple(RunFile(name=f[0], sha256=f[1], size_bytes=f[2], frames=f[3]) for f in conn.execute(
            "SELECT name, sha256, size_bytes, frames FROM run_files WHERE run_id = ? ORDER BY name", (r[0],)))
        runs.append(Run(id=r[0], kind=r[1], sensor=r[2], interface=r[3], started=iso(r[4]), ended=iso(r[5]),
                        packets=r[6], drops=r[7], flows=r[8], auditor_version=r[9], files=files))
    return runs


def _coverage(conn: StoreConnection, runs: list[Run], start: int, end: int) -> Coverage:
    spans = sorted(
        (int(r[0]), int(r[1])) for r in conn.execute(
            "SELECT started_ns, ended_ns FROM runs WHERE started_ns IS NOT NULL AND ended_ns IS NOT NULL "
            "AND started_ns < ? AND ended_ns >= ?", (end, start))
    )
    gaps: list[Gap] = []
    reach: int | None = None
    for first, last in spans:
        if reach is not None and first > reach:
            gaps.append(Gap(start=_iso(reach), end=_iso(first), seconds=round((first - reach) / NS, 3)))
        reach = last if reach is None else max(reach, last)
    drops = None if any(r.drops is None for r in runs) or not runs else sum(r.drops or 0 for r in runs)
    return Coverage(
        runs=len(runs), packets=sum(r.packets for r in runs), drops=drops, flows=sum(r.flows for r in runs),
        first=iso(spans[0][0]) if spans else None, last=iso(max(s[1] for s in spans)) if spans else None,
        gaps=tuple(gaps),
    )


def _databases(conn: StoreConnection, run_ids: list[int]) -> tuple[Database, ...]:
    found: dict[tuple[str, str | None], None] = {}
    for run_id in run_ids:
        text = conn.execute("SELECT databases FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        try:
            data = orjson.loads(text or "{}")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        for geo in data.get("geoip") or ():
            if isinstance(geo, dict):
                date = geo.get("build_date")
                found[(str(geo.get("type") or "GeoIP"), None if date is None else str(date))] = None
        for key in ("oui", "oui_registry"):
            value = data.get(key)
            if isinstance(value, dict):
                date = value.get("date") or value.get("build_date")
                found[(f"OUI registry ({key})", None if date is None else str(date))] = None
            elif isinstance(value, str):
                found[(f"OUI registry ({key})", value)] = None
    return tuple(Database(kind=k, build_date=d) for k, d in sorted(found, key=lambda x: (x[0], x[1] or "")))


def _is_egress(conn: StoreConnection, dst_ip: str | None, country: str | None) -> bool:
    """Whether a destination is outside the site: the flow stage called its flows outbound (the store's
    own verdict, which knows the site's local networks), or, without flows, GeoIP placed it."""
    if not dst_ip:
        return False
    seen = conn.execute("SELECT direction FROM flows_hourly WHERE dst_ip = ? GROUP BY direction", (dst_ip,)).fetchall()
    if seen:
        return any(str(r[0]) == "outbound" for r in seen)
    return bool(country)


def _list_entries(raw: list[Any]) -> tuple[ListEntry, ...]:
    entries = []
    for item in raw:
        if isinstance(item, dict):
            entries.append(ListEntry(id=str(item.get("id") or ""), name=str(item.get("name") or item.get("id") or ""),
                                     clause=str(item.get("clause") or "")))
        elif isinstance(item, str):
            entries.append(ListEntry(id=item, name=item, clause=""))
    return tuple(entries)


def _evidence(how: str | None, oui: str | None, relabel: str | None, signals: list[str]) -> str:
    parts = []
    if how:
        parts.append(f"identified by {how}")
    if signals:
        parts.append("signals: " + ", ".join(sorted(set(signals))))
    if oui:
        parts.append(f"OUI registered to {oui}")
    if relabel:
        parts.append(relabel)
    return "; ".join(parts)


def _device_signals(conn: StoreConnection) -> dict[str, list[str]]:
    """MAC -> the device-identity evidence values the findings of that device carry (signature ids)."""
    signals: dict[str, list[str]] = {}
    for device, text in conn.execute("SELECT device, evidence FROM findings WHERE device IS NOT NULL"):
        for item in _json_list(text):
            if not (isinstance(item, dict) and item.get("field") == "source.mac" and item.get("value")):
                continue
            value = str(item["value"])
            if item.get("source") == "oui-pin":  # "<OUI block>; sig, sig": the block is in the OUI column
                if ";" not in value:
                    continue
                value = value.split(";", 1)[1]
            signals.setdefault(str(device), []).extend(v.strip() for v in value.split(",") if v.strip())
    return signals


def _severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _rule_files(conn: StoreConnection, start: int, end: int) -> tuple[RuleFile, ...]:
    return tuple(RuleFile(path=r[0], sha256=r[1], ruleset=r[2]) for r in conn.execute(
        "SELECT DISTINCT path, sha256, ruleset FROM run_rules WHERE run_id IN "
        f"(SELECT id FROM runs WHERE {_RUN_IN_PERIOD}) ORDER BY path, sha256", (end, start)))


def _new_rule(earlier: EarlierReports) -> tuple[str, PreviousReport | None, Section]:
    """The rule `new` follows, the report it is counted against, and the methodology section that says so."""
    latest = earlier.latest
    if latest is None:
        return FIRST_SEEN, None, Section(
            title="New findings",
            text="No earlier report is recorded in the store, so a finding is marked new when it was first seen in "
                 "this period. Each report written to a file is recorded; later reports mark a finding new only "
                 "when no earlier report listed it.")
    previous = PreviousReport(id=int(latest.id or 0), generated=_iso(latest.generated_ns),
                              start=_iso(latest.period_from_ns), end=_iso(latest.period_to_ns), format=latest.format,
                              out_path=latest.out_path)
    plural = "s" if earlier.count != 1 else ""
    return SINCE_REPORT, previous, Section(
        title="New findings",
        text=f"A finding is marked new when none of the {earlier.count} earlier report{plural} recorded in the store "
             f"listed it (reports whose period ended by this one's start; the latest covered {previous.start} to "
             f"{previous.end} and was generated {previous.generated}). Reports ending inside this period (a daily "
             "report, this one rendered again) do not count.")


def build_report(
    conn: StoreConnection, start_ns: int, end_ns: int, *, now_ns: int | None = None,
    title: str = "Network audit report",
) -> Report:
    """Return the report of [start_ns, end_ns) from one snapshot of the store. A period without runs (a new
    store, a sensor that was down) still gives a report, which says so: a scheduled report must not fail."""
    with conn.snapshot():
        return _build(conn, start_ns, end_ns, now_ns, title)


def _build(conn: StoreConnection, start_ns: int, end_ns: int, now_ns: int | None, title: str) -> Report:
    length = end_ns - start_ns
    prev_start, prev_end = start_ns - length, start_ns
    period = Period(start=_iso(start_ns), end=_iso(end_ns), previous_start=_iso(prev_start),
                    previous_end=_iso(prev_end), seconds=length // NS)
    runs = _runs(conn, start_ns, end_ns)
    rule, previous_report, new_section = _new_rule(earlier := earlier_reports(conn, start_ns))
    header = Header(
        title=title, generated=_iso(time.time_ns() if now_ns is None else now_ns), period=period,
        sensors=tuple(sorted({r.sensor or r.interface or f"{r.kind} (capture files)" for r in runs})),
        runs=tuple(runs), coverage=_coverage(conn, runs, start_ns, end_ns),
        rule_files=_rule_files(conn, start_ns, end_ns), databases=_databases(conn, [r.id for r in runs]),
        new_findings_rule=rule, previous_report=previous_report, earlier_reports=earlier.count,
    )

    present, previous = _devices_present(conn, start_ns, end_ns), _devices_present(conn, prev_start, prev_end)
    signals = _device_signals(conn)
    addresses: dict[str, list[str]] = {}
    for mac, ip in conn.execute("SELECT mac, ip FROM device_addresses ORDER BY mac, first_ns, ip"):
        addresses.setdefault(str(mac), []).append(str(ip))
    devices: list[Device] = []
    for d in conn.execute("SELECT mac, maker, brand, class, model, firmware, lists, confidence, how, oui_organization, "
                          "first_ns, last_ns, oem_relabel FROM devices ORDER BY mac"):
        if d[0] not in present:
            continue
        devices.append(Device(
            mac=d[0], maker=d[1], brand=d[2], device_class=d[3], model=d[4], firmware=d[5],
            lists=_list_entries(_json_list(d[6])), confidence=d[7], how=d[8], oui_organization=d[9],
            ips=tuple(addresses.get(d[0], ())), first_seen=_iso(d[10]), last_seen=_iso(d[11]),
            new=int(d[10]) >= start_ns, evidence=_evidence(d[8], d[9], d[12], signals.get(d[0], [])),
        ))
    listed_all = {str(r[0]) for r in conn.execute("SELECT mac FROM devices WHERE lists NOT IN ('[]', '')")}
    listed = ListedDevices(
        new=tuple(d.mac for d in devices if d.mac in listed_all and d.new),
        present=tuple(d.mac for d in devices if d.mac in listed_all),
        gone=tuple(sorted((previous - present) & listed_all)),
    )

    active, active_before = _findings_in(conn, start_ns, end_ns), _findings_in(conn, prev_start, prev_end)
    makers = {d.mac: d.maker for d in devices}
    makers.update({str(r[0]): r[1] for r in conn.execute("SELECT mac, maker FROM devices") if r[0] not in makers})
    findings: list[Finding] = []
    for f in conn.execute("SELECT alert_id, device, rule_id, rule_name, ruleset, severity, dst_domain, dst_ip, "
                          "country, asn, services, first_ns, last_ns, status, waiver_id FROM findings "
                          "ORDER BY alert_id"):
        if f[0] not in active:
            continue
        flows, nbytes = active[f[0]]
        findings.append(Finding(
            alert_id=f[0], device=f[1], rule_id=f[2], rule_name=f[3], ruleset=f[4], severity=f[5], dst_domain=f[6],
            dst_ip=f[7], country=f[8], asn=f[9], services=tuple(str(s) for s in _json_list(f[10])), flows=flows,
            bytes=nbytes, first_seen=_iso(f[11]), last_seen=_iso(f[12]), status=f[13], waiver_id=f[14],
            new=f[0] not in earlier.alert_ids if rule == SINCE_REPORT else int(f[11]) >= start_ns,
            egress=_is_egress(conn, f[7], f[8]),
        ))
    findings.sort(key=lambda f: (f.device or "", _severity_rank(f.severity), -f.bytes, f.alert_id))
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding.device or "", []).append(finding)
    open_findings = [f for f in findings if f.status in OPEN]

    severities = sorted({f.severity or "unknown" for f in findings} | set(SEVERITIES),
                        key=lambda s: (_severity_rank(s), s))
    by_severity = tuple(SeverityCount(
        severity=s, open=sum(1 for f in open_findings if (f.severity or "unknown") == s),
        waived=sum(1 for f in findings if f.status == "waived" and (f.severity or "unknown") == s),
    ) for s in severities)
    countries = tuple(CountryBytes(country=str(r[0]), bytes_out=int(r[1]), bytes_in=int(r[2]), flows=int(r[3]))
                      for r in conn.execute(
        "SELECT country, sum(bytes_out), sum(bytes_in), sum(flows) FROM flows_hourly WHERE direction = 'outbound' "
        "AND first_ns < ? AND last_ns >= ? GROUP BY country ORDER BY sum(bytes_out) DESC, country",
        (end_ns, start_ns)))
    summary = Summary(
        devices=len(devices), listed=listed,
        unapproved_egress=tuple(sorted({f.device for f in open_findings if f.egress and f.device})),
        findings_open=len(open_findings), findings_waived=sum(1 for f in findings if f.status == "waived"),
        by_severity=by_severity, bytes_by_country=countries,
        trend=Trend(
            findings_open=len(open_findings), findings_open_previous=_open_count(conn, prev_start, prev_end),
            findings=len(findings), findings_previous=len(active_before),
            egress_bytes=_egress_bytes(conn, start_ns, end_ns), egress_bytes_previous=_egress_bytes(conn, prev_start,
                                                                                                    prev_end),
            devices=len(devices), devices_previous=len(previous),
        ),
    )
    waivers = tuple(Waiver(waiver_id=f.waiver_id or "", alert_id=f.alert_id, device=f.device, rule_id=f.rule_id,
                           destination=" ".join(x for x in (f.dst_domain, f.dst_ip) if x) + (
                               f" ({', '.join(f.services)})" if f.services else ""))
                    for f in findings if f.status == "waived")
    return Report(
        header=header, summary=summary, devices=tuple(devices),
        findings=tuple(DeviceFindings(device=mac, maker=makers.get(mac), findings=tuple(group))
                       for mac, group in groups.items()),
        waivers=waivers, methodology=(*(Section(title=t, text=x) for t, x in METHODOLOGY), new_section),
    )
