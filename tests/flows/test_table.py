"""The flow table: keys, counters, initiator, timeouts, capacity, Community ID, batch invariance, collisions."""

from __future__ import annotations

import ipaddress
import itertools
import logging
from dataclasses import dataclass, fields

import communityid  # type: ignore[import-untyped]  # no py.typed in 1.5
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

import auditor.flows.table as table_module
from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import NO_VLAN, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, Headers
from auditor.flows.community_id import with_community_ids
from auditor.flows.keys import hash_keys
from auditor.flows.localnet import LocalNetworks
from auditor.flows.table import BatchFlows, FlowOptions, FlowTable
from auditor.flows.types import DIRECTION_NAMES, END_REASONS, FlowRecords

logging.getLogger("scapy").setLevel(logging.ERROR)  # "MAC address to reach destination not found"

NS = 1_000_000_000
MAC_C = "02:00:00:00:00:0c"  # client
MAC_S = "02:00:00:00:00:05"  # server (or the router in front of it)
CLIENT, SERVER = "10.0.0.2", "93.184.216.34"


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Fed:
    """What feeding a packet list through decode and a FlowTable gave back."""

    table: FlowTable
    records: list[FlowRecords]
    """Every FlowRecords returned, by sweeps then by the final flush, in order."""
    batches: list[tuple[Headers, BatchFlows]]


def _eth(
    src: str = CLIENT, dst: str = SERVER, mac_src: str = MAC_C, mac_dst: str = MAC_S, proto: int | None = None
) -> Packet:
    ip = IP(src=src, dst=dst) if proto is None else IP(src=src, dst=dst, proto=proto)
    return Ether(src=mac_src, dst=mac_dst) / ip


def tcp(
    flags: str, src: str = CLIENT, dst: str = SERVER, sport: int = 40000, dport: int = 443, data: bytes = b""
) -> Packet:
    mac_src, mac_dst = (MAC_C, MAC_S) if src == CLIENT else (MAC_S, MAC_C)
    pkt = _eth(src, dst, mac_src, mac_dst) / TCP(sport=sport, dport=dport, flags=flags)
    return pkt / Raw(data) if data else pkt


def udp(src: str = CLIENT, dst: str = SERVER, sport: int = 5353, dport: int = 53, data: bytes = b"q") -> Packet:
    mac_src, mac_dst = (MAC_C, MAC_S) if src == CLIENT else (MAC_S, MAC_C)
    return _eth(src, dst, mac_src, mac_dst) / UDP(sport=sport, dport=dport) / Raw(data)


def seconds(*ts: float) -> list[int]:
    return [int(t * NS) for t in ts]


def feed(
    pkts: list[Packet] | list[bytes],
    ts: list[int] | None = None,
    sizes: list[int] | None = None,
    options: FlowOptions | None = None,
    wirelen: list[int] | None = None,
    flush: bool = True,
) -> Fed:
    """Decode `pkts` in batches of `sizes` frames (one batch by default) and run them through a table."""
    frames = [p if isinstance(p, bytes) else bytes(p) for p in pkts]
    ts = ts if ts is not None else list(range(len(frames)))
    sizes = sizes if sizes is not None else [len(frames)]
    assert sum(sizes) == len(frames)
    t = FlowTable(options)
    out = Fed(t, [], [])
    i = 0
    for n in sizes:
        h = decode(
            batch_from_frames(frames[i : i + n], ts_ns=ts[i : i + n], wirelen=wirelen[i : i + n] if wirelen else None)
        )
        bf, ended = t.process(h)
        out.batches.append((h, bf))
        if ended is not None:
            out.records.append(with_community_ids(ended))
        i += n
    if flush:
        ended = t.flush()
        if ended is not None:
            out.records.append(with_community_ids(ended))
    return out


_FIELDS = [f.name for f in fields(FlowRecords)]


def rows(records: list[FlowRecords], with_id: bool = False) -> list[dict[str, object]]:
    """One dict per flow, in output order; flow_id left out unless asked (it depends on batching)."""
    out = []
    for r in records:
        for i in range(len(r)):
            row = {}
            for name in _FIELDS:
                if name == "flow_id" and not with_id:
                    continue
                col = getattr(r, name)
                if col is None:  # names come later (names/), not from the flow table
                    continue
                row[name] = col[i] if isinstance(col, list) else col[i].item()
            out.append(row)
    return out


def canonical(records: list[FlowRecords]) -> list[tuple[object, ...]]:
    """All flows as sorted tuples without flow_id: equal for equal tables whatever the batching."""
    return sorted(tuple(r.values()) for r in rows(records))


def one_flow(fed: Fed) -> dict[str, object]:
    got = rows(fed.records, with_id=True)
    assert len(got) == 1, got
    return got[0]


def packet_partition(fed: Fed) -> list[tuple[int, ...]]:
    """The packets (by position in the fed list) of each flow: the grouping, free of flow ids."""
    groups: dict[int, list[int]] = {}
    base = 0
    for h, bf in fed.batches:
        for row, fid in zip(bf.rows.tolist(), bf.flow_id.tolist(), strict=True):
            groups.setdefault(fid, []).append(base + row)
        base += len(h)
    return sorted(tuple(g) for g in groups.values())


def per_packet(fed: Fed, name: str) -> list[object]:
    """A BatchFlows column over all batches, by fed packet position (None for non-IP frames)."""
    out: list[object] = []
    for h, bf in fed.batches:
        col: list[object] = [None] * len(h)
        for row, value in zip(bf.rows.tolist(), getattr(bf, name).tolist(), strict=True):
            col[row] = value
        out.extend(col)
    return out


def ip_int(text: str) -> int:
    return int(ipaddress.ip_address(text))


def mac_int(text: str) -> int:
    return int(text.replace(":", ""), 16)


# -- counters, flags, initiator ------------------------------------------------------------------


def test_process_counts_packets_and_wire_bytes_per_direction() -> None:
    pkts = [
        tcp("S"),
        tcp("SA", SERVER, CLIENT, 443, 40000),
        tcp("A"),
        tcp("PA", data=b"GET / HTTP/1.1\r\n\r\n"),
        tcp("PA", SERVER, CLIENT, 443, 40000, data=b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100),
    ]
    wirelen = [len(p) + 1000 * i for i, p in enumerate(pkts)]  # snapped capture: wire > caplen
    flow = one_flow(feed(pkts, seconds(1, 1.1, 1.2, 1.3, 1.4), wirelen=wirelen))
    assert flow["src_packets"] == 3
    assert flow["dst_packets"] == 2
    assert flow["src_bytes"] == wirelen[0] + wirelen[2] + wirelen[3]
    assert flow["dst_bytes"] == wirelen[1] + wirelen[4]
    assert flow["first_ns"] == 1 * NS
    assert flow["last_ns"] == int(1.4 * NS)
    assert flow["ip_version"] == 4
    assert flow["ip_proto"] == 6
    assert (flow["src_lo"], flow["dst_lo"]) == (ip_int(CLIENT), ip_int(SERVER))
    assert (flow["src_hi"], flow["dst_hi"]) == (0, 0)
    assert (flow["src_port"], flow["dst_port"]) == (40000, 443)
    assert (flow["src_mac"], flow["dst_mac"]) == (mac_int(MAC_C), mac_int(MAC_S))
    assert (flow["vlan_outer"], flow["vlan_inner"]) == (NO_VLAN, NO_VLAN)
    assert END_REASONS[flow["end_reason"]] == "end-of-capture"
    assert DIRECTION_NAMES[flow["direction"]] == "outbound"


def test_process_ors_tcp_flags_per_direction() -> None:
    pkts = [
        tcp("S"),
        tcp("SA", SERVER, CLIENT, 443, 40000),
        tcp("A"),
        tcp("PA", data=b"x"),
        tcp("FA", SERVER, CLIENT, 443, 40000),
    ]
    flow = one_flow(feed(pkts))
    assert flow["src_tcp_flags"] == TCP_SYN | TCP_ACK | TCP_PSH
    assert flow["dst_tcp_flags"] == TCP_SYN | TCP_ACK | TCP_FIN


def test_process_orients_flow_from_sender_of_first_pure_syn() -> None:
    # a SPAN port may copy the SYN-ACK before the SYN it answers
    pkts = [tcp("SA", SERVER, CLIENT, 443, 40000), tcp("S"), tcp("A")]
    fed = feed(pkts)
    flow = one_flow(fed)
    assert (flow["src_lo"], flow["src_port"], flow["src_packets"]) == (ip_int(CLIENT), 40000, 2)
    assert flow["src_mac"] == mac_int(MAC_C)
    assert flow["src_tcp_flags"] == TCP_SYN | TCP_ACK
    assert flow["dst_tcp_flags"] == TCP_SYN | TCP_ACK
    assert per_packet(fed, "from_initiator") == [False, True, True]


def test_process_orients_flow_from_first_sender_without_syn() -> None:
    # the server answers first (the capture started mid-conversation): it becomes the initiator
    pkts = [tcp("PA", SERVER, CLIENT, 443, 40000, data=b"x"), tcp("A"), udp(SERVER, CLIENT, 53, 5353), udp()]
    fed = feed(pkts)
    got = rows(fed.records)
    assert len(got) == 2
    assert all(f["src_lo"] == ip_int(SERVER) for f in got)
    assert DIRECTION_NAMES[got[0]["direction"]] == "inbound"
    assert per_packet(fed, "from_initiator") == [True, False, True, False]


def test_process_keeps_orientation_for_packets_of_a_later_batch() -> None:
    # same packets as above, but the SYN-ACK ends one batch and the SYN starts the next
    pkts = [tcp("SA", SERVER, CLIENT, 443, 40000), tcp("S"), tcp("A")]
    assert canonical(feed(pkts, sizes=[2, 1]).records) == canonical(feed(pkts).records)


def test_process_orients_flow_from_pure_syn_after_batch_boundary() -> None:
    pkts = [tcp("SA", SERVER, CLIENT, 443, 40000), tcp("S"), tcp("A")]
    split = feed(pkts, sizes=[1, 2])
    assert canonical(split.records) == canonical(feed(pkts).records)


def test_process_ignores_non_ip_frames() -> None:
    arp = Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst="10.0.0.1")
    fed = feed([arp, udp(), arp])
    assert one_flow(fed)["src_packets"] == 1
    _, bf = fed.batches[0]
    assert bf.rows.tolist() == [1]
    assert per_packet(fed, "flow_id")[0] is None


def test_process_accepts_a_batch_without_ip_frames() -> None:
    arp = Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst="10.0.0.1")
    fed = feed([arp, udp(), arp], sizes=[1, 1, 1])
    assert [bf.rows.tolist() for _, bf in fed.batches] == [[], [0], []]
    assert one_flow(fed)["src_packets"] == 1
    assert fed.table.flush() is None


# -- keys -------------------------------------------------------------------------------------------


def test_process_keys_flows_by_protocol_ports_and_addresses() -> None:
    pkts = [
        udp(),
        udp(SERVER, CLIENT, 53, 5353),  # the reply: same flow
        _eth() / TCP(sport=5353, dport=53),  # another protocol
        udp(sport=5354),  # another client port
        udp(dst="8.8.8.8"),  # another server
        _eth(proto=47) / Raw(b"gre"),  # no ports: addresses and protocol only
        _eth(SERVER, CLIENT, MAC_S, MAC_C, proto=47) / Raw(b"gre"),
    ]
    got = rows(feed(pkts).records)
    assert sorted((f["ip_proto"], f["src_port"], f["dst_port"], f["src_packets"], f["dst_packets"]) for f in got) == [
        (6, 5353, 53, 1, 0),
        (17, 5353, 53, 1, 0),
        (17, 5353, 53, 1, 1),
        (17, 5354, 53, 1, 0),
        (47, 0, 0, 1, 1),
    ]


def test_process_keys_flows_by_outer_and_inner_vlan() -> None:
    def tagged(*vlans: int, reply: bool = False) -> Packet:
        src, dst, ms, md = (SERVER, CLIENT, MAC_S, MAC_C) if reply else (CLIENT, SERVER, MAC_C, MAC_S)
        pkt: Packet = Ether(src=ms, dst=md)
        for v in vlans:
            pkt = pkt / Dot1Q(vlan=v)
        return pkt / IP(src=src, dst=dst) / UDP(sport=53 if reply else 5353, dport=5353 if reply else 53) / b"q"

    pkts = [
        tagged(10),
        tagged(10, reply=True),
        tagged(20),
        tagged(10, 7),
        tagged(10, 8),
        tagged(10, 7, reply=True),
        tagged(0),
        tagged(),
    ]
    got = rows(feed(pkts).records)
    assert sorted((f["vlan_outer"], f["vlan_inner"], f["src_packets"], f["dst_packets"]) for f in got) == [
        (0, NO_VLAN, 1, 0),  # VLAN 0 (priority tag) is not "untagged"
        (10, 7, 1, 1),
        (10, 8, 1, 0),
        (10, NO_VLAN, 1, 1),
        (20, NO_VLAN, 1, 0),
        (NO_VLAN, NO_VLAN, 1, 0),
    ]


def test_process_keys_ipv6_flows_and_orients_them() -> None:
    a, b = "2001:db8::2", "2001:db8:ffff::1"
    pkts = [
        Ether(src=MAC_S, dst=MAC_C) / IPv6(src=b, dst=a) / TCP(sport=443, dport=50000, flags="SA"),
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src=a, dst=b) / TCP(sport=50000, dport=443, flags="S"),
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src=a, dst=b) / TCP(sport=50000, dport=443, flags="A"),
        # same low 64 bits, other high 64 bits: another flow
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db9::2", dst=b) / TCP(sport=50000, dport=443, flags="S"),
    ]
    got = {(f["src_hi"] << 64 | f["src_lo"]): f for f in rows(feed(pkts).records)}
    assert set(got) == {ip_int(a), ip_int("2001:db9::2")}
    flow = got[ip_int(a)]
    assert (flow["ip_version"], flow["dst_hi"] << 64 | flow["dst_lo"]) == (6, ip_int(b))
    assert (flow["src_packets"], flow["dst_packets"], flow["src_port"]) == (2, 1, 50000)
    assert DIRECTION_NAMES[flow["direction"]] == "external"


def test_process_icmp_echo_request_and_reply_share_a_flow() -> None:
    pkts = [
        _eth() / ICMP(type=8, id=1, seq=1) / b"ping",
        _eth(SERVER, CLIENT, MAC_S, MAC_C) / ICMP(type=0, id=1, seq=1) / b"ping",
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest(),
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="fe80::2", dst="fe80::1") / ICMPv6EchoReply(),
        _eth(SERVER, CLIENT, MAC_S, MAC_C) / ICMP(type=3, code=3),  # one-way: a flow of its own
    ]
    got = rows(feed(pkts).records)
    assert sorted((f["ip_proto"], f["src_packets"], f["dst_packets"], f["src_port"], f["dst_port"]) for f in got) == [
        (1, 1, 0, 3, 3),
        (1, 1, 1, 8, 0),
        (58, 1, 1, 128, 129),
    ]


# -- Community ID and direction ---------------------------------------------------------------


def _reference_community_id(flow: dict[str, object]) -> str:
    v, proto = int(flow["ip_version"]), int(flow["ip_proto"])  # type: ignore[call-overload]
    size = 4 if v == 4 else 16

    def packed(hi: object, lo: object) -> bytes:
        return ((int(hi) << 64) | int(lo)).to_bytes(16, "big")[-size:]  # type: ignore[call-overload]

    s, d = packed(flow["src_hi"], flow["src_lo"]), packed(flow["dst_hi"], flow["dst_lo"])
    if proto in (6, 17, 132):
        t = communityid.FlowTuple(proto, s, d, int(flow["src_port"]), int(flow["dst_port"]))  # type: ignore[call-overload]
    else:
        t = communityid.FlowTuple(proto, s, d)
    return str(communityid.CommunityID().calc(t))


def test_flows_get_the_reference_community_id() -> None:
    pkts = [
        tcp("S"),
        tcp("SA", SERVER, CLIENT, 443, 40000),
        udp(SERVER, CLIENT, 53, 5353),  # the server speaks first: src/dst are reversed
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db8::9", dst="2001:db8::1") / UDP(sport=546, dport=547) / b"dhcp",
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db8::9", dst="2001:db8::1") / TCP(sport=1, dport=2, flags="S"),
        _eth(proto=47) / b"gre",
        Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db8::9", dst="2001:db8::1", nh=59),
    ]
    got = rows(feed(pkts).records)
    assert len(got) == 6
    for flow in got:
        assert flow["community_id"] == _reference_community_id(flow), flow


def test_flows_get_the_reference_community_id_for_icmp() -> None:
    request = _eth() / ICMP(type=8, id=7)
    reply = _eth(SERVER, CLIENT, MAC_S, MAC_C) / ICMP(type=0, id=7)
    v6 = Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db8::9", dst="2001:db8::1") / ICMPv6EchoRequest()
    got = {f["ip_proto"]: f for f in rows(feed([reply, request, v6]).records)}
    algo = communityid.CommunityID()
    c, s = ipaddress.ip_address(CLIENT).packed, ipaddress.ip_address(SERVER).packed
    assert got[1]["community_id"] == algo.calc(communityid.FlowTuple(1, c, s, 8, 0))
    assert got[1]["community_id"] == algo.calc(communityid.FlowTuple(1, s, c, 0, 0))
    v6_tuple = communityid.FlowTuple(
        58, ipaddress.ip_address("2001:db8::9").packed, ipaddress.ip_address("2001:db8::1").packed, 128, 0
    )
    assert got[58]["community_id"] == algo.calc(v6_tuple)


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ("10.0.0.2", "93.184.216.34", "outbound"),
        ("93.184.216.34", "10.0.0.2", "inbound"),
        ("10.0.0.2", "192.168.1.1", "internal"),
        ("93.184.216.34", "8.8.8.8", "external"),
    ],
)
def test_flows_get_direction_from_default_local_networks(src: str, dst: str, expected: str) -> None:
    assert DIRECTION_NAMES[one_flow(feed([udp(src, dst)]))["direction"]] == expected


def test_flows_get_direction_from_configured_local_networks() -> None:
    options = FlowOptions(local_networks=LocalNetworks(["93.184.216.0/24", "2001:db8::/32"]))
    v6 = Ether(src=MAC_C, dst=MAC_S) / IPv6(src="2001:db8::1", dst="2001:db9::1") / UDP()
    fed = feed([udp(CLIENT, SERVER), v6], options=options)
    got = {f["ip_version"]: DIRECTION_NAMES[f["direction"]] for f in rows(fed.records)}  # type: ignore[index]
    assert got == {4: "inbound", 6: "outbound"}


# -- timeouts, closing, capacity, flush ------------------------------------------------------------


def test_udp_flow_ends_after_idle_timeout() -> None:
    # each packet in its own batch; the sweep after the one at 245 s ends the flow idle since 119 s
    pkts = [udp(), udp(), udp(dport=54), udp(dport=55), udp()]
    fed = feed(pkts, seconds(0, 119, 200, 245, 360), sizes=[1, 1, 1, 1, 1])
    got = sorted(rows(fed.records), key=lambda f: f["first_ns"])  # type: ignore[arg-type, return-value]
    assert [
        (f["dst_port"], f["first_ns"], f["last_ns"], END_REASONS[f["end_reason"]])  # type: ignore[index]
        for f in got
    ] == [
        (53, 0, 119 * NS, "idle-timeout"),
        (54, 200 * NS, 200 * NS, "idle-timeout"),
        (55, 245 * NS, 245 * NS, "end-of-capture"),
        (53, 360 * NS, 360 * NS, "end-of-capture"),
    ]


def test_udp_flow_does_not_end_within_idle_timeout() -> None:
    fed = feed([udp(), udp(dport=54), udp()], seconds(0, 119, 119.9), sizes=[1, 1, 1], flush=False)
    assert fed.records == []
    assert fed.table.active == 2


def test_packet_after_idle_timeout_starts_a_new_flow() -> None:
    fed = feed([udp(), udp()], seconds(0, 500), sizes=[1, 1])
    assert [f["src_packets"] for f in rows(fed.records)] == [1, 1]


def test_tcp_flow_uses_tcp_idle_timeout() -> None:
    pkts = [tcp("A"), tcp("A"), udp(), tcp("A")]
    fed = feed(pkts, seconds(0, 3000, 6601, 6602), sizes=[1, 1, 1, 1])
    got = sorted(rows(fed.records), key=lambda f: f["first_ns"])  # type: ignore[arg-type, return-value]
    assert [(f["ip_proto"], f["src_packets"], END_REASONS[f["end_reason"]]) for f in got] == [  # type: ignore[index]
        (6, 2, "idle-timeout"),
        (17, 1, "end-of-capture"),
        (6, 1, "end-of-capture"),
    ]


def test_idle_timeouts_are_configurable() -> None:
    options = FlowOptions(udp_idle_timeout_s=10, tcp_idle_timeout_s=20)
    # the packets to ports 99 and 98 run the sweeps (at 11 s and 32 s) that end the idle flows
    pkts = [udp(), tcp("A"), udp(dport=99), udp(), tcp("A"), udp(dport=98), udp(), tcp("A")]
    fed = feed(pkts, seconds(0, 0, 11, 11.5, 11.5, 32, 32.5, 32.5), sizes=[2, 1, 2, 1, 2], options=options)
    counts = sorted((f["ip_proto"], f["dst_port"], f["first_ns"] / NS) for f in rows(fed.records))  # type: ignore[operator]
    assert counts == [
        (6, 443, 0),
        (6, 443, 32.5),
        (17, 53, 0),
        (17, 53, 11.5),
        (17, 53, 32.5),
        (17, 98, 32),
        (17, 99, 11),
    ]


def test_idle_flows_are_looked_for_every_sweep_interval() -> None:
    options = FlowOptions(udp_idle_timeout_s=10, sweep_interval_s=30)
    pkts = [udp(), udp(dport=54), udp(dport=55), udp(dport=56)]
    # t=0: first sweep; t=20: flow 53 is idle, but no sweep is due; t=31: the sweep ends 53 and 54
    fed = feed(pkts, seconds(0, 5, 25, 31), sizes=[1, 1, 1, 1], options=options, flush=False)
    assert [len(r) for r in fed.records] == [2]
    assert sorted(f["dst_port"] for f in rows(fed.records)) == [53, 54]
    assert fed.table.active == 2


def test_tcp_flow_ends_after_fin_both_ways_and_linger() -> None:
    pkts = [tcp("FA"), tcp("FA", SERVER, CLIENT, 443, 40000), tcp("A"), udp(), udp()]
    # the last ACK is 4 s after the FINs (within the 5 s linger): it still counts
    fed = feed(pkts, seconds(0, 0.1, 4, 8, 9.5), sizes=[1, 1, 1, 1, 1], flush=False)
    got = rows(fed.records)
    assert [(f["ip_proto"], f["src_packets"], END_REASONS[f["end_reason"]]) for f in got] == [(6, 2, "tcp-close")]
    assert got[0]["last_ns"] == 4 * NS
    assert fed.table.active == 1


def test_tcp_flow_with_fin_one_way_stays_open() -> None:
    pkts = [tcp("FA"), tcp("A", SERVER, CLIENT, 443, 40000), udp()]
    fed = feed(pkts, seconds(0, 0.1, 100), sizes=[1, 1, 1], flush=False)
    assert fed.records == []
    assert fed.table.active == 2


@pytest.mark.parametrize("sender", ["client", "server"])
def test_tcp_flow_ends_after_rst_either_way(sender: str) -> None:
    rst = tcp("R") if sender == "client" else tcp("R", SERVER, CLIENT, 443, 40000)
    pkts = [tcp("S"), rst, udp()]
    fed = feed(pkts, seconds(0, 1, 7), sizes=[1, 1, 1], flush=False)
    got = rows(fed.records)
    assert [(f["src_lo"], END_REASONS[f["end_reason"]]) for f in got] == [(ip_int(CLIENT), "tcp-close")]  # type: ignore[index]
    assert (got[0]["src_tcp_flags"] | got[0]["dst_tcp_flags"]) & TCP_RST  # type: ignore[operator]


def test_udp_fin_flags_do_not_close() -> None:
    # closing is for TCP; a UDP flow never reads flags (they are 0), whatever its packets carry
    fed = feed([udp(data=b"\x01"), udp(), udp(dport=54)], seconds(0, 1, 100), sizes=[1, 1, 1], flush=False)
    assert fed.records == []


def test_flush_ends_every_flow_as_end_of_capture_and_empties_table() -> None:
    fed = feed([udp(), tcp("S"), udp(dport=54)], flush=False)
    assert fed.table.active == 3
    ended = fed.table.flush()
    assert ended is not None
    assert [END_REASONS[c] for c in ended.end_reason.tolist()] == ["end-of-capture"] * 3
    assert fed.table.active == 0
    assert fed.table.flush() is None


def test_flush_in_parts_ends_each_flow_once_and_the_same_flows_as_one_flush() -> None:
    pkts = [udp(sport=1000 + i) for i in range(7)]
    whole = feed(pkts, flush=False).table.flush()
    fed = feed(pkts, flush=False)
    parts = []
    while (part := fed.table.flush(max_flows=3)) is not None:
        parts.append(part)
    assert [len(p) for p in parts] == [3, 3, 1]
    assert fed.table.active == 0
    assert whole is not None
    got = sorted(f for p in parts for f in p.flow_id.tolist())
    assert got == sorted(whole.flow_id.tolist())
    assert len(set(got)) == 7


def test_flow_after_flush_is_a_new_flow_with_a_new_id() -> None:
    t = FlowTable()
    first, _ = t.process(decode(batch_from_frames([bytes(udp())], ts_ns=[0])))
    ended = t.flush()
    again, _ = t.process(decode(batch_from_frames([bytes(udp())], ts_ns=[NS])))
    assert ended is not None
    assert ended.flow_id.tolist() == first.flow_id.tolist()
    assert again.flow_id.tolist() != first.flow_id.tolist()
    assert t.flows_started == 2


def test_flow_ids_are_unique_across_sweeps_and_reuse_of_slots() -> None:
    options = FlowOptions(udp_idle_timeout_s=1)
    # 4 rounds of the same 7 flows, 5 s apart; a packet of another flow opens each round's batch
    # and triggers the sweep that ends the previous round's flows
    pkts = [p for r in range(4) for p in [udp(dport=90 + r), *(udp(sport=1000 + i) for i in range(7))]]
    ts = seconds(*[r * 5 + i * 0.01 for r in range(4) for i in range(8)])
    fed = feed(pkts, ts, sizes=[1, 7] * 4, options=options)
    ids = [f["flow_id"] for f in rows(fed.records, with_id=True)]
    assert len(ids) == len(set(ids)) == 4 * 8
    assert max(ids) == 4 * 8  # type: ignore[type-var]


def test_capacity_ends_least_recently_seen_flows() -> None:
    options = FlowOptions(max_flows=10)
    pkts = [udp(sport=1000 + i) for i in range(12)]
    # flow 1000 is seen again last: it is the most recent, not the oldest
    pkts.append(udp(sport=1000))
    fed = feed(pkts, list(range(13)), options=options, flush=False)  # within one sweep interval
    got = rows(fed.records)
    assert all(END_REASONS[f["end_reason"]] == "capacity" for f in got)  # type: ignore[index]
    assert sorted(f["src_port"] for f in got) == [1001, 1002, 1003]  # 12 flows, down to 90 % of 10
    assert fed.table.active == 9


def _synthetic_udp_frames(flow_numbers: NDArray[np.int64]) -> list[bytes]:
    """One UDP frame per entry; flow n is 10.x.y.z:(1024 + n % 50000) -> 192.0.2.1:53."""
    template = np.frombuffer(bytes(udp(CLIENT, "192.0.2.1", 0, 53, b"q")), dtype=np.uint8)
    frames = np.tile(template, (flow_numbers.size, 1))
    src = (0x0A000000 + flow_numbers).astype(">u4").view(np.uint8).reshape(-1, 4)
    frames[:, 26:30] = src
    frames[:, 34:36] = (1024 + flow_numbers % 50000).astype(">u2").view(np.uint8).reshape(-1, 2)
    return [f.tobytes() for f in frames]


def test_memory_is_bounded_by_max_flows() -> None:
    n_flows, per_batch, max_flows = 50_000, 2_500, 1_000
    rng = np.random.default_rng(7)
    packets_of = rng.integers(1, 4, n_flows)  # 1 to 3 packets per flow
    t = FlowTable(FlowOptions(max_flows=max_flows))
    ended: list[FlowRecords] = []
    clock = 0
    for start in range(0, n_flows, per_batch):
        numbers = np.repeat(np.arange(start, start + per_batch), packets_of[start : start + per_batch])
        rng.shuffle(numbers)  # each flow's packets spread over its batch
        ts = list(range(clock, clock + numbers.size))
        clock += numbers.size
        _, out = t.process(decode(batch_from_frames(_synthetic_udp_frames(numbers), ts_ns=ts)))
        assert t.active <= max_flows
        if out is not None:
            ended.append(out)
    # memory: the slot columns grow to the largest table seen (limit + one batch), not to all flows
    assert t._cap <= 2 * (max_flows + per_batch)
    last = t.flush()
    assert last is not None
    ended.append(last)
    src = np.concatenate([r.src_lo for r in ended]).astype(np.int64) - 0x0A000000
    packets = np.concatenate([r.src_packets for r in ended])
    reasons = np.concatenate([r.end_reason for r in ended])
    assert src.size == n_flows
    assert np.array_equal(np.sort(src), np.arange(n_flows))
    assert np.array_equal(packets, packets_of[src])
    assert set(reasons.tolist()) == {END_REASONS.index("capacity"), END_REASONS.index("end-of-capture")}
    assert len(np.unique(np.concatenate([r.flow_id for r in ended]))) == n_flows


# -- payload_index and per-packet answers ---------------------------------------------------------


def test_payload_index_numbers_payload_packets_of_each_flow_across_batches() -> None:
    pkts = [
        tcp("S"),
        tcp("SA", SERVER, CLIENT, 443, 40000),
        tcp("A"),
        tcp("PA", data=b"1"),
        udp(data=b"u"),
        tcp("PA", SERVER, CLIENT, 443, 40000, data=b"2"),
        tcp("A"),
        udp(data=b"v"),
        tcp("PA", data=b"3"),
        tcp("FA"),
    ]
    for sizes in ([10], [1] * 10, [4, 3, 3], [5, 5]):
        fed = feed(pkts, sizes=sizes)
        assert per_packet(fed, "payload_index") == [-1, -1, -1, 0, 0, 1, -1, 1, 2, -1], sizes


def test_payload_index_follows_capture_order_in_a_large_batch() -> None:
    # enough rows that the table's (unstable) sort really reorders each flow's packets
    rng = np.random.default_rng(5)
    ports = rng.integers(0, 5, 400).tolist()
    carries = rng.integers(0, 2, 400).astype(bool).tolist()
    pkts = [udp(sport=1000 + p, data=b"x" if c else b"") for p, c in zip(ports, carries, strict=True)]
    fed = feed(pkts)
    seen = dict.fromkeys(range(5), 0)
    want = []
    for p, c in zip(ports, carries, strict=True):
        want.append(seen[p] if c else -1)
        seen[p] += c
    assert per_packet(fed, "payload_index") == want
    assert feed(pkts, sizes=[123, 1, 276]).batches[2][1].payload_index.tolist() == want[124:]  # type: ignore[union-attr]


def test_initiator_and_macs_come_from_the_earliest_packets_in_a_large_batch() -> None:
    pkts = []
    for i in range(300):
        mac = f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        if i % 3 == 0:
            pkt = Ether(src=mac, dst=MAC_C) / IP(src=SERVER, dst=CLIENT) / TCP(sport=443, dport=40000, flags="A")
        else:
            flags = "S" if i == 100 else "A"
            pkt = Ether(src=mac, dst=MAC_S) / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=443, flags=flags)
        pkts.append(pkt)
    flow = one_flow(feed(pkts))
    assert flow["src_lo"] == ip_int(CLIENT)  # the pure SYN at row 100, though the server sent row 0
    assert flow["src_mac"] == mac_int("02:00:00:00:00:01")  # the client's earliest frame: row 1
    assert flow["dst_mac"] == mac_int("02:00:00:00:00:00")  # the server's earliest frame: row 0
    assert (flow["src_packets"], flow["dst_packets"]) == (200, 100)


def test_process_can_skip_the_payload_index() -> None:
    h = decode(batch_from_frames([bytes(udp()), bytes(udp(SERVER, CLIENT, 53, 5353))]))
    flows, _ = FlowTable().process(h, payload_index=False)
    assert flows.payload_index is None
    assert flows.from_initiator.tolist() == [True, False]


def test_payload_index_restarts_for_a_new_flow_of_the_same_key() -> None:
    fed = feed([udp(), udp(), udp(dport=99), udp()], seconds(0, 1, 499, 500), sizes=[1, 1, 1, 1])
    assert per_packet(fed, "payload_index") == [0, 1, 0, 0]
    ids = per_packet(fed, "flow_id")
    assert ids[0] == ids[1] != ids[3]


def test_batch_flow_ids_match_the_records() -> None:
    pkts = [udp(), tcp("S"), udp(SERVER, CLIENT, 53, 5353), tcp("SA", SERVER, CLIENT, 443, 40000)]
    fed = feed(pkts, sizes=[2, 2])
    by_id = {f["flow_id"]: f for f in rows(fed.records, with_id=True)}
    ids = per_packet(fed, "flow_id")
    assert by_id[ids[0]]["ip_proto"] == 17
    assert by_id[ids[1]]["ip_proto"] == 6
    assert ids[0] == ids[2] and ids[1] == ids[3]
    assert per_packet(fed, "from_initiator") == [True, True, False, False]


# -- the same packets in any batching give the same flows ------------------------------------------

_HOSTS = ["10.0.0.1", "10.0.0.2", "192.0.2.7"]
_HOSTS6 = ["2001:db8::1", "2001:db8::2"]


@st.composite
def traffic(draw: st.DrawFn) -> tuple[list[bytes], list[int]]:
    """A few seconds of mixed traffic between few endpoints, so that packets share flows."""
    n = draw(st.integers(1, 40))
    frames: list[bytes] = []
    opened: set[tuple[object, ...]] = set()
    for _ in range(n):
        v6 = draw(st.booleans())
        src, dst = draw(st.sampled_from(_HOSTS6 if v6 else _HOSTS)), draw(st.sampled_from(_HOSTS6 if v6 else _HOSTS))
        proto = draw(st.sampled_from(["tcp", "udp", "icmp", "gre"]))
        sport, dport = draw(st.sampled_from([53, 443, 40000])), draw(st.sampled_from([53, 443]))
        vlan = draw(st.sampled_from([None, 10, 11]))
        data = draw(st.sampled_from([b"", b"x", b"hello"]))
        pkt: Packet = Ether(src=draw(st.sampled_from([MAC_C, MAC_S])), dst=MAC_S)
        if vlan is not None:
            pkt = pkt / Dot1Q(vlan=vlan)
        nh = {"tcp": 6, "udp": 17, "icmp": 58 if v6 else 1, "gre": 47}[proto]
        pkt = pkt / (IPv6(src=src, dst=dst, nh=nh) if v6 else IP(src=src, dst=dst, proto=nh))
        key = (v6, proto, frozenset([(src, sport), (dst, dport)]), vlan)
        if proto == "tcp":
            flags = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R"]))
            # a pure SYN only opens a flow: a SYN seen after other packets of its flow re-orients it,
            # and packets handed out before it keep the orientation they had (batch-dependent)
            if flags == "S" and key in opened:
                flags = "A"
            pkt = pkt / TCP(sport=sport, dport=dport, flags=flags)
        elif proto == "udp":
            pkt = pkt / UDP(sport=sport, dport=dport)
        elif proto == "icmp":
            icmp_type = draw(st.sampled_from([0, 8, 3]))
            pkt = pkt / (
                ICMPv6EchoRequest() if v6 and icmp_type == 8 else ICMPv6EchoReply() if v6 else ICMP(type=icmp_type)
            )
        opened.add(key)
        frames.append(bytes(pkt / Raw(data)) if data else bytes(pkt))
    gaps = draw(st.lists(st.integers(0, NS // 2), min_size=n, max_size=n))
    # under 5 s in all: the TCP linger and the idle timeouts cannot end a flow mid-list
    ts = np.minimum(np.cumsum(gaps), 4 * NS).tolist()
    return frames, ts


def _batch_sizes(n: int, cuts: list[int]) -> list[int]:
    edges = sorted({0, n, *(c % (n + 1) for c in cuts)})
    return [b - a for a, b in itertools.pairwise(edges)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic(), st.lists(st.integers(0, 40), max_size=8))
def test_batching_does_not_change_flows(case: tuple[list[bytes], list[int]], cuts: list[int]) -> None:
    frames, ts = case
    whole = feed(frames, ts)
    split = feed(frames, ts, sizes=_batch_sizes(len(frames), cuts))
    assert canonical(split.records) == canonical(whole.records)
    assert packet_partition(split) == packet_partition(whole)
    for name in ("from_initiator", "payload_index"):
        assert per_packet(split, name) == per_packet(whole, name)


def test_idle_gap_inside_one_batch_ends_the_flow() -> None:
    # split after the second packet, the sweep at 300 s ends flow 53 before its packet at 600 s
    pkts = [udp(), udp(dport=54), udp()]
    ts = seconds(0, 300, 600)
    assert canonical(feed(pkts, ts).records) == canonical(feed(pkts, ts, sizes=[2, 1]).records)


def test_port_reuse_long_after_close_is_a_new_flow() -> None:
    pkts = [tcp("S"), tcp("R", SERVER, CLIENT, 443, 40000), tcp("S"), tcp("SA", SERVER, CLIENT, 443, 40000)]
    ts = seconds(0, 0.1, 60, 60.1)
    assert len(rows(feed(pkts, ts).records)) == 2
    assert len(rows(feed(pkts, ts, sizes=[1, 1, 1, 1]).records)) == 2


# -- hash collisions -------------------------------------------------------------------------------


def _zero_hash(*cols: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Every key hashes to 0: the table must still keep every flow apart by its full key."""
    return np.zeros(cols[0].shape, dtype=np.uint64)


def _some_collide_hash(*cols: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Keys with an even port_b (w1 bits 32-47) collide on one value; the others hash for real."""
    out = hash_keys(*cols)
    out[((cols[4] >> np.uint64(32)) & np.uint64(1)) == 0] = 12345
    return out


def _collision_traffic() -> tuple[list[Packet], list[int]]:
    """15 UDP flows (5 clients x 3 ports), 2 packets each one after the other, plus replies."""
    pkts = []
    for i in range(30):
        client = f"10.0.0.{i % 5 + 1}"
        pkts.append(udp(client, SERVER, 1000 + i % 3, 53 + i % 2))
        if i % 4 == 0:
            pkts.append(udp(SERVER, client, 53 + i % 2, 1000 + i % 3))
    return pkts, list(range(len(pkts)))


def test_collision_traffic_has_no_real_collisions() -> None:
    pkts, ts = _collision_traffic()
    fed = feed(pkts, ts)
    assert fed.table.collisions == 0
    assert len(rows(fed.records)) == 30


@pytest.mark.parametrize("bad_hash", [_zero_hash, _some_collide_hash])
@pytest.mark.parametrize("sizes", [None, [1] * 38])
def test_colliding_hash_never_merges_flows(
    monkeypatch: pytest.MonkeyPatch, bad_hash: object, sizes: list[int] | None
) -> None:
    pkts, ts = _collision_traffic()
    expected = feed(pkts, ts, sizes=sizes)
    monkeypatch.setattr(table_module, "hash_keys", bad_hash)
    got = feed(pkts, ts, sizes=sizes)
    assert got.table.collisions > 0
    assert canonical(got.records) == canonical(expected.records)
    assert packet_partition(got) == packet_partition(expected)
    assert per_packet(got, "payload_index") == per_packet(expected, "payload_index")


@pytest.mark.parametrize("bad_hash", [_zero_hash, _some_collide_hash])
def test_colliding_hash_across_batches_never_splits_flows(monkeypatch: pytest.MonkeyPatch, bad_hash: object) -> None:
    # A is stored under the bad hash; the next batch's group of that hash starts with B, not A
    a, b = udp(dport=54), udp(sport=5000, dport=56)
    pkts, ts, sizes = [a, b, a, b], [0, 1, 2, 3], [1, 3]
    expected = feed(pkts, ts, sizes=sizes)
    monkeypatch.setattr(table_module, "hash_keys", bad_hash)
    got = feed(pkts, ts, sizes=sizes)
    assert canonical(got.records) == canonical(expected.records)


def test_colliding_hash_after_eviction_never_splits_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    # A (UDP, dport 54: even) and B (TCP, port 54) collide; A times out, then B goes on
    a, b = udp(dport=54), tcp("A", dport=54)
    pkts, ts = [a, b, udp(dport=1), b], seconds(0, 1, 200, 300)
    expected = feed(pkts, ts, sizes=[1, 1, 1, 1])
    monkeypatch.setattr(table_module, "hash_keys", _some_collide_hash)
    got = feed(pkts, ts, sizes=[1, 1, 1, 1])
    assert canonical(got.records) == canonical(expected.records)


# IPv6 keys that collided under the first, linear hash (a_lo*C1 ^ b_lo*C3 equal): regression tests.
def _colliding_ipv6_flows(n: int) -> list[Packet]:
    from auditor.flows.keys import _C

    m = (1 << 64) - 1
    c1, c3 = int(_C[1]), int(_C[3])
    inv_c3 = pow(c3, -1, 1 << 64)
    target = (1 * c1) ^ (2 * c3)
    pkts = []
    for a_lo in range(1, n + 1):
        b_lo = (((target ^ (a_lo * c1 & m)) & m) * inv_c3) & m
        src = str(ipaddress.IPv6Address((0x20010DB8 << 96) | a_lo))
        dst = str(ipaddress.IPv6Address((0x20010DB9 << 96) | b_lo))
        pkts.append(Ether(src=MAC_C, dst=MAC_S) / IPv6(src=src, dst=dst) / UDP(sport=5000, dport=53) / b"q")
    return pkts


def test_real_hash_collision_in_one_batch_keeps_flows_apart() -> None:
    pkts = _colliding_ipv6_flows(2)
    got = rows(feed(pkts + pkts).records)
    assert sorted(f["src_packets"] for f in got) == [2, 2]


def test_seventeen_crafted_colliding_flows_do_not_stop_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    got = rows(feed(_colliding_ipv6_flows(17)).records)
    assert len(got) == 17
