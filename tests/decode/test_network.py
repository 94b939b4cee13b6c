"""decode() network layer: IPv4 (options, fragments), IPv6 (extension headers, fragments), ARP."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1Q
from scapy.packet import Packet, Raw

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import KIND_ARP, KIND_IP, KIND_OTHER_L2, KIND_SKIPPED, NO_VLAN
from tests.decode._helpers import assert_skipped, decode_one, eth, rows


def patched(frame: bytes | Packet, at: int, *values: int) -> bytes:
    """Return `frame` with bytes from `at` replaced by `values`."""
    out = bytearray(bytes(frame))
    out[at : at + len(values)] = bytes(values)
    return bytes(out)


V6_SRC, V6_DST = "2001:db8:1:2:3:4:5:6", "fe80::aabb:ccff:fedd:eeff"


# --- IPv4 -----------------------------------------------------------------------------------------


def test_decode_reads_ipv4_addresses_into_low_word() -> None:
    r = decode_one(eth() / IP(src="192.168.1.10", dst="255.255.255.255", proto=17) / UDP(sport=68, dport=67))
    assert (r["kind"], r["ip_version"], r["ip_proto"], r["l3_off"]) == (KIND_IP, 4, 17, 14)
    assert (r["src_hi"], r["src_lo"]) == (0, 0xC0A8010A)
    assert (r["dst_hi"], r["dst_lo"]) == (0, 0xFFFFFFFF)
    assert (r["is_fragment"], r["frag_offset"], r["frag_id"]) == (False, 0, 0)


def test_decode_reads_ipv4_with_options() -> None:
    frame = (
        eth()
        / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR(routers=["1.1.1.1", "2.2.2.2"])])
        / UDP(sport=1000, dport=2000)
        / Raw(b"abcd")
    )
    r = decode_one(frame)
    ihl = 4 * 8  # 20 + RR option of 11 bytes padded to 12
    assert (r["kind"], r["src_lo"], r["dst_lo"], r["ip_proto"]) == (KIND_IP, 0x0A000001, 0x0A000002, 17)
    assert (r["sport"], r["dport"], r["has_ports"]) == (1000, 2000, True)
    assert (r["payload_off"], r["payload_len"]) == (14 + ihl + 8, 4)


def test_decode_reads_ipv4_with_longest_options() -> None:
    frame = eth() / IP(options=[IPOption_NOP()] * 40) / TCP(sport=1, dport=2, flags="A")
    r = decode_one(frame)
    assert (r["kind"], r["sport"], r["dport"], r["payload_off"]) == (KIND_IP, 1, 2, 14 + 60 + 20)


def test_decode_does_not_call_dont_fragment_a_fragment() -> None:
    r = decode_one(eth() / IP(flags="DF", id=77) / UDP())
    assert (r["is_fragment"], r["frag_offset"], r["frag_id"]) == (False, 0, 0)


def _ipv4_fragments() -> list[Packet]:
    datagram = IP(src="1.2.3.4", dst="5.6.7.8", id=0xBEEF) / UDP(sport=7, dport=9) / Raw(b"x" * 100)
    return [eth() / f for f in fragment(datagram, fragsize=40)]


def test_decode_reads_ipv4_first_fragment_with_ports() -> None:
    r = decode_one(_ipv4_fragments()[0])
    assert (r["kind"], r["is_fragment"], r["frag_offset"], r["frag_id"]) == (KIND_IP, True, 0, 0xBEEF)
    assert (r["sport"], r["dport"], r["has_ports"], r["ip_proto"]) == (7, 9, True, 17)
    assert (r["payload_off"], r["payload_len"]) == (14 + 20 + 8, 32)


def test_decode_reads_ipv4_later_fragments_without_ports() -> None:
    middle, last = (decode_one(f) for f in _ipv4_fragments()[1:])
    assert (middle["is_fragment"], middle["frag_offset"], middle["frag_id"]) == (True, 5, 0xBEEF)
    assert (last["is_fragment"], last["frag_offset"], last["frag_id"]) == (True, 10, 0xBEEF)
    for r, size in ((middle, 40), (last, 28)):
        assert (r["kind"], r["has_ports"], r["sport"], r["dport"], r["ip_proto"]) == (KIND_IP, False, 0, 0, 17)
        assert (r["payload_off"], r["payload_len"]) == (34, size)


def test_decode_reads_later_fragment_shorter_than_a_transport_header() -> None:
    r = decode_one(eth() / IP(id=3, frag=100, proto=6) / Raw(b"z"))
    assert (r["kind"], r["is_fragment"], r["frag_offset"], r["has_ports"]) == (KIND_IP, True, 100, False)
    assert (r["payload_off"], r["payload_len"]) == (34, 1)


def test_decode_excludes_ethernet_trailer_from_ip_length() -> None:
    frame = bytes(eth() / IP(proto=253) / Raw(b"abc")) + b"\x00" * 20
    r = decode_one(frame)
    assert (r["ip_proto"], r["payload_off"], r["payload_len"]) == (253, 34, 3)


def test_decode_trusts_captured_length_when_ipv4_total_length_is_zero() -> None:
    # TSO: a segment captured on the sender before segmentation shows total length 0
    frame = patched(eth() / IP(proto=253) / Raw(b"q" * 3000), 16, 0, 0)
    r = decode_one(frame)
    assert (r["kind"], r["payload_off"], r["payload_len"]) == (KIND_IP, 34, 3000)


def test_decode_bounds_payload_by_capture_when_snapped() -> None:
    frame = bytes(eth() / IP() / UDP() / Raw(b"p" * 500))[:100]
    r = decode_one(frame)
    assert (r["kind"], r["payload_off"], r["payload_len"]) == (KIND_IP, 42, 58)


@pytest.mark.parametrize("cut", [14, 15, 24, 33])
def test_decode_skips_frame_cut_in_ipv4_header(cut: int) -> None:
    assert_skipped(decode_one(bytes(eth() / IP() / UDP())[:cut]), "truncated-ipv4")


def test_decode_skips_frame_cut_in_ipv4_options() -> None:
    frame = bytes(eth() / IP(options=[IPOption_NOP()] * 8) / UDP())[: 14 + 24]
    assert_skipped(decode_one(frame), "truncated-ipv4")


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_decode_skips_ipv4_header_length_below_five(ihl: int) -> None:
    assert_skipped(decode_one(patched(eth() / IP() / UDP(), 14, 0x40 | ihl)), "bad-ipv4-header-length")


@pytest.mark.parametrize(("options", "total"), [(0, 19), (0, 1), (4, 23)])
def test_decode_skips_ipv4_total_length_below_header_length(options: int, total: int) -> None:
    frame = patched(eth() / IP(options=[IPOption_NOP()] * options) / UDP(), 16, 0, total)
    assert_skipped(decode_one(frame), "bad-ipv4-total-length")


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_decode_skips_ipv4_ethertype_with_wrong_version_nibble(version: int) -> None:
    frame = patched(eth() / IP() / UDP(), 14, (version << 4) | 5)
    assert_skipped(decode_one(frame), "bad-ip-version")


def test_decode_skips_ipv4_link_type_carrying_ipv6() -> None:
    assert_skipped(decode_one(IPv6() / UDP(), linktype=228), "bad-ip-version")


# --- IPv6 -----------------------------------------------------------------------------------------


def test_decode_splits_ipv6_addresses_big_endian() -> None:
    r = decode_one(eth() / IPv6(src=V6_SRC, dst=V6_DST) / UDP(sport=546, dport=547))
    assert (r["kind"], r["ip_version"], r["ethertype"], r["ip_proto"]) == (KIND_IP, 6, 0x86DD, 17)
    assert (r["src_hi"], r["src_lo"]) == (0x20010DB800010002, 0x0003000400050006)
    assert (r["dst_hi"], r["dst_lo"]) == (0xFE80000000000000, 0xAABBCCFFFEDDEEFF)
    assert (r["sport"], r["dport"], r["payload_off"], r["payload_len"]) == (546, 547, 62, 0)


def _ah(nh: int) -> AH:
    return AH(nh=nh, payloadlen=4, spi=0x100, seq=1, icv=b"\x00" * 12)  # 24 bytes


def test_decode_walks_ipv6_extension_chain_to_transport() -> None:
    frame = (
        eth()
        / IPv6(src=V6_SRC, dst=V6_DST)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / _ah(6)
        / TCP(sport=22, dport=50000, flags="PA")
        / Raw(b"ssh")
    )
    r = decode_one(frame)
    l4 = 14 + 40 + 8 + 8 + 8 + 24
    assert (r["kind"], r["ip_proto"], r["sport"], r["dport"], r["tcp_flags"]) == (KIND_IP, 6, 22, 50000, 0x18)
    assert (r["payload_off"], r["payload_len"]) == (l4 + 20, 3)
    assert r["is_fragment"] is False


def test_decode_walks_long_ipv6_option_header() -> None:
    # hop-by-hop header of length 2 (24 bytes): next header, length, one PadN option of 20 bytes
    hbh = bytes([17, 2, 0x01, 20]) + b"\x00" * 20
    r = decode_one(eth() / IPv6(nh=0) / Raw(hbh) / UDP(sport=3, dport=4))
    assert (r["ip_proto"], r["sport"], r["dport"], r["payload_off"]) == (17, 3, 4, 14 + 40 + 24 + 8)


def test_decode_reads_ipv6_esp_as_the_transport() -> None:
    r = decode_one(eth() / IPv6(nh=50) / Raw(b"\x00\x00\x01\x00" + b"\x00" * 20))
    assert (r["kind"], r["ip_proto"], r["has_ports"]) == (KIND_IP, 50, False)
    assert (r["payload_off"], r["payload_len"]) == (54, 24)


def test_decode_reads_ipv6_no_next_header() -> None:
    r = decode_one(eth() / IPv6(nh=59))
    assert (r["kind"], r["ip_proto"], r["has_ports"], r["payload_len"]) == (KIND_IP, 59, False, 0)


def _ipv6_fragments() -> list[Packet]:
    datagram = (
        IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrFragment(id=0xDEADBEEF) / UDP(sport=53, dport=5353) / Raw(b"d" * 200)
    )
    return [eth() / f for f in fragment6(datagram, 120)]


def test_decode_reads_ipv6_first_fragment_with_ports() -> None:
    r = decode_one(_ipv6_fragments()[0])
    assert (r["kind"], r["is_fragment"], r["frag_offset"], r["frag_id"]) == (KIND_IP, True, 0, 0xDEADBEEF)
    assert (r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (17, 53, 5353, True)
    assert (r["payload_off"], r["payload_len"]) == (14 + 48 + 8, 64)


def test_decode_reads_ipv6_later_fragments_without_ports() -> None:
    frags = [decode_one(f) for f in _ipv6_fragments()[1:]]
    assert [(r["frag_offset"], r["is_fragment"], r["frag_id"]) for r in frags] == [
        (9, True, 0xDEADBEEF),
        (18, True, 0xDEADBEEF),
    ]
    for r in frags:
        assert (r["kind"], r["ip_proto"], r["has_ports"], r["sport"], r["payload_off"]) == (KIND_IP, 17, False, 0, 62)
    assert [r["payload_len"] for r in frags] == [72, 64]


def test_decode_reads_later_ipv6_fragment_behind_destination_options() -> None:
    frame = eth() / IPv6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(nh=6, offset=3, m=1, id=9) / Raw(b"x" * 24)
    r = decode_one(frame)
    assert (r["is_fragment"], r["frag_offset"], r["frag_id"], r["ip_proto"]) == (True, 3, 9, 6)
    assert (r["has_ports"], r["payload_off"], r["payload_len"]) == (False, 14 + 40 + 8 + 8, 24)


def test_decode_does_not_call_atomic_ipv6_fragment_a_fragment() -> None:
    # RFC 6946: offset 0 and M clear is a whole datagram that happens to carry a fragment header
    r = decode_one(eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=0, id=5) / UDP(sport=1, dport=2))
    assert (r["is_fragment"], r["frag_offset"], r["frag_id"]) == (False, 0, 0)
    assert (r["sport"], r["dport"], r["has_ports"]) == (1, 2, True)


def test_decode_trusts_captured_length_when_ipv6_payload_length_is_zero() -> None:
    frame = patched(eth() / IPv6(nh=253) / Raw(b"j" * 100), 18, 0, 0)
    r = decode_one(frame)
    assert (r["kind"], r["payload_off"], r["payload_len"]) == (KIND_IP, 54, 100)


def test_decode_excludes_ethernet_padding_from_empty_ipv6_packet() -> None:
    # payload length 0 is not TSO when there is no next header: the 6 bytes after are padding
    frame = bytes(eth() / IPv6(nh=59, plen=0)) + b"\xee" * 6
    r = decode_one(frame)
    assert (r["kind"], r["ip_proto"], r["payload_off"], r["payload_len"]) == (KIND_IP, 59, 54, 0)


@pytest.mark.parametrize("cut", [14, 20, 53])
def test_decode_skips_frame_cut_in_ipv6_header(cut: int) -> None:
    assert_skipped(decode_one(bytes(eth() / IPv6() / UDP())[:cut]), "truncated-ipv6")


@pytest.mark.parametrize("version", [0, 4, 7])
def test_decode_skips_ipv6_ethertype_with_wrong_version_nibble(version: int) -> None:
    frame = patched(eth() / IPv6() / UDP(), 14, version << 4)
    assert_skipped(decode_one(frame), "bad-ip-version")


def test_decode_skips_ipv6_link_type_carrying_ipv4() -> None:
    assert_skipped(decode_one(IP() / TCP(options=[("NOP", None)] * 8), linktype=229), "bad-ip-version")


@pytest.mark.parametrize(
    ("stack", "cut"),
    [
        (IPv6ExtHdrHopByHop() / UDP(), 1),  # next header read, length missing
        (IPv6ExtHdrHopByHop() / UDP(), 7),  # length read, rest of the header missing
        (IPv6ExtHdrFragment(m=1) / UDP(), 7),  # fragment header needs all 8 bytes
        (IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / UDP(), 12),  # second header cut
        (_ah(17) / UDP(), 20),
    ],
    ids=["hbh-1", "hbh-7", "frag-7", "dest-12", "ah-20"],
)
def test_decode_skips_frame_cut_in_ipv6_extension_header(stack: Packet, cut: int) -> None:
    frame = bytes(eth() / IPv6() / stack)[: 14 + 40 + cut]
    assert_skipped(decode_one(frame), "truncated-ipv6-extension")


def test_decode_skips_ipv6_extension_header_longer_than_the_frame() -> None:
    frame = patched(eth() / IPv6() / IPv6ExtHdrDestOpt() / UDP(), 14 + 41, 200)
    assert_skipped(decode_one(frame), "truncated-ipv6-extension")


def test_decode_skips_ipv6_extension_chain_longer_than_the_payload_length() -> None:
    # payload length 8 covers the hop-by-hop header only; the destination options are a trailer
    frame = bytes(eth() / IPv6(plen=8) / IPv6ExtHdrHopByHop(nh=60)) + bytes(IPv6ExtHdrDestOpt(nh=17))
    assert_skipped(decode_one(frame + bytes(UDP())), "truncated-ipv6-extension")


def test_decode_accepts_eight_ipv6_extension_headers() -> None:
    chain: Packet = IPv6ExtHdrHopByHop()
    for _ in range(7):
        chain = chain / IPv6ExtHdrDestOpt()
    r = decode_one(eth() / IPv6() / chain / UDP(sport=11, dport=12))
    assert (r["kind"], r["ip_proto"], r["sport"], r["payload_off"]) == (KIND_IP, 17, 11, 14 + 40 + 64 + 8)


def test_decode_skips_ipv6_extension_chain_too_deep() -> None:
    chain: Packet = IPv6ExtHdrHopByHop()
    for _ in range(8):
        chain = chain / IPv6ExtHdrDestOpt()
    assert_skipped(decode_one(eth() / IPv6() / chain / UDP()), "ipv6-extensions-too-deep")


# --- ARP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [1, 2])
def test_decode_reads_arp_operation_and_addresses(op: int) -> None:
    frame = eth() / ARP(op=op, hwsrc="00:11:22:33:44:55", psrc="10.9.8.7", hwdst="00:00:00:00:00:00", pdst="10.9.8.1")
    r = decode_one(frame)
    assert (r["kind"], r["arp_op"], r["ethertype"], r["l3_off"]) == (KIND_ARP, op, 0x0806, 14)
    assert (r["src_hi"], r["src_lo"], r["dst_hi"], r["dst_lo"]) == (0, 0x0A090807, 0, 0x0A090801)
    assert (r["ip_version"], r["has_ports"], r["payload_off"]) == (0, False, -1)
    assert (r["vlan_outer"], r["src_mac"]) == (NO_VLAN, 0x001122334455)


def test_decode_reads_padded_gratuitous_arp() -> None:
    frame = bytes(eth() / ARP(op=1, psrc="10.0.0.5", pdst="10.0.0.5")) + b"\x00" * 18
    r = decode_one(frame)
    assert (r["kind"], r["src_lo"], r["dst_lo"]) == (KIND_ARP, 0x0A000005, 0x0A000005)


@pytest.mark.parametrize(
    "arp",
    [
        bytes.fromhex("0006 0800 0604 0001") + b"\x00" * 20,  # IEEE 802 hardware
        bytes.fromhex("0001 86dd 0610 0001") + b"\x00" * 44,  # IPv6 protocol addresses
        bytes.fromhex("0006 0800 0004 0001") + b"\x00" * 8,  # no hardware addresses: 16 bytes in all
    ],
    ids=["ieee802", "ipv6", "short"],
)
def test_decode_marks_arp_that_is_not_ipv4_over_ethernet_as_other_l2(arp: bytes) -> None:
    r = decode_one(bytes(eth())[:12] + b"\x08\x06" + arp)
    assert (r["kind"], r["skip_reason"], r["arp_op"], r["src_lo"]) == (KIND_OTHER_L2, 0, 0, 0)


@pytest.mark.parametrize("cut", [14, 21, 41])
def test_decode_skips_frame_cut_in_arp(cut: int) -> None:
    assert_skipped(decode_one(bytes(eth() / ARP())[:cut]), "truncated-arp")


# --- batches --------------------------------------------------------------------------------------


def test_decode_network_skips_do_not_disturb_their_neighbours() -> None:
    good = [
        bytes(eth() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2)),
        bytes(eth() / Dot1Q(vlan=3) / IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrHopByHop() / TCP(sport=3, dport=4)),
        bytes(_ipv4_fragments()[1]),
        bytes(_ipv6_fragments()[0]),
        bytes(eth() / ARP(op=2, psrc="3.3.3.3", pdst="4.4.4.4")),
    ]
    bad = [
        bytes(eth() / IP() / UDP())[:30],
        patched(eth() / IP() / UDP(), 14, 0x44),
        patched(eth() / IP() / UDP(), 16, 0, 4),
        bytes(eth() / IPv6() / UDP())[:50],
        bytes(eth() / IPv6() / IPv6ExtHdrFragment() / UDP())[:58],
        bytes(eth() / ARP())[:30],
    ]
    alone = [decode_one(f) for f in good]
    mixed = [bad[0], good[0], bad[1], good[1], bad[2], bad[3], good[2], good[3], bad[4], good[4], bad[5]]
    h = decode(batch_from_frames(mixed))
    got = rows(h)
    assert [got[i] for i in (1, 3, 6, 7, 9)] == alone
    assert all(got[i]["kind"] == KIND_SKIPPED for i in (0, 2, 4, 5, 8, 10))
    assert h.skip_counts() == {
        "truncated-ipv4": 1,
        "bad-ipv4-header-length": 1,
        "bad-ipv4-total-length": 1,
        "truncated-ipv6": 1,
        "truncated-ipv6-extension": 1,
        "truncated-arp": 1,
    }
