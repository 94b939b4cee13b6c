"""The names stage end to end: small captures written here, run through analyze_files as `auditor analyze` runs
them (EvidenceTable + fingerprint_payloads + NameStage), each flow's domain / name_source / dns_name checked.

Every capture uses the default local networks (192.168.0.0/16 and fd00::/8 are local) and fixed timestamps.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import PcapWriter
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import Settings
from auditor.devices.evidence import EvidenceTable
from auditor.devices.signatures import SignatureSet
from auditor.flows.community_id import with_community_ids
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import FlowRecords
from auditor.names.stage import NameStage
from auditor.names.types import NAME_SOURCES
from auditor.output.ecs import flow_documents, flow_json_lines
from auditor.pipeline import RunStats, analyze_files, fingerprint_payloads
from tests.protocols.test_quic import PQ_FIRST, PQ_SECOND, RFC_V1_INITIAL, RFC_V2_INITIAL
from tests.protocols.test_tls import client_hello, sni

T0 = 1_700_000_000.0
"""Capture start (seconds); every packet's time is T0 + an offset."""

CLIENT, OTHER, ROUTER = "192.168.1.10", "192.168.1.11", "192.168.1.1"
RESOLVER = "9.9.9.9"
"""A remote resolver: DNS answers are read from any sender."""
SERVER, SERVER2, SERVER3 = "93.184.216.34", "198.51.100.7", "203.0.113.9"
CLIENT6, SERVER6 = "fd00::10", "2001:db8::443"
MACS = {
    CLIENT: "02:00:00:00:00:10", OTHER: "02:00:00:00:00:11", ROUTER: "02:00:00:00:00:01",
    CLIENT6: "02:00:00:00:00:10",
}
GATEWAY_MAC = "02:00:00:00:00:01"
"""Every address without its own MAC is reached through the router."""

CIPHERS = [0x1301, 0x1302, 0xC02F]


# --- a capture, packet by packet ----------------------------------------------------------------------


def _mac(ip: str) -> str:
    return MACS.get(ip, GATEWAY_MAC)


def _ip(src: str, dst: str) -> Packet:
    layer = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return Ether(src=_mac(src), dst=_mac(dst)) / layer


class Capture:
    """Packets with explicit timestamps (seconds after T0), written in time order by write()."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self._sport = 40000

    def add(self, t: float, pkt: Packet) -> None:
        pkt.time = T0 + t
        self.packets.append(pkt)

    def port(self) -> int:
        self._sport += 1
        return self._sport

    def udp(self, t: float, src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
        self.add(t, _ip(src, dst) / UDP(sport=sport, dport=dport) / payload)

    def dns_answer(self, t: float, client: str, qname: str, *answers: DNSRR, qtype: str = "A",
                   resolver: str = RESOLVER, rcode: int = 0, query: bool = True) -> None:
        """`client`'s query and the resolver's answer (an answer to no query seen is not believed)."""
        port = self.port()
        if query:
            self.udp(t - 0.002, client, resolver, port, 53, bytes(DNS(id=0x4242, rd=1, qd=DNSQR(qname=qname,
                                                                                           qtype=qtype))))
        message = DNS(id=0x4242, qr=1, rd=1, ra=1, rcode=rcode, qd=DNSQR(qname=qname, qtype=qtype),
                      an=list(answers))
        self.udp(t, resolver, client, 53, port, bytes(message))

    def tcp(self, t: float, client: str, server: str, dport: int, payload: bytes = b"",
            sport: int | None = None) -> int:
        """A TCP connection: handshake, then the client's payload (if any) and the server's ACK."""
        sport = sport or self.port()
        self.add(t, _ip(client, server) / TCP(sport=sport, dport=dport, flags="S", seq=1000))
        self.add(t + 0.01, _ip(server, client) / TCP(sport=dport, dport=sport, flags="SA", seq=5000, ack=1001))
        self.add(t + 0.02, _ip(client, server) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=5001))
        if payload:
            self.add(t + 0.03, _ip(client, server) / TCP(sport=sport, dport=dport, flags="PA", seq=1001,
                                                          ack=5001) / payload)
            self.add(t + 0.04, _ip(server, client) / TCP(sport=dport, dport=sport, flags="A", seq=5001,
                                                          ack=1001 + len(payload)))
        return sport

    def write(self, path: Path) -> Path:
        with PcapWriter(str(path), linktype=1, sync=True) as writer:
            for pkt in sorted(self.packets, key=lambda p: float(p.time)):
                writer.write(pkt)
        return path


def a(name: str, address: str, ttl: int = 300) -> DNSRR:
    return DNSRR(rrname=name, type="AAAA" if ":" in address else "A", ttl=ttl, rdata=address)


def cname(name: str, target: str, ttl: int = 300) -> DNSRR:
    return DNSRR(rrname=name, type="CNAME", ttl=ttl, rdata=target)


def tls_hello(name: str) -> bytes:
    return client_hello(CIPHERS, [sni(name.encode())])


def http_get(host: str) -> bytes:
    return f"GET /snapshot.jpg HTTP/1.1\r\nHost: {host}\r\nUser-Agent: probe/1.0\r\n\r\n".encode()


# --- running the pipeline as the CLI does ------------------------------------------------------------


@dataclass
class Run:
    docs: list[dict[str, Any]]
    lines: list[bytes]
    records: list[FlowRecords]
    stats: RunStats
    names: NameStage
    rejected: Counter[str] = field(default_factory=Counter)

    def flows(self, server: str, dport: int | None = None, client: str | None = None) -> list[dict[str, Any]]:
        """Documents of the flows between `client` (any when None) and `server`, either way round."""
        out = []
        for d in self.docs:
            ends = {d["source"]["ip"], d["destination"]["ip"]}
            ports = {d["source"].get("port"), d["destination"].get("port")}
            if server in ends and (client is None or client in ends) and (dport is None or dport in ports):
                out.append(d)
        return out

    def flow(self, server: str, dport: int | None = None, client: str | None = None) -> dict[str, Any]:
        found = self.flows(server, dport, client)
        assert len(found) == 1, found
        return found[0]

    def by_sport(self, sport: int) -> dict[str, Any]:
        (doc,) = [d for d in self.docs if d["source"].get("port") == sport]
        return doc


def name_of(doc: dict[str, Any]) -> tuple[str | None, str]:
    """(domain, name_source) of a flow document: destination.domain, or source.domain for a swapped flow."""
    domain = doc["destination"].get("domain") or doc["source"].get("domain")
    return domain, doc["auditor"]["name_source"]


def run(tmp_path: Path, capture: Capture, settings: Settings | None = None, grace_s: int = 300) -> Run:
    settings = settings or Settings()
    path = capture.write(tmp_path / "names.pcap")
    local = LocalNetworks(settings.local_networks)
    names = NameStage(grace_s=grace_s)
    rejected: Counter[str] = Counter()
    payloads = fingerprint_payloads(EvidenceTable(SignatureSet([], [])), rejected, local, names)
    records: list[FlowRecords] = []
    stats = analyze_files([path], settings, lambda r: records.append(with_community_ids(r)), payloads,
                          prefetch=False, names=names)
    docs = [d for r in records for d in flow_documents(r)]
    lines = [line for r in records for line in flow_json_lines(r)]
    assert stats.payload_crashes == Counter(), stats.payload_crashes
    return Run(docs, lines, records, stats, names, rejected)


# --- passive DNS: per client, TTL-aware, question name ------------------------------------------------


def test_dns_answer_names_the_clients_later_flow_with_the_question_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "Cam.Example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 8443)
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert name_of(doc) == ("cam.example.com", "dns")
    assert doc["network"]["direction"] == "outbound"
    assert "dns_name" not in doc["auditor"]  # nothing to disagree with
    summary = r.names.summary()
    assert summary["dns_answers"] == 1 and summary["dns_bindings"] == 1
    assert summary["flows_named_dns"] == 1
    # the records themselves carry the same
    (rec,) = r.records
    (i,) = [i for i, proto in enumerate(rec.ip_proto.tolist()) if proto == 6]
    assert rec.domain is not None and rec.name_source is not None
    assert rec.domain[i] == "cam.example.com" and NAME_SOURCES[int(rec.name_source[i])] == "dns"


def test_cname_chain_names_the_flow_with_the_question_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "www.example.com", cname("www.example.com", "www.example.com.cdn.net"),
                   cname("www.example.com.cdn.net", "edge-7.cdn.net"), a("edge-7.cdn.net", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 80)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == ("www.example.com", "dns")


def test_aaaa_answer_names_an_ipv6_flow(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT6, "v6.example.com", a("v6.example.com", SERVER6), qtype="AAAA", resolver="fd00::1")
    cap.tcp(2.0, CLIENT6, SERVER6, 443)
    r = run(tmp_path, cap)
    doc = r.flow(SERVER6)
    assert name_of(doc) == ("v6.example.com", "dns")
    assert doc["network"]["type"] == "ipv6"


def test_another_clients_flow_to_the_same_address_is_not_named(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 443)
    cap.tcp(2.5, OTHER, SERVER, 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER, client=CLIENT)) == ("cam.example.com", "dns")
    assert name_of(r.flow(SERVER, client=OTHER)) == (None, "none")  # passive DNS is per client


def test_error_and_empty_answers_bind_nothing(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "gone.example.com", a("gone.example.com", SERVER), rcode=3)  # NXDOMAIN
    cap.dns_answer(1.1, CLIENT, "empty.example.com")  # NOERROR, no answer
    # an answer for another name than the question is not believed
    cap.dns_answer(1.2, CLIENT, "asked.example.com", a("other.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == (None, "none")
    assert r.names.summary()["dns_bindings"] == 0


@pytest.mark.parametrize(
    ("after_s", "expected"),
    [
        (-0.5, ("cam.example.com", "dns")),  # a span port may show the first packet just before the answer
        (-3.0, (None, "none")),  # long before the answer: not this lookup
        (30.0, ("cam.example.com", "dns")),  # within the TTL
        (60.0 + 299.0, ("cam.example.com", "dns")),  # past the TTL, within the 300 s grace
        (60.0 + 301.0, (None, "none")),  # past TTL + grace
    ],
    ids=["just-before", "long-before", "within-ttl", "within-grace", "past-grace"],
)
def test_dns_name_is_valid_for_ttl_plus_grace(tmp_path: Path, after_s: float, expected: tuple[str | None, str]) -> None:
    cap = Capture()
    cap.dns_answer(10.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER, ttl=60))
    cap.tcp(10.0 + after_s, CLIENT, SERVER, 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == expected


def test_grace_is_the_stage_setting(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(10.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER, ttl=60))
    cap.tcp(10.0 + 60 + 20, CLIENT, SERVER, 443)
    assert name_of(run(tmp_path, cap, grace_s=0).flow(SERVER)) == (None, "none")
    assert name_of(run(tmp_path, cap, grace_s=30).flow(SERVER)) == ("cam.example.com", "dns")


def test_smallest_ttl_along_the_cname_chain_bounds_the_binding(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(10.0, CLIENT, "www.example.com", cname("www.example.com", "edge.cdn.net", ttl=10),
                   a("edge.cdn.net", SERVER, ttl=3600))
    sport_in = cap.tcp(10.0 + 10 + 299, CLIENT, SERVER, 443)
    sport_out = cap.tcp(10.0 + 10 + 301, CLIENT, SERVER, 443)
    r = run(tmp_path, cap)
    assert name_of(r.by_sport(sport_in)) == ("www.example.com", "dns")
    assert name_of(r.by_sport(sport_out)) == (None, "none")


def test_inbound_flow_is_not_named_by_the_local_hosts_lookups(tmp_path: Path) -> None:
    """A remote host that opens a connection to a local one: the local host's lookups name its own
    connections, not ones made to it."""
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, SERVER, CLIENT, 22)
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert doc["network"]["direction"] == "inbound"
    assert name_of(doc) == (None, "none")


def test_midstream_connection_that_looks_inbound_is_named_on_the_source_side(tmp_path: Path) -> None:
    """The SYN was missed and the server spoke first: the flow looks inbound, its client is the responder,
    and the name is that of the source (the remote side) in flows.jsonl."""
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cloud.example.com", a("cloud.example.com", SERVER))
    cap.add(2.0, _ip(SERVER, CLIENT) / TCP(sport=443, dport=50123, flags="PA", seq=1, ack=1) / b"\x17\x03\x03\x00\x01x")
    cap.add(2.1, _ip(CLIENT, SERVER) / TCP(sport=50123, dport=443, flags="A", seq=1, ack=7))
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert doc["network"]["direction"] == "inbound"
    assert doc["source"]["ip"] == SERVER
    assert doc["source"]["domain"] == "cloud.example.com"
    assert "domain" not in doc["destination"]
    assert doc["auditor"]["name_source"] == "dns"


# --- a flow's own packets: TLS SNI, QUIC SNI, HTTP Host -----------------------------------------------


def test_tls_sni_names_the_flow(tmp_path: Path) -> None:
    cap = Capture()
    cap.tcp(1.0, CLIENT, SERVER, 443, tls_hello("API.Example.NET."))
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert name_of(doc) == ("api.example.net", "sni")
    assert "dns_name" not in doc["auditor"]
    assert r.names.summary()["sni"] == 1


def test_sni_agreeing_with_dns_keeps_no_dns_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "www.example.com", cname("www.example.com", "edge.cdn.net"), a("edge.cdn.net", SERVER))
    same = cap.tcp(2.0, CLIENT, SERVER, 443, tls_hello("www.example.com"))
    target = cap.tcp(3.0, CLIENT, SERVER, 443, tls_hello("edge.cdn.net"))  # the CNAME target: same chain
    r = run(tmp_path, cap)
    for sport, name in ((same, "www.example.com"), (target, "edge.cdn.net")):
        doc = r.by_sport(sport)
        assert name_of(doc) == (name, "sni")
        assert "dns_name" not in doc["auditor"]


def test_sni_disagreeing_with_the_clients_dns_name_keeps_it_as_dns_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 443, tls_hello("tunnel.evil.example"))
    cap.tcp(2.5, OTHER, SERVER, 443, tls_hello("tunnel.evil.example"))  # OTHER resolved nothing: no dns_name
    r = run(tmp_path, cap)
    doc = r.flow(SERVER, client=CLIENT)
    assert name_of(doc) == ("tunnel.evil.example", "sni")
    assert doc["auditor"]["dns_name"] == "cam.example.com"
    other = r.flow(SERVER, client=OTHER)
    assert name_of(other) == ("tunnel.evil.example", "sni")
    assert "dns_name" not in other["auditor"]
    # the byte-for-byte writer says the same as the documents
    assert [orjson.loads(line) for line in r.lines] == r.docs


def test_cli_writes_domain_name_source_and_dns_name_to_flows_jsonl(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 443, tls_hello("tunnel.evil.example"))
    cap.tcp(3.0, CLIENT, SERVER2, 443)  # never looked up
    path = cap.write(tmp_path / "cli.pcap")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in (out / "flows.jsonl").read_text().splitlines()]
    (sni_flow,) = [d for d in docs if d["destination"]["ip"] == SERVER and d["network"]["transport"] == "tcp"]
    assert sni_flow["destination"]["domain"] == "tunnel.evil.example"
    assert sni_flow["auditor"]["name_source"] == "sni"
    assert sni_flow["auditor"]["dns_name"] == "cam.example.com"
    (bare,) = [d for d in docs if d["destination"]["ip"] == SERVER2]
    assert "domain" not in bare["destination"] and bare["auditor"]["name_source"] == "none"
    names = json.loads((out / "summary.json").read_text())["names"]
    assert names["flows_named_sni"] == 1
    assert names["sni"] == 1 and names["dns_bindings"] == 1
    assert names["flows_never_named"] == len(docs) - 1  # the bare flow, the DNS answer's own flow


def test_http_host_names_the_flow_without_its_port(tmp_path: Path) -> None:
    cap = Capture()
    named = cap.tcp(1.0, CLIENT, SERVER, 8080, http_get("Cam.Example.com:8080"))
    literal = cap.tcp(2.0, CLIENT, SERVER2, 80, http_get("198.51.100.7:80"))
    literal6 = cap.tcp(3.0, CLIENT, SERVER3, 80, http_get("[2001:db8::1]:8080"))
    r = run(tmp_path, cap)
    assert name_of(r.by_sport(named)) == ("cam.example.com", "http-host")
    assert name_of(r.by_sport(literal)) == (None, "none")  # an address literal is not a name
    assert name_of(r.by_sport(literal6)) == (None, "none")
    assert r.names.summary()["http_host"] == 1


def test_http_host_that_is_an_address_falls_back_to_dns(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 80, http_get(SERVER))
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == ("cam.example.com", "dns")


def test_http_host_outranks_dns_without_a_mismatch_note(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 80, http_get("cam.example.com"))
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert name_of(doc) == ("cam.example.com", "http-host")
    assert "dns_name" not in doc["auditor"]


@pytest.mark.parametrize("datagram", [RFC_V1_INITIAL, RFC_V2_INITIAL], ids=["v1", "v2"])
def test_quic_client_initial_sni_names_the_flow(tmp_path: Path, datagram: bytes) -> None:
    cap = Capture()
    cap.udp(1.0, CLIENT, SERVER, 50000, 443, datagram)
    cap.udp(1.05, SERVER, CLIENT, 443, 50000, bytes(64))
    r = run(tmp_path, cap)
    doc = r.flow(SERVER)
    assert doc["network"]["transport"] == "udp"
    assert name_of(doc) == ("example.com", "quic")  # RFC 9001 A.2 / RFC 9369 A.2: SNI example.com
    assert r.names.summary()["quic_sni"] == 1
    assert r.names.summary()["flows_named_quic"] == 1


def test_quic_hello_split_over_two_datagrams_is_named_from_the_first(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(1.0, CLIENT, SERVER, 50001, 443, PQ_FIRST)
    cap.udp(1.001, CLIENT, SERVER, 50001, 443, PQ_SECOND)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == ("cam.example.net", "quic")


def test_quic_sni_disagreeing_with_dns_keeps_the_dns_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(0.5, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.udp(1.0, CLIENT, SERVER, 50002, 443, RFC_V1_INITIAL)
    r = run(tmp_path, cap)
    doc = r.flow(SERVER, dport=443)
    assert name_of(doc) == ("example.com", "quic")
    assert doc["auditor"]["dns_name"] == "cam.example.com"


def test_quic_initial_from_the_responder_names_nothing(tmp_path: Path) -> None:
    """Only the initiator's Initials are read: a server echoing a client Initial does not name the flow."""
    cap = Capture()
    cap.udp(1.0, CLIENT, SERVER, 50003, 443, b"\x00" * 40)  # the client's first datagram: not an Initial
    cap.udp(1.1, SERVER, CLIENT, 443, 50003, RFC_V1_INITIAL)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == (None, "none")


# --- local names: DHCP host names and mDNS --------------------------------------------------------------


def _dhcp(op: int, message: str, hostname: str | None, yiaddr: str = "0.0.0.0", requested: str | None = None,
          mac: str = "02:00:00:00:00:50") -> bytes:
    options: list[object] = [("message-type", message), ("server_id", ROUTER)]
    if requested:
        options.append(("requested_addr", requested))
    if hostname:
        options.append(("hostname", hostname.encode()))
    options.append("end")
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    return bytes(BOOTP(op=op, xid=0x1234, yiaddr=yiaddr, chaddr=chaddr) / DHCP(options=options))


def test_dhcp_ack_host_name_names_a_later_internal_flow(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(1.0, ROUTER, "192.168.1.50", 67, 68, _dhcp(2, "ack", "Front-Door-Cam", yiaddr="192.168.1.50"))
    cap.tcp(5.0, CLIENT, "192.168.1.50", 554)
    r = run(tmp_path, cap)
    doc = r.flow("192.168.1.50", dport=554)
    assert doc["network"]["direction"] == "internal"
    assert name_of(doc) == ("Front-Door-Cam", "dhcp")
    assert r.names.summary()["flows_named_dhcp"] == 2  # the ACK's own flow goes to the named address too


def test_dhcp_request_host_name_is_bound_by_the_servers_ack(tmp_path: Path) -> None:
    """Most servers leave option 12 out of the ACK: the name the client sent in its REQUEST is used."""
    mac = "02:00:00:00:00:51"
    cap = Capture()
    cap.add(1.0, Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67) / _dhcp(1, "request", "nvr-01", requested="192.168.1.51", mac=mac))
    cap.udp(1.01, ROUTER, "192.168.1.51", 67, 68, _dhcp(2, "ack", None, yiaddr="192.168.1.51", mac=mac))
    cap.tcp(5.0, CLIENT, "192.168.1.51", 80)
    r = run(tmp_path, cap)
    assert name_of(r.flow("192.168.1.51", dport=80)) == ("nvr-01", "dhcp")


def test_mdns_response_a_record_names_an_internal_flow(tmp_path: Path) -> None:
    answer = DNS(id=0, qr=1, aa=1, an=[DNSRR(rrname="printer-3.local", type="A", rclass=0x8001, ttl=120,
                                             rdata="192.168.1.60")])
    cap = Capture()
    cap.udp(1.0, "192.168.1.60", "224.0.0.251", 5353, 5353, bytes(answer))
    cap.tcp(2.0, CLIENT, "192.168.1.60", 631)
    r = run(tmp_path, cap)
    doc = r.flow("192.168.1.60", dport=631)
    assert name_of(doc) == ("printer-3.local", "mdns")
    assert r.names.summary()["flows_named_mdns"] == 1


def test_dns_outranks_a_local_name(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(1.0, ROUTER, "192.168.1.50", 67, 68, _dhcp(2, "ack", "cam-dhcp", yiaddr="192.168.1.50"))
    cap.dns_answer(1.5, CLIENT, "cam.home.arpa", a("cam.home.arpa", "192.168.1.50"), resolver=ROUTER)
    cap.tcp(2.0, CLIENT, "192.168.1.50", 443)
    cap.tcp(2.5, OTHER, "192.168.1.50", 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow("192.168.1.50", 443, client=CLIENT)) == ("cam.home.arpa", "dns")
    assert name_of(r.flow("192.168.1.50", 443, client=OTHER)) == ("cam-dhcp", "dhcp")


def test_local_names_do_not_name_remote_addresses_they_were_not_given(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(1.0, ROUTER, "192.168.1.50", 67, 68, _dhcp(2, "ack", "cam-dhcp", yiaddr="192.168.1.50"))
    cap.tcp(2.0, "192.168.1.50", SERVER, 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER)) == (None, "none")  # the cam's own name is not its destination's


# --- never named, counters -------------------------------------------------------------------------------


def test_flow_to_an_address_never_looked_up_is_counted_never_named(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cam.example.com", a("cam.example.com", SERVER))
    cap.tcp(2.0, CLIENT, SERVER, 443)
    cap.tcp(3.0, CLIENT, SERVER2, 443)  # hard-coded address
    cap.udp(4.0, CLIENT, SERVER3, 40404, 9999, b"hello")
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER2)) == (None, "none")
    assert name_of(r.flow(SERVER3)) == (None, "none")
    summary = r.names.summary()
    # the DNS answer's own UDP flow (resolver -> client) is a flow too, never named
    assert summary["flows_never_named"] == 3
    assert summary["flows_named_dns"] == 1
    assert sum(v for k, v in summary.items() if k.startswith("flows_")) == r.stats.flows == len(r.docs)
    assert set(summary) >= {"flows_named_sni", "flows_named_quic", "flows_named_http_host", "flows_named_dns",
                            "flows_named_dhcp", "flows_named_mdns", "flows_never_named", "dns_answers",
                            "dns_bindings", "dns_refused", "sni", "quic_sni", "http_host", "dns_bindings_evicted"}


# --- hostile input -----------------------------------------------------------------------------------


def _garbage(rng: random.Random, n: int) -> Iterable[bytes]:
    for i in range(n):
        size = rng.choice((1, 2, 11, 12, 13, 40, 300, 1200, 1500))
        data = bytearray(rng.randbytes(size))
        if i % 3 == 0 and size > 5:
            data[0] = 0xC0 | data[0] & 0x3F  # a long header, so the QUIC path does real work
            data[1:5] = rng.choice((b"\x00\x00\x00\x01", b"\x6b\x33\x43\xcf", bytes(data[1:5])))
        yield bytes(data)


def _mutations(rng: random.Random, base: bytes, n: int) -> Iterable[bytes]:
    for _ in range(n):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield bytes(data[: rng.choice((len(data), rng.randrange(1, len(data))))])


def test_random_bytes_on_dns_answers_and_quic_never_crash_the_run(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    answer = bytes(DNS(id=1, qr=1, qd=DNSQR(qname="www.example.com"),
                       an=[cname("www.example.com", "edge.cdn.net"), a("edge.cdn.net", SERVER)]))
    mdns = bytes(DNS(id=0, qr=1, aa=1, an=[DNSRR(rrname="x.local", type="A", rdata="192.168.1.61")]))
    cap = Capture()
    t = 1.0
    for data in [*_garbage(rng, 150), *_mutations(rng, answer, 150)]:
        cap.udp(t, RESOLVER, CLIENT, 53, 30000 + int(t * 100) % 30000, data)
        t += 0.01
    for data in _mutations(rng, mdns, 50):
        cap.udp(t, "192.168.1.61", "224.0.0.251", 5353, 5353, data)
        t += 0.01
    for i, data in enumerate([*_garbage(rng, 150), *_mutations(rng, RFC_V1_INITIAL, 100),
                              *_mutations(rng, PQ_FIRST, 50)]):
        cap.udp(t, CLIENT, SERVER2, 20000 + i, 443, data)
        t += 0.01
    for i, data in enumerate(_mutations(rng, tls_hello("a.example.com"), 60)):
        cap.tcp(t, CLIENT, SERVER3, 443, data, sport=10000 + i)
        t += 0.05
    r = run(tmp_path, cap)  # run() asserts payload_handler_crashes is empty
    assert r.stats.to_dict()["payload_handler_crashes"] == {}
    assert r.stats.payloads["dns-answers"] >= 300
    assert r.stats.payloads["quic-initial"] > 0
    summary = r.names.summary()
    assert summary["dns_refused"] > 0
    assert sum(v for k, v in summary.items() if k.startswith("flows_")) == len(r.docs)
    for doc in r.docs:
        domain, source = name_of(doc)
        assert source in NAME_SOURCES
        assert (domain is None) == (source == "none")
        if domain is not None:
            assert domain == domain.strip() and 0 < len(domain) <= 253


# --- bugs found ---------------------------------------------------------------------------------------


# found by review: a refresh used to replace the binding, moving its start past the flow's
def test_re_resolving_a_name_does_not_unname_a_flow_that_started_earlier(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "cloud.example.com", a("cloud.example.com", SERVER, ttl=300))
    sport = cap.tcp(2.0, CLIENT, SERVER, 8883)  # an MQTT connection to the cloud, kept open
    for k in range(1, 4):  # the device re-resolves each time the TTL runs out; the connection stays up
        cap.dns_answer(1.0 + 300 * k, CLIENT, "cloud.example.com", a("cloud.example.com", SERVER, ttl=300))
        cap.add(2.0 + 300 * k, _ip(CLIENT, SERVER) / TCP(sport=sport, dport=8883, flags="PA", seq=1001) / b"\xc0\x00")
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER, dport=8883)) == ("cloud.example.com", "dns")


# found by review (ndpi__android.pcap): the SNI was compared with one resolved name only
def test_sni_matching_any_name_the_client_resolved_to_the_address_is_no_mismatch(tmp_path: Path) -> None:
    cap = Capture()
    cap.dns_answer(1.0, CLIENT, "accounts.example.com", a("accounts.example.com", SERVER))
    cap.dns_answer(1.5, CLIENT, "www.example.com", a("www.example.com", SERVER))  # same front end
    cap.tcp(2.0, CLIENT, SERVER, 443, tls_hello("accounts.example.com"))
    r = run(tmp_path, cap)
    doc = r.flow(SERVER, dport=443)
    assert name_of(doc) == ("accounts.example.com", "sni")
    assert "dns_name" not in doc["auditor"]


# --- found by review: names an attacker or a neighbour could plant ------------------------------------------


def test_an_answer_to_no_query_seen_is_not_believed(tmp_path: Path) -> None:
    cap = Capture()
    # a remote host sends an unsolicited answer; then the client talks to the address it "names"
    cap.dns_answer(1.0, CLIENT, "ntp.example.org", a("ntp.example.org", SERVER2), query=False)
    cap.tcp(2.0, CLIENT, SERVER2, 443)
    # an answer whose id does not match the query's is not believed either
    cap.udp(2.998, CLIENT, RESOLVER, 41999, 53, bytes(DNS(id=1, rd=1, qd=DNSQR(qname="good.example.org"))))
    cap.udp(3.0, RESOLVER, CLIENT, 53, 41999, bytes(DNS(id=2, qr=1, qd=DNSQR(qname="good.example.org"),
                                                         an=[a("good.example.org", SERVER3)])))
    cap.tcp(4.0, CLIENT, SERVER3, 443)
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER2, 443)) == (None, "none")
    assert name_of(r.flow(SERVER3, 443)) == (None, "none")
    assert r.names.summary()["dns_unsolicited"] == 2


def test_an_mdns_record_for_a_remote_address_does_not_name_it(tmp_path: Path) -> None:
    answer = DNS(id=0, qr=1, aa=1, an=[DNSRR(rrname="ntp.example.org", type="A", rclass=0x8001, ttl=120,
                                             rdata=SERVER2)])
    cap = Capture()
    cap.udp(1.0, OTHER, "224.0.0.251", 5353, 5353, bytes(answer))
    cap.udp(2.0, CLIENT, SERVER2, 40123, 9999, b"x")
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER2, 9999)) == (None, "none")


@pytest.mark.parametrize("bad", ["cdn.example.net\n  => approved: not a finding", "a b.example.com",
                                 "evil\x1b[2K.example.com", "tab\there.example"])
def test_a_sni_with_whitespace_or_control_characters_names_nothing(tmp_path: Path, bad: str) -> None:
    cap = Capture()
    cap.tcp(1.0, CLIENT, SERVER, 443, tls_hello(bad))
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER, 443)) == (None, "none")


def test_a_quic_initial_that_does_not_start_a_client_hello_holds_no_buffers(tmp_path: Path) -> None:
    names = NameStage()
    # a sealed Initial whose only CRYPTO frame sits at offset 16383: no ClientHello start, nothing kept
    from auditor.flows.types import Payload
    from tests.protocols.test_quic import crypto_frame, padded, seal

    def payload(datagram: bytes) -> Payload:
        return Payload(7, 0, 4, 17, 0, 1, 0, 2, 50000, 443, True, 1, 2, None, 0x0800, datagram)

    names._quic_initial(payload(seal(padded(crypto_frame(16383, b"x")))))
    assert names._quic == {}
    # the start of a real hello, cut: held until the rest comes
    names._quic_initial(payload(seal(padded(crypto_frame(0, b"\x01\x00\x10\x00" + bytes(20))))))
    assert list(names._quic) == [7]


def test_a_client_hello_split_over_two_segments_is_joined_for_its_sni(tmp_path: Path) -> None:
    # found by review: post-quantum key shares make hellos longer than one segment; with a shuffled
    # extension order the SNI may sit in the second one. The server's ACK comes between them.
    hello = tls_hello("litedev.ezvizlife.com")
    cut = len(hello) - 20  # inside the SNI extension (the last one written)
    cap = Capture()
    sport = cap.tcp(1.0, CLIENT, SERVER, 443)
    cap.add(1.03, _ip(CLIENT, SERVER) / TCP(sport=sport, dport=443, flags="PA", seq=1001, ack=5001) / hello[:cut])
    cap.add(1.04, _ip(SERVER, CLIENT) / TCP(sport=443, dport=sport, flags="A", seq=5001, ack=1001 + cut))
    cap.add(1.05, _ip(CLIENT, SERVER) / TCP(sport=sport, dport=443, flags="PA", seq=1001 + cut, ack=5001)
            / hello[cut:])
    r = run(tmp_path, cap)
    assert name_of(r.flow(SERVER, 443)) == ("litedev.ezvizlife.com", "sni")
