"""Judge finished flows against the loaded policies; sum findings into alerts.

Which flows are judged: those started by a device on the audited site, that is, whose initiator
address is local (ECS direction outbound or internal). A flow started from outside comes in
through the router, whose MAC is no evidence about the remote initiator. One exception: a TCP
connection whose SYN the capture missed has no known initiator, so when it looks inbound it is
judged from its local side.

Which device started it: the initiator's MAC, unless that MAC has sent from several local
addresses (ROUTER_SOURCES): it is then a router forwarding other hosts, and their flows are judged
and summed by source address, as on links without MACs.

The evaluation order (rules/README.md shows it with examples). Policies are tried in order: the
rule paths as given, a folder's files by name, then the policies in file order. For each policy
whose device selectors match the device (its MAC's vendor, class, lists, MUD URL, the MAC itself,
or its source address):
  1. its deny entries, in order: the first that matches makes the flow a finding with that
     entry's severity (default: the policy's, else high);
  2. else its allow entries: any that matches approves the flow;
  3. else, when the policy has a severity, the flow is a finding with it; a policy without one is
     a guard, and the flow goes on to the next policy that selects the device.
A flow no policy decides is not a finding. Then waivers: a finding whose device, destination (and
policy, if the waiver names some) a waiver covers is waived when the flow started on or before
the waiver's last day, and an alert again, saying the waiver expired, when it started later.

A destination entry matches when all its fields do: local, networks, domains (the flow's name, see
names/), countries and asns (GeoIP), protocols, ports, and a named set (any of its entries).

Findings are summed per device x destination address x rule (a policy's catch-all, one deny
entry, or either under a waiver) into one Alert (flow count, bytes both ways, first and last
seen, ports seen, the destination's name), never one per packet or per flow.

Selecting and matching is columnar per batch of flows (Python runs once per distinct MAC, name or
destination address); summing takes one dict lookup per finding flow (policy/sums.py).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from auditor.devices.types import VendorVerdict
from auditor.flows.community_id import community_ids, flow_tuple
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import (
    DIRECTION_INTERNAL,
    DIRECTION_OUTBOUND,
    PORTED_PROTOCOLS,
    TRANSPORT_NAMES,
    FlowRecords,
    distinct_rows,
    ip_text,
    midstream_inbound,
    service_text,
)
from auditor.geo.types import GeoInfo
from auditor.names.types import NAME_SOURCES
from auditor.policy.load import LoadedPolicy, LoadedWaiver, RuleSet
from auditor.policy.schema import Destination, DeviceSelector, mac_value
from auditor.policy.sums import KEY, NO_VLAN, AlertSums, Extras, Findings
from auditor.policy.types import SEVERITIES, Alert, Evidence

VerdictLookup = Callable[[int], VendorVerdict | None]
MudUrlLookup = Callable[[int], str | None]


class GeoLookup(Protocol):
    """What the judge needs of geo.GeoReader: one address (text) to its country and AS."""

    def lookup(self, ip: str) -> GeoInfo: ...


DEFAULT_MAX_ALERTS = 100_000
LOW_SEVERITY_SHARE = 0.75
"""Share of max_alerts that low and medium alerts (and waived findings) may take."""
MAX_REMEMBERED_MACS = 200_000
MAX_REMEMBERED_NAMES = 200_000
ROUTER_SOURCES = {4: 4, 6: 8}
"""Distinct local source addresses, per IP version, after which a MAC counts as a router. A host has
one IPv4 address, a camera perhaps also its factory default (192.168.1.64) and one more across a
DHCP change; IPv6 hosts rotate temporary addresses, hence more. Unspecified and link-local
sources (DHCP, autoconfiguration) are not counted."""
NS_PER_DAY = 86_400 * 10**9
_PORTED = np.zeros(256, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True


def geo_needs(rules: RuleSet) -> dict[str, str]:
    """Return which GeoIP databases the rules need ('country', 'asn'), each with the first place that
    uses it (file:line and policy), so a run can refuse to start without them."""
    needs: dict[str, str] = {}
    sets = rules.sets or {}

    def visit(entries: Sequence[Destination], where: str) -> None:
        for e in entries:
            for field, db in (("countries", "country"), ("asns", "asn")):
                if getattr(e, field) is not None:
                    needs.setdefault(db, where)
            if e.set is not None:
                visit(sets.get(e.set, ()), f"{where} (set {e.set!r})")

    for loaded in rules.policies:
        visit((*loaded.policy.deny, *loaded.policy.allow), f"{loaded.reference}: policy {loaded.policy.id!r}")
    for w in rules.waivers:
        visit(w.waiver.destinations, f"{w.reference}: waiver {w.waiver.id!r}")
    return needs


@dataclass(frozen=True, slots=True)
class _Rule:
    """What an alert is about: a policy's catch-all or one deny entry, possibly under a waiver."""

    policy: int
    deny: int | None
    """Index of the deny entry; None for the policy's severity (no entry allowed the flow)."""
    rank: int
    waiver: LoadedWaiver | None = None
    expired: bool = False
    """The waiver covers the flow but had expired when it started: an alert again."""

    @property
    def waived(self) -> bool:
        return self.waiver is not None and not self.expired


class PolicyJudge:
    """Judges batches of finished flows (judge) and returns the alerts at the end (alerts)."""

    def __init__(
        self,
        rules: RuleSet,
        verdict_of: VerdictLookup,
        max_alerts: int = DEFAULT_MAX_ALERTS,
        geo: GeoLookup | None = None,
        mud_url_of: MudUrlLookup | None = None,
    ) -> None:
        self.rules = rules
        self._verdict_of = verdict_of
        self._mud_url_of = mud_url_of
        self.max_alerts = max_alerts
        self._geo = geo
        self._geo_cache: dict[tuple[int, int, int], GeoInfo] = {}
        sets = {name: [_Entry(e, {}) for e in entries] for name, entries in (rules.sets or {}).items()}
        self._policies = [_Compiled(p, sets) for p in rules.policies]
        self._waivers = [_CompiledWaiver(w, sets) for w in rules.waivers]
        self._selectors = [s for p in self._policies for s in p.selectors] + [
            s for w in self._waivers for s in w.selectors]
        self._flags: dict[int, tuple[VendorVerdict | None, str | None, tuple[bool, ...]]] = {}
        """Per MAC: the verdict and MUD URL the selector flags were computed from, and the flags."""
        self._sources: dict[int, set[tuple[int, int, int]]] = {}
        """Local source addresses seen per initiator MAC, until it counts as a router."""
        self._routers: set[int] = set()
        self._sums = AlertSums(max_alerts)
        self._drained = 0
        """Alert rows already handed out by drain_new()."""
        self._rules: list[_Rule] = []
        self._rule_index: dict[tuple[int, int | None, int | None, bool], int] = {}
        for index, policy in enumerate(self._policies):
            for d in range(len(policy.denies)):
                self._rule(index, d)
            if policy.rank >= 0:
                self._rule(index, None)
        self.flows_judged = 0
        """Flows started by a device that a policy selects."""
        self.findings = 0
        """Flows that were findings (waived ones included)."""
        self.waived_findings = 0
        """Findings a waiver covered."""
        self.expired_waiver_findings = 0
        """Findings a waiver would have covered had it not expired."""
        self.worst_rank = -1
        """Rank (index in SEVERITIES) of the most severe finding, summed or not, waived ones left out;
        -1 when none."""
        self.regrouped_devices = 0
        """Times a device's verdict changed which policies select it after some of its flows were judged
        (protocol evidence named it late): those flows kept the verdict they were judged with."""

    @property
    def dropped_findings(self) -> int:
        """Findings not summed because the alert limit was reached (a warning says so)."""
        return self._sums.dropped

    def _rule(self, policy: int, deny: int | None, waiver: int | None = None, expired: bool = False) -> int:
        """Return the index of a rule (alerts are keyed by it), making it on first use."""
        key = (policy, deny, waiver, expired)
        index = self._rule_index.get(key)
        if index is None:
            compiled = self._policies[policy]
            rank = compiled.denies[deny].rank if deny is not None else compiled.rank
            loaded = self._waivers[waiver].loaded if waiver is not None else None
            index = self._rule_index[key] = len(self._rules)
            self._rules.append(_Rule(policy, deny, rank, loaded, expired))
        return index

    def judge(self, flows: FlowRecords) -> None:
        """Judge finished flows; findings are added to the alerts."""
        if not self._policies or not len(flows):
            return
        for started, rows in site_started(flows):
            self._judge(started, rows)

    def _judge(self, flows: FlowRecords, rows: NDArray[np.intp]) -> None:
        if not rows.size:
            return
        src_mac = self._hosts_only(flows, rows)
        macs, inverse = np.unique(src_mac, return_inverse=True)
        per_mac = self._device_flags(macs.tolist())[inverse.ravel()]  # flows x selectors
        view = _FlowView(flows, rows, self)
        rule, selector, judged = self._decide(view, per_mac)
        self.flows_judged += int(judged.sum())
        bad = np.flatnonzero(rule >= 0)
        if not bad.size:
            return
        rule[bad] = self._waive(view, per_mac, bad, rule[bad])
        ranks = np.array([r.rank for r in self._rules], dtype=np.int64)
        waived = np.array([r.waived for r in self._rules], dtype=bool)[rule[bad]]
        self.findings += int(bad.size)
        self.waived_findings += int(waived.sum())
        self.expired_waiver_findings += int(np.array([r.expired for r in self._rules], dtype=bool)[rule[bad]].sum())
        if (~waived).any():
            self.worst_rank = max(self.worst_rank, int(ranks[rule[bad][~waived]].max()))
        self._add(flows, rows[bad], src_mac[bad], rule[bad], selector[bad], view.dst_local[bad],
                  view.names()[bad] if flows.domain is not None else None, view.sources[bad])

    def _decide(self, view: _FlowView, per_mac: NDArray[np.bool_]) -> tuple[
            NDArray[np.int64], NDArray[np.int32], NDArray[np.bool_]]:
        """Return per flow: the rule it breaks (-1: none), the selector of the deciding policy, and
        whether any policy selected its device."""
        n = view.size
        rule = np.full(n, -1, dtype=np.int64)
        selector = np.full(n, -1, dtype=np.int32)
        judged = np.zeros(n, dtype=bool)
        open_ = np.ones(n, dtype=bool)
        column = 0
        for index, policy in enumerate(self._policies):
            chosen = np.zeros(n, dtype=bool)
            chosen_by = np.full(n, -1, dtype=np.int32)
            for s, sel in enumerate(policy.selectors):
                hit = open_ & ~chosen & per_mac[:, column]
                column += 1
                if sel.ips is not None and hit.any():
                    hit &= sel.ips.contains(view.version, view.src_hi, view.src_lo)
                chosen |= hit
                chosen_by[hit] = s
            at = np.flatnonzero(chosen)
            if not at.size:
                continue
            judged[at] = True
            decided = np.zeros(at.size, dtype=bool)
            for d, entry in enumerate(policy.denies):
                undecided = np.flatnonzero(~decided)
                if not undecided.size:
                    break
                hit = entry.matches(view, at[undecided])
                rule[at[undecided[hit]]] = self._rule_index[(index, d, None, False)]
                decided[undecided[hit]] = True
            undecided = np.flatnonzero(~decided)
            if undecided.size and policy.allows:
                decided[undecided[_any_matches(policy.allows, view, at[undecided])]] = True
            if policy.rank >= 0:
                rule[at[~decided]] = self._rule_index[(index, None, None, False)]
                decided[:] = True
            done = at[decided]
            selector[done] = chosen_by[done]
            open_[done] = False
            if not open_.any():
                break
        return rule, selector, judged

    def _waive(self, view: _FlowView, per_mac: NDArray[np.bool_], bad: NDArray[np.int64],
               rule: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return the rules of finding flows `bad` with waivers applied (waived, or expired)."""
        if not self._waivers:
            return rule
        out = rule.copy()
        pending = np.ones(bad.size, dtype=bool)
        column = sum(len(p.selectors) for p in self._policies)
        first_ns = view.first_ns[bad]
        for w_index, w in enumerate(self._waivers):
            covered = np.zeros(bad.size, dtype=bool)
            for sel in w.selectors:
                hit = pending & per_mac[bad, column]
                column += 1
                if sel.ips is not None and hit.any():
                    hit &= sel.ips.contains(view.version[bad], view.src_hi[bad], view.src_lo[bad])
                covered |= hit
            if w.policy_ids is not None:
                covered &= np.isin(rule, [i for i, r in enumerate(self._rules)
                                          if self._policies[r.policy].id in w.policy_ids])
            at = np.flatnonzero(covered)
            if not at.size:
                continue
            at = at[_any_matches(w.destinations, view, bad[at])]
            expired = first_ns[at] >= w.ends_ns
            for i, old, gone in zip(at.tolist(), rule[at].tolist(), expired.tolist(), strict=True):
                r = self._rules[old]
                out[i] = self._rule(r.policy, r.deny, w_index, gone)
            pending[at[~expired]] = False  # an expired waiver leaves the flow to later waivers
        return out

    def _hosts_only(self, flows: FlowRecords, rows: NDArray[np.intp]) -> NDArray[np.uint64]:
        """Return the initiator MACs of `rows`, with 0 for routers: a MAC that has sent from several local
        addresses forwards other hosts' traffic, and its vendor says nothing about theirs. Their flows
        are then judged, and summed, by source address, as on a link without MACs."""
        mac = flows.src_mac[rows]
        version, src_hi, src_lo = flows.ip_version[rows], flows.src_hi[rows], flows.src_lo[rows]
        at, _ = distinct_rows(mac, version, src_hi, src_lo)  # far cheaper than np.unique(axis=1)
        for m, v, hi, lo in zip(mac[at].tolist(), version[at].tolist(), src_hi[at].tolist(), src_lo[at].tolist(),
                                strict=True):
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
        until its verdict or MUD URL changes (protocol evidence can name the maker of a device mid-run)."""
        rows = []
        for mac in macs:
            verdict = self._verdict_of(mac) if mac else None
            mud_url = self._mud_url_of(mac) if mac and self._mud_url_of is not None else None
            known = self._flags.get(mac)
            if known is None or known[0] is not verdict or known[1] != mud_url:
                flags = tuple(s.device_matches(mac, verdict, mud_url) for s in self._selectors)
                if known is not None and known[2] != flags:
                    # its earlier flows were judged as another group's: a rejudge of the run judges them anew
                    self.regrouped_devices += 1
                if len(self._flags) >= MAX_REMEMBERED_MACS:
                    self._flags.clear()  # a flood of distinct MACs: start over rather than grow
                known = self._flags[mac] = (verdict, mud_url, flags)
            rows.append(known[2])
        return np.array(rows, dtype=bool).reshape(len(macs), len(self._selectors))

    @property
    def has_geo(self) -> bool:
        """True when GeoIP databases were given."""
        return self._geo is not None

    def geo_of(self, version: int, hi: int, lo: int) -> GeoInfo | None:
        """Return the country and AS of one destination (cached per address), None without databases."""
        if self._geo is None:
            return None
        key = (version, hi, lo)
        info = self._geo_cache.get(key)
        if info is None:
            if len(self._geo_cache) >= MAX_REMEMBERED_NAMES:
                self._geo_cache.clear()
            info = self._geo_cache[key] = self._geo.lookup(ip_text(version, hi, lo))
        return info

    def _add(
        self,
        flows: FlowRecords,
        rows: NDArray[np.int64],
        mac: NDArray[np.uint64],
        rule: NDArray[np.int64],
        selector: NDArray[np.int32],
        dst_local: NDArray[np.bool_],
        names: NDArray[Any] | None,
        sources: NDArray[np.uint8],
    ) -> None:
        version = flows.ip_version[rows]
        no_mac = mac == 0  # without a MAC the device is its source address
        key = np.zeros(rows.size, dtype=KEY)
        key["policy"], key["mac"] = rule, mac
        key["dev_version"] = np.where(no_mac, version, 0)
        key["dev_hi"] = np.where(no_mac, flows.src_hi[rows], 0)
        key["dev_lo"] = np.where(no_mac, flows.src_lo[rows], 0)
        key["dst_version"], key["dst_hi"], key["dst_lo"] = version, flows.dst_hi[rows], flows.dst_lo[rows]
        proto = flows.ip_proto[rows]
        ranks = np.array([-1 if r.waived else r.rank for r in self._rules], dtype=np.int64)[rule]
        limits = np.where(ranks >= SEVERITIES.index("high"), self.max_alerts,
                          int(self.max_alerts * LOW_SEVERITY_SHARE))
        self._sums.add(Findings(
            key=key, selector=selector, dst_local=dst_local,
            first_ns=flows.first_ns[rows], last_ns=flows.last_ns[rows],
            src_packets=flows.src_packets[rows], src_bytes=flows.src_bytes[rows],
            dst_packets=flows.dst_packets[rows], dst_bytes=flows.dst_bytes[rows],
            src_version=version, src_hi=flows.src_hi[rows], src_lo=flows.src_lo[rows],
            proto=proto, port=np.where(_PORTED[proto], flows.dst_port[rows], 0).astype(np.uint16),
            vlan=flows.vlan_outer[rows], sport=flows.src_port[rows], dport=flows.dst_port[rows],
            names=names, name_source=sources,
        ), limits)

    def alerts(self) -> list[Alert]:
        """Return the alerts so far: most severe first, then by first seen, device and destination."""
        return list(self.iter_alerts())

    def iter_alerts(self) -> Iterator[Alert]:
        """Yield the alerts in the order of alerts(), one at a time (a writer need not hold them all).
        Waived findings come last, as alerts whose status is 'waived'."""
        sums = self._sums
        if not len(sums):
            return
        col = sums.column
        rank = np.array([-1 if r.waived else r.rank for r in self._rules], dtype=np.int64)
        policy_ids = np.array([self._policies[r.policy].id for r in self._rules])
        id_order = np.argsort(np.argsort(policy_ids, kind="stable"), kind="stable")
        rule = col("policy")
        order = np.lexsort((
            id_order[rule], col("dst_lo"), col("dst_hi"), col("dst_version"), col("src_lo"), col("src_hi"),
            col("src_version"), col("mac"), col("first_ns"), -rank[rule],
        ))
        ids = self._community_ids()
        names = ("policy", "selector", "mac", "dst_version", "dst_hi", "dst_lo", "dst_local", "first_ns", "last_ns",
                 "flows", "src_packets", "src_bytes", "dst_packets", "dst_bytes", "src_version", "src_hi", "src_lo",
                 "proto", "port", "vlan")
        columns = {name: col(name).tolist() for name in names}  # Python values once per column, not per cell
        for row in order.tolist():
            values = {name: columns[name][row] for name in names}
            yield self._alert(values, sums.extras.get(row), ids[row], sums.names.get(row))

    def drain_new(self) -> Iterator[Alert]:
        """Yield the alerts made since the last call, in the order they fired (a live sensor appends them
        to alerts.jsonl as they fire; their sums keep growing in alerts())."""
        start, end = self._drained, len(self._sums)
        if start >= end:
            return
        self._drained = end
        col = self._sums.column
        names = ("policy", "selector", "mac", "dst_version", "dst_hi", "dst_lo", "dst_local", "first_ns", "last_ns",
                 "flows", "src_packets", "src_bytes", "dst_packets", "dst_bytes", "src_version", "src_hi", "src_lo",
                 "proto", "port", "vlan")
        columns = {name: col(name)[start:end].tolist() for name in names}
        ids = self._community_ids(since=start)
        for i, row in enumerate(range(start, end)):
            values = {name: columns[name][i] for name in names}
            yield self._alert(values, self._sums.extras.get(row), ids[row - start], self._sums.names.get(row))

    def _community_ids(self, since: int = 0) -> list[list[str]]:
        """Return the Community IDs of the sampled flows of alerts `since`.. (one vectorised pass)."""
        samples = [(row - since, s) for row, s in self._sums.samples() if row >= since]
        cols = np.array([s for _, s in samples], dtype=np.uint64).reshape(-1, 8).T
        version, proto, s_hi, s_lo, d_hi, d_lo, sport, dport = cols
        ft = flow_tuple(version.astype(np.uint8), proto.astype(np.uint8), s_hi, s_lo, d_hi, d_lo,
                        sport.astype(np.uint16), dport.astype(np.uint16))
        texts = community_ids(version.astype(np.uint8), proto.astype(np.uint8), ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo,
                              ft.port_a, ft.port_b)
        out: list[list[str]] = [[] for _ in range(len(self._sums) - since)]
        for (row, _), text in zip(samples, texts, strict=True):
            out[row].append(text)
        return out

    def _alert(self, v: dict[str, Any], extra: Extras | None, cids: list[str],
               name: tuple[str, int] | None) -> Alert:
        rule = self._rules[v["policy"]]
        compiled = self._policies[rule.policy]
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
        rule_id = policy.id if rule.deny is None else f"{policy.id}/deny-{rule.deny}"
        key = f"{loaded.ruleset}\0{rule_id}\0{device}\0{destination}"
        if rule.waiver is not None:  # a waived and an expired part of one finding are two alerts: two ids
            key += f"\0{'expired' if rule.expired else 'waived'}\0{rule.waiver.waiver.id}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        service_list = tuple(sorted(services))
        domain = name[0] if name else None
        evidence: list[Evidence] = []
        if vendor is not None:
            evidence.append(Evidence(vendor.how, "source.mac", vendor.detail, vendor.name, vendor.confidence))
        evidence.append(compiled.group_evidence[v["selector"]])
        target = destination + (f" ({domain})" if domain else "")
        services_text = " ".join(service_text(p, q) for p, q in service_list)
        if rule.deny is not None:
            entry = compiled.denies[rule.deny]
            evidence.append(Evidence("policy-deny", f"deny[{rule.deny}]", f"{target} {services_text}",
                                     f"denied: {entry.text}"))
        else:
            evidence.append(Evidence(
                "policy-allow", "allow", f"{target} {services_text}",
                ("local; approved: " if v["dst_local"] else "not local; approved: ") + compiled.allowed_text,
            ))
        status = "open"
        if rule.waiver is not None:
            w = rule.waiver.waiver
            if rule.expired:
                evidence.append(Evidence("waiver-expired", f"waivers.{w.id}", w.reason,
                                         f"{rule.waiver.reference}: expired on {w.expires.isoformat()}"))
            else:
                status = "waived"
                evidence.append(Evidence("waiver", f"waivers.{w.id}", w.reason,
                                         f"{rule.waiver.reference}: until {w.expires.isoformat()}"))
        return Alert(
            alert_id=digest[:32],
            rule_id=rule_id,
            rule_name=policy.name if rule.deny is None else f"{policy.name}: denied destination",
            ruleset=loaded.ruleset,
            rule_description=policy.description,
            rule_reference=loaded.reference,
            severity=SEVERITIES[rule.rank],
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
            destination_domain=domain,
            name_source=NAME_SOURCES[name[1]] if name else None,
            status=status,
            waiver_id=rule.waiver.waiver.id if rule.waiver is not None else None,
        )


class _FlowView:
    """The columns of the judged rows of a batch, and what entries need beyond them, computed once
    per batch when an entry first asks (names, countries, AS numbers)."""

    def __init__(self, flows: FlowRecords, rows: NDArray[np.intp], judge: PolicyJudge) -> None:
        self.size = int(rows.size)
        self._flows, self._rows, self._judge = flows, rows, judge
        self.version = flows.ip_version[rows]
        self.src_hi, self.src_lo = flows.src_hi[rows], flows.src_lo[rows]
        self.dst_hi, self.dst_lo = flows.dst_hi[rows], flows.dst_lo[rows]
        self.proto = flows.ip_proto[rows]
        self.port = flows.dst_port[rows]
        self.first_ns = flows.first_ns[rows]
        self.dst_local = flows.direction[rows] == DIRECTION_INTERNAL  # the table judged it by the same networks
        self.sources = (flows.name_source[rows] if flows.name_source is not None
                        else np.zeros(self.size, dtype=np.uint8))
        self._names: NDArray[Any] | None = None
        self._dns_names: NDArray[Any] | None = None
        self._geo: list[GeoInfo | None] | None = None

    def dns_names(self) -> NDArray[Any]:
        """Per row, the client's own DNS name for the address when the SNI/Host disagreed with it, or None."""
        if self._dns_names is None:
            self._dns_names = self._rows_of(self._flows.name_mismatch)
        return self._dns_names

    def names(self) -> NDArray[Any]:
        """Per row, the flow's destination name or None."""
        if self._names is None:
            self._names = self._rows_of(self._flows.domain)
        return self._names

    def _rows_of(self, column: list[str | None] | None) -> NDArray[Any]:
        out = np.full(self.size, None, dtype=object)
        if column is not None:
            out[:] = [column[i] for i in self._rows.tolist()]
        return out

    def geo(self, at: NDArray[np.intp]) -> list[GeoInfo | None]:
        """Per row of `at`, the destination's GeoIP answer (None without databases)."""
        if not self._judge.has_geo:
            return [None] * len(at)  # no databases: nothing to look up, row by row or otherwise
        if self._geo is None:
            self._geo = [None] * self.size
        known = self._geo
        for i in at.tolist():
            if known[i] is None:
                known[i] = self._judge.geo_of(int(self.version[i]), int(self.dst_hi[i]), int(self.dst_lo[i]))
        return [known[i] for i in at.tolist()]


class _Compiled:
    """A policy ready for columns, with the texts its alerts repeat."""

    def __init__(self, loaded: LoadedPolicy, sets: dict[str, list[_Entry]]) -> None:
        policy = loaded.policy
        self.loaded = loaded
        self.id = policy.id
        self.rank = SEVERITIES.index(policy.severity) if policy.severity is not None else -1
        self.selectors = [_Selector(s) for s in policy.devices]
        deny_rank = self.rank if self.rank >= 0 else SEVERITIES.index("high")
        self.denies = [_Entry(d, sets, SEVERITIES.index(d.severity) if d.severity else deny_rank)
                       for d in policy.deny]
        self.allows = [_Entry(d, sets) for d in policy.allow]
        governs = f"{loaded.reference}: policy {policy.id!r} governs this device"
        self.group_evidence = [
            Evidence("policy-group", f"devices[{i}]", _describe_selector(s), governs)
            for i, s in enumerate(policy.devices)
        ]
        self.allowed_text = "; ".join(a.text for a in self.allows) or "nothing"


class _CompiledWaiver:
    def __init__(self, loaded: LoadedWaiver, sets: dict[str, list[_Entry]]) -> None:
        w = loaded.waiver
        self.loaded = loaded
        self.selectors = [_Selector(s) for s in w.devices]
        self.destinations = [_Entry(d, sets) for d in w.destinations]
        self.policy_ids = frozenset(w.policies) if w.policies else None
        last_day = datetime.datetime.combine(w.expires, datetime.time(), datetime.UTC)
        self.ends_ns = int(last_day.timestamp()) * 10**9 + NS_PER_DAY
        """Flows that start at or after this instant (the day after `expires`, UTC) are not waived."""


class _Selector:
    def __init__(self, s: DeviceSelector) -> None:
        self.all = bool(s.all)
        self.vendors = frozenset(s.vendors) if s.vendors else None
        self.classes = frozenset(s.classes) if s.classes else None
        self.lists = frozenset(s.lists) if s.lists else None
        self.macs = frozenset(mac_value(m) for m in s.macs) if s.macs else None
        self.ips = LocalNetworks(s.ips) if s.ips else None
        self.mud_urls = frozenset(s.mud_urls) if s.mud_urls else None

    def device_matches(self, mac: int, v: VendorVerdict | None, mud_url: str | None = None) -> bool:
        """Return whether the fields about the device itself (not its address) all match."""
        if self.macs is not None and mac not in self.macs:
            return False
        if self.mud_urls is not None and mud_url not in self.mud_urls:
            return False
        if self.vendors is not None and (v is None or self.vendors.isdisjoint((v.vendor_id, *v.parents))):
            return False
        if self.classes is not None and (v is None or v.device_class not in self.classes):
            return False
        return self.lists is None or (v is not None and not self.lists.isdisjoint(m.list_id for m in v.lists))


class DomainMatcher:
    """Domain patterns: 'example.com' that name only, '*.example.com' its subdomains only,
    '.example.com' the name and its subdomains. Names compare case-insensitively, final dot ignored."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.exact = frozenset(p for p in patterns if not p.startswith(("*.", ".")))
        self.below = frozenset(p[2:] for p in patterns if p.startswith("*."))
        self.tree = frozenset(p[1:] for p in patterns if p.startswith("."))
        self._cache: dict[str, bool] = {}

    def __call__(self, name: str | None) -> bool:
        if not name:
            return False
        known = self._cache.get(name)
        if known is None:
            known = self._match(name.lower().rstrip("."))
            if len(self._cache) >= MAX_REMEMBERED_NAMES:
                self._cache.clear()
            self._cache[name] = known
        return known

    def _match(self, name: str) -> bool:
        if name in self.exact or name in self.tree:
            return True
        dot = name.find(".")
        while dot >= 0:  # every proper suffix: a.b.example.com -> b.example.com -> example.com -> com
            suffix = name[dot + 1:]
            if suffix in self.below or suffix in self.tree:
                return True
            dot = name.find(".", dot + 1)
        return False


class _Entry:
    """One destination entry (allow, deny, set member, waiver destination), matched on flow columns."""

    def __init__(self, d: Destination, sets: dict[str, list[_Entry]], rank: int = -1) -> None:
        self.rank = rank
        self.local = bool(d.local)
        self.networks = LocalNetworks(d.networks) if d.networks else None
        self.domains = DomainMatcher(d.domains) if d.domains else None
        self.countries = frozenset(d.countries) if d.countries else None
        self.asns = frozenset(d.asns) if d.asns else None
        self.protocols = np.array(sorted(set(d.protocols)), dtype=np.uint8) if d.protocols else None
        self.port_starts: NDArray[np.int64] | None = None
        self.port_ends: NDArray[np.int64] | None = None
        if d.ports:
            self.port_starts, self.port_ends = _merged(d.ports)
        self.members = sets[d.set] if d.set is not None else None
        self.text = describe_destination(d)

    def matches(self, view: _FlowView, at: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Return, per row `at` of the view, whether this entry matches its flow (AND of the fields given)."""
        hit = view.dst_local[at].copy() if self.local else np.ones(at.size, dtype=bool)
        if self.networks is not None:
            hit &= self.networks.contains(view.version[at], view.dst_hi[at], view.dst_lo[at])
        if self.protocols is not None:
            hit &= np.isin(view.proto[at], self.protocols)
        if self.port_starts is not None and self.port_ends is not None:
            # sorted, merged ranges: one binary search per flow, whatever the number of ports listed
            port = view.port[at]
            i = np.searchsorted(self.port_starts, port, side="right") - 1
            inside = (i >= 0) & (port <= self.port_ends[np.maximum(i, 0)])
            hit &= _PORTED[view.proto[at]] & inside
        if self.domains is not None and hit.any():
            left = np.flatnonzero(hit)
            names, resolved = view.names()[at[left]], view.dns_names()[at[left]]
            if self.rank >= 0:
                # a deny: the name the device claims (SNI, Host) OR the name it looked up; a device cannot
                # dodge a deny by sending another SNI to the denied address
                matched = (self.domains(n) or self.domains(d) for n, d in zip(names, resolved, strict=True))
            else:
                # an allow: the claimed name, unless the client's own DNS answer for the address contradicts it
                matched = (self.domains(n) and (d is None or self.domains(d)) for n, d in zip(names, resolved,
                                                                                              strict=True))
            hit[left] = np.fromiter(matched, dtype=bool, count=left.size)
        if (self.countries is not None or self.asns is not None) and hit.any():
            left = np.flatnonzero(hit)
            found = view.geo(at[left])
            if self.countries is not None:
                hit[left] &= np.fromiter((g is not None and g.country in self.countries for g in found), dtype=bool,
                                         count=left.size)
            if self.asns is not None:
                hit[left] &= np.fromiter((g is not None and g.asn in self.asns for g in found), dtype=bool,
                                         count=left.size)
        if self.members is not None and hit.any():
            left = np.flatnonzero(hit)
            hit[left] = _any_matches(self.members, view, at[left])
        return hit


def _any_matches(entries: Sequence[_Entry], view: _FlowView, at: NDArray[np.intp]) -> NDArray[np.bool_]:
    """Per row `at` of the view, whether any of the entries matches (each entry sees only the rows no
    earlier one matched)."""
    hit = np.zeros(at.size, dtype=bool)
    for entry in entries:
        left = np.flatnonzero(~hit)
        if not left.size:
            break
        hit[left] = entry.matches(view, at[left])
    return hit


def site_started(flows: FlowRecords) -> Iterator[tuple[FlowRecords, NDArray[np.intp]]]:
    """Yield (flows, rows) of the flows a site device started, oriented from that device: those whose
    initiator is local (outbound or internal; direction = 2 * initiator_local + responder_local),
    then, reversed, the TCP connections whose SYN the capture missed and that look inbound (it began
    before the capture: the table took the first sender, often the remote server, as initiator; judged
    from the local side, or a device's long-lived cloud connection would never be judged)."""
    yield flows, np.flatnonzero((flows.direction == DIRECTION_OUTBOUND) | (flows.direction == DIRECTION_INTERNAL))
    unseen = np.flatnonzero(midstream_inbound(flows))
    if unseen.size:
        reversed_ = reversed_flows(flows, unseen)
        yield reversed_, np.arange(len(reversed_))


def _autoconfigured(version: int, hi: int, lo: int) -> bool:
    """True for sources every host may use besides its own address: 0.0.0.0, ::, 169.254/16, fe80::/10."""
    if version == 4:
        return lo == 0 or lo >> 16 == 0xA9FE
    return (hi == 0 and lo == 0) or hi >> 54 == 0x3FA


def reversed_flows(flows: FlowRecords, rows: NDArray[np.intp]) -> FlowRecords:
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
    extra: dict[str, Any] = {}
    if flows.domain is not None:
        extra["domain"] = [flows.domain[i] for i in rows.tolist()]
    if flows.name_source is not None:
        extra["name_source"] = flows.name_source[rows]
    if flows.name_mismatch is not None:
        extra["name_mismatch"] = [flows.name_mismatch[i] for i in rows.tolist()]
    return FlowRecords(**swapped, **same, direction=direction, **extra)  # type: ignore[arg-type]



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
    for name in ("vendors", "classes", "lists", "macs", "ips", "mud_urls"):
        values = getattr(s, name)
        if values:
            parts.append(f"{name}: {', '.join(map(str, values))}")
    if s.all:
        parts.append("all devices")
    return "; ".join(parts)


def describe_destination(d: Destination) -> str:
    """Return a destination entry as one short line: 'local', '10.0.0.5/32 tcp port 443', 'countries CN'."""
    parts = []
    if d.set:
        parts.append(f"set {d.set}")
    if d.local:
        parts.append("local")
    if d.networks:
        parts.append(",".join(d.networks))
    if d.domains:
        parts.append(",".join(d.domains))
    if d.countries:
        parts.append("countries " + ",".join(d.countries))
    if d.asns:
        parts.append("AS " + ",".join(map(str, d.asns)))
    if d.protocols:
        parts.append(",".join(TRANSPORT_NAMES.get(p, str(p)) for p in d.protocols))
    if d.ports:
        parts.append("port " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in d.ports))
    return " ".join(parts)


def explain_flow(judge: PolicyJudge, flows: FlowRecords, row: int) -> list[str]:
    """Return, line by line, how `judge` decides flow `row`: the device and its verdict, every policy
    tried in evaluation order (selected or not, and by which selector), each deny and allow entry
    (matched or not), the decision, and the waivers. It runs the judge's own matchers on this one
    flow, so it cannot disagree with judge(); call it after judging the run's flows, so that routers
    (MACs seen sending for several addresses) are known."""
    lines: list[str] = []
    if midstream_inbound(flows)[row]:
        flows, row = reversed_flows(flows, np.array([row])), 0
        lines.append("a TCP connection whose SYN was not captured, seen inbound: judged from its local side")
    direction = int(flows.direction[row])
    src = ip_text(int(flows.ip_version[row]), int(flows.src_hi[row]), int(flows.src_lo[row]))
    dst = ip_text(int(flows.ip_version[row]), int(flows.dst_hi[row]), int(flows.dst_lo[row]))
    service = service_text(int(flows.ip_proto[row]), int(flows.dst_port[row]))
    name = flows.domain[row] if flows.domain is not None else None
    source = NAME_SOURCES[int(flows.name_source[row])] if flows.name_source is not None else "none"
    lines.append(f"flow {src} -> {dst} {service}; destination name: {name or '(never named)'} (from {source})")
    if direction not in (DIRECTION_OUTBOUND, DIRECTION_INTERNAL):
        lines.append("not judged: the flow was started from outside the local networks")
        return lines
    rows = np.array([row])
    mac = int(judge._hosts_only(flows, rows)[0])
    verdict = judge._verdict_of(mac) if mac else None
    if mac:
        who = (f"{verdict.vendor_id or '?'} {verdict.device_class} ({verdict.how}, confidence {verdict.confidence})"
               if verdict is not None else "no verdict")
        lines.append(f"device {mac:012X}: {who}")
    else:
        lines.append(f"device {src} (no MAC, or its MAC is a router's: judged by source address)")
    view = _FlowView(flows, rows, judge)
    info = judge.geo_of(int(view.version[0]), int(view.dst_hi[0]), int(view.dst_lo[0]))
    if info is not None:
        lines.append(f"destination country {info.country or '?'}, AS {info.asn or '?'} {info.as_org or ''}".rstrip())
    flags = judge._device_flags([mac])[0]
    at = np.array([0])
    column = 0
    decided_by: tuple[int, int | None] | None = None
    for index, policy in enumerate(judge._policies):
        where = f"{policy.loaded.reference}: policy {policy.id!r}"
        chosen = None
        for s, sel in enumerate(policy.selectors):
            hit = bool(flags[column])
            column += 1
            if hit and sel.ips is not None:
                hit = bool(sel.ips.contains(view.version, view.src_hi, view.src_lo)[0])
            if hit and chosen is None:
                chosen = s
        if chosen is None:
            lines.append(f"{where}: does not select this device")
            continue
        described = _describe_selector(policy.loaded.policy.devices[chosen])
        lines.append(f"{where}: selects it by devices[{chosen}] ({described})")
        for d, entry in enumerate(policy.denies):
            hit = bool(entry.matches(view, at)[0])
            lines.append(f"  deny[{d}] {entry.text}: {'MATCHES' if hit else 'no match'}")
            if hit:
                decided_by = (index, d)
                break
        if decided_by is None:
            for a, entry in enumerate(policy.allows):
                hit = bool(entry.matches(view, at)[0])
                lines.append(f"  allow[{a}] {entry.text}: {'MATCHES' if hit else 'no match'}")
                if hit:
                    lines.append("  => approved: not a finding")
                    return lines
            if policy.rank >= 0:
                decided_by = (index, None)
            else:
                lines.append("  no entry decides, and the policy has no severity (a guard): on to the next policy")
                continue
        deny = decided_by[1]
        rank = policy.denies[deny].rank if deny is not None else policy.rank
        what = f"deny[{deny}]" if deny is not None else "no allow entry matches"
        lines.append(f"  => finding, severity {SEVERITIES[rank]} ({what})")
        break
    if decided_by is None:
        lines.append("no policy decides this flow: not a finding")
        return lines
    rule = judge._rule_index[(decided_by[0], decided_by[1], None, False)]
    waived = judge._waive(view, flags.reshape(1, -1), np.array([0]), np.array([rule]))[0]
    if waived != rule:
        r = judge._rules[int(waived)]
        assert r.waiver is not None
        w = r.waiver.waiver
        state = f"expired on {w.expires.isoformat()}: still an alert" if r.expired else \
            f"waived until {w.expires.isoformat()}"
        lines.append(f"{r.waiver.reference}: waiver {w.id!r} covers it: {state} ({w.reason})")
    return lines
