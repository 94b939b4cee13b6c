"""decode() transport layer: TCP/UDP/SCTP ports, TCP flags, ICMP/ICMPv6 type and code, payload bounds."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Dot1Q
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import Packet, Raw

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import (
    KIND_IP,
    TCP_ACK,
    TCP_CWR,
    TCP_ECE,
    TCP_FIN,
    TCP_PSH,
    TCP_RST,
    TCP_SYN,
    TCP_URG,
)
from tests.decode._helpers import assert_skipped, decode_one, eth, rows


def ip4() -> IP:
    return IP(src="10.0.0.1", dst="10.0.0.2")




L4 = 14 + 20  # transport offset behind Ethernet + IPv4 without options


# --- TCP ------------------------------------------------------------------------------------------


def test_decode_reads_tcp_ports_and_payload() -> None:
    r = decode_one(eth() / ip4() / TCP(sport=51515, dport=80, flags="PA") / Raw(b"GET / HTTP/1.1\r\n"))
    assert (r["kind"], r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (KIND_IP, 6, 51515, 80, True)
    assert (r["tcp_flags"], r["payload_off"], r["payload_len"]) == (TCP_PSH | TCP_ACK, L4 + 20, 16)


@pytest.mark.parametrize(
    ("flags", "bits"),
    [
        ("", 0),
        ("S", TCP_SYN),
        ("SA", TCP_SYN | TCP_ACK),
        ("F", TCP_FIN),
        ("R", TCP_RST),
        ("U", TCP_URG),
        ("E", TCP_ECE),
        ("C", TCP_CWR),
        ("FSRPAUEC", 0xFF),
    ],
)
def test_decode_reads_tcp_flags(flags: str, bits: int) -> None:
    assert decode_one(eth() / ip4() / TCP(flags=flags))["tcp_flags"] == bits


def test_decode_skips_tcp_options_to_reach_payload() -> None:
    options = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2))]
    tcp = TCP(sport=1, dport=2, flags="S", options=options)
    r = decode_one(eth() / ip4() / tcp / Raw(b"data"))
    assert len(bytes(tcp)) == 40  # 20 + 19 bytes of options padded to a 4-byte multiple
    assert (r["sport"], r["dport"], r["payload_off"], r["payload_len"]) == (1, 2, L4 + 40, 4)


def test_decode_reads_ports_of_tcp_header_cut_before_flags() -> None:
    r = decode_one(bytes(eth() / ip4() / TCP(sport=7, dport=8, flags="S"))[: L4 + 10])
    assert (r["kind"], r["sport"], r["dport"], r["has_ports"]) == (KIND_IP, 7, 8, True)
    assert (r["tcp_flags"], r["payload_off"], r["payload_len"]) == (0, -1, 0)


def test_decode_gives_no_payload_for_tcp_data_offset_below_five() -> None:
    frame = bytearray(bytes(eth() / ip4() / TCP(sport=7, dport=8, flags="A") / Raw(b"x" * 8)))
    frame[L4 + 12] = 0x40  # data offset 4 words
    r = decode_one(bytes(frame))
    assert (r["kind"], r["sport"], r["tcp_flags"], r["payload_off"], r["payload_len"]) == (KIND_IP, 7, TCP_ACK, -1, 0)


def test_decode_gives_no_payload_for_tcp_data_offset_past_the_packet() -> None:
    frame = bytearray(bytes(eth() / ip4() / TCP(sport=7, dport=8) / Raw(b"x" * 8)))
    frame[L4 + 12] = 0xF0  # 60-byte header in a 28-byte segment
    r = decode_one(bytes(frame))
    assert (r["kind"], r["has_ports"], r["payload_off"]) == (KIND_IP, True, -1)


# --- UDP ------------------------------------------------------------------------------------------


def test_decode_reads_udp_ports_and_payload() -> None:
    r = decode_one(eth() / ip4() / UDP(sport=5353, dport=5353) / Raw(b"m" * 30))
    assert (r["kind"], r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (KIND_IP, 17, 5353, 5353, True)
    assert (r["tcp_flags"], r["payload_off"], r["payload_len"]) == (0, L4 + 8, 30)


def test_decode_excludes_ethernet_padding_from_udp_payload() -> None:
    frame = bytes(eth() / ip4() / UDP(sport=1, dport=2) / Raw(b"hi"))
    padded = frame + b"\x00" * (60 - len(frame))
    assert len(padded) == 60
    r = decode_one(padded)
    assert (r["payload_off"], r["payload_len"]) == (L4 + 8, 2)


def test_decode_excludes_padding_even_when_udp_length_is_missing() -> None:
    frame = bytearray(bytes(eth() / ip4() / UDP(sport=1, dport=2) / Raw(b"hi")) + b"\xee" * 16)
    frame[L4 + 4 : L4 + 6] = b"\x00\x00"  # UDP length 0: only the IP length bounds the payload
    r = decode_one(bytes(frame))
    assert (r["payload_off"], r["payload_len"]) == (L4 + 8, 2)


def test_decode_bounds_udp_payload_by_udp_length() -> None:
    frame = bytearray(bytes(eth() / ip4() / UDP(sport=1, dport=2) / Raw(b"x" * 20)))
    frame[L4 + 4 : L4 + 6] = (8 + 5).to_bytes(2, "big")
    r = decode_one(bytes(frame))
    assert (r["payload_off"], r["payload_len"]) == (L4 + 8, 5)


def test_decode_ignores_udp_length_longer_than_the_ip_packet() -> None:
    frame = bytearray(bytes(eth() / ip4() / UDP(sport=1, dport=2) / Raw(b"x" * 20)))
    frame[L4 + 4 : L4 + 6] = (5000).to_bytes(2, "big")
    r = decode_one(bytes(frame))
    assert (r["payload_off"], r["payload_len"]) == (L4 + 8, 20)


def test_decode_reads_udp_in_ipv6_behind_hop_by_hop() -> None:
    r = decode_one(eth() / IPv6() / IPv6ExtHdrHopByHop() / UDP(sport=547, dport=546) / Raw(b"d" * 9))
    assert (r["ip_proto"], r["sport"], r["dport"], r["payload_off"], r["payload_len"]) == (17, 547, 546, 70, 9)


# --- SCTP -----------------------------------------------------------------------------------------


def test_decode_reads_sctp_ports_and_chunks_as_payload() -> None:
    r = decode_one(eth() / ip4() / SCTP(sport=2905, dport=2905) / SCTPChunkData(data=b"abcd"))
    assert (r["kind"], r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (KIND_IP, 132, 2905, 2905, True)
    assert (r["payload_off"], r["payload_len"]) == (L4 + 12, 16 + 4)


# --- ICMP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("icmp_type", "code"), [(8, 0), (0, 0), (3, 3), (11, 1)])
def test_decode_reads_icmp_type_and_code_as_ports(icmp_type: int, code: int) -> None:
    r = decode_one(eth() / ip4() / ICMP(type=icmp_type, code=code) / Raw(b"\x00" * 12))
    assert (r["kind"], r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (KIND_IP, 1, icmp_type, code, True)
    assert (r["payload_off"], r["payload_len"]) == (L4 + 4, 4 + 12)


def test_decode_reads_icmpv6_echo_request() -> None:
    r = decode_one(eth() / IPv6() / ICMPv6EchoRequest(id=1, seq=2, data=b"ping"))
    assert (r["ip_proto"], r["sport"], r["dport"], r["has_ports"]) == (58, 128, 0, True)
    assert (r["payload_off"], r["payload_len"]) == (14 + 40 + 4, 4 + 4)


def test_decode_reads_icmpv6_neighbour_solicitation() -> None:
    r = decode_one(eth() / IPv6() / ICMPv6ND_NS(tgt="fe80::1"))
    assert (r["ip_proto"], r["sport"], r["dport"]) == (58, 135, 0)


# --- other protocols ------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [2, 47, 50, 89, 253])
def test_decode_gives_other_protocols_no_ports_and_whole_payload(proto: int) -> None:
    r = decode_one(eth() / IP(proto=proto) / Raw(b"\x01" * 24))
    assert (r["kind"], r["ip_proto"], r["has_ports"], r["sport"], r["dport"]) == (KIND_IP, proto, False, 0, 0)
    assert (r["payload_off"], r["payload_len"]) == (L4, 24)


# --- truncation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transport",
    [TCP(sport=1, dport=2), UDP(sport=1, dport=2), SCTP(sport=1, dport=2)],
    ids=["tcp", "udp", "sctp"],
)
@pytest.mark.parametrize("kept", [0, 1, 3])
def test_decode_skips_transport_cut_before_the_ports(transport: Packet, kept: int) -> None:
    frame = bytes(eth() / ip4() / transport)[: L4 + kept]
    assert_skipped(decode_one(frame), "truncated-transport")


@pytest.mark.parametrize("icmp", [ICMP(type=8), ICMPv6EchoRequest()], ids=["icmp", "icmpv6"])
def test_decode_skips_icmp_cut_before_the_code(icmp: Packet) -> None:
    ip = ip4() if isinstance(icmp, ICMP) else IPv6()
    frame = bytes(eth() / ip / icmp)
    assert_skipped(decode_one(frame[: len(frame) - len(icmp) + 1]), "truncated-transport")


def test_decode_skips_ipv6_transport_cut_behind_extension_header() -> None:
    frame = bytes(eth() / IPv6() / IPv6ExtHdrHopByHop() / TCP())[: 14 + 48 + 2]
    assert_skipped(decode_one(frame), "truncated-transport")


@pytest.mark.parametrize("proto", [6, 17, 132, 1])
def test_decode_does_not_read_ports_from_ethernet_padding(proto: int) -> None:
    # The IP length says the packet ends with its header; the rest of the 60 bytes is padding.
    frame = bytes(eth() / IP(proto=proto, len=20))
    padded = frame + b"\x12\x34\x56\x78" + b"\x00" * (60 - len(frame) - 4)
    assert_skipped(decode_one(padded), "truncated-transport")


def test_decode_does_not_read_tcp_flags_from_ethernet_padding() -> None:
    # IP length covers the ports only; the flags byte would be in the padding
    frame = bytes(eth() / IP(proto=6, len=24)) + bytes.fromhex("0007 0008") + b"\x3f" * 22
    r = decode_one(frame)
    assert (r["kind"], r["sport"], r["dport"], r["tcp_flags"], r["payload_off"]) == (KIND_IP, 7, 8, 0, -1)


def test_decode_needs_no_transport_header_in_later_fragments() -> None:
    r = decode_one(eth() / IPv6() / IPv6ExtHdrFragment(nh=6, offset=1, id=4) / Raw(b"x"))
    assert (r["kind"], r["has_ports"], r["ip_proto"], r["payload_len"]) == (KIND_IP, False, 6, 1)


def test_decode_transport_skips_do_not_disturb_their_neighbours() -> None:
    good = [
        bytes(eth() / ip4() / TCP(sport=1, dport=2, flags="S")),
        bytes(eth() / Dot1Q(vlan=4) / IPv6() / UDP(sport=3, dport=4) / Raw(b"abc")),
        bytes(eth() / ip4() / ICMP(type=8) / Raw(b"ping")),
        bytes(eth() / ip4() / SCTP(sport=5, dport=6)),
    ]
    bad = [
        bytes(eth() / ip4() / TCP())[: L4 + 2],
        bytes(eth() / IPv6() / UDP())[: 14 + 40 + 3],
        bytes(eth() / ip4() / ICMP())[: L4 + 1],
        bytes(eth() / IP(proto=17, len=20)) + b"\xff" * 12,
    ]
    alone = [decode_one(f) for f in good]
    mixed = [bad[0], good[0], good[1], bad[1], bad[2], good[2], bad[3], good[3]]
    h = decode(batch_from_frames(mixed))
    got = rows(h)
    assert [got[i] for i in (1, 2, 5, 7)] == alone
    assert h.skip_counts() == {"truncated-transport": 4}
