"""The payload hand-off: wants by ethertype, by protocol and port, and by flow head; handler crashes."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Padding, Raw

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import IPPROTO_TCP, IPPROTO_UDP
from auditor.flows.payloads import PayloadRegistry
from auditor.flows.table import FlowTable
from auditor.flows.types import FlowRecords, Payload

logging.getLogger("scapy").setLevel(logging.ERROR)

MAC_C, MAC_S = "02:00:00:00:00:0c", "02:00:00:00:00:05"
CLIENT, SERVER = "10.0.0.2", "192.0.2.53"


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def ip4(src: str = CLIENT, dst: str = SERVER) -> Packet:
    macs = (MAC_C, MAC_S) if src == CLIENT else (MAC_S, MAC_C)
    return Ether(src=macs[0], dst=macs[1]) / IP(src=src, dst=dst)


def query(data: bytes = b"query", sport: int = 33000) -> Packet:
    return ip4() / UDP(sport=sport, dport=53) / Raw(data)


def answer(data: bytes = b"answer", dport: int = 33000) -> Packet:
    return ip4(SERVER, CLIENT) / UDP(sport=53, dport=dport) / Raw(data)


def tcp(flags: str, data: bytes = b"", reply: bool = False, sport: int = 40000) -> Packet:
    pkt = (
        ip4(SERVER, CLIENT) / TCP(sport=80, dport=sport, flags=flags)
        if reply
        else ip4() / TCP(sport=sport, dport=80, flags=flags)
    )
    return pkt / Raw(data) if data else pkt


class Run:
    """Packets through decode, a FlowTable and a PayloadRegistry, batch by batch."""

    def __init__(self) -> None:
        self.registry = PayloadRegistry()
        self.got: dict[str, list[Payload]] = {}
        self.records: list[FlowRecords] = []
        self.handed: list[int] = []

    def want(self, name: str) -> Callable[[Payload], None]:
        self.got[name] = []
        return self.got[name].append

    def feed(self, pkts: list[Packet], sizes: list[int] | None = None) -> Run:
        frames = [bytes(p) for p in pkts]
        table = FlowTable()
        i = 0
        for n in sizes or [len(frames)]:
            h = decode(batch_from_frames(frames[i : i + n], ts_ns=[1000 + k for k in range(i, i + n)]))
            flows, ended = table.process(h)
            self.handed.append(self.registry.dispatch(h, flows))
            if ended is not None:
                self.records.append(ended)
            i += n
        last = table.flush()
        if last is not None:
            self.records.append(last)
        return self


def test_by_port_delivers_both_directions_with_packet_details() -> None:
    run = Run()
    run.registry.by_port("dns", IPPROTO_UDP, 53, run.want("dns"))
    run.feed([query(), answer(), ip4() / UDP(sport=33000, dport=5353) / b"mdns", ip4() / TCP(sport=1, dport=53) / b"t"])
    q, a = run.got["dns"]
    (records,) = run.records
    dns_flow = [
        int(i)
        for i, p, port in zip(records.flow_id, records.ip_proto, records.dst_port, strict=True)
        if (p, port) == (17, 53)
    ]
    assert q == Payload(
        flow_id=dns_flow[0],
        ts_ns=1000,
        ip_version=4,
        ip_proto=17,
        src_hi=0,
        src_lo=int(ipaddress.IPv4Address(CLIENT)),
        dst_hi=0,
        dst_lo=int(ipaddress.IPv4Address(SERVER)),
        sport=33000,
        dport=53,
        from_initiator=True,
        src_mac=_mac(MAC_C),
        dst_mac=_mac(MAC_S),
        vlan=None,
        ethertype=0x0800,
        data=b"query",
    )
    assert (a.flow_id, a.ts_ns, a.src_ip, a.dst_ip, a.sport, a.dport) == (q.flow_id, 1001, SERVER, CLIENT, 53, 33000)
    assert (a.from_initiator, a.src_mac, a.dst_mac, a.data) == (False, _mac(MAC_S), _mac(MAC_C), b"answer")
    assert run.registry.delivered == {"dns": 2}
    assert run.handed == [2]


def test_by_port_needs_payload() -> None:
    run = Run()
    run.registry.by_port("http", IPPROTO_TCP, 80, run.want("http"))
    run.feed([tcp("S"), tcp("SA", reply=True), tcp("A"), tcp("PA", b"GET /"), tcp("PA", b"200 OK", reply=True)])
    assert [(p.data, p.from_initiator) for p in run.got["http"]] == [(b"GET /", True), (b"200 OK", False)]


def test_payload_excludes_ethernet_padding_and_keeps_snapped_bytes() -> None:
    padded = query(b"hi") / Padding(b"\x00" * 16)  # a minimum-size Ethernet frame
    assert len(padded) == 60
    snapped = bytes(query(b"a long answer that the snap length cut"))[:50]
    run = Run()
    run.registry.by_port("dns", IPPROTO_UDP, 53, run.want("dns"))
    frames = [padded, Ether(snapped)]
    run.feed(frames)
    assert [p.data for p in run.got["dns"]] == [b"hi", b"a long a"]


def test_payload_of_ipv6_and_tagged_frames() -> None:
    v6 = (
        Ether(src=MAC_C, dst=MAC_S)
        / Dot1Q(vlan=42)
        / IPv6(src="2001:db8::1", dst="2001:db8:0:0:1::53")
        / UDP(sport=1000, dport=53)
        / b"six"
    )
    qinq = (
        Ether(src=MAC_C, dst=MAC_S)
        / Dot1Q(vlan=7)
        / Dot1Q(vlan=8)
        / IP(src=CLIENT, dst=SERVER)
        / UDP(sport=1000, dport=53)
        / b"qinq"
    )
    prio = Ether(src=MAC_C, dst=MAC_S) / Dot1Q(vlan=0) / IP(src=CLIENT, dst=SERVER) / UDP(sport=2, dport=53) / b"p"
    run = Run()
    run.registry.by_port("dns", IPPROTO_UDP, 53, run.want("dns"))
    run.feed([v6, qinq, prio])
    got = [(p.ip_version, p.src_ip, p.dst_ip, p.vlan, p.ethertype, p.data) for p in run.got["dns"]]
    assert got == [
        (6, "2001:db8::1", "2001:db8::1:0:0:53", 42, 0x86DD, b"six"),
        (4, CLIENT, SERVER, 7, 0x0800, b"qinq"),  # the outer VLAN
        (4, CLIENT, SERVER, 0, 0x0800, b"p"),
    ]
    assert len({p.flow_id for p in run.got["dns"]}) == 3


def test_by_ethertype_delivers_non_ip_frames_after_the_link_header() -> None:
    arp = ARP(op=1, hwsrc=MAC_C, psrc=CLIENT, pdst="10.0.0.1")
    lldp_body = b"\x02\x07\x04\x02\x00\x00\x00\x00\x01\x00\x00"
    frames = [
        Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / arp,
        Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=5) / arp,
        Ether(src=MAC_C, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(lldp_body),
        query(),
    ]
    run = Run()
    run.registry.by_ethertype("arp", 0x0806, run.want("arp"))
    run.registry.by_ethertype("lldp", 0x88CC, run.want("lldp"))
    run.registry.by_ethertype("ip", 0x0800, run.want("ip"))  # IP frames go to flows, never here
    run.feed(frames)
    first, tagged = run.got["arp"]
    assert first.data == bytes(arp)
    assert (first.flow_id, first.ip_version, first.src_ip, first.from_initiator, first.vlan) == (0, 0, "", True, None)
    assert (first.src_mac, first.dst_mac, first.ethertype, first.ts_ns) == (_mac(MAC_C), 0xFFFFFFFFFFFF, 0x0806, 1000)
    assert (tagged.vlan, tagged.data) == (5, bytes(arp))
    assert [p.data for p in run.got["lldp"]] == [lldp_body]
    assert run.got["ip"] == []
    assert run.handed == [3]


def test_by_ethertype_in_a_batch_without_ip() -> None:
    run = Run()
    run.registry.by_ethertype("arp", 0x0806, run.want("arp"))
    run.feed([Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT), query()], sizes=[1, 1])
    assert len(run.got["arp"]) == 1
    assert run.handed == [1, 0]


@pytest.mark.parametrize("sizes", [None, [1] * 9, [4, 5], [2, 2, 2, 3]])
def test_by_flow_head_delivers_the_first_payload_packets_of_each_flow(sizes: list[int] | None) -> None:
    pkts = [
        tcp("S"),
        tcp("SA", reply=True),
        tcp("PA", b"c1"),
        tcp("PA", b"other-1", sport=40001),
        tcp("PA", b"s1", reply=True),
        tcp("A"),
        tcp("PA", b"c2"),
        tcp("PA", b"other-2", sport=40001),
        query(),
    ]
    run = Run()
    run.registry.by_flow_head("tls", 2, run.want("tls"))
    run.registry.by_flow_head("udp", 1, run.want("udp"), proto=IPPROTO_UDP)
    run.feed(pkts, sizes)
    got = [(p.data, p.from_initiator) for p in run.got["tls"]]
    assert got == [(b"c1", True), (b"other-1", True), (b"s1", False), (b"other-2", True)]
    assert [p.data for p in run.got["udp"]] == [b"query"]
    assert sum(run.handed) == 5


def test_by_flow_head_needs_at_least_one_packet() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PayloadRegistry().by_flow_head("x", 0, lambda p: None)


def test_payload_flow_ids_and_orientation_match_the_flow_records() -> None:
    # the server's SYN-ACK is copied first: the client is still the initiator
    pkts = [
        tcp("SA", reply=True),
        tcp("S"),
        tcp("PA", b"hello"),
        tcp("PA", b"world", reply=True),
        answer(b"unsolicited"),
        query(),
    ]
    run = Run()
    run.registry.by_flow_head("tcp", 5, run.want("tcp"))
    run.registry.by_port("dns", IPPROTO_UDP, 53, run.want("dns"))
    run.feed(pkts, sizes=[3, 3])
    ids = {int(r.flow_id[i]): int(r.ip_proto[i]) for r in run.records for i in range(len(r))}
    assert [(ids[p.flow_id], p.from_initiator) for p in run.got["tcp"]] == [(6, True), (6, False)]
    # the DNS server spoke first, so it is this flow's initiator
    assert [(ids[p.flow_id], p.from_initiator) for p in run.got["dns"]] == [(17, True), (17, False)]


def test_handler_that_raises_is_counted_and_others_are_still_served(caplog: pytest.LogCaptureFixture) -> None:
    def broken(payload: Payload) -> None:
        raise RuntimeError("parser bug")

    run = Run()
    run.registry.by_port("before", IPPROTO_UDP, 53, run.want("before"))
    run.registry.by_port("broken", IPPROTO_UDP, 53, broken)
    run.registry.by_port("after", IPPROTO_UDP, 53, run.want("after"))
    with caplog.at_level(logging.ERROR, logger="auditor.flows.payloads"):
        run.feed([query(), answer(), query(b"again")], sizes=[2, 1])
    assert [p.data for p in run.got["before"]] == [b"query", b"answer", b"again"]
    assert [p.data for p in run.got["after"]] == [b"query", b"answer", b"again"]
    assert run.registry.crashed == {"broken": 3}
    assert run.registry.delivered == {"before": 3, "after": 3}
    assert run.handed == [4, 2]
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1  # logged once, then counted


def test_registry_says_whether_it_needs_the_payload_index() -> None:
    registry = PayloadRegistry()
    registry.by_port("dns", IPPROTO_UDP, 53, lambda p: None)
    registry.by_ethertype("arp", 0x0806, lambda p: None)
    assert not registry.needs_payload_index
    registry.by_flow_head("tls", 1, lambda p: None)
    assert registry.needs_payload_index


def test_dispatch_without_payload_index_serves_port_wants_and_refuses_flow_heads() -> None:
    h = decode(batch_from_frames([bytes(query()), bytes(answer())]))
    flows, _ = FlowTable().process(h, payload_index=False)
    assert flows.payload_index is None
    got: list[Payload] = []
    registry = PayloadRegistry()
    registry.by_port("dns", IPPROTO_UDP, 53, got.append)
    assert registry.dispatch(h, flows) == 2
    registry.by_flow_head("udp", 1, got.append, proto=IPPROTO_UDP)
    with pytest.raises(ValueError, match="payload_index=True"):
        registry.dispatch(h, flows)


def test_registry_without_wants_hands_nothing() -> None:
    run = Run()
    assert len(run.registry) == 0
    run.feed([query(), answer()])
    assert run.handed == [0]
    run.registry.by_port("a", IPPROTO_UDP, 53, lambda p: None)
    run.registry.by_ethertype("b", 0x0806, lambda p: None)
    assert len(run.registry) == 2


def test_payload_data_is_a_copy_of_the_batch_bytes() -> None:
    run = Run()
    run.registry.by_port("dns", IPPROTO_UDP, 53, run.want("dns"))
    h = decode(batch_from_frames([bytes(query(b"abc"))]))
    flows, _ = FlowTable().process(h)
    run.registry.dispatch(h, flows)
    h.batch.data[:] = np.uint8(0)
    assert run.got["dns"][0].data == b"abc"


def test_flow_head_first_bytes_hand_over_only_payloads_starting_with_them() -> None:
    run = Run()
    run.registry.by_flow_head("head", 4, run.want("head"), first_bytes=[0x16, ord("G")])
    run.feed([
        tcp("S"), tcp("SA", reply=True), tcp("A"),
        tcp("PA", b"\x16\x03\x01hello"), tcp("PA", b"\x17\x03\x03data", reply=True),
        tcp("PA", b"GET / HTTP/1.1\r\n\r\n", sport=40001),
        tcp("PA", b"HTTP/1.1 200 OK\r\n\r\n", reply=True, sport=40001),
    ])
    assert [p.data[:3] for p in run.got["head"]] == [b"\x16\x03\x01", b"GET"]


def test_by_port_to_port_only_hands_over_requests_not_answers() -> None:
    run = Run()
    run.registry.by_port("queries", IPPROTO_UDP, 53, run.want("queries"), to_port_only=True)
    run.registry.by_port("both", IPPROTO_UDP, 53, run.want("both"))
    run.feed([query(), answer()])
    assert [p.data for p in run.got["queries"]] == [b"query"]
    assert [p.data for p in run.got["both"]] == [b"query", b"answer"]
