"""decode() link layer: Ethernet, LLC/SNAP, Linux SLL/SLL2, raw IP; VLAN tags, MPLS labels, PPPoE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scapy.contrib.lldp import LLDPDUChassisID, LLDPDUEndOfLLDPDU, LLDPDUPortID, LLDPDUTimeToLive
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import (
    ARP,
    LLC,
    SNAP,
    STP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Dot3,
    Ether,
)
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Packet, Raw

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import KIND_ARP, KIND_IP, KIND_OTHER_L2, KIND_SKIPPED, NO_VLAN
from tests.decode._helpers import DST, FIELDS, SRC, assert_skipped, decode_one, eth, rows


def mac(text: str) -> int:
    return int(text.replace(":", ""), 16)




def udp4() -> Packet:
    return IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=53) / Raw(b"q" * 12)




# --- Ethernet -------------------------------------------------------------------------------------


def test_decode_reads_ethernet_macs_and_ethertype() -> None:
    r = decode_one(eth() / udp4())
    assert r["dst_mac"] == 0x66778899AABB
    assert r["src_mac"] == 0x001122334455
    assert (r["ethertype"], r["l3_off"], r["kind"], r["skip_reason"]) == (0x0800, 14, KIND_IP, 0)
    assert (r["vlan_outer"], r["vlan_inner"]) == (NO_VLAN, NO_VLAN)


def test_decode_reads_macs_with_high_bit_set() -> None:
    r = decode_one(Ether(src="fe:ff:ff:ff:ff:fe", dst="ff:ff:ff:ff:ff:ff") / udp4())
    assert r["src_mac"] == 0xFEFFFFFFFFFE
    assert r["dst_mac"] == 0xFFFFFFFFFFFF


def test_decode_marks_lldp_as_other_l2() -> None:
    lldp = (
        Ether(src=SRC, dst="01:80:c2:00:00:0e")
        / LLDPDUChassisID(subtype=4, id=SRC)
        / LLDPDUPortID(subtype=5, id="eth0")
        / LLDPDUTimeToLive(ttl=120)
        / LLDPDUEndOfLLDPDU()
    )
    r = decode_one(lldp)
    assert (r["kind"], r["skip_reason"], r["ethertype"]) == (KIND_OTHER_L2, 0, 0x88CC)
    assert r["src_mac"] == mac(SRC)
    assert (r["ip_version"], r["has_ports"], r["payload_off"]) == (0, False, -1)


def test_decode_reads_ipv4_behind_llc_snap() -> None:
    frame = Dot3(src=SRC, dst=DST) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / udp4()
    r = decode_one(frame)
    assert (r["kind"], r["ethertype"], r["l3_off"]) == (KIND_IP, 0x0800, 22)
    assert (r["src_lo"], r["sport"], r["dport"]) == (0x0A000001, 1234, 53)


def test_decode_marks_plain_llc_as_other_l2_with_no_ethertype() -> None:
    r = decode_one(Dot3(src=SRC, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP())
    assert (r["kind"], r["skip_reason"], r["ethertype"]) == (KIND_OTHER_L2, 0, 0)


def test_decode_marks_snap_with_vendor_oui_as_other_l2() -> None:
    # Cisco CDP: SNAP with OUI 00000C, so the 2-byte code is not an ethertype
    frame = Dot3(src=SRC, dst="01:00:0c:cc:cc:cc") / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000)
    r = decode_one(bytes(frame) + b"\x02" * 20)
    assert (r["kind"], r["ethertype"]) == (KIND_OTHER_L2, 0)


@pytest.mark.parametrize("cut", [0, 1, 6, 12, 13])
def test_decode_skips_ethernet_cut_in_header(cut: int) -> None:
    assert_skipped(decode_one(bytes(eth() / udp4())[:cut]), "truncated-link")


# --- VLAN -----------------------------------------------------------------------------------------


def test_decode_reads_single_vlan_id_without_priority_bits() -> None:
    r = decode_one(eth() / Dot1Q(prio=7, dei=1, vlan=4095) / udp4())
    assert (r["vlan_outer"], r["vlan_inner"], r["ethertype"], r["l3_off"]) == (4095, NO_VLAN, 0x0800, 18)
    assert (r["kind"], r["sport"]) == (KIND_IP, 1234)


def test_decode_keeps_vlan_zero_priority_tag_apart_from_untagged() -> None:
    r = decode_one(eth() / Dot1Q(prio=5, vlan=0) / udp4())
    assert (r["vlan_outer"], r["vlan_inner"]) == (0, NO_VLAN)


def test_decode_reads_qinq_vlan_ids() -> None:
    r = decode_one(eth() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / udp4())
    assert (r["vlan_outer"], r["vlan_inner"], r["ethertype"], r["l3_off"]) == (100, 200, 0x0800, 22)
    assert (r["src_lo"], r["dst_lo"], r["sport"], r["dport"]) == (0x0A000001, 0x0A000002, 1234, 53)


@pytest.mark.parametrize("outer_tpid", [0x8100, 0x88A8, 0x9100, 0x9200])
def test_decode_reads_qinq_with_every_tag_protocol_id(outer_tpid: int) -> None:
    frame = Ether(src=SRC, dst=DST, type=outer_tpid) / Dot1Q(vlan=7) / Dot1Q(vlan=8) / udp4()
    r = decode_one(frame)
    assert (r["vlan_outer"], r["vlan_inner"], r["kind"]) == (7, 8, KIND_IP)


def test_decode_keeps_first_two_of_three_vlan_tags() -> None:
    r = decode_one(eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / udp4())
    assert (r["vlan_outer"], r["vlan_inner"], r["l3_off"], r["kind"]) == (1, 2, 26, KIND_IP)


def test_decode_accepts_eight_vlan_tags() -> None:
    frame: Packet = eth()
    for vid in range(1, 9):
        frame = frame / Dot1Q(vlan=vid)
    r = decode_one(frame / udp4())
    assert (r["kind"], r["vlan_outer"], r["vlan_inner"], r["l3_off"]) == (KIND_IP, 1, 2, 14 + 32)


def test_decode_skips_too_many_vlan_tags() -> None:
    frame: Packet = eth()
    for vid in range(1, 10):
        frame = frame / Dot1Q(vlan=vid)
    assert_skipped(decode_one(frame / udp4()), "vlan-too-deep")


@pytest.mark.parametrize("cut", [14, 15, 17])
def test_decode_skips_frame_cut_in_vlan_tag(cut: int) -> None:
    assert_skipped(decode_one(bytes(eth() / Dot1Q(vlan=5) / udp4())[:cut]), "truncated-vlan")


def test_decode_skips_frame_cut_in_second_vlan_tag() -> None:
    frame = bytes(eth() / Dot1AD(vlan=5) / Dot1Q(vlan=6) / udp4())[:20]
    assert_skipped(decode_one(frame), "truncated-vlan")


def test_decode_reads_arp_behind_vlan() -> None:
    r = decode_one(eth() / Dot1Q(vlan=42) / ARP(op=1, psrc="10.1.1.1", pdst="10.1.1.2"))
    assert (r["kind"], r["vlan_outer"], r["ethertype"], r["l3_off"]) == (KIND_ARP, 42, 0x0806, 18)


def test_decode_reads_vlan_tagged_llc_as_other_l2_with_no_ethertype() -> None:
    # the field after the tag is an 802.3 length here, not an ethertype (as in PVST+ frames)
    r = decode_one(eth() / Dot1Q(vlan=9, type=0x26) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / STP())
    assert (r["kind"], r["skip_reason"], r["vlan_outer"], r["ethertype"]) == (KIND_OTHER_L2, 0, 9, 0)


# --- MPLS -----------------------------------------------------------------------------------------


def test_decode_reads_ipv4_under_mpls_stack() -> None:
    frame = eth() / MPLS(label=100, s=0, ttl=64) / MPLS(label=200, s=1, ttl=64) / udp4()
    r = decode_one(frame)
    assert (r["kind"], r["ethertype"], r["l3_off"]) == (KIND_IP, 0x0800, 22)
    assert (r["src_lo"], r["sport"], r["dport"]) == (0x0A000001, 1234, 53)


def test_decode_reads_ipv6_under_mpls_behind_vlan() -> None:
    frame = (
        eth()
        / Dot1Q(vlan=30)
        / MPLS(label=16, s=1)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / TCP(sport=40000, dport=443, flags="S")
    )
    r = decode_one(frame)
    assert (r["kind"], r["ethertype"], r["ip_version"], r["vlan_outer"], r["l3_off"]) == (KIND_IP, 0x86DD, 6, 30, 22)
    assert (r["sport"], r["dport"], r["tcp_flags"]) == (40000, 443, 0x02)


def test_decode_reads_multicast_mpls_ethertype() -> None:
    r = decode_one(Ether(src=SRC, dst=DST, type=0x8848) / MPLS(label=1, s=1) / udp4())
    assert (r["kind"], r["l3_off"]) == (KIND_IP, 18)


def test_decode_accepts_eight_mpls_labels() -> None:
    frame: Packet = eth()
    for i in range(8):
        frame = frame / MPLS(label=i + 16, s=int(i == 7))
    r = decode_one(frame / udp4())
    assert (r["kind"], r["l3_off"]) == (KIND_IP, 14 + 32)


def test_decode_skips_too_many_mpls_labels() -> None:
    frame: Packet = eth()
    for i in range(9):
        frame = frame / MPLS(label=i + 16, s=int(i == 8))
    assert_skipped(decode_one(frame / udp4()), "mpls-too-deep")


def test_decode_skips_mpls_with_unknown_payload() -> None:
    # an Ethernet pseudowire with a control word: first nibble 0, neither IPv4 nor IPv6
    frame = eth() / MPLS(label=16, s=1) / Raw(b"\x00\x00\x00\x00") / Ether(src=SRC, dst=DST) / udp4()
    assert_skipped(decode_one(frame), "mpls-unknown-payload")


@pytest.mark.parametrize("cut", [14, 16, 17, 18, 20])
def test_decode_skips_frame_cut_in_mpls_stack(cut: int) -> None:
    # 14-17: in the first label; 18 and 20: first label whole, second one missing or cut
    frame = bytes(eth() / MPLS(label=100, s=0) / MPLS(label=200, s=1) / udp4())[:cut]
    assert_skipped(decode_one(frame), "truncated-mpls")


def test_decode_skips_mpls_stack_with_nothing_after_it() -> None:
    assert_skipped(decode_one(bytes(eth() / MPLS(label=100, s=1))), "truncated-mpls")


# --- PPPoE ----------------------------------------------------------------------------------------


def test_decode_reads_ipv4_in_pppoe_session() -> None:
    r = decode_one(eth() / PPPoE(sessionid=0x11) / PPP(proto=0x0021) / udp4())
    assert (r["kind"], r["ethertype"], r["l3_off"]) == (KIND_IP, 0x0800, 22)
    assert (r["src_lo"], r["dst_lo"], r["sport"]) == (0x0A000001, 0x0A000002, 1234)


def test_decode_reads_ipv6_in_pppoe_session_behind_vlan() -> None:
    frame = eth() / Dot1Q(vlan=7) / PPPoE(sessionid=1) / PPP(proto=0x0057) / IPv6(src="::1", dst="::2") / UDP()
    r = decode_one(frame)
    assert (r["kind"], r["ethertype"], r["l3_off"], r["vlan_outer"]) == (KIND_IP, 0x86DD, 26, 7)
    assert (r["src_lo"], r["dst_lo"]) == (1, 2)


def test_decode_marks_pppoe_lcp_as_other_l2() -> None:
    r = decode_one(eth() / PPPoE(sessionid=1) / PPP(proto=0xC021) / Raw(b"\x01\x01\x00\x04"))
    assert (r["kind"], r["skip_reason"], r["ethertype"]) == (KIND_OTHER_L2, 0, 0)


@pytest.mark.parametrize("cut", [14, 17, 20, 21])
def test_decode_skips_frame_cut_in_pppoe_header(cut: int) -> None:
    frame = bytes(eth() / PPPoE(sessionid=1) / PPP(proto=0x0021) / udp4())[:cut]
    assert_skipped(decode_one(frame), "truncated-pppoe")


# --- Linux cooked capture -------------------------------------------------------------------------


def test_decode_reads_linux_sll_source_mac_and_ethertype() -> None:
    frame = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("001122334455"), proto=0x0800)
    r = decode_one(frame / udp4(), linktype=113)
    assert (r["src_mac"], r["dst_mac"], r["ethertype"], r["l3_off"]) == (mac(SRC), 0, 0x0800, 16)
    assert (r["kind"], r["src_lo"], r["sport"], r["dport"]) == (KIND_IP, 0x0A000001, 1234, 53)


def test_decode_ignores_linux_sll_address_that_is_not_a_mac() -> None:
    # loopback (ARPHRD_LOOPBACK 772) with no link-layer address
    frame = CookedLinux(pkttype=4, lladdrtype=772, lladdrlen=0, proto=0x86DD) / IPv6(src="::1", dst="::1") / UDP()
    r = decode_one(frame, linktype=113)
    assert (r["src_mac"], r["kind"], r["ip_version"], r["l3_off"]) == (0, KIND_IP, 6, 16)


def test_decode_reads_arp_in_linux_sll() -> None:
    frame = CookedLinux(lladdrtype=1, lladdrlen=6, src=bytes.fromhex("001122334455"), proto=0x0806) / ARP(
        op=2, psrc="192.168.1.1", pdst="192.168.1.2"
    )
    r = decode_one(frame, linktype=113)
    assert (r["kind"], r["arp_op"], r["src_lo"], r["dst_lo"]) == (KIND_ARP, 2, 0xC0A80101, 0xC0A80102)


def test_decode_marks_linux_sll_with_non_ethertype_protocol_as_other_l2() -> None:
    # protocol 0x0004: an 802.2 LLC frame, not an ethertype
    frame = CookedLinux(lladdrtype=1, lladdrlen=6, src=b"\x00" * 6, proto=0x0004) / Raw(b"\x42\x42\x03" + b"\x00" * 30)
    r = decode_one(frame, linktype=113)
    assert (r["kind"], r["skip_reason"], r["ethertype"]) == (KIND_OTHER_L2, 0, 0)


def test_decode_reads_linux_sll2_source_mac_and_ethertype() -> None:
    frame = (
        CookedLinuxV2(proto=0x86DD, ifindex=3, lladdrtype=1, pkttype=4, lladdrlen=6, src=bytes.fromhex("001122334455"))
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=5353, dport=5353)
    )
    r = decode_one(frame, linktype=276)
    assert (r["src_mac"], r["ethertype"], r["l3_off"], r["kind"]) == (mac(SRC), 0x86DD, 20, KIND_IP)
    assert (r["dst_lo"], r["sport"], r["dport"]) == (2, 5353, 5353)


def test_decode_reads_vlan_inside_linux_sll2() -> None:
    frame = (
        CookedLinuxV2(proto=0x8100, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("001122334455"))
        / Dot1Q(vlan=12)
        / udp4()
    )
    r = decode_one(frame, linktype=276)
    assert (r["vlan_outer"], r["l3_off"], r["kind"]) == (12, 24, KIND_IP)


@pytest.mark.parametrize(("linktype", "header"), [(113, 16), (276, 20)])
def test_decode_skips_linux_cooked_header_cut_short(linktype: int, header: int) -> None:
    layer = CookedLinux(proto=0x0800) if linktype == 113 else CookedLinuxV2(proto=0x0800)
    frame = bytes(layer / udp4())
    for cut in (0, 1, header - 1):
        assert_skipped(decode_one(frame[:cut], linktype=linktype), "truncated-link")


# --- raw IP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("linktype", [101, 228])
def test_decode_reads_raw_ipv4(linktype: int) -> None:
    r = decode_one(udp4(), linktype=linktype)
    assert (r["kind"], r["ethertype"], r["l3_off"], r["src_mac"], r["dst_mac"]) == (KIND_IP, 0x0800, 0, 0, 0)
    assert (r["ip_version"], r["src_lo"], r["sport"], r["payload_off"]) == (4, 0x0A000001, 1234, 28)


@pytest.mark.parametrize("linktype", [101, 229])
def test_decode_reads_raw_ipv6(linktype: int) -> None:
    r = decode_one(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2), linktype=linktype)
    assert (r["kind"], r["ethertype"], r["l3_off"], r["ip_version"]) == (KIND_IP, 0x86DD, 0, 6)
    assert (r["sport"], r["dport"]) == (1, 2)


@pytest.mark.parametrize("linktype", [101, 228, 229])
def test_decode_skips_empty_raw_ip_frame(linktype: int) -> None:
    assert_skipped(decode_one(b"", linktype=linktype), "truncated-link")


def test_decode_skips_raw_ip_with_wrong_version_nibble() -> None:
    frame = bytearray(bytes(udp4()))
    frame[0] = 0x55
    assert_skipped(decode_one(bytes(frame), linktype=101), "bad-ip-version")


@pytest.mark.parametrize("linktype", [0, 105, 127, 65535])
def test_decode_skips_unsupported_link_type(linktype: int) -> None:
    assert_skipped(decode_one(eth() / udp4(), linktype=linktype), "unsupported-linktype")


# --- batches --------------------------------------------------------------------------------------


def test_decode_returns_empty_columns_for_empty_batch() -> None:
    h = decode(batch_from_frames([]))
    assert len(h) == 0
    assert all(getattr(h, name).shape == (0,) for name in FIELDS)
    assert h.skip_counts() == {}


def test_decode_reads_each_frame_by_its_own_link_type() -> None:
    frames = [
        bytes(eth() / udp4()),
        bytes(CookedLinux(lladdrtype=1, lladdrlen=6, src=b"\x00" * 6, proto=0x0800) / udp4()),
        bytes(udp4()),
        bytes(CookedLinuxV2(proto=0x0800) / udp4()),
        bytes(eth() / udp4()),
    ]
    linktypes = [1, 113, 101, 276, 999]
    batch = batch_from_frames(frames)
    batch = dataclasses.replace(batch, linktype=np.array(linktypes, dtype=np.uint16))
    got = rows(decode(batch))
    assert [r["l3_off"] for r in got[:4]] == [14, 16, 0, 20]
    assert all(r["kind"] == KIND_IP and r["sport"] == 1234 for r in got[:4])
    assert_skipped(got[4], "unsupported-linktype")


def test_decode_skipped_link_frames_do_not_disturb_their_neighbours() -> None:
    good = [
        bytes(eth() / Dot1AD(vlan=3) / Dot1Q(vlan=4) / udp4()),
        bytes(eth() / MPLS(label=5, s=1) / IPv6(src="::1", dst="::2") / TCP(sport=9, dport=10)),
        bytes(eth() / PPPoE(sessionid=2) / PPP(proto=0x0021) / udp4()),
        bytes(eth() / ARP(op=1, psrc="10.0.0.9", pdst="10.0.0.10")),
    ]
    bad = [
        bytes(eth())[:13],
        bytes(eth() / Dot1Q(vlan=1) / udp4())[:16],
        bytes(eth() / MPLS(label=1, s=0) / MPLS(label=2, s=1) / udp4())[:20],
        bytes(eth() / PPPoE() / PPP() / udp4())[:19],
        b"",
    ]
    alone = [decode_one(f) for f in good]
    mixed = [bad[0], good[0], bad[1], bad[2], good[1], good[2], bad[3], good[3], bad[4]]
    got = rows(decode(batch_from_frames(mixed)))
    assert [got[i] for i in (1, 4, 5, 7)] == alone
    assert [got[i]["kind"] for i in (0, 2, 3, 6, 8)] == [KIND_SKIPPED] * 5
    h = decode(batch_from_frames(mixed))
    assert h.skip_counts() == {"truncated-link": 2, "truncated-vlan": 1, "truncated-mpls": 1, "truncated-pppoe": 1}
