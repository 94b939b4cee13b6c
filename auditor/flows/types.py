"""Records the flow stage produces: finished flows (columnar) and payloads handed to parsers."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# IANA protocol keywords, lower-cased, as ECS network.transport expects
TRANSPORT_NAMES: dict[int, str] = {
    1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
    58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}
PORTED_PROTOCOLS: frozenset[int] = frozenset({6, 17, 132})
"""Protocols whose flows are keyed by ports (TCP, UDP, SCTP)."""


def service_text(proto: int, port: int) -> str:
    """Return 'tcp/443', 'udp/123', or the protocol alone when it has no ports ('icmp')."""
    name = TRANSPORT_NAMES.get(proto, str(proto))
    return f"{name}/{port}" if proto in PORTED_PROTOCOLS else name


def ip_text(version: int, hi: int, lo: int) -> str:
    """Return an address of the engine's columns (version, hi, lo; IPv4 in the low 32 bits of lo)
    as text, RFC 5952 for IPv6: the one spelling every output uses."""
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, (lo & 0xFFFFFFFF).to_bytes(4, "big"))
    if hi == 0 and lo >> 32 == 0:
        # glibc's inet_ntop writes ::10.0.0.1 for the deprecated IPv4-compatible range; RFC 5952
        # text is ::a00:1 (IPv4-mapped ::ffff:10.0.0.1 keeps its dotted tail, as RFC 5952 §5 says)
        return str(ipaddress.IPv6Address(lo))
    return socket.inet_ntop(socket.AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))

# Why a flow left the table (FlowRecords.end_reason); index = code.
END_REASONS: tuple[str, ...] = ("idle-timeout", "tcp-close", "capacity", "end-of-capture")
END_IDLE, END_TCP_CLOSE, END_CAPACITY, END_OF_CAPTURE = range(4)

# ECS network.direction of a flow (FlowRecords.direction); code = 2 * initiator_local + responder_local
DIRECTION_NAMES: tuple[str, ...] = ("external", "inbound", "outbound", "internal")
DIRECTION_EXTERNAL, DIRECTION_INBOUND, DIRECTION_OUTBOUND, DIRECTION_INTERNAL = range(4)


@dataclass(frozen=True, slots=True)
class FlowRecords:
    """Finished flows, one row each, oriented from the initiator ('src') to the responder ('dst')."""

    flow_id: NDArray[np.uint64]
    """Unique within a run; payload hand-offs carry the same id."""
    ip_version: NDArray[np.uint8]
    ip_proto: NDArray[np.uint8]
    src_hi: NDArray[np.uint64]
    src_lo: NDArray[np.uint64]
    dst_hi: NDArray[np.uint64]
    dst_lo: NDArray[np.uint64]
    src_port: NDArray[np.uint16]
    """Initiator port; for ICMP the Community ID port equivalent (the type)."""
    dst_port: NDArray[np.uint16]
    vlan_outer: NDArray[np.uint16]
    vlan_inner: NDArray[np.uint16]
    src_mac: NDArray[np.uint64]
    """MAC that sent the initiator's first packet; 0 when the link layer had none."""
    dst_mac: NDArray[np.uint64]
    """MAC that sent the responder's first packet (the router's MAC for remote hosts); 0 if none."""
    src_packets: NDArray[np.uint64]
    """Packets sent by the initiator."""
    dst_packets: NDArray[np.uint64]
    src_bytes: NDArray[np.uint64]
    """Bytes on the wire (frame length) sent by the initiator."""
    dst_bytes: NDArray[np.uint64]
    src_tcp_flags: NDArray[np.uint8]
    """TCP flags seen from the initiator, ORed."""
    dst_tcp_flags: NDArray[np.uint8]
    first_ns: NDArray[np.int64]
    last_ns: NDArray[np.int64]
    end_reason: NDArray[np.uint8]
    """Index into END_REASONS."""
    direction: NDArray[np.uint8]
    """Index into DIRECTION_NAMES, judged by the table's local networks."""
    community_id: list[str] | None = None
    """Community ID v1 of each flow (seed 0); None until flows.community_id.with_community_ids
    fills it (a writer does that in its own process, off the packet path)."""
    domain: list[str | None] | None = None
    """The responder's name per flow (names/: SNI, QUIC, HTTP Host, the client's DNS answer, a local
    host's DHCP or mDNS name); None until the names stage fills it."""
    name_source: NDArray[np.uint8] | None = None
    """Where each domain came from: an index into names.types.NAME_SOURCES (0: never named)."""
    name_mismatch: list[str | None] | None = None
    """Per flow, the client's DNS name for the address when the TLS/QUIC name differs from it."""

    def __len__(self) -> int:
        return int(self.flow_id.shape[0])


TCP_SYN = 0x02


def midstream_inbound(flows: FlowRecords) -> NDArray[np.bool_]:
    """Per flow: a TCP connection whose SYN the capture missed and which looks inbound. The table took
    its first sender as the initiator, often the remote server of a device's long-lived connection,
    so the policy and the names stage treat its responder as the client."""
    flags = flows.src_tcp_flags | flows.dst_tcp_flags
    inbound_tcp = (flows.direction == DIRECTION_INBOUND) & (flows.ip_proto == 6)
    unseen: NDArray[np.bool_] = inbound_tcp & ((flags & TCP_SYN) == 0)
    return unseen


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class Payload:
    """One packet's transport payload (or L2 payload), handed to a protocol parser that asked for it."""

    flow_id: int
    """The flow this packet belongs to; 0 for non-IP frames."""
    ts_ns: int
    ip_version: int
    ip_proto: int
    src_hi: int
    src_lo: int
    """Sender of this packet (not necessarily the flow's initiator), in the engine's address layout;
    src_ip is its text."""
    dst_hi: int
    dst_lo: int
    sport: int
    dport: int
    from_initiator: bool
    """True when this packet travels from the flow's initiator to its responder."""
    src_mac: int
    dst_mac: int
    vlan: int | None
    ethertype: int
    data: bytes
    """The payload after the transport header (after the link header for ethertype hand-offs)."""

    @property
    def src_ip(self) -> str:
        """Return the sender's address as text ('' for non-IP frames)."""
        return ip_text(self.ip_version, self.src_hi, self.src_lo) if self.ip_version else ""

    @property
    def dst_ip(self) -> str:
        """Return the receiver's address as text ('' for non-IP frames)."""
        return ip_text(self.ip_version, self.dst_hi, self.dst_lo) if self.ip_version else ""


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB),
        np.uint64(0xFF51AFD7ED558CCD))


def group_rows(*cols: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return an order that brings equal rows of `cols` together, and where each group starts.

    Rows are grouped by a 64-bit mix of the columns (one integer sort); if two different rows share
    a mix (a collision), the exact but slower lexsort decides instead.
    """
    h = cols[0].astype(np.uint64, copy=True)
    for c, k in zip(cols[1:], _MIX, strict=False):
        h *= _MIX[3]
        h ^= h >> np.uint64(29)
        h ^= c.astype(np.uint64) * k
    order = np.argsort(h)
    hs = h[order]
    start = np.empty(hs.size, dtype=np.bool_)
    start[:1] = True
    np.not_equal(hs[1:], hs[:-1], out=start[1:])
    rep = order[np.flatnonzero(start)][np.cumsum(start) - 1]
    if all((c[order] == c[rep]).all() for c in cols):
        return order, np.flatnonzero(start)
    order = np.lexsort(cols[::-1])
    start[1:] = False
    for c in cols:
        s = c[order]
        start[1:] |= s[1:] != s[:-1]
    return order, np.flatnonzero(start)


def distinct_rows(*cols: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the first row of each distinct combination of `cols` (unsigned integer columns), and each
    row's group (an index into those first rows)."""
    order, starts = group_rows(*cols)
    new = np.zeros(order.size, dtype=np.int64)
    new[starts] = 1
    group = np.empty(order.size, dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return order[starts], group
