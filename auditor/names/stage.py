"""The names stage: give every finished flow the name of its destination, and say where it came from.

In order of trust, a flow's name is what its own packets said: the TLS SNI of its ClientHello,
the SNI of its QUIC client Initial (decrypted with the version's initial secrets), its HTTP Host;
else the name the client itself resolved to that address (passive DNS, per client, TTL-aware);
else, for a local destination, the host name it gave in DHCP or announced in mDNS. A flow to an
address its client never looked up keeps no name (name_source 'none'): IoT devices talking to
hard-coded addresses is a signal in itself. When the SNI (or QUIC SNI) disagrees with the DNS
name the client resolved, the DNS name is kept beside it as evidence (name_mismatch).

Payloads come from the flow stage's hand-off: DNS and mDNS answers from any sender (the resolver
may be remote), QUIC Initials from the flow's initiator, and the TLS/HTTP/DHCP records the
fingerprint feed has already parsed (record()), so no payload is parsed twice.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.flows.payloads import PayloadRegistry
from auditor.flows.types import (
    DIRECTION_INBOUND,
    DIRECTION_INTERNAL,
    FlowRecords,
    Payload,
    distinct_rows,
    midstream_inbound,
)
from auditor.names.local_names import LocalNames
from auditor.names.passive_dns import PassiveDns
from auditor.names.types import (
    NAME_SOURCES,
    SOURCE_DNS,
    SOURCE_HTTP_HOST,
    SOURCE_NONE,
    SOURCE_QUIC,
    SOURCE_SNI,
)
from auditor.protocols import dns, quic

UDP = 17
QUIC_HEAD_PACKETS = 4
"""Payload packets of a UDP flow searched for client Initials: a ClientHello with post-quantum key
shares spans two datagrams, and retransmissions come early too."""
MAX_PENDING_FLOWS = 1_000_000
"""Flows holding a name from their own packets until they end (a flood beyond this starts over)."""
MAX_QUIC_ASSEMBLIES = 4_096
"""Connections whose ClientHello is being joined (each holds at most 2 x quic.MAX_CRYPTO bytes)."""
MAX_PENDING_QUERIES = 100_000
"""DNS queries waiting for their answer (an answer without a query seen is not believed)."""
QUERY_WAIT_NS = 30 * 1_000_000_000
"""How long a query waits for its answer."""
MAX_NAME_LENGTH = 253
_LOCAL_SOURCES = {"dhcp": NAME_SOURCES.index("dhcp"), "mdns": NAME_SOURCES.index("mdns")}


class NameStage:
    """Collects names from payloads as the capture is read; annotate() names each finished flow."""

    def __init__(self, grace_s: int = 300) -> None:
        self.dns = PassiveDns(grace_s=grace_s)
        self.local = LocalNames()
        self._flow_names: dict[int, tuple[str, int]] = {}
        """flow id -> (name, source) from the flow's own packets (SNI, QUIC, HTTP Host)."""
        self._quic: dict[int, quic.ClientHelloAssembler] = {}
        self._queries: dict[tuple[int, int, int, int, int, str], int] = {}
        """(client version, hi, lo, client port, DNS id, question) -> when the query was seen."""
        self.counts: Counter[str] = Counter()
        """What was learnt: dns-answers, dns-bindings, sni, quic-sni, http-host, and flows per name source."""

    def register(self, registry: PayloadRegistry) -> None:
        """Ask the hand-off for the payloads this stage reads itself."""
        # DNS answers come from any resolver, local or not; each must answer a query a local client sent
        registry.by_port("dns-answers", UDP, 53, self._dns_answer, from_port_only=True, any_sender=True)
        # mDNS is link-local and QUIC Initials are named only for local clients: local senders only
        registry.by_port("mdns-names", UDP, 5353, self._mdns, from_port_only=True)
        registry.by_flow_head("quic-initial", QUIC_HEAD_PACKETS, self._quic_initial, proto=UDP,
                              first_bytes=range(0xC0, 0x100), initiator_only=True)

    def record(self, payload: Payload, record: Any) -> None:
        """Take the names in a record the fingerprint feed parsed: SNI, HTTP Host, DHCP host names."""
        protocol = getattr(record, "protocol", "")
        if protocol == "tls":
            name = _clean(record.server_name) if record.handshake == "client_hello" else None
            if name:
                self._name_flow(payload.flow_id, name, SOURCE_SNI)
                self.counts["sni"] += 1
        elif protocol in ("http", "rtsp"):
            host = _host_name(record.host) if record.kind == "request" else None
            if host and payload.flow_id not in self._flow_names:  # an SNI outranks a Host header
                self._name_flow(payload.flow_id, host, SOURCE_HTTP_HOST)
                self.counts["http-host"] += 1
        elif protocol == "dhcp":
            self.local.observe_dhcp(payload.ts_ns, record)
        elif protocol == "dns" and not record.qr and record.questions:
            self._remember_query(payload, record)

    def _remember_query(self, payload: Payload, message: Any) -> None:
        queries = self._queries
        if len(queries) >= MAX_PENDING_QUERIES:  # drop the stale half, oldest first (insertion order)
            cutoff = payload.ts_ns - QUERY_WAIT_NS
            for key in [k for k, t in queries.items() if t < cutoff] or list(queries)[: len(queries) // 2]:
                del queries[key]
        key = (payload.ip_version, payload.src_hi, payload.src_lo, payload.sport, message.id,
               message.questions[0].name.lower())
        queries[key] = payload.ts_ns

    def _name_flow(self, flow_id: int, name: str, source: int) -> None:
        if not flow_id:
            return
        if len(self._flow_names) >= MAX_PENDING_FLOWS:
            self._flow_names.clear()  # flows that never ended (a flood): forget rather than grow
            self.counts["pending-names-dropped"] += 1
        self._flow_names[flow_id] = (name, source)

    def _dns_answer(self, payload: Payload) -> None:
        message = dns.parse(payload.data)
        if message is None:
            self.counts["dns-refused"] += 1
            return
        client = (payload.ip_version, payload.dst_hi, payload.dst_lo)
        question = message.questions[0].name.lower() if message.questions else ""
        asked = self._queries.pop((*client, payload.dport, message.id, question), None)
        if asked is None or payload.ts_ns - asked > QUERY_WAIT_NS:
            # an answer to no query we saw (spoofed, or its query was missed): not believed
            self.counts["dns-unsolicited"] += 1
            return
        self.counts["dns-answers"] += 1
        self.counts["dns-bindings"] += self.dns.observe(client, payload.ts_ns, message)

    def _mdns(self, payload: Payload) -> None:
        message = dns.parse(payload.data)
        if message is not None:
            self.local.observe_mdns(payload.ts_ns, message)

    def _quic_initial(self, payload: Payload) -> None:
        flow_id = payload.flow_id
        if not flow_id or flow_id in self._flow_names:
            return
        found = quic.initial_crypto(payload.data)
        if found is None:
            return
        assembler = self._quic.get(flow_id)
        if assembler is None:
            # a connection's first Initial starts its ClientHello (CRYPTO offset 0, handshake type 1):
            # anything else is not worth holding buffers for
            if not any(offset == 0 and chunk[:1] == b"\x01" for offset, chunk in found[2]):
                return
            if len(self._quic) >= MAX_QUIC_ASSEMBLIES:
                self._quic.clear()
            assembler = self._quic[flow_id] = quic.ClientHelloAssembler()
        assembler.add(found[2])
        # a hello cut at a datagram's end usually holds its SNI already: no need to wait for the rest
        hello = assembler.client_hello(partial=True)
        if hello is None or (hello.server_name is None and not assembler.complete):
            return
        del self._quic[flow_id]
        name = _clean(hello.server_name)
        if name:
            self._name_flow(flow_id, name, SOURCE_QUIC)
            self.counts["quic-sni"] += 1

    def annotate(self, flows: FlowRecords) -> FlowRecords:
        """Return `flows` with domain, name_source and name_mismatch filled in."""
        n = len(flows)
        domain: list[str | None] = [None] * n
        source = np.zeros(n, dtype=np.uint8)
        mismatch: list[str | None] = [None] * n
        # a TCP connection whose SYN was missed may look inbound: its client is then the responder
        swap = midstream_inbound(flows)
        inbound = flows.direction == DIRECTION_INBOUND
        dst_local = (flows.direction == DIRECTION_INBOUND) | (flows.direction == DIRECTION_INTERNAL)
        rows = self._may_be_named(flows, swap, inbound, dst_local)
        pending, quic_pending = self._flow_names, self._quic
        for i, fid, v, shi, slo, dhi, dlo, first, swapped, inside, here in zip(
                rows.tolist(), flows.flow_id[rows].tolist(), flows.ip_version[rows].tolist(),
                flows.src_hi[rows].tolist(), flows.src_lo[rows].tolist(), flows.dst_hi[rows].tolist(),
                flows.dst_lo[rows].tolist(), flows.first_ns[rows].tolist(), swap[rows].tolist(),
                inbound[rows].tolist(), dst_local[rows].tolist(), strict=True):
            client, server = ((v, dhi, dlo), (v, shi, slo)) if swapped else ((v, shi, slo), (v, dhi, dlo))
            own = pending.pop(fid, None)
            quic_pending.pop(fid, None)
            if own is not None:
                domain[i], source[i] = own
                if not inside or swapped:
                    # the SNI agrees with DNS when it is any name the client resolved to this address
                    valid = self.dns.names_of(client, server, first)
                    if valid and not any(own[0] in n.chain for n in valid):
                        mismatch[i] = valid[-1].name
                continue
            resolved = self.dns.name_of(client, server, first) if not inside or swapped else None
            if resolved is not None:
                domain[i], source[i] = resolved.name, SOURCE_DNS
            elif here and not swapped:  # DHCP and mDNS names are local hosts' own: for local addresses only
                local = self.local.name_of(server)
                if local is not None:
                    domain[i], source[i] = local[0], _LOCAL_SOURCES[local[1]]
        self.counts.update({"flows:" + NAME_SOURCES[k]: int(c) for k, c in enumerate(np.bincount(source)) if c})
        return replace(flows, domain=domain, name_source=source, name_mismatch=mismatch)

    def _may_be_named(self, flows: FlowRecords, swap: NDArray[np.bool_], inbound: NDArray[np.bool_],
                      dst_local: NDArray[np.bool_]) -> NDArray[np.intp]:
        """Return the rows that can get a name: a name or QUIC hello held for the flow, a DNS binding for
        its (client, server) pair, or a local name for its local server. The look-ups are made once per
        distinct pair or server, not per flow: at a sensor's stop a million flows may end at once."""
        n = len(flows)
        pending, quic_pending = self._flow_names, self._quic
        if pending or quic_pending:
            maybe = np.fromiter((f in pending or f in quic_pending for f in flows.flow_id.tolist()), dtype=bool,
                                count=n)
        else:
            maybe = np.zeros(n, dtype=bool)
        version = flows.ip_version
        server_hi = np.where(swap, flows.src_hi, flows.dst_hi)
        server_lo = np.where(swap, flows.src_lo, flows.dst_lo)
        at = np.flatnonzero((~inbound | swap) & ~maybe)
        if len(self.dns) and at.size:
            client_hi = np.where(swap, flows.dst_hi, flows.src_hi)[at]
            client_lo = np.where(swap, flows.dst_lo, flows.src_lo)[at]
            first, group = distinct_rows(version[at], client_hi, client_lo, server_hi[at], server_lo[at])
            known = np.array([self.dns.knows((v, chi, clo), (v, shi, slo)) for v, chi, clo, shi, slo in zip(
                version[at][first].tolist(), client_hi[first].tolist(), client_lo[first].tolist(),
                server_hi[at][first].tolist(), server_lo[at][first].tolist(), strict=True)], dtype=bool)
            maybe[at[known[group]]] = True
        at = np.flatnonzero(dst_local & ~swap & ~maybe)
        if len(self.local) and at.size:
            first, group = distinct_rows(version[at], server_hi[at], server_lo[at])
            known = np.array([self.local.name_of((v, hi, lo)) is not None for v, hi, lo in zip(
                version[at][first].tolist(), server_hi[at][first].tolist(), server_lo[at][first].tolist(),
                strict=True)], dtype=bool)
            maybe[at[known[group]]] = True
        return np.flatnonzero(maybe)

    def summary(self) -> dict[str, int]:
        """Return the counters for summary.json: flows per name source and what was learnt."""
        out = {f"flows_named_{k.replace('-', '_')}": self.counts.get("flows:" + k, 0) for k in NAME_SOURCES
               if k != NAME_SOURCES[SOURCE_NONE]}
        out["flows_never_named"] = self.counts.get("flows:" + NAME_SOURCES[SOURCE_NONE], 0)
        for key in ("dns-answers", "dns-bindings", "dns-refused", "dns-unsolicited", "sni", "quic-sni", "http-host"):
            out[key.replace("-", "_")] = self.counts.get(key, 0)
        out["dns_bindings_evicted"] = self.dns.evicted
        return out


def _clean(name: str | None) -> str | None:
    """Return a wire name lower-cased without its final dot, or None when it is empty, an address or absurd."""
    if not name:
        return None
    text = name.strip().lower().rstrip(".")
    # isprintable() is False for control characters and every Unicode space but ' ' itself
    if not text or len(text) > MAX_NAME_LENGTH or not text.isprintable() or " " in text:
        return None  # a host name has no spaces or control characters: this one is a lie or garbage
    if _is_address(text):
        return None
    return text


def _host_name(host: str | None) -> str | None:
    """Return the name in an HTTP Host header ('cam.example.com:8080' -> 'cam.example.com'); None for
    an address literal ('10.0.0.5:80', '[2001:db8::1]')."""
    if not host:
        return None
    text = host.strip()
    if text.startswith("["):
        return None
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return _clean(text)


def _is_address(text: str) -> bool:
    if not (text[-1].isdigit() or ":" in text):  # a name ends in a letter label; skip the parse
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

