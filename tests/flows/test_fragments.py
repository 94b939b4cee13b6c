"""IP fragments: later fragments take their first fragment's ports, so a datagram counts to one flow."""

from __future__ import annotations

import logging

import communityid  # type: ignore[import-untyped]  # no py.typed in 1.5
import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.decode.types import Headers
from auditor.flows.community_id import with_community_ids
from auditor.flows.fragments import FragmentTracker
from auditor.flows.table import FlowTable
from auditor.flows.types import FlowRecords

logging.getLogger("scapy").setLevel(logging.ERROR)

NS = 1_000_000_000
A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def _l2(pkt: Packet) -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / pkt


def udp_datagram(
    ip_id: int = 77, sport: int = 5000, dport: int = 514, src: str = A, dst: str = B, size: int = 3000
) -> list[Packet]:
    """A UDP datagram cut into 1000-byte fragments (4 for the default size)."""
    whole = IP(src=src, dst=dst, id=ip_id) / UDP(sport=sport, dport=dport) / (b"x" * size)
    return [_l2(f) for f in fragment(whole, fragsize=1000)]


def udp6_datagram(frag_id: int = 99, sport: int = 5000, dport: int = 514) -> list[Packet]:
    whole = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=frag_id) / UDP(sport=sport, dport=dport) / (b"y" * 3000)
    return [_l2(f) for f in fragment6(whole, 1280)]


def headers(pkts: list[Packet], ts: list[int] | None = None) -> Headers:
    return decode(batch_from_frames([bytes(p) for p in pkts], ts_ns=ts))


def resolve(tracker: FragmentTracker, pkts: list[Packet], ts: list[int] | None = None) -> list[tuple[int, int]]:
    h = headers(pkts, ts)
    sport, dport = tracker.resolve(h, np.arange(len(h), dtype=np.int64))
    return list(zip(sport.tolist(), dport.tolist(), strict=True))


def flows(pkts: list[Packet], sizes: list[int] | None = None) -> tuple[FlowTable, list[dict[str, object]]]:
    t = FlowTable()
    frames = [bytes(p) for p in pkts]
    out: list[FlowRecords] = []
    i = 0
    for n in sizes or [len(frames)]:
        _, ended = t.process(decode(batch_from_frames(frames[i : i + n], ts_ns=list(range(i, i + n)))))
        i += n
        if ended is not None:
            out.append(with_community_ids(ended))
    last = t.flush()
    if last is not None:
        out.append(with_community_ids(last))
    got = []
    for r in out:
        for k in range(len(r)):
            got.append(
                {
                    name: getattr(r, name)[k]
                    for name in (
                        "ip_proto",
                        "src_port",
                        "dst_port",
                        "src_packets",
                        "dst_packets",
                        "src_bytes",
                        "community_id",
                    )
                }
            )
    return t, got


# -- the tracker ----------------------------------------------------------------------------------


def test_decode_gives_later_fragments_no_ports() -> None:
    # what the tracker is for: only the first fragment carries the UDP header
    h = headers(udp_datagram())
    assert h.is_fragment.tolist() == [True] * 4
    assert h.has_ports.tolist() == [True, False, False, False]
    assert h.sport.tolist() == [5000, 0, 0, 0]


def test_resolve_gives_later_fragments_the_first_fragments_ports() -> None:
    t = FragmentTracker()
    assert resolve(t, udp_datagram()) == [(5000, 514)] * 4
    assert t.orphans == 0
    assert len(t) == 1


def test_resolve_handles_fragments_sent_last_first() -> None:
    t = FragmentTracker()
    assert resolve(t, udp_datagram()[::-1]) == [(5000, 514)] * 4
    assert t.orphans == 0


def test_resolve_remembers_ports_across_batches() -> None:
    t = FragmentTracker()
    frags = udp_datagram()
    assert resolve(t, frags[:1], [0]) == [(5000, 514)]
    assert resolve(t, frags[1:], [1, 2, 3]) == [(5000, 514)] * 3


def test_resolve_handles_ipv6_fragments() -> None:
    t = FragmentTracker()
    frags = udp6_datagram()
    assert len(frags) == 3
    assert resolve(t, frags) == [(5000, 514)] * 3


def test_resolve_keeps_datagrams_apart_by_id_addresses_and_protocol() -> None:
    t = FragmentTracker()
    d1 = udp_datagram(ip_id=1, sport=1111)
    d2 = udp_datagram(ip_id=2, sport=2222)
    d3 = udp_datagram(ip_id=1, sport=3333, src="10.0.0.3")  # same id, other source
    icmp = [_l2(f) for f in fragment(IP(src=A, dst=B, id=1) / ICMP(type=8) / (b"p" * 2000), fragsize=1000)]
    # interleaved, each datagram's first fragment last
    pkts = [d1[1], d2[1], d3[1], icmp[1], d1[2], d2[2], d3[2], d1[0], d2[0], d3[0], icmp[0]]
    assert resolve(t, pkts) == [
        (1111, 514),
        (2222, 514),
        (3333, 514),
        (8, 0),
        (1111, 514),
        (2222, 514),
        (3333, 514),
        (1111, 514),
        (2222, 514),
        (3333, 514),
        (8, 0),
    ]
    assert len(t) == 4


def test_resolve_counts_orphans_and_leaves_them_without_ports() -> None:
    t = FragmentTracker()
    assert resolve(t, udp_datagram()[1:]) == [(0, 0)] * 3
    assert t.orphans == 3
    assert len(t) == 0


def test_resolve_leaves_unfragmented_packets_and_headers_alone() -> None:
    t = FragmentTracker()
    pkts = [_l2(IP(src=A, dst=B) / UDP(sport=1, dport=2)), *udp_datagram()]
    h = headers(pkts)
    sport, _ = t.resolve(h, np.arange(len(h), dtype=np.int64))
    assert sport.tolist() == [1, 5000, 5000, 5000, 5000]
    assert h.sport.tolist() == [1, 5000, 0, 0, 0]  # resolve returns copies


def test_resolve_answers_only_the_rows_asked_for() -> None:
    t = FragmentTracker()
    h = headers(udp_datagram())
    sport, dport = t.resolve(h, np.array([0, 2], dtype=np.int64))
    assert (sport.tolist(), dport.tolist()) == ([5000, 5000], [514, 514])


def test_tracker_forgets_datagrams_after_timeout() -> None:
    t = FragmentTracker(timeout_ns=10 * NS)
    resolve(t, udp_datagram(ip_id=1)[:1], [0])
    resolve(t, udp_datagram(ip_id=2)[:1], [5 * NS])
    assert len(t) == 2
    resolve(t, udp_datagram(ip_id=3)[:1], [12 * NS])  # the first is now 12 s old
    assert len(t) == 2
    assert resolve(t, udp_datagram(ip_id=2)[1:2], [13 * NS]) == [(5000, 514)]


def test_tracker_is_bounded_by_max_datagrams_keeping_the_newest() -> None:
    t = FragmentTracker(max_datagrams=3)
    firsts = [udp_datagram(ip_id=i, sport=1000 + i)[0] for i in range(5)]
    resolve(t, firsts)
    assert len(t) == 3
    later = [udp_datagram(ip_id=i, sport=1000 + i)[1] for i in range(5)]
    assert resolve(t, later) == [(0, 0), (0, 0), (1002, 514), (1003, 514), (1004, 514)]
    assert t.orphans == 2


def test_late_fragment_after_timeout_is_an_orphan() -> None:
    t = FragmentTracker(timeout_ns=60 * NS)
    frags = udp_datagram()
    resolve(t, frags[:1], [0])
    assert resolve(t, frags[1:2], [600 * NS]) == [(0, 0)]
    assert t.orphans == 1


# -- through the flow table -------------------------------------------------------------------------


@pytest.mark.parametrize(("last_first", "sizes"), [(True, None), (True, [1, 4, 1]), (False, [2, 1, 1, 1, 1])])
def test_fragmented_datagram_counts_to_its_flow(last_first: bool, sizes: list[int] | None) -> None:
    frags = udp_datagram()
    reply = _l2(IP(src=B, dst=A) / UDP(sport=514, dport=5000) / b"ok")
    unfragmented = _l2(IP(src=A, dst=B) / UDP(sport=5000, dport=514) / b"small")
    # sent last-first, a datagram must sit in one batch; in order, it may span batches
    t, got = flows([unfragmented, *(frags[::-1] if last_first else frags), reply], sizes)
    assert len(got) == 1, got
    flow = got[0]
    assert (flow["src_port"], flow["dst_port"], flow["src_packets"], flow["dst_packets"]) == (5000, 514, 5, 1)
    assert flow["src_bytes"] == len(unfragmented) + sum(len(f) for f in frags)
    assert t.fragments.orphans == 0


def test_fragmented_ipv6_datagram_counts_to_its_flow() -> None:
    frags = udp6_datagram()
    reply = _l2(IPv6(src=B6, dst=A6) / UDP(sport=514, dport=5000) / b"ok")
    _, got = flows([*frags, reply])
    assert [(f["src_port"], f["src_packets"], f["dst_packets"]) for f in got] == [(5000, 3, 1)]


def test_fragmented_ping_counts_to_its_echo_flow() -> None:
    request = fragment(IP(src=A, dst=B, id=5) / ICMP(type=8, id=1) / (b"p" * 2500), fragsize=1000)
    reply = fragment(IP(src=B, dst=A, id=9) / ICMP(type=0, id=1) / (b"p" * 2500), fragsize=1000)
    _, got = flows([_l2(f) for f in [*request, *reply]])
    assert [(f["ip_proto"], f["src_packets"], f["dst_packets"]) for f in got] == [(1, 3, 3)]


def test_orphan_fragments_get_a_flow_without_ports() -> None:
    frags = udp_datagram()
    t, got = flows([frags[0], frags[1], udp_datagram(ip_id=8)[2]])
    assert t.fragments.orphans == 1
    by_port = {f["src_port"]: f for f in got}
    assert set(by_port) == {5000, 0}
    orphan = by_port[0]
    assert (orphan["dst_port"], orphan["src_packets"]) == (0, 1)
    reference = communityid.CommunityID().calc(communityid.FlowTuple.make_udp(A, B, 0, 0))
    assert orphan["community_id"] == reference
    assert by_port[5000]["src_packets"] == 2
