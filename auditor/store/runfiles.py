"""Read the files an `auditor analyze --out DIR` run wrote (summary.json, devices.json, flows.jsonl,
alerts.jsonl) as plain rows for the store. flows.jsonl is streamed in batches, never loaded whole.

The files are our own output but may have been edited or cut: a line or entry that is not what we
wrote is counted and skipped, never a crash. Only a missing or unreadable summary.json (the run is
not there at all) is an error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from auditor.errors import ConfigError
from auditor.output.reread import to_ns

logger = logging.getLogger(__name__)

BATCH = 20_000
"""Flow lines aggregated per batch: bounds memory whatever the size of flows.jsonl."""
MAX_PROBLEMS = 5
_Row = TypeVar("_Row")
_BAD_LINE = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, OverflowError)


@dataclass(slots=True)
class ReadStats:
    """What reading a run's files gave."""

    flows: int = 0
    alerts: int = 0
    devices: int = 0
    skipped_lines: int = 0
    """Lines of flows.jsonl / alerts.jsonl and entries of devices.json that were not what we write."""
    problems: list[str] = field(default_factory=list)
    """The first few bad lines, as 'file:line: why'."""

    def skip(self, where: str, exc: BaseException) -> None:
        self.skipped_lines += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: skipped ({type(exc).__name__}: {exc})")


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The parts of summary.json the store keeps."""

    files: tuple[tuple[str, int | None, int | None], ...]
    """(name as given to analyze, bytes, frames) of each capture file."""
    packets: int
    drops: int | None
    rules: tuple[tuple[str, str, str | None], ...]
    """(path, sha256, ruleset) of each rule file."""
    databases: dict[str, Any]
    """GeoIP (type, build date) and OUI registry dates, as JSON-able data."""
    auditor_version: str | None
    sensor: str | None
    interface: str | None
    counters: dict[str, Any]
    """The whole summary.json, for coverage figures in reports."""


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device of devices.json."""

    mac: str
    first_ns: int
    last_ns: int
    ips: tuple[tuple[str, int, int], ...]
    oui_organization: str | None
    vendor_id: str | None
    maker: str | None
    brand: str | None
    device_class: str | None
    model: str | None
    firmware: str | None
    confidence: float | None
    how: str | None
    oem_relabel: str | None
    lists: list[Any]


# not frozen, never mutated: one is built per flow line (a frozen __init__ costs ~10x)
@dataclass(slots=True)
class FlowRow:
    """One flow of flows.jsonl, reduced to the columns of flows_hourly."""

    start_ns: int
    end_ns: int
    src_mac: str
    src_ip: str
    dst_ip: str
    dst_domain: str
    country: str
    asn: int
    protocol: int
    port: int
    direction: str
    bytes_out: int
    bytes_in: int
    packets_out: int
    packets_in: int


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert of alerts.jsonl."""

    alert_id: str
    rule_id: str
    rule_name: str | None
    ruleset: str | None
    severity: str | None
    device: str | None
    src_ip: str | None
    dst_ip: str | None
    dst_domain: str | None
    country: str | None
    asn: int | None
    services: list[Any]
    first_ns: int
    last_ns: int
    flows: int
    bytes: int
    waived: bool
    waiver_id: str | None
    community_ids: list[Any]
    evidence: list[Any]


def file_sha256(path: Path) -> str:
    """Return the sha256 of a file, read in chunks (captures can be many GB)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)  # type: ignore[call-overload]


def read_summary(out_dir: Path) -> RunSummary:
    """Return what the store keeps of OUT_DIR/summary.json; ConfigError when it is missing or not JSON."""
    path = out_dir / "summary.json"
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable run summary ({exc}); is {out_dir} an `auditor analyze --out` "
                          "folder?") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a run summary (a JSON object)")
    files = []
    for entry in data.get("files") or ():
        if isinstance(entry, dict) and entry.get("name"):
            files.append((str(entry["name"]), _opt_int(entry.get("bytes")), _opt_int(entry.get("frames"))))
    rules = []
    for entry in data.get("rules") or ():
        if isinstance(entry, dict) and entry.get("path") and entry.get("sha256"):
            rules.append((str(entry["path"]), str(entry["sha256"]), _opt_str(entry.get("ruleset"))))
    geoip = [{"type": g.get("database_type"), "build_date": g.get("build_date"), "path": g.get("path")}
             for g in data.get("geoip") or () if isinstance(g, dict)]
    databases: dict[str, Any] = {"geoip": geoip}
    for key in ("oui", "oui_registry", "vendor_catalog"):
        if data.get(key) is not None:
            databases[key] = data[key]
    return RunSummary(
        files=tuple(files), packets=int(data.get("packets") or 0), drops=_opt_int(data.get("drops")),
        rules=tuple(rules), databases=databases, auditor_version=_opt_str(data.get("auditor_version")),
        sensor=_opt_str(data.get("sensor")), interface=_opt_str(data.get("interface")), counters=data,
    )


def read_devices(path: Path, stats: ReadStats) -> list[DeviceRow]:
    """Return the devices of a devices.json (a bad entry is counted and skipped; no file means none)."""
    if not path.exists():
        return []
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        stats.skip(str(path), exc)
        return []
    devices = data.get("devices") if isinstance(data, dict) else None
    rows: list[DeviceRow] = []
    for number, device in enumerate(devices if isinstance(devices, list) else (), 1):
        try:
            rows.append(_device_row(device))
        except _BAD_LINE as exc:
            stats.skip(f"{path}: device {number}", exc)
    stats.devices += len(rows)
    return rows


def _device_row(device: dict[str, Any]) -> DeviceRow:
    ips = tuple((str(a["ip"]), to_ns(a["first_seen"]), to_ns(a["last_seen"])) for a in device.get("ips") or ())
    v = device.get("vendor") or {}
    oui = device.get("oui") or {}
    confidence = v.get("confidence")
    return DeviceRow(
        mac=str(device["mac"]).upper(), first_ns=to_ns(device["first_seen"]), last_ns=to_ns(device["last_seen"]),
        ips=ips, oui_organization=_opt_str(oui.get("organization")), vendor_id=_opt_str(v.get("id")),
        maker=_opt_str(v.get("name")), brand=_opt_str(v.get("brand")), device_class=_opt_str(v.get("class")),
        model=_opt_str(v.get("model")), firmware=_opt_str(v.get("firmware")),
        confidence=None if confidence is None else float(confidence), how=_opt_str(v.get("how")),
        oem_relabel=_opt_str(v.get("oem_relabel")), lists=list(v.get("lists") or ()),
    )


def iter_flows(path: Path, stats: ReadStats, batch: int = BATCH) -> Iterator[list[FlowRow]]:
    """Yield the flows of a flows.jsonl in lists of at most `batch` (no file means no flows)."""
    if not path.exists():
        return
    rows: list[FlowRow] = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            row = read_row(line, flow_row, stats, f"{path}:{number}")
            if row is None:
                continue
            rows.append(row)
            if len(rows) >= batch:
                stats.flows += len(rows)
                yield rows
                rows = []
    if rows:
        stats.flows += len(rows)
        yield rows


def flow_row(doc: dict[str, Any]) -> FlowRow:
    """Return the store's row of one ECS flow document (KeyError/TypeError/ValueError when it is not one)."""
    src, dst, net, event = doc["source"], doc["destination"], doc["network"], doc["event"]
    geo, asys = dst.get("geo") or {}, dst.get("as") or {}
    row = FlowRow(
        start_ns=to_ns(event["start"]), end_ns=to_ns(event["end"]), src_mac=str(src.get("mac") or "").upper(),
        src_ip=str(src["ip"]), dst_ip=str(dst["ip"]), dst_domain=str(dst.get("domain") or ""),
        country=str(geo.get("country_iso_code") or ""), asn=int(asys.get("number") or 0),
        protocol=int(net["iana_number"]), port=int(dst.get("port") or 0), direction=str(net.get("direction") or ""),
        bytes_out=int(src.get("bytes") or 0), bytes_in=int(dst.get("bytes") or 0),
        packets_out=int(src.get("packets") or 0), packets_in=int(dst.get("packets") or 0),
    )
    if min(row.bytes_out, row.bytes_in, row.packets_out, row.packets_in, row.asn, row.port, row.protocol) < 0:
        raise ValueError("negative count")
    if max(row.bytes_out, row.bytes_in, row.packets_out, row.packets_in) >= 2**62:
        raise ValueError("count out of range")  # SQLite integers are 64-bit signed; sums must not overflow
    return row


def iter_alerts(path: Path, stats: ReadStats) -> Iterator[AlertRow]:
    """Yield the alerts of an alerts.jsonl, waived ones included (no file means no alerts)."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        yield from alert_lines(fh, str(path), stats)


def alert_lines(fh: IO[bytes], name: str, stats: ReadStats) -> Iterator[AlertRow]:
    """Yield the alerts of an alerts JSONL file already open (damaged lines counted in stats)."""
    for number, line in enumerate(fh, 1):
        row = read_row(line, alert_row, stats, f"{name}:{number}")
        if row is not None:
            stats.alerts += 1
            yield row


def read_row(line: bytes, make: Callable[[dict[str, Any]], _Row], stats: ReadStats, where: str) -> _Row | None:
    """Return make() of one JSON line; None for a blank line, or a damaged one (counted in stats at `where`)."""
    if not line.strip():
        return None
    try:
        return make(orjson.loads(line))
    except _BAD_LINE as exc:
        stats.skip(where, exc)
        return None


def alert_row(doc: dict[str, Any]) -> AlertRow:
    """Return the store's row of one ECS alert document (KeyError/TypeError/ValueError when it is not one)."""
    event, rule, aud = doc["event"], doc["rule"], doc.get("auditor") or {}
    src, dst = doc.get("source") or {}, doc.get("destination") or {}
    geo, asys = dst.get("geo") or {}, dst.get("as") or {}
    device = (doc.get("device") or {}).get("id") or src.get("mac")
    start = event.get("start") or doc["@timestamp"]
    return AlertRow(
        alert_id=str(event["id"]), rule_id=str(rule["id"]), rule_name=_opt_str(rule.get("name")),
        ruleset=_opt_str(rule.get("ruleset")), severity=_opt_str(aud.get("severity")),
        device=None if device is None else str(device).upper(), src_ip=_opt_str(src.get("ip")),
        dst_ip=_opt_str(dst.get("ip")), dst_domain=_opt_str(dst.get("domain")),
        country=_opt_str(geo.get("country_iso_code")), asn=_opt_int(asys.get("number")),
        services=list(aud.get("services") or ()), first_ns=to_ns(start), last_ns=to_ns(event.get("end") or start),
        flows=int(aud.get("flows") or 0), bytes=int((doc.get("network") or {}).get("bytes") or 0),
        waived=aud.get("status") == "waived", waiver_id=_opt_str(aud.get("waiver")),
        community_ids=list(aud.get("community_ids") or ()), evidence=list(aud.get("evidence") or ()),
    )
