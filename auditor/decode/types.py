"""Records the decode stage produces: header fields of a whole batch as numpy columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditor.capture.types import Batch

# What a frame turned out to be (Headers.kind).
KIND_SKIPPED = 0  # malformed or unsupported: see Headers.skip_reason
KIND_IP = 1  # IPv4 or IPv6: belongs to a flow
KIND_ARP = 2
KIND_OTHER_L2 = 3  # a well-formed frame of another ethertype (LLDP, EAPOL, STP, ...): no flow

NO_VLAN = 0xFFFF  # VLAN ids are 12 bits; 0 is a valid id (802.1p priority tag)

# Why a frame was skipped (Headers.skip_reason); index = code. Code 0 means "not skipped".
SKIP_REASONS: tuple[str, ...] = (
    "",
    "unsupported-linktype",
    "truncated-link",
    "truncated-vlan",
    "vlan-too-deep",
    "truncated-mpls",
    "mpls-too-deep",
    "mpls-unknown-payload",
    "truncated-pppoe",
    "truncated-ipv4",
    "bad-ipv4-header-length",
    "bad-ipv4-total-length",
    "bad-ip-version",
    "truncated-ipv6",
    "truncated-ipv6-extension",
    "ipv6-extensions-too-deep",
    "truncated-transport",
    "truncated-arp",
)
SKIP_CODE = {name: code for code, name in enumerate(SKIP_REASONS) if name}

# TCP flag bits (RFC 9293 §3.1)
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (1 << i for i in range(8))

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132


@dataclass(frozen=True, slots=True)
class Headers:
    """Decoded L2-L4 fields of every frame of one batch; row i describes batch frame i."""

    batch: Batch
    kind: NDArray[np.uint8]
    """KIND_* of each frame."""
    skip_reason: NDArray[np.uint8]
    """Index into SKIP_REASONS; 0 unless kind is KIND_SKIPPED."""
    src_mac: NDArray[np.uint64]
    """48-bit source MAC as an integer; 0 when the link layer carries none (raw IP)."""
    dst_mac: NDArray[np.uint64]
    vlan_outer: NDArray[np.uint16]
    """Outermost 802.1Q/802.1ad VLAN id, NO_VLAN when untagged."""
    vlan_inner: NDArray[np.uint16]
    """Second VLAN id (QinQ), NO_VLAN when absent."""
    ethertype: NDArray[np.uint16]
    """Ethertype of the L3 payload after VLAN/MPLS/PPPoE (0x0800 / 0x86DD for IP, even for raw IP)."""
    ip_version: NDArray[np.uint8]
    """4 or 6 for IP frames, 0 otherwise."""
    ip_proto: NDArray[np.uint8]
    """IANA protocol number of the transport (after IPv6 extension headers)."""
    src_hi: NDArray[np.uint64]
    """Source address: IPv6 first 8 bytes; 0 for IPv4."""
    src_lo: NDArray[np.uint64]
    """Source address: IPv6 last 8 bytes; the IPv4 address as a 32-bit integer."""
    dst_hi: NDArray[np.uint64]
    dst_lo: NDArray[np.uint64]
    sport: NDArray[np.uint16]
    """TCP/UDP/SCTP source port; for ICMP and ICMPv6 the message type."""
    dport: NDArray[np.uint16]
    """TCP/UDP/SCTP destination port; for ICMP and ICMPv6 the message code."""
    has_ports: NDArray[np.bool_]
    """True when sport/dport were read from a transport header (False for later fragments)."""
    tcp_flags: NDArray[np.uint8]
    is_fragment: NDArray[np.bool_]
    """An IPv4 or IPv6 fragment (first or later)."""
    frag_offset: NDArray[np.uint16]
    """Fragment offset in 8-byte units; 0 for the first fragment and for unfragmented packets."""
    frag_id: NDArray[np.uint32]
    """IPv4 identification / IPv6 fragment header identification (fragments only)."""
    l3_off: NDArray[np.int32]
    """Offset of the network header within the frame."""
    payload_off: NDArray[np.int32]
    """Offset of the transport payload within the frame (-1 when there is none)."""
    payload_len: NDArray[np.int32]
    """Captured payload bytes, bounded by the IP length (Ethernet padding excluded)."""
    arp_op: NDArray[np.uint16]
    """ARP operation (1 request, 2 reply) for ARP frames; sender and target IPv4 in src_lo/dst_lo."""

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def skip_counts(self) -> dict[str, int]:
        """Return how many frames of this batch were skipped, by reason."""
        counts = np.bincount(self.skip_reason, minlength=len(SKIP_REASONS))
        return {SKIP_REASONS[i]: int(c) for i, c in enumerate(counts) if i and c}
