"""Read a run's outputs back: flows.jsonl as flow columns and devices.json as verdicts, so rule files
can be changed and the run judged again without re-reading its captures (`auditor rules rejudge`,
`auditor rules explain`). Streaming: flows come back in batches, never all at once.

The files are our own output but may have been edited or cut: a line that is not a flow document
is counted and skipped, never a crash.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from auditor.devices.types import ListEntry, VendorVerdict
from auditor.errors import ConfigError
from auditor.flows.types import DIRECTION_NAMES, END_REASONS, FlowRecords
from auditor.names.types import NAME_SOURCES, address_key
from auditor.output.ecs import TCP_FLAG_LETTERS

BATCH = 50_000
NO_VLAN = 0xFFFF
_DIRECTIONS = {name: i for i, name in enumerate(DIRECTION_NAMES)}
_ENDS = {name: i for i, name in enumerate(END_REASONS)}
_SOURCES = {name: i for i, name in enumerate(NAME_SOURCES)}
_FLAG_BITS = {letter: 1 << bit for bit, letter in enumerate(TCP_FLAG_LETTERS)}
_INT_COLUMNS = {
    "flow_id": np.uint64, "ip_version": np.uint8, "ip_proto": np.uint8, "src_hi": np.uint64, "src_lo": np.uint64,
    "dst_hi": np.uint64, "dst_lo": np.uint64, "src_port": np.uint16, "dst_port": np.uint16,
    "vlan_outer": np.uint16, "vlan_inner": np.uint16, "src_mac": np.uint64, "dst_mac": np.uint64,
    "src_packets": np.uint64, "dst_packets": np.uint64, "src_bytes": np.uint64, "dst_bytes": np.uint64,
    "src_tcp_flags": np.uint8, "dst_tcp_flags": np.uint8, "first_ns": np.int64, "last_ns": np.int64,
    "end_reason": np.uint8, "direction": np.uint8, "name_source": np.uint8,
}


@dataclass(slots=True)
class ReadStats:
    """What reading a run's files gave."""

    flows: int = 0
    skipped_lines: int = 0
    problems: list[str] = field(default_factory=list)
    """The first few bad lines, as 'file:line: why'."""


def read_flows(path: Path, stats: ReadStats | None = None, batch: int = BATCH) -> Iterator[FlowRecords]:
    """Yield the flows of a flows.jsonl in batches of `batch`, with their names and Community IDs."""
    stats = stats if stats is not None else ReadStats()
    rows: list[tuple[Any, ...]] = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(_checked(_flow_row(orjson.loads(line))))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                stats.skipped_lines += 1
                if len(stats.problems) < 5:
                    stats.problems.append(f"{path}:{number}: not a flow document ({type(exc).__name__}: {exc})")
                continue
            if len(rows) >= batch:
                stats.flows += len(rows)
                yield _records(rows)
                rows = []
    if rows:
        stats.flows += len(rows)
        yield _records(rows)


def _flow_row(doc: dict[str, Any]) -> tuple[Any, ...]:
    src, dst, net, aud, event = doc["source"], doc["destination"], doc["network"], doc["auditor"], doc["event"]
    s_ver, s_hi, s_lo = address_key(src["ip"])
    d_ver, d_hi, d_lo = address_key(dst["ip"])
    flags = aud.get("tcp_flags") or {}
    vlan = net.get("vlan", {}).get("id")
    inner = net.get("inner", {}).get("vlan", {}).get("id")
    name = dst.get("domain") or src.get("domain")
    return (
        int(aud["flow_id"]), s_ver, int(net["iana_number"]), s_hi, s_lo, d_hi, d_lo,
        int(src.get("port", 0)), int(dst.get("port", 0)),
        int(vlan) if vlan is not None else NO_VLAN, int(inner) if inner is not None else NO_VLAN,
        _mac(src.get("mac")), _mac(dst.get("mac")),
        int(src["packets"]), int(dst["packets"]), int(src["bytes"]), int(dst["bytes"]),
        _flags(flags.get("source", "")), _flags(flags.get("destination", "")),
        to_ns(event["start"]), to_ns(event["end"]), _ENDS[aud["end_reason"]], _DIRECTIONS[net["direction"]],
        _SOURCES.get(aud.get("name_source", "none"), 0),
        str(name) if name else None, aud.get("dns_name"), net.get("community_id"),
    ) if s_ver == d_ver else _mixed()


_LIMITS = [(0, 2**64 - 1), (4, 6), (0, 255)] + [(0, 2**64 - 1)] * 4 + [(0, 65535)] * 4 + [(0, 2**48 - 1)] * 2 \
    + [(0, 2**63 - 1)] * 4 + [(0, 255)] * 2 + [(-(2**62), 2**62)] * 2 + [(0, 255)] * 3
"""Allowed range of each integer column of a row, in _INT_COLUMNS order (what the numpy dtypes hold)."""


def _checked(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse a row whose numbers do not fit their columns (a hand-edited or corrupted line)."""
    for value, (low, high) in zip(row, _LIMITS, strict=False):
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low}..{high})")
    return row


def _mixed() -> tuple[Any, ...]:
    raise ValueError("source and destination are of different IP versions")


def _records(rows: list[tuple[Any, ...]]) -> FlowRecords:
    columns = list(zip(*rows, strict=True))
    names = list(_INT_COLUMNS)
    values: dict[str, Any] = {name: np.array(columns[i], dtype=_INT_COLUMNS[name]) for i, name in enumerate(names)}
    values["domain"] = list(columns[len(names)])
    values["name_mismatch"] = list(columns[len(names) + 1])
    cids = columns[len(names) + 2]
    values["community_id"] = None if any(c is None for c in cids) else list(cids)
    return FlowRecords(**values)


def _mac(text: str | None) -> int:
    return int(text.replace("-", "").replace(":", ""), 16) if text else 0


def _flags(letters: str) -> int:
    return sum(_FLAG_BITS[c] for c in set(letters))


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_SECONDS: dict[str, int] = {}
"""Epoch seconds of the 'YYYY-MM-DDTHH:MM:SS' heads seen (the flows of one second share theirs)."""
MAX_REMEMBERED_SECONDS = 100_000


def to_ns(text: str) -> int:
    """Return ISO 8601 time `text` (UTC when it names no zone) as integer nanoseconds since the epoch:
    the inverse of the outputs' times (microseconds, so exact for them)."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z":  # the outputs' own form: a per-second cache
        fraction = text[20:26]
        if fraction.isascii() and fraction.isdigit():
            head = text[:19]
            seconds = _SECONDS.get(head)
            if seconds is None:
                if len(_SECONDS) >= MAX_REMEMBERED_SECONDS:
                    _SECONDS.clear()
                seconds = _SECONDS[head] = _parse_ns(head + "Z") // 10**9
            return seconds * 10**9 + int(fraction) * 1_000
    return _parse_ns(text)


def _parse_ns(text: str) -> int:
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


@dataclass(frozen=True, slots=True)
class StoredDevices:
    """Each MAC's verdict, announced MUD URL and stated facts, as a run's devices.json recorded them."""

    verdicts: dict[int, VendorVerdict]
    mud_urls: dict[int, str]
    facts: dict[int, list[tuple[str, str, str, int]]]
    """Per MAC: (protocol, field, value, first seen ns) of every fact it stated (`observed`), so its
    verdict can be made again under the current catalog, signatures and pins."""

    def verdict_of(self, mac: int) -> VendorVerdict | None:
        return self.verdicts.get(mac)

    def mud_url_of(self, mac: int) -> str | None:
        return self.mud_urls.get(mac)


def read_devices(path: Path) -> StoredDevices:
    """Return the verdicts of a devices.json (a bad entry is skipped); ConfigError for a file that is
    not one at all (cut, or not JSON)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable devices.json: {exc}") from None
    verdicts: dict[int, VendorVerdict] = {}
    mud_urls: dict[int, str] = {}
    facts: dict[int, list[tuple[str, str, str, int]]] = {}
    for device in data.get("devices", []) if isinstance(data, dict) else []:
        try:
            mac = _mac(device["mac"])
            for fact in device.get("observed") or ():
                protocol, field_, value = str(fact["protocol"]), str(fact["field"]), str(fact["value"])
                facts.setdefault(mac, []).append((protocol, field_, value, to_ns(fact["first_seen"])))
                if field_ == "mud_url" and protocol in ("dhcp", "dhcp6"):
                    mud_urls[mac] = value
            v = device.get("vendor")
            if v:
                verdicts[mac] = VendorVerdict(
                    vendor_id=v.get("id"), name=v.get("name"), device_class=v.get("class") or "unknown",
                    how=v.get("how") or "stored", detail="as recorded in devices.json",
                    confidence=float(v.get("confidence") or 0.0),
                    lists=tuple(ListEntry(e["id"], e.get("name", e["id"]), e.get("clause", ""), e.get("since") or "",
                                          e.get("note")) for e in v.get("lists") or ()),
                    parents=tuple(v.get("parents") or ()), brand=v.get("brand"), model=v.get("model"),
                    firmware=v.get("firmware"), relabel=v.get("oem_relabel"),
                )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return StoredDevices(verdicts, mud_urls, facts)
