"""Transport layer: TCP, UDP, SCTP ports; TCP flags; ICMP/ICMPv6 type and code; payload bounds."""

from __future__ import annotations

import numpy as np

from auditor.decode._state import DecodeState
from auditor.decode.types import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    KIND_IP,
)

UDP_HEADER = 8
TCP_MIN_HEADER = 20
SCTP_COMMON_HEADER = 12  # ports, verification tag, checksum (RFC 9260 §3.1); chunks follow
ICMP_HEADER = 4  # type, code, checksum; the rest depends on the type


def decode_transport(st: DecodeState) -> None:
    """Fill ports, TCP flags and payload offsets of IP frames that carry a transport header.

    Later fragments carry no header: they keep has_ports False and the flow stage gives them
    the ports of their first fragment. A header cut so short that not even the ports (or the
    ICMP type and code) were captured skips the frame: it cannot be put in a flow.
    """
    v = st.view
    # Bounds are the IP packet's end, not the frame's: bytes past it are Ethernet padding or a trailer.
    end_of_ip = st.ip_end
    ip = (st.kind == KIND_IP) & (st.skip_reason == 0)
    later_fragment = st.frag_offset != 0
    rows = np.flatnonzero(ip & later_fragment)
    st.payload_off[rows] = st.l4_off[rows]
    st.payload_len[rows] = np.maximum(st.ip_end[rows] - st.l4_off[rows], 0)

    heads = ip & ~later_fragment
    proto = st.ip_proto
    ported = heads & ((proto == IPPROTO_TCP) | (proto == IPPROTO_UDP) | (proto == IPPROTO_SCTP))
    rows = np.flatnonzero(ported)
    l4 = st.l4_off[rows]
    ok = l4 + 4 <= end_of_ip[rows]
    st.skip(rows[~ok], "truncated-transport")
    rows, l4 = rows[ok], l4[ok]
    ports = v.u32(rows, l4)  # source and destination port in one read
    st.sport[rows] = (ports >> 16).astype(np.uint16)
    st.dport[rows] = (ports & 0xFFFF).astype(np.uint16)
    st.has_ports[rows] = True

    tcp = rows[proto[rows] == IPPROTO_TCP]
    if tcp.size:
        l4 = st.l4_off[tcp]
        has_flags = l4 + 14 <= end_of_ip[tcp]
        # data offset (high nibble of byte 12) and flags (byte 13) in one read (RFC 9293 §3.1)
        word = v.u16(tcp, l4 + 12)
        st.tcp_flags[tcp] = np.where(has_flags, word & 0xFF, 0).astype(np.uint8)
        data_off = np.where(has_flags, (word >> 12).astype(np.int64) * 4, 0)
        start = l4 + data_off
        sane = has_flags & (data_off >= TCP_MIN_HEADER) & (start <= st.ip_end[tcp])
        st.payload_off[tcp[sane]] = start[sane]
        st.payload_len[tcp[sane]] = st.ip_end[tcp[sane]] - start[sane]

    udp = rows[proto[rows] == IPPROTO_UDP]
    if udp.size:
        start = st.l4_off[udp] + UDP_HEADER
        end = st.ip_end[udp]
        # the UDP length bounds the payload too, when it is sane (RFC 768)
        has_len = start <= end_of_ip[udp]
        udp_len = np.zeros(udp.size, dtype=np.int64)
        udp_len[has_len] = v.u16(udp[has_len], st.l4_off[udp[has_len]] + 4)
        use_len = has_len & (udp_len >= UDP_HEADER)
        end = np.where(use_len, np.minimum(end, st.l4_off[udp] + udp_len), end)
        sane = start <= end
        st.payload_off[udp[sane]] = start[sane]
        st.payload_len[udp[sane]] = end[sane] - start[sane]

    sctp = rows[proto[rows] == IPPROTO_SCTP]
    if sctp.size:
        start = st.l4_off[sctp] + SCTP_COMMON_HEADER
        sane = start <= st.ip_end[sctp]
        st.payload_off[sctp[sane]] = start[sane]
        st.payload_len[sctp[sane]] = st.ip_end[sctp[sane]] - start[sane]

    icmp = np.flatnonzero(heads & ((proto == IPPROTO_ICMP) | (proto == IPPROTO_ICMPV6)))
    if icmp.size:
        l4 = st.l4_off[icmp]
        ok = l4 + 2 <= end_of_ip[icmp]
        st.skip(icmp[~ok], "truncated-transport")
        icmp, l4 = icmp[ok], l4[ok]
        st.sport[icmp] = v.u8(icmp, l4)
        st.dport[icmp] = v.u8(icmp, l4 + 1)
        st.has_ports[icmp] = True
        start = l4 + ICMP_HEADER
        sane = start <= st.ip_end[icmp]
        st.payload_off[icmp[sane]] = start[sane]
        st.payload_len[icmp[sane]] = st.ip_end[icmp[sane]] - start[sane]

    other = np.flatnonzero(heads & ~ported & (proto != IPPROTO_ICMP) & (proto != IPPROTO_ICMPV6))
    sane = st.l4_off[other] <= st.ip_end[other]
    st.payload_off[other[sane]] = st.l4_off[other[sane]]
    st.payload_len[other[sane]] = st.ip_end[other[sane]] - st.l4_off[other[sane]]
