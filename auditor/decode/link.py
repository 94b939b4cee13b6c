"""Link layer: Ethernet (802.3 LLC/SNAP too), Linux SLL and SLL2, raw IP; then VLAN, MPLS and PPPoE."""

from __future__ import annotations

import numpy as np

from auditor.capture.types import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
)
from auditor.decode._state import DecodeState
from auditor.decode._view import IntArray
from auditor.decode.types import NO_VLAN

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_MPLS = (0x8847, 0x8848)  # unicast, multicast (RFC 3032)
ETHERTYPE_PPPOE_SESSION = 0x8864  # RFC 2516
# 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ tags some switches still send
ETHERTYPE_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)
ETHERTYPE_MIN = 0x0600  # below this the 802.3 field is a length (IEEE 802.3 §3.2.6)
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057  # RFC 1332, RFC 5072
ARPHRD_ETHER = 1  # linux/if_arp.h: SLL address is a MAC

MAX_VLAN_TAGS = 8
MAX_MPLS_LABELS = 8


def decode_link(st: DecodeState, linktype: np.ndarray) -> None:
    """Fill MACs, ethertype and the L3 offset for every frame, by its link type."""
    caplen = st.view.caplen
    known = np.zeros(linktype.shape[0], dtype=np.bool_)
    for code, decoder in _LINK_DECODERS.items():
        rows = np.flatnonzero(linktype == code)
        if rows.size:
            known[rows] = True
            decoder(st, rows, caplen)
    st.skip(np.flatnonzero(~known), "unsupported-linktype")
    _decode_tags(st)


def _ethernet(st: DecodeState, rows: IntArray, caplen: IntArray) -> None:
    rows = st.split(rows, caplen[rows] >= 14, "truncated-link")
    v = st.view
    # two 8-byte reads cover the whole header: bytes 0-7 (dst MAC + 2) and 6-13 (src MAC + type)
    first, second = v.u64(rows, 0), v.u64(rows, 6)
    st.dst_mac[rows] = first >> np.uint64(16)
    st.src_mac[rows] = second >> np.uint64(16)
    etype = (second & np.uint64(0xFFFF)).astype(np.uint16)
    st.ethertype[rows] = etype
    st.l3_off[rows] = 14
    # 802.3 with an LLC header: only SNAP (AA AA 03, OUI 0) can carry an ethertype
    llc = rows[etype < ETHERTYPE_MIN]
    if llc.size:
        snap = llc[
            (caplen[llc] >= 22)
            & (v.u16(llc, 14) == 0xAAAA)
            & (v.u32(llc, 16) == 0x03000000)
        ]
        st.ethertype[llc] = 0
        st.ethertype[snap] = v.u16(snap, 20)
        st.l3_off[snap] = 22


def _linux_sll(st: DecodeState, rows: IntArray, caplen: IntArray) -> None:
    # https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
    rows = st.split(rows, caplen[rows] >= 16, "truncated-link")
    v = st.view
    etype = v.u16(rows, 14)
    st.ethertype[rows] = np.where(etype >= ETHERTYPE_MIN, etype, 0)
    st.l3_off[rows] = 16
    has_mac = (v.u16(rows, 2) == ARPHRD_ETHER) & (v.u16(rows, 4) == 6)
    st.src_mac[rows[has_mac]] = v.mac(rows[has_mac], 6)


def _linux_sll2(st: DecodeState, rows: IntArray, caplen: IntArray) -> None:
    # https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
    rows = st.split(rows, caplen[rows] >= 20, "truncated-link")
    v = st.view
    etype = v.u16(rows, 0)
    st.ethertype[rows] = np.where(etype >= ETHERTYPE_MIN, etype, 0)
    st.l3_off[rows] = 20
    has_mac = (v.u16(rows, 8) == ARPHRD_ETHER) & (v.u8(rows, 11) == 6)
    st.src_mac[rows[has_mac]] = v.mac(rows[has_mac], 12)


def _raw_ip(st: DecodeState, rows: IntArray, caplen: IntArray) -> None:
    rows = st.split(rows, caplen[rows] >= 1, "truncated-link")
    version = st.view.u8(rows, 0) >> 4
    st.ethertype[rows] = np.where(version == 6, ETHERTYPE_IPV6, ETHERTYPE_IPV4)
    st.skip(rows[(version != 4) & (version != 6)], "bad-ip-version")


def _fixed(ethertype: int):  # type: ignore[no-untyped-def]
    def decoder(st: DecodeState, rows: IntArray, caplen: IntArray) -> None:
        rows = st.split(rows, caplen[rows] >= 1, "truncated-link")
        st.ethertype[rows] = ethertype

    return decoder


_LINK_DECODERS = {
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_LINUX_SLL: _linux_sll,
    LINKTYPE_LINUX_SLL2: _linux_sll2,
    LINKTYPE_RAW: _raw_ip,
    LINKTYPE_IPV4: _fixed(ETHERTYPE_IPV4),
    LINKTYPE_IPV6: _fixed(ETHERTYPE_IPV6),
}


def _decode_tags(st: DecodeState) -> None:
    """Peel VLAN tags, then an MPLS label stack, then a PPPoE session header."""
    v, caplen = st.view, st.view.caplen
    rows = st.live(np.flatnonzero(np.isin(st.ethertype, ETHERTYPE_VLAN_TAGS)))
    for depth in range(MAX_VLAN_TAGS + 1):
        if not rows.size:
            break
        if depth == MAX_VLAN_TAGS:
            st.skip(rows, "vlan-too-deep")
            break
        pos = st.l3_off[rows]
        rows = st.split(rows, pos + 4 <= caplen[rows], "truncated-vlan")
        pos = st.l3_off[rows]
        vid = v.u16(rows, pos) & 0x0FFF
        first = st.vlan_outer[rows] == NO_VLAN
        st.vlan_outer[rows[first]] = vid[first]
        second = ~first & (st.vlan_inner[rows] == NO_VLAN)
        st.vlan_inner[rows[second]] = vid[second]
        etype = v.u16(rows, pos + 2)
        # below 0x0600 it is an 802.3 length (LLC follows), as in an untagged frame: no ethertype
        st.ethertype[rows] = np.where(etype >= ETHERTYPE_MIN, etype, 0)
        st.l3_off[rows] = pos + 4
        rows = rows[np.isin(st.ethertype[rows], ETHERTYPE_VLAN_TAGS)]

    rows = st.live(np.flatnonzero(np.isin(st.ethertype, ETHERTYPE_MPLS)))
    for depth in range(MAX_MPLS_LABELS + 1):
        if not rows.size:
            break
        if depth == MAX_MPLS_LABELS:
            st.skip(rows, "mpls-too-deep")
            break
        pos = st.l3_off[rows]
        rows = st.split(rows, pos + 4 <= caplen[rows], "truncated-mpls")
        pos = st.l3_off[rows]
        bottom = (v.u8(rows, pos + 2) & 1).astype(np.bool_)
        st.l3_off[rows] = pos + 4
        done = rows[bottom]
        if done.size:
            done = st.split(done, st.l3_off[done] < caplen[done], "truncated-mpls")
            # RFC 4928: after the label stack, the first nibble tells IPv4 from IPv6
            version = v.u8(done, st.l3_off[done]) >> 4
            st.ethertype[done] = np.where(version == 6, ETHERTYPE_IPV6, ETHERTYPE_IPV4)
            st.skip(done[(version != 4) & (version != 6)], "mpls-unknown-payload")
        rows = rows[~bottom]

    rows = st.live(np.flatnonzero(st.ethertype == ETHERTYPE_PPPOE_SESSION))
    if rows.size:
        rows = st.split(rows, st.l3_off[rows] + 8 <= caplen[rows], "truncated-pppoe")
        proto = v.u16(rows, st.l3_off[rows] + 6)
        st.ethertype[rows] = np.select(
            [proto == PPP_IPV4, proto == PPP_IPV6], [ETHERTYPE_IPV4, ETHERTYPE_IPV6], 0
        )
        st.l3_off[rows] += 8
