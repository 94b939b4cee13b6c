"""Judge finished flows against the loaded policies; sum findings into alerts.

Which flows are judged: those started by a device on the audited site, that is, whose initiator
address is local (ECS direction outbound or internal). A flow started from outside comes in
through the router, whose MAC is no evidence about the remote initiator. One exception: a TCP
connection whose SYN the capture missed has no known initiator, so when it looks inbound it is
judged from its local side.

Which device started it: the initiator's MAC, unless that MAC has sent from several local
addresses (ROUTER_SOURCES): it is then a router forwarding other hosts, and their flows are judged
and summed by source address, as on links without MACs.

Which policy governs a flow: the first policy, in evaluation order (the rule paths as given, a
folder's files by name, then the policies in file order), with a device selector that matches
the device (its MAC's vendor, class, lists, the MAC itself, or its source address). Later
policies are not consulted, so put site-specific policies before catch-alls. A device no policy
selects is not judged.

What is a finding: a judged flow whose destination matches none of the governing policy's allow
entries. Findings are summed per device x destination address x policy into one Alert (flow
count, bytes both ways, first and last seen, ports seen), never one per packet or per flow.

Selecting and approving is columnar per batch of flows (Python runs once per distinct MAC);
summing takes one dict lookup per finding flow (policy/sums.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.devices.types import VendorVerdict
from auditor.flows.community_id import community_ids, flow_tuple
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import (
    DIRECTION_INBOUND,
    DIRECTION_INTERNAL,
    DIRECTION_OUTBOUND,
    PORTED_PROTOCOLS,
    TRANSPORT_NAMES,
    FlowRecords,
    ip_text,
    service_text,
)
from auditor.policy.load import LoadedPolicy, RuleSet
from auditor.policy.schema import Destination, DeviceSelector, mac_value
from auditor.policy.sums import KEY, NO_VLAN, AlertSums, Extras, Findings
from auditor.policy.types import SEVERITIES, Alert, Evidence

VerdictLookup = Callable[[int], VendorVerdict | None]

DEFAULT_MAX_ALERTS = 100_000
LOW_SEVERITY_SHARE = 0.75
"""Share of max_alerts that low and medium alerts may take."""
MAX_REMEMBERED_MACS = 200_000
ROUTER_SOURCES = {4: 4, 6: 8}
"""Distinct local source addresses, per IP version, after which a MAC counts as a router. A host has
one IPv4 address, a camera perhaps also its factory default (192.168.1.64) and one more across a
DHCP change; IPv6 hosts rotate temporary addresses, hence more. Unspecified and link-local
sources (DHCP, autoconfiguration) are not counted."""
TCP_SYN = 0x02
IPPROTO_TCP = 6
_PORTED = np.zeros(256, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True


class PolicyJudge:
    """Judges batches of finished flows (judge) and returns the alerts at the end (alerts)."""

    def __init__(
        self,
        rules: RuleSet,
        verdict_of: VerdictLookup,
        max_alerts: int = DEFAULT_MAX_ALERTS,
    ) -> None:
        self.rules = rules
        self._verdict_of = verdict_of
        self.max_alerts = max_alerts
        self._policies = [_Compiled(p) for p in rules.policies]
        self._selector_count = sum(len(p.selectors) for p in self._policies)
        self._flags: dict[int, tuple[VendorVerdict | None, tuple[bool, ...]]] = {}
        """Per MAC: the verdict the selector flags were computed from, and the flags."""
        self._sources: dict[int, set[tuple[int, int, int]]] = {}
        """Local source addresses seen per initiator MAC, until it counts as a router."""
        self._routers: set[int] = set()
        self._sums = AlertSums(max_alerts)
        self.flows_judged = 0
        """Flows started by a device that a policy governs."""
        self.findings = 0
        """Flows that were findings."""
        self.worst_rank = -1
        """Rank (index in SEVERITIES) of the most severe finding, summed or not; -1 when none."""
        self._ranks = np.array([p.rank for p in self._policies], dtype=np.int64)
        # low and medium findings may fill only part of the alert table: a flood of them must not
        # crowd out the high and critical alerts that come later
        self._limits = np.where(self._ranks >= SEVERITIES.index("high"), max_alerts,
                                int(max_alerts * LOW_SEVERITY_SHARE))

    @property
    def dropped_findings(self) -> int:
        """Findings not summed because the alert limit was reached (a warning says so)."""
        return self._sums.dropped

    def judge(self, flows: FlowRecords) -> None:
        """Judge finished flows; findings are added to the alerts."""
        if not self._policies or not len(flows):
            return
        # initiator local: outbound or internal (direction = 2 * initiator_local + responder_local)
        self._judge(flows, np.flatnonzero((flows.direction == DIRECTION_OUTBOUND)
                                          | (flows.direction == DIRECTION_INTERNAL)))
        # a TCP connection whose SYN the capture missed (it began before the capture) has no known
        # initiator: the flow table took the first sender, often the remote server. Judge it from
        # the local side, or a device's long-lived cloud connection would never be judged.
        flags = flows.src_tcp_flags | flows.dst_tcp_flags
        unseen = np.flatnonzero((flows.direction == DIRECTION_INBOUND) & (flows.ip_proto == IPPROTO_TCP)
                                & ((flags & TCP_SYN) == 0))
        if unseen.size:
            reversed_ = _reversed(flows, unseen)
            self._judge(reversed_, np.arange(len(reversed_)))

    def _judge(self, flows: FlowRecords, rows: NDArray[np.intp]) -> None:
        if not rows.size:
            return
        version = flows.ip_version[rows]
        src_mac = self._hosts_only(flows, rows)
        macs, inverse = np.unique(src_mac, return_inverse=True)
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
        at = rows[judged]
        dst_local = flows.direction[at] == DIRECTION_INTERNAL  # the table judged it by the same local networks
        approved = np.zeros(judged.size, dtype=bool)
        for index in np.unique(governing[judged]).tolist():
            mine = np.flatnonzero(governing[judged] == index)  # each policy's entries see only its own flows
            m = at[mine]
            ok = np.zeros(mine.size, dtype=bool)
            for allow in self._policies[index].allows:
                ok |= allow.matches(dst_local[mine], version[judged][mine], flows.dst_hi[m], flows.dst_lo[m],
                                    flows.ip_proto[m], flows.dst_port[m])
            approved[mine] = ok
        bad = judged[~approved]
        if bad.size:
            self._add(flows, rows[bad], src_mac[bad], governing[bad], selector[bad], dst_local[~approved])

    def _hosts_only(self, flows: FlowRecords, rows: NDArray[np.intp]) -> NDArray[np.uint64]:
        """Return the initiator MACs of `rows`, with 0 for routers: a MAC that has sent from several local
        addresses forwards other hosts' traffic, and its vendor says nothing about theirs. Their flows
        are then judged, and summed, by source address, as on a link without MACs."""
        mac = flows.src_mac[rows]
        pairs = np.unique(np.stack([mac, flows.ip_version[rows].astype(np.uint64), flows.src_hi[rows],
                                    flows.src_lo[rows]]), axis=1)
        for m, v, hi, lo in pairs.T.tolist():
            if not m or m in self._routers or _autoconfigured(v, hi, lo):
                continue
            seen = self._sources.get(m)
            if seen is None:
                if len(self._sources) >= MAX_REMEMBERED_MACS:
                    self._sources.clear()
                seen = self._sources[m] = set()
            seen.add((v, hi, lo))
            if sum(1 for a in seen if a[0] == v) >= ROUTER_SOURCES[v]:
                self._routers.add(m)
                del self._sources[m]
        if not self._routers:
            return mac
        return np.where(np.isin(mac, np.fromiter(self._routers, dtype=np.uint64)), np.uint64(0), mac)

    def _device_flags(self, macs: list[int]) -> NDArray[np.bool_]:
        """Return, per MAC, whether each selector's device fields (all but ips) match it; remembered per MAC
        until its verdict changes (protocol evidence can name the maker of a device mid-run)."""
        rows = []
        for mac in macs:
            verdict = self._verdict_of(mac) if mac else None
            known = self._flags.get(mac)
            if known is None or known[0] is not verdict:
                flags = tuple(s.device_matches(mac, verdict) for p in self._policies for s in p.selectors)
                if len(self._flags) >= MAX_REMEMBERED_MACS:
                    self._flags.clear()  # a flood of distinct MACs: start over rather than grow
                known = self._flags[mac] = (verdict, flags)
            rows.append(known[1])
        return np.array(rows, dtype=bool).reshape(len(macs), self._selector_count)

    def _add(
        self,
        flows: FlowRecords,
        rows: NDArray[np.int64],
        mac: NDArray[np.uint64],
        policy: NDArray[np.int32],
        selector: NDArray[np.int32],
        dst_local: NDArray[np.bool_],
    ) -> None:
        self.findings += int(rows.size)
        version = flows.ip_version[rows]
        no_mac = mac == 0  # without a MAC the device is its source address
        key = np.zeros(rows.size, dtype=KEY)
        key["policy"], key["mac"] = policy, mac
        key["dev_version"] = np.where(no_mac, version, 0)
        key["dev_hi"] = np.where(no_mac, flows.src_hi[rows], 0)
        key["dev_lo"] = np.where(no_mac, flows.src_lo[rows], 0)
        key["dst_version"], key["dst_hi"], key["dst_lo"] = version, flows.dst_hi[rows], flows.dst_lo[rows]
        proto = flows.ip_proto[rows]
        self.worst_rank = max(self.worst_rank, int(self._ranks[policy].max()))
        self._sums.add(Findings(
            key=key, selector=selector, dst_local=dst_local,
            first_ns=flows.first_ns[rows], last_ns=flows.last_ns[rows],
            src_packets=flows.src_packets[rows], src_bytes=flows.src_bytes[rows],
            dst_packets=flows.dst_packets[rows], dst_bytes=flows.dst_bytes[rows],
            src_version=version, src_hi=flows.src_hi[rows], src_lo=flows.src_lo[rows],
            proto=proto, port=np.where(_PORTED[proto], flows.dst_port[rows], 0).astype(np.uint16),
            vlan=flows.vlan_outer[rows], sport=flows.src_port[rows], dport=flows.dst_port[rows],
        ), self._limits[policy])

    def alerts(self) -> list[Alert]:
        """Return the alerts so far: most severe first, then by first seen, device and destination."""
        return list(self.iter_alerts())

    def iter_alerts(self) -> Iterator[Alert]:
        """Yield the alerts in the order of alerts(), one at a time (a writer need not hold them all)."""
        sums = self._sums
        if not len(sums):
            return
        col = sums.column
        rank = np.array([p.rank for p in self._policies], dtype=np.int64)
        id_order = np.argsort(np.argsort(np.array([p.id for p in self._policies])))
        policy = col("policy")
        order = np.lexsort((
            id_order[policy], col("dst_lo"), col("dst_hi"), col("dst_version"), col("src_lo"), col("src_hi"),
            col("src_version"), col("mac"), col("first_ns"), -rank[policy],
        ))
        ids = self._community_ids()
        names = ("policy", "selector", "mac", "dst_version", "dst_hi", "dst_lo", "dst_local", "first_ns", "last_ns",
                 "flows", "src_packets", "src_bytes", "dst_packets", "dst_bytes", "src_version", "src_hi", "src_lo",
                 "proto", "port", "vlan")
        columns = {name: col(name).tolist() for name in names}  # Python values once per column, not per cell
        for row in order.tolist():
            values = {name: columns[name][row] for name in names}
            yield self._alert(row, values, sums.extras.get(row), ids[row])

    def _community_ids(self) -> list[list[str]]:
        """Return the Community IDs of each alert's sampled flows (all computed in one vectorised pass)."""
        samples = list(self._sums.samples())
        cols = np.array([s for _, s in samples], dtype=np.uint64).reshape(-1, 8).T
        version, proto, s_hi, s_lo, d_hi, d_lo, sport, dport = cols
        ft = flow_tuple(version.astype(np.uint8), proto.astype(np.uint8), s_hi, s_lo, d_hi, d_lo,
                        sport.astype(np.uint16), dport.astype(np.uint16))
        texts = community_ids(version.astype(np.uint8), proto.astype(np.uint8), ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo,
                              ft.port_a, ft.port_b)
        out: list[list[str]] = [[] for _ in range(len(self._sums))]
        for (row, _), text in zip(samples, texts, strict=True):
            out[row].append(text)
        return out

    def _alert(self, row: int, v: dict[str, Any], extra: Extras | None, cids: list[str]) -> Alert:
        compiled = self._policies[v["policy"]]
        loaded = compiled.loaded
        policy = loaded.policy
        mac = v["mac"]
        vendor = self._verdict_of(mac) if mac else None
        destination = ip_text(v["dst_version"], v["dst_hi"], v["dst_lo"])
        sources = [(v["src_version"], v["src_hi"], v["src_lo"])]
        services = [(v["proto"], v["port"])]
        vlans = [v["vlan"]] if v["vlan"] != NO_VLAN else []
        if extra is not None:
            sources += extra.sources
            services += extra.services
            vlans += extra.vlans
        source_ips = tuple(ip_text(*a) for a in sources)
        device = f"{mac:012X}" if mac else source_ips[0]
        digest = hashlib.sha256(f"{loaded.ruleset}\0{policy.id}\0{device}\0{destination}".encode()).hexdigest()
        service_list = tuple(sorted(services))
        evidence: list[Evidence] = []
        if vendor is not None:
            evidence.append(Evidence(vendor.how, "source.mac", vendor.detail, vendor.name, vendor.confidence))
        evidence.append(compiled.group_evidence[v["selector"]])
        evidence.append(Evidence(
            "policy-allow", "allow", f"{destination} " + " ".join(service_text(p, q) for p, q in service_list),
            ("local; approved: " if v["dst_local"] else "not local; approved: ") + compiled.allowed_text,
        ))
        return Alert(
            alert_id=digest[:32],
            rule_id=policy.id,
            rule_name=policy.name,
            ruleset=loaded.ruleset,
            rule_description=policy.description,
            rule_reference=loaded.reference,
            severity=policy.severity,
            device_mac=mac,
            vendor=vendor,
            source_ips=source_ips,
            destination_ip=destination,
            destination_local=bool(v["dst_local"]),
            services=service_list,
            vlans=tuple(sorted(vlans)),
            flows=v["flows"],
            source_packets=v["src_packets"],
            source_bytes=v["src_bytes"],
            destination_packets=v["dst_packets"],
            destination_bytes=v["dst_bytes"],
            first_ns=v["first_ns"],
            last_ns=v["last_ns"],
            community_ids=tuple(cids),
            evidence=tuple(evidence),
        )


def _autoconfigured(version: int, hi: int, lo: int) -> bool:
    """True for sources every host may use besides its own address: 0.0.0.0, ::, 169.254/16, fe80::/10."""
    if version == 4:
        return lo == 0 or lo >> 16 == 0xA9FE
    return (hi == 0 and lo == 0) or hi >> 54 == 0x3FA


def _reversed(flows: FlowRecords, rows: NDArray[np.intp]) -> FlowRecords:
    """Return flows `rows` with initiator and responder swapped (an inbound flow seen as outbound)."""
    def take(name: str) -> NDArray[Any]:
        return getattr(flows, name)[rows]  # type: ignore[no-any-return]

    swapped: dict[str, NDArray[Any]] = {}
    for a, b in (("src_hi", "dst_hi"), ("src_lo", "dst_lo"), ("src_port", "dst_port"), ("src_mac", "dst_mac"),
                 ("src_packets", "dst_packets"), ("src_bytes", "dst_bytes"), ("src_tcp_flags", "dst_tcp_flags")):
        swapped[a], swapped[b] = take(b), take(a)
    kept = ("flow_id", "ip_version", "ip_proto", "vlan_outer", "vlan_inner", "first_ns", "last_ns", "end_reason")
    same: dict[str, NDArray[Any]] = {name: take(name) for name in kept}
    direction = np.full(rows.size, DIRECTION_OUTBOUND, dtype=np.uint8)
    return FlowRecords(**swapped, **same, direction=direction)  # type: ignore[arg-type]


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
        self.macs = frozenset(mac_value(m) for m in s.macs) if s.macs else None
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
        self.port_starts: NDArray[np.int64] | None = None
        self.port_ends: NDArray[np.int64] | None = None
        if d.ports:
            self.port_starts, self.port_ends = _merged(d.ports)

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
        if self.port_starts is not None and self.port_ends is not None:
            # sorted, merged ranges: one binary search per flow, whatever the number of ports listed
            i = np.searchsorted(self.port_starts, port, side="right") - 1
            inside = (i >= 0) & (port <= self.port_ends[np.maximum(i, 0)])
            hit &= _PORTED[proto] & inside
        return hit


def _merged(ranges: tuple[tuple[int, int], ...]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the start and end columns of `ranges` sorted and merged (overlapping or touching joined)."""
    out: list[list[int]] = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return np.array([a for a, _ in out], dtype=np.int64), np.array([b for _, b in out], dtype=np.int64)




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
