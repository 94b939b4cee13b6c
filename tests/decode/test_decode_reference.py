"""decode() equals a slow scalar reference built on scapy's own dissection; hostile input never raises.

Random well-formed stacks are built with scapy, many of them go into ONE batch (with mixed link
types), and every decoded row is compared with what scapy reads back from the same bytes. Then
every truncation of such frames, and random bytes, must decode without raising: each row is
either a well-formed decode or KIND_SKIPPED with a reason, and rows never disturb each other.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.sctp import SCTP, SCTPChunkData
from scapy.packet import NoPayload, Packet, Padding, Raw
from scapy.utils import RawPcapReader

from auditor.capture.types import Batch, batch_from_frames
from auditor.decode import decode
from auditor.decode.types import KIND_ARP, KIND_IP, KIND_OTHER_L2, KIND_SKIPPED, NO_VLAN, SKIP_REASONS
from tests.decode._helpers import FIELDS, rows

SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def examples(n: int) -> int:
    """`n` examples under the default profile (100), proportionally more under a larger one."""
    return max(n, settings.default.max_examples * n // 100)




def batch_of(frames: list[tuple[int, bytes]]) -> Batch:
    """One batch of (linktype, frame) pairs, each frame keeping its own link type."""
    batch = batch_from_frames([f for _, f in frames])
    return dataclasses.replace(batch, linktype=np.array([lt for lt, _ in frames], dtype=np.uint16))


# --- generator ------------------------------------------------------------------------------------

V6_EXTENSIONS = {"hbh": 0, "routing": 43, "destopt": 60, "ah": 51}
PROTO = {"tcp": 6, "udp": 17, "sctp": 132, "other": 253}
OTHER_ETHERTYPE = 0x88B5  # IEEE 802 local experimental: nothing in scapy dissects it
TCP_OPTIONS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (5, 6))]


def _v6_extension(name: str, nh: int) -> Packet:
    if name == "hbh":
        return IPv6ExtHdrHopByHop(nh=nh)
    if name == "routing":
        return IPv6ExtHdrRouting(nh=nh)
    if name == "destopt":
        return IPv6ExtHdrDestOpt(nh=nh)
    return AH(nh=nh, payloadlen=4, spi=7, seq=1, icv=b"\x00" * 12)


@st.composite
def transports(draw: st.DrawFn, v6: bool) -> tuple[int, bytes]:
    """Return (IP protocol number, transport header + payload bytes)."""
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "sctp", "other"]))
    payload = draw(st.binary(max_size=48)) + b"\xa5" * draw(st.sampled_from([0, 0, 200, 1400]))
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    if kind == "tcp":
        options = draw(st.lists(st.sampled_from(TCP_OPTIONS), max_size=4))
        layer: Packet = TCP(sport=sport, dport=dport, flags=draw(st.integers(0, 255)), options=options, chksum=0)
    elif kind == "udp":
        layer = UDP(sport=sport, dport=dport, chksum=0)
    elif kind == "sctp":
        layer = SCTP(sport=sport, dport=dport, chksum=0) / SCTPChunkData(data=payload[:16])
        payload = b""
    elif kind == "icmp":
        icmp_type, code = draw(st.sampled_from([0, 8, 13, 128, 129, 200])), draw(st.integers(0, 255))
        if v6:
            layer = ICMPv6EchoRequest(type=icmp_type, code=code, cksum=0)
        else:
            layer = ICMP(type=icmp_type, code=code, chksum=0)
        return (58 if v6 else 1), bytes(layer / Raw(payload))
    else:
        return draw(st.sampled_from([PROTO["other"], 59])), payload  # 59: no next header
    return PROTO[kind], bytes(layer / Raw(payload))


@st.composite
def ip_packets(draw: st.DrawFn) -> Packet:
    """A random IPv4 or IPv6 packet: options or extension headers, maybe a fragment of a datagram."""
    v6 = draw(st.booleans())
    proto, l4 = draw(transports(v6))
    frag = draw(st.sampled_from(["none", "none", "none", "first", "later", "atomic"]))
    ident = draw(st.integers(0, 2**32 - 1))
    if not v6:
        nops = draw(st.sampled_from([0, 0, 1, 4, 7, 40]))
        ip = IP(
            src=str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))),
            dst=str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))),
            proto=proto,
            id=ident & 0xFFFF,
            ttl=draw(st.integers(1, 255)),
            options=[IPOption_NOP()] * nops,
        )
        if frag == "first":
            ip.flags = "MF"
        elif frag == "later":
            ip.flags, ip.frag = draw(st.sampled_from(["", "MF"])), draw(st.integers(1, 8191))
        return ip / Raw(l4)
    # IPv6: the chain is built with every next-header value explicit
    chain = draw(st.lists(st.sampled_from(list(V6_EXTENSIONS)), max_size=3))
    headers: list[tuple[str, int]] = [(name, V6_EXTENSIONS[name]) for name in chain]
    if frag != "none":
        headers.insert(draw(st.integers(0, len(headers))), ("frag", 44))
    layers: list[Packet] = []
    for i, (name, _) in enumerate(headers):
        nh = headers[i + 1][1] if i + 1 < len(headers) else proto
        if name == "frag":
            offset = draw(st.integers(1, 8191)) if frag == "later" else 0
            more = {"first": 1, "atomic": 0}.get(frag, draw(st.integers(0, 1)))
            layers.append(IPv6ExtHdrFragment(nh=nh, offset=offset, m=more, id=ident))
        else:
            layers.append(_v6_extension(name, nh))
    pkt: Packet = IPv6(
        src=str(ipaddress.IPv6Address(draw(st.binary(min_size=16, max_size=16)))),
        dst=str(ipaddress.IPv6Address(draw(st.binary(min_size=16, max_size=16)))),
        nh=headers[0][1] if headers else proto,
        hlim=draw(st.integers(0, 255)),
    )
    for layer in layers:
        pkt = pkt / layer
    return pkt / Raw(l4)


@st.composite
def stacks(draw: st.DrawFn) -> tuple[int, bytes]:
    """A random well-formed frame: (linktype, bytes)."""
    linktype = draw(st.sampled_from([1, 1, 1, 1, 113, 276, 101]))
    what = draw(st.sampled_from(["ip"] * 8 + ["arp", "other"])) if linktype != 101 else "ip"
    if what == "ip":
        l3: Packet = draw(ip_packets())
        ethertype = 0x86DD if isinstance(l3, IPv6) else 0x0800
    elif what == "arp":
        l3 = ARP(
            op=draw(st.integers(1, 2)),
            psrc=str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))),
            pdst=str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))),
        )
        ethertype = 0x0806
    else:
        l3 = Raw(draw(st.binary(min_size=1, max_size=40)))
        ethertype = OTHER_ETHERTYPE
    src = draw(st.binary(min_size=6, max_size=6))
    if linktype == 101:
        return linktype, bytes(l3)
    if linktype == 113:
        return linktype, bytes(CookedLinux(lladdrtype=1, lladdrlen=6, src=src, proto=ethertype) / l3)
    if linktype == 276:
        return linktype, bytes(CookedLinuxV2(proto=ethertype, lladdrtype=1, lladdrlen=6, src=src) / l3)
    dst = draw(st.binary(min_size=6, max_size=6))
    inner: Packet = l3
    tunnel = draw(st.sampled_from(["none"] * 6 + ["mpls", "pppoe"])) if what == "ip" else "none"
    if tunnel == "mpls":
        depth = draw(st.integers(1, 3))
        inner = MPLS(label=draw(st.integers(16, 2**20 - 1)), s=1, ttl=64) / inner
        for _ in range(depth - 1):
            inner = MPLS(label=draw(st.integers(16, 2**20 - 1)), s=0, ttl=64) / inner
        ethertype = 0x8847
    elif tunnel == "pppoe":
        ppp = PPP(proto=0x0057 if ethertype == 0x86DD else 0x0021)
        inner = PPPoE(sessionid=draw(st.integers(0, 65535))) / ppp / inner
        ethertype = 0x8864
    vids = draw(st.lists(st.integers(0, 4095), max_size=2)) if tunnel != "mpls" else []
    types = [*([0x88A8] if len(vids) == 2 else []), *([0x8100] if vids else []), ethertype]
    frame: Packet = Ether(src=src, dst=dst, type=types[0])
    for i, (vid, nxt) in enumerate(zip(vids, types[1:], strict=True)):
        tag = Dot1AD if len(vids) == 2 and i == 0 else Dot1Q
        frame = frame / tag(vlan=vid, prio=draw(st.integers(0, 7)), type=nxt)
    data = bytes(frame / inner)
    if draw(st.booleans()) and len(data) < 60:
        data += b"\x00" * (60 - len(data))
    return linktype, data


# --- the scalar reference -------------------------------------------------------------------------

IPV6_EXT_CLASSES = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, AH)


def _dissect(linktype: int, frame: bytes) -> Packet:
    if linktype == 101:
        return (IPv6 if frame[0] >> 4 == 6 else IP)(frame)
    return {1: Ether, 113: CookedLinux, 276: CookedLinuxV2}[linktype](frame)


def _offset(frame: bytes, layer: Packet) -> int:
    """Offset of `layer` in `frame`: scapy re-emits a dissected layer's bytes, padding included."""
    if isinstance(layer, NoPayload):
        return len(frame)
    return len(frame) - len(bytes(layer))


def _ip_int(address: str) -> int:
    return int(ipaddress.ip_address(address))


def reference(linktype: int, frame: bytes) -> tuple[dict[str, int], int]:
    """Return the expected row of a well-formed frame, and how many bytes decoding it needs."""
    pkt = _dissect(linktype, frame)
    assert bytes(pkt) == frame
    exp: dict[str, Any] = {name: 0 for name in FIELDS}
    exp.update(vlan_outer=NO_VLAN, vlan_inner=NO_VLAN, payload_off=-1, has_ports=False, is_fragment=False)
    if isinstance(pkt, Ether):
        exp["src_mac"], exp["dst_mac"] = _mac(pkt.src), _mac(pkt.dst)
    elif isinstance(pkt, CookedLinux | CookedLinuxV2):
        exp["src_mac"] = int.from_bytes(pkt.src[:6], "big")
    vids = [layer.vlan for layer in pkt.iterpayloads() if isinstance(layer, Dot1Q)]
    exp["vlan_outer"], exp["vlan_inner"] = ([*vids, NO_VLAN, NO_VLAN])[:2]

    l3 = next((la for la in pkt.iterpayloads() if type(la) in (IP, IPv6, ARP)), None)
    if l3 is None:  # a well-formed frame of another ethertype
        link = pkt.payload
        while isinstance(link, Dot1Q):
            link = link.payload
        exp.update(kind=KIND_OTHER_L2, ethertype=OTHER_ETHERTYPE, l3_off=_offset(frame, link))
        return exp, exp["l3_off"]
    l3_off = _offset(frame, l3)
    exp["l3_off"] = l3_off
    if isinstance(l3, ARP):
        exp.update(kind=KIND_ARP, ethertype=0x0806, arp_op=l3.op, src_lo=_ip_int(l3.psrc), dst_lo=_ip_int(l3.pdst))
        return exp, l3_off + 28

    exp["kind"] = KIND_IP
    later = False
    if isinstance(l3, IP):
        exp.update(ethertype=0x0800, ip_version=4, ip_proto=l3.proto, src_lo=_ip_int(l3.src), dst_lo=_ip_int(l3.dst))
        ip_end = min(l3_off + l3.len, len(frame))
        if l3.frag or l3.flags.MF:
            exp.update(is_fragment=True, frag_offset=l3.frag, frag_id=l3.id)
        later = l3.frag != 0
        last: Packet = l3
    else:
        src, dst = _ip_int(l3.src), _ip_int(l3.dst)
        exp.update(ethertype=0x86DD, ip_version=6, src_hi=src >> 64, src_lo=src & (2**64 - 1))
        exp.update(dst_hi=dst >> 64, dst_lo=dst & (2**64 - 1))
        # payload length 0 is TSO or a jumbogram (up to the capture), unless nothing follows
        ip_end = min(l3_off + 40 + l3.plen if l3.plen or l3.nh == 59 else len(frame), len(frame))
        last, nh = l3, l3.nh
        while isinstance(last.payload, IPV6_EXT_CLASSES):
            last = last.payload
            nh = last.nh
            if isinstance(last, IPv6ExtHdrFragment):
                if last.offset or last.m:
                    exp.update(is_fragment=True, frag_offset=last.offset, frag_id=last.id)
                if last.offset:
                    later = True
                    break
            if isinstance(last, AH):
                # scapy does not dissect past AH: go on from a stand-in IPv6 header over the rest
                rest = bytes(last.payload)
                last = IPv6(bytes(IPv6(nh=nh, plen=len(rest))) + rest)
        exp["ip_proto"] = nh
    transport = last.payload
    l4 = _offset(frame, transport)
    proto = exp["ip_proto"]
    if later:
        exp.update(payload_off=l4, payload_len=max(ip_end - l4, 0))
        return exp, l4
    if proto in (6, 17, 132):
        exp.update(sport=transport.sport, dport=transport.dport, has_ports=True)
        start, end = l4 + (8 if proto == 17 else 12), ip_end
        if proto == 6:
            start = l4 + 4 * transport.dataofs
            exp["tcp_flags"] = int(transport.flags) & 0xFF
        if proto == 17 and transport.len >= 8:
            end = min(end, l4 + transport.len)
        exp.update(payload_off=start, payload_len=end - start)
        return exp, l4 + 4
    if proto in (1, 58):
        exp.update(sport=frame[l4], dport=frame[l4 + 1], has_ports=True)
        if isinstance(transport, Packet) and hasattr(transport, "code"):
            assert (transport.type, transport.code) == (frame[l4], frame[l4 + 1])
        exp.update(payload_off=l4 + 4, payload_len=ip_end - l4 - 4)
        return exp, l4 + 2
    exp.update(payload_off=l4, payload_len=ip_end - l4)
    return exp, l4


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=examples(25), **SETTINGS)
@given(st.lists(stacks(), min_size=1, max_size=12))
def test_decode_equals_scapy_reference_on_random_stacks(frames: list[tuple[int, bytes]]) -> None:
    got = rows(decode(batch_of(frames)))
    for i, (linktype, frame) in enumerate(frames):
        want, _ = reference(linktype, frame)
        assert got[i] == want, f"row {i} (linktype {linktype}): {frame.hex()}"


def _check_truncations(linktype: int, frame: bytes) -> None:
    """Every frame[:k] decodes; below what the frame needs it is skipped, above it agrees with the whole."""
    full, need = reference(linktype, frame)
    cuts = [frame[:k] for k in range(len(frame) + 1)]
    got = rows(decode(batch_of([(linktype, c) for c in cuts])))
    whole_end = full["payload_off"] + full["payload_len"]
    for k, row in enumerate(got):
        assert (row["kind"] == KIND_SKIPPED) == (row["skip_reason"] != 0), k
        if k < need:
            assert row["kind"] == KIND_SKIPPED, f"cut at {k} of {frame.hex()}"
            continue
        assert row["kind"] == full["kind"], f"cut at {k} of {frame.hex()}"
        same = {n: row[n] for n in FIELDS if n not in ("tcp_flags", "payload_off", "payload_len")}
        assert same == {n: full[n] for n in same}, f"cut at {k} of {frame.hex()}"
        assert row["tcp_flags"] in (0, full["tcp_flags"])
        if row["payload_off"] != -1:
            assert row["payload_off"] == full["payload_off"]
            assert row["payload_off"] + row["payload_len"] == min(whole_end, k)
        elif full["payload_off"] != -1:
            assert k < full["payload_off"], f"cut at {k} of {frame.hex()}"


@settings(max_examples=examples(10), **SETTINGS)
@given(stacks())
def test_decode_skips_every_truncation_of_a_random_stack_below_its_headers(frame: tuple[int, bytes]) -> None:
    _check_truncations(*frame)


FIXED_FRAMES = [
    (
        1,
        Ether()
        / Dot1AD(vlan=10)
        / Dot1Q(vlan=20)
        / IP(options=[IPOption_NOP()] * 6)
        / TCP(sport=1, dport=2, flags="S", options=TCP_OPTIONS)
        / Raw(b"x" * 20),
    ),
    (
        1,
        Ether()
        / MPLS(label=30, s=0)
        / MPLS(label=31, s=1)
        / IPv6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrFragment(m=1, id=99)
        / UDP(sport=53, dport=53)
        / Raw(b"d" * 30),
    ),
    (1, Ether() / PPPoE(sessionid=1) / PPP(proto=0x0021) / IP() / ICMP(type=8) / Raw(b"ping")),
    (1, Ether() / IPv6() / IPv6ExtHdrRouting() / AH(nh=132, payloadlen=4, icv=b"\x00" * 12) / SCTP(sport=5, dport=6)),
    (1, Ether() / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.2")),
    (276, CookedLinuxV2(proto=0x86DD, lladdrtype=1, lladdrlen=6, src=b"\x01" * 6) / IPv6() / ICMPv6EchoRequest()),
    (113, CookedLinux(lladdrtype=1, lladdrlen=6, src=b"\x02" * 6, proto=0x0806) / ARP(op=2)),
    (101, IP(flags="MF", frag=20, proto=17) / Raw(b"z" * 12)),
]


def test_decode_skips_every_truncation_of_fixed_stacks_below_their_headers() -> None:
    for linktype, pkt in FIXED_FRAMES:
        _check_truncations(linktype, bytes(pkt))


def _assert_well_formed(frames: list[tuple[int, bytes]]) -> None:
    """Decode `frames` in one batch: no exception, sane rows, and each row as when decoded alone."""
    h = decode(batch_of(frames))
    got = rows(h)
    for (linktype, frame), row in zip(frames, got, strict=True):
        assert row["kind"] in (KIND_SKIPPED, KIND_IP, KIND_ARP, KIND_OTHER_L2)
        assert (row["kind"] == KIND_SKIPPED) == (row["skip_reason"] != 0)
        if row["kind"] == KIND_SKIPPED:
            continue
        assert 0 <= row["l3_off"] <= len(frame)
        assert (row["ip_version"] != 0) == (row["kind"] == KIND_IP)
        assert row["payload_len"] >= 0
        if row["payload_off"] != -1:
            assert row["l3_off"] <= row["payload_off"] <= row["payload_off"] + row["payload_len"] <= len(frame)
        assert row == rows(decode(batch_of([(linktype, frame)])))[0]


LINK_PREFIXES = {
    1: [b"\x00" * 12 + t.to_bytes(2, "big") for t in (0x0800, 0x86DD, 0x8100, 0x88A8, 0x8847, 0x8864, 0x0806, 0x05DC)],
    113: [b"\x00\x00\x00\x01\x00\x06" + b"\x00" * 8 + t.to_bytes(2, "big") for t in (0x0800, 0x86DD, 0x8100)],
    276: [t.to_bytes(2, "big") + b"\x00" * 6 + b"\x00\x01\x00\x06" + b"\x00" * 8 for t in (0x0800, 0x86DD, 0x0806)],
    101: [b"\x45", b"\x46", b"\x4f", b"\x60"],
    228: [b"\x45", b"\x4f"],
    229: [b"\x60"],
}


@st.composite
def hostile_frames(draw: st.DrawFn) -> tuple[int, bytes]:
    """Random bytes, often behind a plausible link header so that the deeper layers get fuzzed too."""
    linktype = draw(st.sampled_from(sorted(LINK_PREFIXES)))
    prefix = draw(st.sampled_from([b"", *LINK_PREFIXES[linktype]]))
    return linktype, prefix + draw(st.binary(max_size=120))


@settings(max_examples=examples(30), **SETTINGS)
@given(st.lists(hostile_frames(), max_size=16))
def test_decode_never_raises_on_random_bytes(frames: list[tuple[int, bytes]]) -> None:
    _assert_well_formed(frames)


@settings(max_examples=examples(15), **SETTINGS)
@given(st.lists(st.tuples(st.sampled_from([1, 113, 276, 101]), st.binary(max_size=80)), max_size=12))
def test_decode_never_raises_on_raw_random_bytes(frames: list[tuple[int, bytes]]) -> None:
    _assert_well_formed(frames)


@settings(max_examples=examples(15), **SETTINGS)
@given(st.lists(stacks(), min_size=1, max_size=6), st.data())
def test_decode_keeps_good_rows_when_mixed_with_cut_ones(frames: list[tuple[int, bytes]], data: st.DataObject) -> None:
    mixed: list[tuple[int, bytes]] = []
    for linktype, frame in frames:
        cut = data.draw(st.integers(0, len(frame)))
        mixed += [(linktype, frame[:cut]), (linktype, frame)]
    got = rows(decode(batch_of(mixed)))
    for i, (linktype, frame) in enumerate(frames):
        assert got[2 * i + 1] == reference(linktype, frame)[0]


def test_reference_covers_padding_and_payload_offsets() -> None:
    # a guard on the reference itself: a padded tiny UDP packet
    frame = bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=9, dport=10) / Raw(b"ab"))
    frame += b"\x00" * (60 - len(frame))
    want, need = reference(1, frame)
    assert (want["payload_off"], want["payload_len"], need) == (42, 2, 38)
    assert isinstance(Ether(frame).lastlayer(), Padding)


@st.composite
def mutated_stacks(draw: st.DrawFn) -> tuple[int, bytes]:
    """A well-formed frame with a few bytes overwritten: hostile values deep inside valid headers."""
    linktype, frame = draw(stacks())
    data = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.sampled_from([0x00, 0x01, 0x06, 0x2C, 0x40, 0xFF]))
    return linktype, bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=examples(20), **SETTINGS)
@given(st.lists(mutated_stacks(), max_size=8))
def test_decode_never_raises_on_mutated_stacks(frames: list[tuple[int, bytes]]) -> None:
    _assert_well_formed(frames)


# --- the real corpus against tshark ---------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "pcaps" / "real"
CORPUS_FILES = [
    "zeek__q-in-q.pcap",
    "zeek__mixed-vlan-mpls.pcap",
    "zeek__ipv6-fragmented-dns.pcap",
    "zeek__linux_dlt_sll2.pcap",
    "zeek__linuxsll-arp.pcap",
    "ndpi__bjnp.pcap",
]
TSHARK_FIELDS = (
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "vlan.id",
)


def _tshark_rows(path: Path) -> list[dict[str, list[str]]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    cmd = [
        tshark,
        "-n",
        "-r",
        str(path),
        "-o",
        "ip.defragment:FALSE",
        "-o",
        "ipv6.defragment:FALSE",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120).stdout
    return [
        {f: v.split(",") if v else [] for f, v in zip(TSHARK_FIELDS, line.split("\t"), strict=True)}
        for line in out.splitlines()
    ]


def _text(version: int, hi: int, lo: int) -> str:
    return str(ipaddress.IPv4Address(lo) if version == 4 else ipaddress.IPv6Address((hi << 64) | lo))


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_decode_agrees_with_tshark_on_real_captures(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"shared corpus absent: {path}")
    with RawPcapReader(str(path)) as reader:
        linktype = reader.linktype
        frames = [bytes(data) for data, _ in reader]
    shark = _tshark_rows(path)
    assert len(shark) == len(frames)
    got = rows(decode(batch_from_frames(frames, linktype=linktype)))
    checked = 0
    for i, (row, ts) in enumerate(zip(got, shark, strict=True)):
        where = f"{name} frame {i + 1}"
        vids = [v for v in (row["vlan_outer"], row["vlan_inner"]) if v != NO_VLAN]
        assert vids == [int(v) for v in ts["vlan.id"][:2]], where
        if row["kind"] != KIND_IP:
            assert row["kind"] != KIND_SKIPPED, where
            assert not ts["ip.src"] and not ts["ipv6.src"], where
            continue
        v = row["ip_version"]
        src, dst = ("ip.src", "ip.dst") if v == 4 else ("ipv6.src", "ipv6.dst")
        assert _text(v, row["src_hi"], row["src_lo"]) == ts[src][0], where
        assert _text(v, row["dst_hi"], row["dst_lo"]) == ts[dst][0], where
        transport = {6: "tcp", 17: "udp"}.get(row["ip_proto"])
        if transport is not None:
            # later fragments: neither side has ports (IP reassembly is off in tshark)
            assert row["has_ports"] == bool(ts[f"{transport}.srcport"]), where
            if row["has_ports"]:
                assert row["sport"] == int(ts[f"{transport}.srcport"][0]), where
                assert row["dport"] == int(ts[f"{transport}.dstport"][0]), where
        checked += 1
    assert checked or name == "zeek__linuxsll-arp.pcap"


def _frame_for_every_skip_reason() -> dict[str, tuple[int, bytes]]:
    udp = IP() / UDP()
    nine_tags, nine_labels, nine_extensions = Ether(), Ether(), IPv6()
    for i in range(9):
        nine_tags = nine_tags / Dot1Q(vlan=i)
        nine_labels = nine_labels / MPLS(label=16 + i, s=int(i == 8))
        nine_extensions = nine_extensions / IPv6ExtHdrDestOpt()
    return {
        "unsupported-linktype": (147, bytes(Ether() / udp)),
        "truncated-link": (1, bytes(Ether())[:10]),
        "truncated-vlan": (1, bytes(Ether() / Dot1Q() / udp)[:16]),
        "vlan-too-deep": (1, bytes(nine_tags / udp)),
        "truncated-mpls": (1, bytes(Ether() / MPLS(s=1))),
        "mpls-too-deep": (1, bytes(nine_labels / udp)),
        "mpls-unknown-payload": (1, bytes(Ether() / MPLS(s=1) / Raw(b"\x00" * 30))),
        "truncated-pppoe": (1, bytes(Ether() / PPPoE() / PPP() / udp)[:18]),
        "truncated-ipv4": (101, bytes(udp)[:19]),
        "bad-ipv4-header-length": (101, b"\x44" + bytes(udp)[1:]),
        "bad-ipv4-total-length": (101, bytes(udp)[:2] + b"\x00\x10" + bytes(udp)[4:]),
        "bad-ip-version": (228, bytes(IPv6() / UDP())),
        "truncated-ipv6": (101, bytes(IPv6())[:39]),
        "truncated-ipv6-extension": (101, bytes(IPv6() / IPv6ExtHdrRouting() / UDP())[:45]),
        "ipv6-extensions-too-deep": (101, bytes(nine_extensions / UDP())),
        "truncated-transport": (101, bytes(udp)[:22]),
        "truncated-arp": (1, bytes(Ether() / ARP())[:30]),
    }


def test_decode_produces_every_skip_reason() -> None:
    cases = _frame_for_every_skip_reason()
    assert set(cases) == set(SKIP_REASONS[1:]), "a new skip reason needs a frame here"
    h = decode(batch_of(list(cases.values())))
    assert [SKIP_REASONS[code] for code in h.skip_reason.tolist()] == list(cases)
    assert h.skip_counts() == dict.fromkeys(cases, 1)
