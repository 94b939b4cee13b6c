"""Judge finished flows against the loaded policies; sum findings into alerts.

Which flows are judged: those started by a device on the audited site, that is, whose initiator
address is local (ECS direction outbound or internal). A flow started from outside comes in
through the router, whose MAC is no evidence about the remote initiator.

Which policy governs a flow: the first policy, in evaluation order (rule files by name, then
policies in file order), with a device selector that matches the initiator (its MAC's vendor,
class, lists, the MAC itself, or its source address). Later policies are not consulted, so put
site-specific policies before catch-alls. A device no policy selects is not judged.

What is a finding: a judged flow whose destination matches none of the governing policy's allow
entries. Findings are summed per device x destination address x policy into one Alert (flow
count, bytes both ways, first and last seen, ports seen), never one per packet or per flow.

Everything is columnar per batch of flows; Python runs once per distinct MAC and once per alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from auditor.devices.types import VendorVerdict
from auditor.flows.community_id import community_ids, flow_tuple
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import PORTED_PROTOCOLS, TRANSPORT_NAMES, FlowRecords, ip_text
from auditor.policy.load import LoadedPolicy, RuleSet
from auditor.policy.schema import Destination, DeviceSelector
from auditor.policy.types import SEVERITIES, Alert, Evidence

VerdictLookup = Callable[[int], VendorVerdict | None]
IsLocal = Callable[[NDArray[np.uint8], NDArray[np.uint64], NDArray[np.uint64]], NDArray[np.bool_]]

DEFAULT_MAX_ALERTS = 100_000
MAX_SOURCE_IPS = 16
MAX_SERVICES = 32
MAX_COMMUNITY_IDS = 5
MAX_VLANS = 16
MAX_REMEMBERED_MACS = 200_000
_PORTED = np.zeros(256, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True


@dataclass(slots=True)
class _Sum:
    """A growing alert."""

    policy: int
    selector: int
    mac: int
    dst: tuple[int, int, int]
    dst_local: bool
    first_ns: int
    last_ns: int
    flows: int = 0
    src_packets: int = 0
    src_bytes: int = 0
    dst_packets: int = 0
    dst_bytes: int = 0
    # short lists rather than sets: an alert usually holds one of each, and there may be 100k alerts
    source_ips: list[tuple[int, int, int]] = field(default_factory=list)
    services: list[tuple[int, int]] = field(default_factory=list)
    vlans: list[int] = field(default_factory=list)
    community_ids: list[str] = field(default_factory=list)


class PolicyJudge:
    """Judges batches of finished flows (judge) and returns the alerts at the end (alerts)."""

    def __init__(
        self,
        rules: RuleSet,
        verdict_of: VerdictLookup,
        is_local: IsLocal,
        max_alerts: int = DEFAULT_MAX_ALERTS,
    ) -> None:
        self.rules = rules
        self._verdict_of = verdict_of
        self._is_local = is_local
        self.max_alerts = max_alerts
        self._policies = [_Compiled(p) for p in rules.policies]
        self._selector_count = sum(len(p.selectors) for p in self._policies)
        self._flags: dict[int, tuple[bool, ...]] = {}
        self._sums: dict[tuple[int, int, int, int, int, int, int, int], _Sum] = {}
        self.flows_judged = 0
        """Flows started by a device that a policy governs."""
        self.findings = 0
        """Flows that were findings."""
        self.dropped_findings = 0
        """Findings not summed because max_alerts alerts already existed (a warning says so)."""

    def judge(self, flows: FlowRecords) -> None:
        """Judge finished flows; findings are added to the alerts."""
        if not self._policies or not len(flows):
            return
        rows = np.flatnonzero(flows.direction >= 2)  # initiator local: outbound (2) or internal (3)
        if not rows.size:
            return
        version = flows.ip_version[rows]
        macs, inverse = np.unique(flows.src_mac[rows], return_inverse=True)
        per_mac = self._device_flags(macs.tolist())[inverse.ravel()]  # flows x selectors
        governing = np.full(rows.size, -1, dtype=np.int32)
        selector = np.full(rows.size, -1, dtype=np.int32)
        column = 0
        for index, policy in enumerate(self._policies):
            open_ = governing < 0
            for s, chosen in enumerate(policy.selectors):
                hit = open_ & per_mac[:, column]
                column += 1
                if chosen.ips is not None and hit.any():
                    hit &= chosen.ips.contains(version, flows.src_hi[rows], flows.src_lo[rows])
                governing[hit] = index
                selector[hit] = s
                open_ &= ~hit
        judged = np.flatnonzero(governing >= 0)
        if not judged.size:
            return
        self.flows_judged += int(judged.size)
        dst = (version[judged], flows.dst_hi[rows[judged]], flows.dst_lo[rows[judged]])
        dst_local = self._is_local(*dst)
        approved = np.zeros(judged.size, dtype=bool)
        for index in np.unique(governing[judged]).tolist():
            mine = governing[judged] == index
            for allow in self._policies[index].allows:
                approved |= mine & allow.matches(
                    dst_local, *dst, flows.ip_proto[rows[judged]], flows.dst_port[rows[judged]]
                )
        bad = judged[~approved]
        if bad.size:
            self._add(flows, rows[bad], governing[bad], selector[bad], dst_local[~approved])

    def _device_flags(self, macs: list[int]) -> NDArray[np.bool_]:
        """Return, per MAC, whether each selector's device fields (all but ips) match it; remembered per MAC."""
        rows = []
        for mac in macs:
            flags = self._flags.get(mac)
            if flags is None:
                verdict = self._verdict_of(mac) if mac else None
                flags = tuple(s.device_matches(mac, verdict) for p in self._policies for s in p.selectors)
                if len(self._flags) >= MAX_REMEMBERED_MACS:
                    self._flags.clear()  # a flood of distinct MACs: start over rather than grow
                self._flags[mac] = flags
            rows.append(flags)
        return np.array(rows, dtype=bool).reshape(len(macs), self._selector_count)

    def _add(
        self,
        flows: FlowRecords,
        rows: NDArray[np.int64],
        policy: NDArray[np.int32],
        selector: NDArray[np.int32],
        dst_local: NDArray[np.bool_],
    ) -> None:
        self.findings += int(rows.size)
        mac = flows.src_mac[rows]
        no_mac = mac == 0  # without a MAC the device is its source address
        key_cols = (
            policy.astype(np.uint64), mac,
            np.where(no_mac, flows.ip_version[rows], 0).astype(np.uint64),
            np.where(no_mac, flows.src_hi[rows], 0), np.where(no_mac, flows.src_lo[rows], 0),
            flows.ip_version[rows].astype(np.uint64), flows.dst_hi[rows], flows.dst_lo[rows],
        )
        ft = flow_tuple(flows.ip_version[rows], flows.ip_proto[rows], flows.src_hi[rows], flows.src_lo[rows],
                        flows.dst_hi[rows], flows.dst_lo[rows], flows.src_port[rows], flows.dst_port[rows])
        ids = community_ids(flows.ip_version[rows], flows.ip_proto[rows], ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo,
                            ft.port_a, ft.port_b)
        ported = _PORTED[flows.ip_proto[rows]]
        columns = zip(
            zip(*(c.tolist() for c in key_cols), strict=True),
            selector.tolist(), dst_local.tolist(),
            flows.ip_version[rows].tolist(), flows.src_hi[rows].tolist(), flows.src_lo[rows].tolist(),
            flows.ip_proto[rows].tolist(), np.where(ported, flows.dst_port[rows], 0).tolist(),
            flows.vlan_outer[rows].tolist(),
            flows.src_packets[rows].tolist(), flows.src_bytes[rows].tolist(),
            flows.dst_packets[rows].tolist(), flows.dst_bytes[rows].tolist(),
            flows.first_ns[rows].tolist(), flows.last_ns[rows].tolist(), ids,
            strict=True,
        )
        # one step per finding flow (not per packet): findings are the rare flows a policy forbids
        for key, sel, local, ver, s_hi, s_lo, proto, port, vlan, sp, sb, dp, db, first, last, cid in columns:
            alert = self._sums.get(key)
            if alert is None:
                if len(self._sums) >= self.max_alerts:
                    self.dropped_findings += 1
                    continue
                alert = self._sums[key] = _Sum(key[0], sel, key[1], (key[5], key[6], key[7]), local, first, last)
            alert.flows += 1
            alert.src_packets += sp
            alert.src_bytes += sb
            alert.dst_packets += dp
            alert.dst_bytes += db
            alert.first_ns = min(alert.first_ns, first)
            alert.last_ns = max(alert.last_ns, last)
            source = (ver, s_hi, s_lo)
            if len(alert.source_ips) < MAX_SOURCE_IPS and source not in alert.source_ips:
                alert.source_ips.append(source)
            service = (proto, port)
            if len(alert.services) < MAX_SERVICES and service not in alert.services:
                alert.services.append(service)
            if vlan != 0xFFFF and vlan not in alert.vlans and len(alert.vlans) < MAX_VLANS:
                alert.vlans.append(vlan)
            if len(alert.community_ids) < MAX_COMMUNITY_IDS:
                alert.community_ids.append(cid)

    def alerts(self) -> list[Alert]:
        """Return the alerts so far: most severe first, then by first seen, device and destination."""
        return list(self.iter_alerts())

    def iter_alerts(self) -> Iterator[Alert]:
        """Yield the alerts in the order of alerts(), one at a time (a writer need not hold them all)."""
        policies = self._policies
        order = sorted(
            self._sums.values(),
            key=lambda s: (-policies[s.policy].rank, s.first_ns, s.mac, s.source_ips, s.dst, policies[s.policy].id),
        )
        for s in order:
            yield self._alert(s)

    def _alert(self, s: _Sum) -> Alert:
        compiled = self._policies[s.policy]
        loaded = compiled.loaded
        policy = loaded.policy
        vendor = self._verdict_of(s.mac) if s.mac else None
        destination = ip_text(*s.dst)
        services = tuple(sorted(s.services))
        device = f"{s.mac:012X}" if s.mac else ",".join(ip_text(*a) for a in s.source_ips)
        digest = hashlib.sha256(f"{loaded.ruleset}\0{policy.id}\0{device}\0{destination}".encode()).hexdigest()
        evidence: list[Evidence] = []
        if vendor is not None:
            evidence.append(Evidence(vendor.how, "source.mac", vendor.detail, vendor.name, vendor.confidence))
        evidence.append(compiled.group_evidence[s.selector])
        evidence.append(Evidence(
            "policy-allow", "allow", f"{destination} " + " ".join(_service_text(p, q) for p, q in services),
            ("local; approved: " if s.dst_local else "not local; approved: ") + compiled.allowed_text,
        ))
        return Alert(
            alert_id=digest[:32],
            rule_id=policy.id,
            rule_name=policy.name,
            ruleset=loaded.ruleset,
            rule_description=policy.description,
            rule_reference=loaded.reference,
            severity=policy.severity,
            device_mac=s.mac,
            vendor=vendor,
            source_ips=tuple(ip_text(*a) for a in s.source_ips),
            destination_ip=destination,
            destination_local=s.dst_local,
            services=services,
            vlans=tuple(sorted(s.vlans)),
            flows=s.flows,
            source_packets=s.src_packets,
            source_bytes=s.src_bytes,
            destination_packets=s.dst_packets,
            destination_bytes=s.dst_bytes,
            first_ns=s.first_ns,
            last_ns=s.last_ns,
            community_ids=tuple(s.community_ids),
            evidence=tuple(evidence),
        )


class _Compiled:
    """A policy ready for columns, with the texts its alerts repeat."""

    def __init__(self, loaded: LoadedPolicy) -> None:
        policy = loaded.policy
        self.loaded = loaded
        self.id = policy.id
        self.rank = SEVERITIES.index(policy.severity)
        self.selectors = [_Selector(s) for s in policy.devices]
        self.allows = [_Allow(d) for d in policy.allow]
        governs = f"{loaded.reference}: policy {policy.id!r} governs this device"
        self.group_evidence = [
            Evidence("policy-group", f"devices[{i}]", _describe_selector(s), governs)
            for i, s in enumerate(policy.devices)
        ]
        self.allowed_text = "; ".join(_describe_destination(d) for d in policy.allow) or "nothing"


class _Selector:
    def __init__(self, s: DeviceSelector) -> None:
        self.all = bool(s.all)
        self.vendors = frozenset(s.vendors) if s.vendors else None
        self.classes = frozenset(s.classes) if s.classes else None
        self.lists = frozenset(s.lists) if s.lists else None
        self.macs = frozenset(int(m.replace(":", "").replace("-", ""), 16) for m in s.macs) if s.macs else None
        self.ips = LocalNetworks(s.ips) if s.ips else None

    def device_matches(self, mac: int, v: VendorVerdict | None) -> bool:
        """Return whether the fields about the device itself (not its address) all match."""
        if self.macs is not None and mac not in self.macs:
            return False
        if self.vendors is not None and (v is None or self.vendors.isdisjoint((v.vendor_id, *v.parents))):
            return False
        if self.classes is not None and (v is None or v.device_class not in self.classes):
            return False
        return self.lists is None or (v is not None and not self.lists.isdisjoint(m.list_id for m in v.lists))


class _Allow:
    def __init__(self, d: Destination) -> None:
        self.local = bool(d.local)
        self.networks = LocalNetworks(d.networks) if d.networks else None
        self.protocols = np.array(sorted(set(d.protocols)), dtype=np.uint8) if d.protocols else None
        self.ports = np.array(d.ports, dtype=np.int32) if d.ports else None

    def matches(
        self,
        dst_local: NDArray[np.bool_],
        version: NDArray[np.uint8],
        hi: NDArray[np.uint64],
        lo: NDArray[np.uint64],
        proto: NDArray[np.uint8],
        port: NDArray[np.uint16],
    ) -> NDArray[np.bool_]:
        """Return, per flow, whether this entry approves its destination (AND of the fields given)."""
        hit = dst_local.copy() if self.local else np.ones(dst_local.shape, dtype=bool)
        if self.networks is not None:
            hit &= self.networks.contains(version, hi, lo)
        if self.protocols is not None:
            hit &= np.isin(proto, self.protocols)
        if self.ports is not None:
            p = port.astype(np.int32)[:, None]
            hit &= _PORTED[proto] & ((p >= self.ports[:, 0]) & (p <= self.ports[:, 1])).any(axis=1)
        return hit


def _service_text(proto: int, port: int) -> str:
    name = TRANSPORT_NAMES.get(proto, str(proto))
    return f"{name}/{port}" if proto in PORTED_PROTOCOLS else name


def _describe_selector(s: DeviceSelector) -> str:
    parts = []
    for name in ("vendors", "classes", "lists", "macs", "ips"):
        values = getattr(s, name)
        if values:
            parts.append(f"{name}: {', '.join(map(str, values))}")
    if s.all:
        parts.append("all devices")
    return "; ".join(parts)


def _describe_destination(d: Destination) -> str:
    parts = []
    if d.local:
        parts.append("local")
    if d.networks:
        parts.append(",".join(d.networks))
    if d.protocols:
        parts.append(",".join(TRANSPORT_NAMES.get(p, str(p)) for p in d.protocols))
    if d.ports:
        parts.append("port " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in d.ports))
    return " ".join(parts)
