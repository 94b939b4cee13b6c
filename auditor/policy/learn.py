"""Propose an allow-list per device group from observed traffic (`auditor rules learn`).

A Learner is a flow sink: it sums the flows each device started (the flows PolicyJudge judges:
initiator local, i.e. direction outbound or internal, plus midstream inbound TCP seen from its
local side) per device x destination key, within fixed limits. `proposal()` then groups devices
by their verdict (vendor, class) and writes a rule file whose policies approve exactly what each
group did, so that checking the same traffic against it gives no findings, and anything new does.

A destination key is
  - the flow's name (TLS/QUIC SNI, HTTP Host or the client's DNS answer) + protocol + port;
  - else the destination address (/32 or /128) + protocol + port, marked "never named" when the
    destination is remote, so that a reviewer looks at it before approving it.
A name that a rule's `domains` cannot match as written (not a valid domain, a wildcard-looking
'*.x' or '.x', international text) is kept by address, with the name in the entry's comment.

Names come from the wire: every scalar written is quoted by yaml.safe_dump, and comments are
cleaned of control characters, so no name can change the file's structure.

Not modelled: PolicyJudge treats a MAC that sends from several local addresses as a router and
judges its flows by source address; the learner keeps them under the MAC. Under a proposal such
flows are then not selected by the MAC's policy (no finding) rather than judged wrongly.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import get_args

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import TypeAdapter, ValidationError

from auditor.devices.types import DeviceClass, VendorVerdict
from auditor.flows.types import (
    DIRECTION_INTERNAL,
    PORTED_PROTOCOLS,
    TRANSPORT_NAMES,
    FlowRecords,
    ip_text,
)
from auditor.names.types import SOURCE_DNS, SOURCE_HTTP_HOST, SOURCE_QUIC, SOURCE_SNI
from auditor.policy.evaluate import site_started
from auditor.policy.schema import PROTOCOL_NUMBERS, Domain
from auditor.policy.types import SEVERITIES

logger = logging.getLogger(__name__)

DEFAULT_MAX_DEVICES = 10_000
DEFAULT_MAX_DESTINATIONS_PER_DEVICE = 256
DEFAULT_MAX_ENTRIES_PER_POLICY = 200
MAX_NAMES_IN_COMMENT = 5
"""Names shown in the comment of an entry kept by address because its names cannot be rules' domains."""
MAX_REMEMBERED_NAMES = 100_000
"""Distinct wire names whose rule spelling is remembered across batches (then the memory starts over)."""

NAMED_SOURCES = np.array([SOURCE_SNI, SOURCE_QUIC, SOURCE_HTTP_HOST, SOURCE_DNS], dtype=np.uint8)
"""Name sources that name a destination a flow was meant for (DHCP and mDNS name local hosts)."""

# Kinds of destination key, in the order entries are written.
KIND_DOMAIN, KIND_LOCAL, KIND_REMOTE, KIND_BAD_NAME = range(4)
NEVER_NAMED = "never named (no DNS answer, SNI or Host): find out what this is before approving it"
DEVICE_CLASSES: frozenset[str] = frozenset(get_args(DeviceClass))

_PORTED = np.zeros(256, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True
_KEY = np.dtype([
    ("mac", np.uint64), ("dev_version", np.uint8), ("dev_hi", np.uint64), ("dev_lo", np.uint64),
    ("kind", np.uint8), ("proto", np.uint8), ("port", np.uint16),
    ("dst_version", np.uint8), ("dst_hi", np.uint64), ("dst_lo", np.uint64), ("name", np.int64),
])
_DOMAIN: TypeAdapter[str] = TypeAdapter(Domain)
_ID_CHARS = re.compile(r"[^a-z0-9]+")

DeviceKey = tuple[int, int, int, int]
"""(mac, version, hi, lo): the initiator MAC, or 0 and its source address when the flow had no MAC."""
DestinationKey = tuple[int, int, int, int, int, int, str]
"""(kind, protocol, port, version, hi, lo, name): address fields are 0 for KIND_DOMAIN, name '' unless named."""


@dataclass(slots=True)
class _Tally:
    flows: int
    bytes: int
    first_ns: int
    last_ns: int


@dataclass(slots=True)
class _Entry:
    """One proposed allow entry: destinations of one kind, protocol and port, summed over a group."""

    kind: int
    proto: int
    port: int
    values: set[str] = field(default_factory=set)
    """Domains, or networks ('192.0.2.1/32')."""
    names: set[str] = field(default_factory=set)
    """KIND_BAD_NAME: the wire names that could not be written as domains."""
    devices: set[DeviceKey] = field(default_factory=set)
    flows: int = 0
    bytes: int = 0
    first_ns: int = 2**63 - 1
    last_ns: int = -(2**63)

    def add(self, device: DeviceKey, tally: _Tally) -> None:
        self.first_ns = min(self.first_ns, tally.first_ns)
        self.last_ns = max(self.last_ns, tally.last_ns)
        self.flows += tally.flows
        self.bytes += tally.bytes
        self.devices.add(device)


@dataclass(slots=True)
class _Group:
    """Devices that one policy will select: the same verdict (vendor, class), or listed one by one."""

    vendor_id: str | None
    device_class: str | None
    order: tuple[int, ...]
    label: str
    devices: list[DeviceKey] = field(default_factory=list)


class Learner:
    """A flow sink: call it with each batch of finished (named) flows; bounded memory."""

    def __init__(self, max_devices: int = DEFAULT_MAX_DEVICES,
                 max_destinations_per_device: int = DEFAULT_MAX_DESTINATIONS_PER_DEVICE) -> None:
        if max_devices < 1 or max_destinations_per_device < 1:
            raise ValueError("max_devices and max_destinations_per_device must be at least 1")
        self.max_devices = max_devices
        self.max_destinations_per_device = max_destinations_per_device
        self._devices: dict[DeviceKey, dict[DestinationKey, _Tally]] = {}
        self._overflow: dict[DeviceKey, int] = {}
        """Per device: flows to destinations beyond max_destinations_per_device (left out)."""
        self._rule_names: dict[str, str | None] = {}
        self.flows = 0
        """Flows learnt (summed into some device's destinations)."""
        self.dropped_device_flows = 0
        """Flows of devices beyond the first max_devices (left out)."""
        self.dropped_destination_flows = 0
        """Flows to destinations beyond a device's first max_destinations_per_device (left out)."""

    @property
    def devices(self) -> int:
        """Devices learnt."""
        return len(self._devices)

    def __call__(self, flows: FlowRecords) -> None:
        """Sum the flows that site devices started (those PolicyJudge judges) per device x destination."""
        if not len(flows):
            return
        for started, rows in site_started(flows):  # exactly the flows PolicyJudge judges
            self._add(started, rows)

    def _rule_name(self, name: str) -> str | None:
        """Return how rules spell `name` so that its policy matches it exactly, or None when they cannot."""
        if name in self._rule_names:
            return self._rule_names[name]
        wanted = name.lower().rstrip(".")
        spelled: str | None
        try:
            spelled = _DOMAIN.validate_python(name)
        except ValidationError:
            spelled = None
        # '.x' and '*.x' are patterns in a rule (x and everything under it): a wire name must never widen one
        if spelled is None or spelled != wanted or spelled.startswith((".", "*")):
            spelled = None
        if len(self._rule_names) >= MAX_REMEMBERED_NAMES:
            self._rule_names.clear()
        self._rule_names[name] = spelled
        return spelled

    def _add(self, flows: FlowRecords, rows: NDArray[np.intp]) -> None:
        n = int(rows.size)
        if not n:
            return
        key = np.zeros(n, dtype=_KEY)
        mac = flows.src_mac[rows]
        version = flows.ip_version[rows]
        no_mac = mac == 0  # without a MAC the device is its source address
        key["mac"] = mac
        key["dev_version"] = np.where(no_mac, version, 0)
        key["dev_hi"] = np.where(no_mac, flows.src_hi[rows], 0)
        key["dev_lo"] = np.where(no_mac, flows.src_lo[rows], 0)
        proto = flows.ip_proto[rows]
        key["proto"] = proto
        key["port"] = np.where(_PORTED[proto], flows.dst_port[rows], 0)
        key["kind"] = np.where(flows.direction[rows] == DIRECTION_INTERNAL, KIND_LOCAL, KIND_REMOTE)
        key["dst_version"], key["dst_hi"], key["dst_lo"] = version, flows.dst_hi[rows], flows.dst_lo[rows]
        names: list[str] = [""]  # index 0: no name
        if flows.domain is not None and flows.name_source is not None:
            named = np.flatnonzero(np.isin(flows.name_source[rows], NAMED_SOURCES))
            index: dict[str, int] = {}
            name_ids = np.zeros(named.size, dtype=np.int64)
            kinds = key["kind"][named]
            domain = flows.domain
            for i, row in enumerate(rows[named].tolist()):
                wire = domain[row]
                if not wire:
                    continue
                spelled = self._rule_name(wire)
                text = spelled if spelled is not None else wire
                at = index.get(text)
                if at is None:
                    at = index[text] = len(names)
                    names.append(text)
                name_ids[i] = at
                kinds[i] = KIND_DOMAIN if spelled is not None else KIND_BAD_NAME
            key["name"][named] = name_ids
            key["kind"][named] = kinds
            by_name = named[kinds == KIND_DOMAIN]  # one key per name, whatever address it resolved to
            key["dst_version"][by_name] = 0
            key["dst_hi"][by_name] = 0
            key["dst_lo"][by_name] = 0
        unique, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.ravel()
        count = np.bincount(inverse, minlength=unique.size)
        total = np.zeros(unique.size, dtype=np.uint64)
        np.add.at(total, inverse, flows.src_bytes[rows] + flows.dst_bytes[rows])
        first = np.full(unique.size, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inverse, flows.first_ns[rows])
        last = np.full(unique.size, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, inverse, flows.last_ns[rows])
        columns = {name: unique[name].tolist() for name in _KEY.names or ()}
        for i, (flows_i, bytes_i, first_i, last_i) in enumerate(
                zip(count.tolist(), total.tolist(), first.tolist(), last.tolist(), strict=True)):
            device: DeviceKey = (columns["mac"][i], columns["dev_version"][i], columns["dev_hi"][i],
                              columns["dev_lo"][i])
            tallies = self._devices.get(device)
            if tallies is None:
                if len(self._devices) >= self.max_devices:
                    self.dropped_device_flows += flows_i
                    continue
                tallies = self._devices[device] = {}
            destination: DestinationKey = (
                columns["kind"][i], columns["proto"][i], columns["port"][i], columns["dst_version"][i],
                columns["dst_hi"][i], columns["dst_lo"][i], names[columns["name"][i]])
            tally = tallies.get(destination)
            if tally is None:
                if len(tallies) >= self.max_destinations_per_device:
                    self.dropped_destination_flows += flows_i
                    self._overflow[device] = self._overflow.get(device, 0) + flows_i
                    continue
                tallies[destination] = _Tally(flows_i, bytes_i, first_i, last_i)
            else:
                tally.flows += flows_i
                tally.bytes += bytes_i
                tally.first_ns = min(tally.first_ns, first_i)
                tally.last_ns = max(tally.last_ns, last_i)
            self.flows += flows_i

    def proposal(
        self,
        verdict_of: Callable[[int], VendorVerdict | None],
        *,
        severity: str = "medium",
        ruleset: str = "learned",
        sources: Sequence[str] = (),
        max_entries_per_policy: int = DEFAULT_MAX_ENTRIES_PER_POLICY,
        generated: datetime.datetime | None = None,
    ) -> str:
        """Return a rule file (YAML text) with one policy per device group approving what it was seen doing.

        `sources` names what was learnt from (capture files); `generated` (default: now) is the date
        written in the header. ValueError for a severity or ruleset a rule file cannot hold.
        """
        if severity not in SEVERITIES:
            raise ValueError(f"{severity!r} is not a severity (one of {', '.join(SEVERITIES)})")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", ruleset):
            raise ValueError(f"{ruleset!r} is not a ruleset id (lower-case letters, digits and '-')")
        if max_entries_per_policy < 1:
            raise ValueError("max_entries_per_policy must be at least 1")
        when = (generated or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
        where = _sources_text(sources)
        lines = [
            "# PROPOSED allow-list: review before use. Generated by `auditor rules learn`",
            f"# on {when.strftime('%Y-%m-%dT%H:%M:%SZ')} from {_comment(where)}.",
            "# Each policy approves everything its devices were seen doing, including anything they should",
            "# not do: check every entry (above all those marked 'never named'), then remove this header.",
            f"# Learnt: {_count(self.flows, 'flow')} of {_count(len(self._devices), 'device')}.",
        ]
        if self.dropped_device_flows:
            lines.append(f"# Left out: {self.dropped_device_flows} flows of devices beyond the first "
                         f"{self.max_devices} (max_devices).")
        if self.dropped_destination_flows:
            lines.append(f"# Left out: {self.dropped_destination_flows} flows to destinations beyond a device's "
                         f"first {self.max_destinations_per_device} (max_destinations_per_device).")
        lines += [
            "version: 1",
            f"ruleset: {_scalar(ruleset)}",
            f"description: {_scalar(f'Allow-list proposed from {where}; review before use')}",
        ]
        groups = self._groups(verdict_of)
        if not groups:
            lines += ["# No flows of site devices were seen: there is nothing to propose.", "policies: []"]
            return "\n".join(lines) + "\n"
        lines.append("policies:")
        used: set[str] = set()
        for group in groups:
            lines += self._policy(group, _policy_id(group, used), severity, where, max_entries_per_policy)
        return "\n".join(lines) + "\n"

    def _groups(self, verdict_of: Callable[[int], VendorVerdict | None]) -> list[_Group]:
        """Return the device groups in the order their policies must be tried (the first that selects a
        device governs it): MAC lists, then vendor and class (a subsidiary before its parent, whose
        `vendors` selects it too), then class alone (it selects every maker's devices), then addresses."""
        groups: dict[tuple[str, str | None, str | None], _Group] = {}
        for device in self._devices:
            mac = device[0]
            verdict = verdict_of(mac) if mac else None
            vendor = verdict.vendor_id if verdict is not None else None
            cls = verdict.device_class if verdict is not None and verdict.device_class in DEVICE_CLASSES else None
            if not mac:
                key: tuple[str, str | None, str | None] = ("ips", None, None)
                order: tuple[int, ...] = (3,)
                label = "Devices without a MAC address"
            elif cls is None:
                key, order = ("macs", vendor, None), (0,)
                maker = (verdict.name or vendor) if verdict is not None and vendor else None
                label = f"{maker} devices of unknown class" if maker else "Devices of unknown maker and class"
            elif vendor is None:
                key, order, label = ("class", None, cls), (2,), f"Devices of class {cls} (maker unknown)"
            else:
                depth = len(verdict.parents) if verdict is not None else 0
                key, order = ("class", vendor, cls), (1, -depth)
                label = f"{(verdict.name if verdict is not None else None) or vendor} {cls} devices"
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(key[1], key[2], order, label)
            group.devices.append(device)
        return sorted(groups.values(), key=lambda g: (g.order, g.vendor_id or "", g.device_class or ""))

    def _policy(self, group: _Group, policy_id: str, severity: str, where: str, max_entries: int) -> list[str]:
        entries: dict[tuple[int, int, int], _Entry] = {}
        for device in group.devices:
            for (kind, proto, port, version, hi, lo, name), tally in self._devices[device].items():
                entry = entries.get((kind, proto, port))
                if entry is None:
                    entry = entries[(kind, proto, port)] = _Entry(kind, proto, port)
                entry.values.add(name if kind == KIND_DOMAIN else _host_network(version, hi, lo))
                if kind == KIND_BAD_NAME:
                    entry.names.add(name)
                entry.add(device, tally)
        flows = sum(e.flows for e in entries.values())
        kept = sorted(entries.values(), key=lambda e: (-e.flows, e.kind, e.proto, e.port))[:max_entries]
        left_out = entries.keys() - {(e.kind, e.proto, e.port) for e in kept}
        kept.sort(key=lambda e: (e.kind, e.proto, e.port))
        description = (f"Proposed from {_count(flows, 'flow')} of {_count(len(group.devices), 'device')} in {where}; "
                       "review before use")
        lines = [
            f"  - id: {_scalar(policy_id)}",
            f"    name: {_scalar(group.label + ' (learned)')}",
            f"    description: {_scalar(description)}",
            "    devices:",
        ]
        if group.device_class is not None:
            selector = []
            if group.vendor_id is not None:
                selector.append(f"vendors: [{_scalar(group.vendor_id)}]")
            selector.append(f"classes: [{_scalar(group.device_class)}]")
            lines.append("      - " + selector[0])
            lines += ["        " + s for s in selector[1:]]
        elif group.order == (3,):
            lines.append("      - ips:")
            lines += [f"          - {_scalar(_host_network(v, hi, lo))}" for _, v, hi, lo in sorted(group.devices)]
        else:
            lines.append("      - macs:")
            lines += [f"          - {_scalar(_mac_text(d[0]))}" for d in sorted(group.devices)]
        overflow = sum(self._overflow.get(d, 0) for d in group.devices)
        if overflow:
            lines.append(f"    # {overflow} flows to further destinations were left out "
                         f"(more than {self.max_destinations_per_device} per device)")
        if left_out:
            dropped = sum(entries[k].flows for k in left_out)
            lines.append(f"    # {len(left_out)} more entries ({dropped} flows) were left out "
                         f"(more than {max_entries} per policy)")
        lines.append("    allow:" if kept else "    allow: []")
        for entry in kept:
            lines += _entry_lines(entry)
        lines.append(f"    severity: {_scalar(severity)}")
        return lines


def _entry_lines(entry: _Entry) -> list[str]:
    """Return one allow entry as YAML lines, with its counts as a comment above it."""
    lines = [f"      # {_count(entry.flows, 'flow')}, {_count(len(entry.devices), 'device')}, "
             f"{_size_text(entry.bytes)}, first {_time_text(entry.first_ns)}, last {_time_text(entry.last_ns)}"]
    field_name = "domains" if entry.kind == KIND_DOMAIN else "networks"
    values = sorted(entry.values, key=_sort_key if field_name == "networks" else None)
    fields: list[tuple[str, list[str]]] = [(field_name, [_scalar(v) for v in values])]
    fields.append(("protocols", [_protocol_text(entry.proto)]))
    if entry.proto in PORTED_PROTOCOLS:
        fields.append(("ports", [str(entry.port)]))
    comment = None
    if entry.kind == KIND_REMOTE:
        comment = NEVER_NAMED
    elif entry.kind == KIND_BAD_NAME:
        names = sorted(entry.names)
        shown = ", ".join(f"'{name}'" for name in names[:MAX_NAMES_IN_COMMENT])
        more = f" and {len(names) - MAX_NAMES_IN_COMMENT} more" if len(names) > MAX_NAMES_IN_COMMENT else ""
        comment = (f"named {shown}{more} on the wire, which a rule's domains cannot match as written: "
                   "kept by address; find out what this is before approving it")
    for i, (name, items) in enumerate(fields):
        lead = "      - " if i == 0 else "        "
        if len(items) <= 3:
            lines.append(f"{lead}{name}: [{', '.join(items)}]")
        else:
            lines.append(f"{lead}{name}:")
            lines += [f"          - {item}" for item in items]
    if comment is not None:
        lines.append(f"        comment: {_scalar(comment)}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _scalar(value: str) -> str:
    """Return `value` as one YAML double-quoted scalar: whatever it contains, it reads back as itself."""
    text = yaml.safe_dump(value, default_style='"', width=2**31 - 1, allow_unicode=False)
    return text.removesuffix("\n...\n").rstrip("\n")


def _comment(text: str) -> str:
    """Return `text` fit for a YAML comment: no line breaks or other unprintable characters."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _sources_text(sources: Sequence[str]) -> str:
    if not sources:
        return "the captured traffic"
    shown = ", ".join(sources[:5])
    return shown + (f" and {len(sources) - 5} more" if len(sources) > 5 else "")


def _policy_id(group: _Group, used: set[str]) -> str:
    """Return a unique policy id: learned-<vendor>-<class>, learned-<class>, else learned-devices-N."""
    parts = [p for p in (group.vendor_id, group.device_class) if p is not None] if group.device_class else []
    words = [w for w in (_ID_CHARS.sub("-", p.lower()).strip("-") for p in parts) if w]
    base = "learned-" + "-".join(words) if words else "learned-devices"
    n = 1
    candidate = base if words else f"{base}-{n}"
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    used.add(candidate)
    return candidate


def _protocol_text(proto: int) -> str:
    """Return the word rule files use for a protocol ('tcp'), or its number when they have none."""
    name = TRANSPORT_NAMES.get(proto)
    if name is not None and PROTOCOL_NUMBERS.get(name) == proto:
        return _scalar(name)
    return str(proto)


def _host_network(version: int, hi: int, lo: int) -> str:
    return f"{ip_text(version, hi, lo)}/{32 if version == 4 else 128}"


def _sort_key(network: str) -> tuple[int, int]:
    net = ipaddress.ip_network(network)
    return net.version, int(net.network_address)


def _mac_text(mac: int) -> str:
    digits = f"{mac:012X}"
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _size_text(size: int) -> str:
    """Return a byte count as '512 B', '48.2 kB', '3.1 MB' (SI units)."""
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, "kB"
    for bigger in ("MB", "GB", "TB", "PB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def _time_text(ns: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
