"""Network layer: IPv4 (options, fragments), IPv6 (extension headers, fragments) and ARP."""

from __future__ import annotations

import numpy as np

from auditor.decode._state import DecodeState
from auditor.decode._view import IntArray
from auditor.decode.link import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6
from auditor.decode.types import KIND_ARP, KIND_IP

# IPv6 extension headers that can be walked (RFC 8200 §4; AH RFC 4302; mobility 6275; HIP 7401;
# shim6 5533). ESP (50) hides what follows, so it ends the walk as the "transport".
IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DEST_OPTS, IPV6_AH = 0, 43, 44, 60, 51
IPV6_EXTENSIONS = (IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DEST_OPTS, IPV6_AH, 135, 139, 140)
MAX_IPV6_EXTENSIONS = 8
IPV6_NO_NEXT_HEADER = 59


def decode_network(st: DecodeState) -> None:
    """Fill addresses, protocol, fragment fields and the L4 offset of IP frames; ARP fields too."""
    live = st.skip_reason == 0
    _ipv4(st, np.flatnonzero(live & (st.ethertype == ETHERTYPE_IPV4)))
    _ipv6(st, np.flatnonzero(live & (st.ethertype == ETHERTYPE_IPV6)))
    _arp(st, np.flatnonzero(live & (st.ethertype == ETHERTYPE_ARP)))


def _ipv4(st: DecodeState, rows: IntArray) -> None:
    v, caplen = st.view, st.view.caplen
    rows = st.split(rows, st.l3_off[rows] + 20 <= caplen[rows], "truncated-ipv4")
    l3 = st.l3_off[rows]
    # three reads cover the fixed header (RFC 791 §3.1): bytes 0-7, 8-15, 16-19
    w0, w1, dst = v.u64(rows, l3), v.u64(rows, l3 + 8), v.u32(rows, l3 + 16)
    vihl = (w0 >> np.uint64(56)).astype(np.int64)
    ihl = (vihl & 0x0F) * 4
    total = ((w0 >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.int64)
    # total length 0 is what TSO-offloaded packets show when captured on the sender: trust caplen
    rows_ok = st.reject(
        rows,
        ((vihl >> 4) != 4, "bad-ip-version"),
        (ihl < 20, "bad-ipv4-header-length"),
        (l3 + ihl > caplen[rows], "truncated-ipv4"),
        ((total != 0) & (total < ihl), "bad-ipv4-total-length"),
    )
    if rows_ok.size != rows.size:
        keep = st.skip_reason[rows] == 0
        rows, l3, w0, w1, dst, ihl, total = (x[keep] for x in (rows, l3, w0, w1, dst, ihl, total))

    frag = (w0 & np.uint64(0xFFFF)).astype(np.uint16)
    offset = frag & 0x1FFF
    is_frag = ((frag & 0x2000) != 0) | (offset != 0)
    cap = caplen[rows]
    st.kind[rows] = KIND_IP
    st.ip_version[rows] = 4
    st.ip_proto[rows] = (w1 >> np.uint64(48)).astype(np.uint8)
    st.src_lo[rows] = w1 & np.uint64(0xFFFFFFFF)
    st.dst_lo[rows] = dst
    st.l4_off[rows] = l3 + ihl
    st.ip_end[rows] = np.minimum(np.where(total == 0, cap, l3 + total), cap)
    if is_frag.any():
        st.is_fragment[rows] = is_frag
        st.frag_offset[rows] = offset
        st.frag_id[rows[is_frag]] = ((w0[is_frag] >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.uint32)


def _ipv6(st: DecodeState, rows: IntArray) -> None:
    v, caplen = st.view, st.view.caplen
    rows = st.split(rows, st.l3_off[rows] + 40 <= caplen[rows], "truncated-ipv6")
    l3 = st.l3_off[rows]
    ok = (v.u8(rows, l3) >> 4) == 6
    st.skip(rows[~ok], "bad-ip-version")
    rows, l3 = rows[ok], l3[ok]
    payload = v.u16(rows, l3 + 4).astype(np.int64)
    st.src_hi[rows] = v.u64(rows, l3 + 8)
    st.src_lo[rows] = v.u64(rows, l3 + 16)
    st.dst_hi[rows] = v.u64(rows, l3 + 24)
    st.dst_lo[rows] = v.u64(rows, l3 + 32)
    next_header = v.u8(rows, l3 + 6)
    # payload length 0 means a jumbogram (RFC 2675) or TSO: bounded by what was captured; but
    # with no next header either it is an empty packet, and what follows is Ethernet padding
    jumbo = (payload == 0) & (next_header != IPV6_NO_NEXT_HEADER)
    st.ip_end[rows] = np.minimum(np.where(jumbo, caplen[rows], l3 + 40 + payload), caplen[rows])
    pos = l3 + 40

    # Walk the extension chain for the rows that still have one; stop at a non-first fragment,
    # whose payload is the middle of a datagram, not a header. The chain must fit in the packet:
    # bytes past its payload length are Ethernet padding or a trailer.
    walking = np.isin(next_header, IPV6_EXTENSIONS)
    for depth in range(MAX_IPV6_EXTENSIONS + 1):
        idx = np.flatnonzero(walking)
        if not idx.size:
            break
        if depth == MAX_IPV6_EXTENSIONS:
            st.skip(rows[idx], "ipv6-extensions-too-deep")
            walking[idx] = False
            break
        nh, p = next_header[idx], pos[idx]
        fr = nh == IPV6_FRAGMENT
        need = np.where(fr, 8, 2)
        short = p + need > st.ip_end[rows[idx]]
        st.skip(rows[idx[short]], "truncated-ipv6-extension")
        walking[idx[short]] = False
        idx, nh, p, fr = idx[~short], nh[~short], p[~short], fr[~short]

        f = idx[fr]
        if f.size:
            fp = pos[f]
            word = v.u16(rows[f], fp + 2)
            # offset 0 with M clear is an atomic fragment, a whole datagram (RFC 6946)
            real = ((word >> 3) != 0) | ((word & 1) != 0)
            st.is_fragment[rows[f]] = real
            st.frag_offset[rows[f]] = word >> 3
            st.frag_id[rows[f[real]]] = v.u32(rows[f[real]], fp[real] + 4)
            next_header[f] = v.u8(rows[f], fp)
            pos[f] = fp + 8
            walking[f[(word >> 3) != 0]] = False

        o = idx[~fr]
        if o.size:
            op = pos[o]
            hdr_len = v.u8(rows[o], op + 1).astype(np.int64)
            is_ah = next_header[o] == IPV6_AH
            length = np.where(is_ah, (hdr_len + 2) * 4, (hdr_len + 1) * 8)
            next_header[o] = v.u8(rows[o], op)
            pos[o] = op + length
            too_long = pos[o] > st.ip_end[rows[o]]
            st.skip(rows[o[too_long]], "truncated-ipv6-extension")
            walking[o[too_long]] = False

        walking &= np.isin(next_header, IPV6_EXTENSIONS)

    ok = st.skip_reason[rows] == 0
    rows, next_header, pos = rows[ok], next_header[ok], pos[ok]
    st.kind[rows] = KIND_IP
    st.ip_version[rows] = 6
    st.ip_proto[rows] = next_header
    st.l4_off[rows] = pos


def _arp(st: DecodeState, rows: IntArray) -> None:
    # RFC 826 for Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4 -> 28 bytes
    # Only the 8-byte fixed part is needed to tell; other ARP kinds are well-formed OTHER_L2.
    v, caplen = st.view, st.view.caplen
    rows = st.split(rows, st.l3_off[rows] + 8 <= caplen[rows], "truncated-arp")
    l3 = st.l3_off[rows]
    ipv4_over_ether = (v.u32(rows, l3) == 0x00010800) & (v.u16(rows, l3 + 4) == 0x0604)
    rows = rows[ipv4_over_ether]
    rows = st.split(rows, st.l3_off[rows] + 28 <= caplen[rows], "truncated-arp")
    l3 = st.l3_off[rows]
    st.kind[rows] = KIND_ARP
    st.arp_op[rows] = v.u16(rows, l3 + 6)
    st.src_lo[rows] = v.u32(rows, l3 + 14)
    st.dst_lo[rows] = v.u32(rows, l3 + 24)
