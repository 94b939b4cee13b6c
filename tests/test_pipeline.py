"""The offline run: files read in order through one flow table, statistics, payload hand-off."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from auditor.config import Settings
from auditor.flows.payloads import PayloadRegistry
from auditor.flows.types import END_REASONS, FlowRecords, Payload
from auditor.pipeline import analyze_files

DEMO = Path(__file__).resolve().parents[1] / "pcaps" / "demo-site.pcap"


def _tcp(flags: str, t: float, from_client: bool = True) -> Packet:
    a, b = ("10.0.0.1", "10.0.0.2") if from_client else ("10.0.0.2", "10.0.0.1")
    sport, dport = (40000, 443) if from_client else (443, 40000)
    pkt = Ether() / IP(src=a, dst=b) / TCP(sport=sport, dport=dport, flags=flags)
    pkt.time = t
    return pkt


def _run(paths: list[Path], **kw: object) -> tuple[list[FlowRecords], object]:
    out: list[FlowRecords] = []
    stats = analyze_files(paths, Settings(), out.append, **kw)  # type: ignore[arg-type]
    return out, stats


@pytest.mark.parametrize("prefetch", [False, True])
def test_flow_spanning_two_rotated_files_stays_one_flow(tmp_path: Path, prefetch: bool) -> None:
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    wrpcap(str(first), [_tcp("S", 1000.0), _tcp("SA", 1000.1, False)])
    wrpcap(str(second), [_tcp("A", 1000.2), _tcp("FA", 1001.0), _tcp("FA", 1001.1, False)])
    flows, stats = _run([first, second], prefetch=prefetch)
    assert sum(len(f) for f in flows) == 1
    (rec,) = flows
    assert (int(rec.src_packets[0]), int(rec.dst_packets[0])) == (3, 2)
    assert END_REASONS[int(rec.end_reason[0])] == "end-of-capture"
    assert [f.frames for f in stats.files] == [2, 3]  # type: ignore[attr-defined]


def test_unreadable_file_is_recorded_and_the_next_one_still_runs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    flows, stats = _run([tmp_path / "missing.pcap", junk, DEMO])
    assert [f.error is not None for f in stats.files] == [True, True, False]  # type: ignore[attr-defined]
    assert len(stats.errors) == 2  # type: ignore[attr-defined]
    assert stats.frames == 217  # type: ignore[attr-defined]
    assert sum(len(f) for f in flows) == 29


def test_payload_hand_off_through_the_pipeline() -> None:
    registry = PayloadRegistry()
    dns: list[Payload] = []
    heads: list[Payload] = []
    arp: list[Payload] = []
    registry.by_port("dns", 17, 53, dns.append)
    registry.by_flow_head("tcp-head", 1, heads.append)
    registry.by_ethertype("arp", 0x0806, arp.append)
    _, stats = _run([DEMO], payloads=registry)
    # five DNS lookups (EZVIZ camera twice, Dahua NVR, PC, Hikvision Wi-Fi camera), each a query and an answer
    assert len(dns) == 10
    assert {p.sport if p.dport != 53 else p.dport for p in dns} == {53}
    assert sorted(p.from_initiator for p in dns) == [False] * 5 + [True] * 5
    # the first payload packet of each of the 9 TCP flows
    assert len(heads) == 9
    assert all(p.from_initiator for p in heads)
    assert any(p.data.startswith(b"OPTIONS rtsp://") for p in heads)
    assert len(arp) == 9
    assert stats.payloads == {"dns": 10, "tcp-head": 9, "arp": 9}  # type: ignore[attr-defined]


def test_summary_counts_add_up() -> None:
    flows, stats = _run([DEMO])
    summary = stats.to_dict()  # type: ignore[attr-defined]
    assert summary["packets"] == summary["ip_packets"] + summary["arp_frames"] + summary["other_l2_frames"]
    assert summary["flows"] == sum(len(f) for f in flows) == sum(summary["flows_by_end_reason"].values())
    assert summary["bytes"] == DEMO.stat().st_size - 24 - 16 * 217  # wire bytes = record payloads here
    assert summary["errors"] == [] and summary["warnings"] == []


def test_udp_payload_handed_off_only_for_the_wanted_port(tmp_path: Path) -> None:
    path = tmp_path / "u.pcap"
    pkts = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=port) / b"hello" for port in (1, 2)]
    wrpcap(str(path), pkts)
    registry = PayloadRegistry()
    got: list[Payload] = []
    registry.by_port("p2", 17, 2, got.append)
    _run([path], payloads=registry)
    assert [(p.dport, p.data) for p in got] == [(2, b"hello")]


def test_fingerprint_facts_come_only_from_local_senders_and_never_from_relayed_dhcp(tmp_path: Path) -> None:
    """A remote server's banner arrives with the router's MAC, and a DHCP relay forwards its clients'
    host names and vendor classes: neither may make the router 'a Hikvision' or 'an Axis'."""
    from scapy.layers.dhcp import BOOTP, DHCP

    from auditor.devices.evidence import EvidenceTable
    from auditor.devices.signatures import SignatureSet
    from auditor.flows.localnet import LocalNetworks
    from auditor.pipeline import fingerprint_payloads

    router, pc = "00:1b:54:00:00:01", "00:1b:21:00:00:02"
    head = b"HTTP/1.1 401 Unauthorized\r\nServer: App-webs/\r\nWWW-Authenticate: Digest realm=\"Hikvision\"\r\n\r\n"
    pkts = [
        Ether(src=pc, dst=router) / IP(src="192.168.1.10", dst="203.0.113.5") / TCP(sport=40000, dport=80, flags="S"),
        Ether(src=router, dst=pc) / IP(src="203.0.113.5", dst="192.168.1.10") / TCP(sport=80, dport=40000, flags="PA")
        / head,
        Ether(src=router, dst="00:00:5e:00:01:01") / IP(src="10.9.0.1", dst="10.0.0.53") / UDP(sport=67, dport=67)
        / BOOTP(op=1, giaddr="10.9.0.1", chaddr=bytes.fromhex("accc8e010203") + bytes(10))
        / DHCP(options=[("message-type", "request"), ("vendor_class_id", b"AXIS,Network Camera,M3045,9.80"), "end"]),
    ]
    for i, p in enumerate(pkts):
        p.time = 1_793_610_000 + i
    path = tmp_path / "router.pcap"
    wrpcap(str(path), pkts)
    table, rejected = EvidenceTable(SignatureSet([], [])), Counter()  # type: ignore[var-annotated]
    local = LocalNetworks(Settings().local_networks)
    analyze_files([path], Settings(), lambda records: None, payloads=fingerprint_payloads(table, rejected, local),
                  prefetch=False)
    assert table.get(int(router.replace(":", ""), 16)) is None
    assert table.records == {}  # the banner was never handed over (its sender is remote)...
    assert rejected == {"dhcp": 1}  # ...and the relayed request was parsed and set aside: it speaks for the client
