"""QUIC ClientHellos (SNI, ALPN) per connection against tshark's, on the real corpus's QUIC captures.

Our side reads each UDP payload alone: initial_crypto per datagram, one ClientHelloAssembler per
(source, source port, destination, destination port). Server datagrams fail authentication with
client keys, so only the client's direction assembles anything. tshark reassembles the CRYPTO
stream itself and shows the hello in the frame that completes it.
"""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from auditor.protocols import quic
from auditor.protocols.quic import ClientHelloAssembler

Conn = tuple[str, int, str, int]
"""(client address, client port, server address, server port) as tshark prints them."""

Hello = tuple[str | None, tuple[str, ...]]
"""(SNI, ALPN names) of one connection's ClientHello."""

QUIC_FILES = {
    "ndpi__quic.pcap": "Google QUIC only (gQUIC Q0xx public headers): no IETF QUIC, no hello on either side",
    "ndpi__quic-v2.pcapng": "QUIC v2 (RFC 9369), linux-sll, port 4443: SNI 'test', ALPN h3",
    "zeek__quic_curl-8.1.2-dev-http3-www-google-de.pcap": "QUIC v1, curl: www.google.de, a 16-byte DCID",
    "suricata-verify__ja4-tls-quic.pcap": "QUIC v1 over IPv6, Chrome: cloudflare-quic.com, CRYPTO frames shuffled",
}
"""The corpus files with QUIC (MANIFEST.md 'QUIC'), and what they hold."""

DRAFT_FILES = {
    "ndpi__os_detected.pcapng": "draft-29 (0xff00001d): tshark decrypts it (ALPN h3-29, no SNI); we read v1/v2 only",
}
"""Captures where tshark shows a hello and we show none, by design."""

PUBLISHED_JA4 = {
    # OISF/suricata-verify tests/ja4-tls-quic (README.md and test.yaml: quic.ja4), FoxIO's ja4 tool's output
    "suricata-verify__ja4-tls-quic.pcap": "q13d0310h3_55b375c5d22e_cd85d2d88918",
}


@dataclass
class _Conn:
    version: int
    dcid: bytes
    assembler: ClientHelloAssembler = field(default_factory=ClientHelloAssembler)


def _tshark_hellos(tshark: str, path: Path) -> dict[Conn, Hello]:
    """Return tshark's ClientHellos in QUIC, per connection."""
    fields = ["ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport"]
    fields += ["tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str"]
    cmd = [tshark, "-n", "-r", str(path), "-Y", "quic and tls.handshake.type == 1", "-T", "fields"]
    cmd += ["-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,"]
    cmd += [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    hellos: dict[Conn, Hello] = {}
    for line in out.splitlines():
        ip4_src, ip6_src, sport, ip4_dst, ip6_dst, dport, sni, alpn = line.split("\t")
        conn = (ip4_src or ip6_src, int(sport), ip4_dst or ip6_dst, int(dport))
        hellos[conn] = (sni or None, tuple(alpn.split(",")) if alpn else ())
    return hellos


def _our_conns(path: Path) -> dict[Conn, _Conn]:
    """Return each connection's decrypted client Initials, assembled, reading UDP payloads one by one."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    conns: dict[Conn, _Conn] = {}
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if UDP not in pkt:
                continue
            ip = pkt.getlayer(IP)
            if ip is None:
                ip = pkt.getlayer(IPv6)
            if ip is None:
                continue
            udp = pkt[UDP]
            key = (str(ip.src), int(udp.sport), str(ip.dst), int(udp.dport))
            payload = bytes(udp.payload)
            state = conns.get(key)
            found = quic.initial_crypto(payload)
            if found is None and state is not None:
                # a later Initial to the server's chosen ID still uses the first keys (RFC 9001 §5.2)
                found = quic.initial_crypto(payload, original_dcid=state.dcid)
            if found is None:
                continue
            version, dcid, crypto = found
            if state is None:
                state = conns[key] = _Conn(version, dcid)
            state.assembler.add(crypto)
    return conns


def _our_hellos(path: Path) -> dict[Conn, Hello]:
    hellos: dict[Conn, Hello] = {}
    for conn, state in _our_conns(path).items():
        hello = state.assembler.client_hello(partial=True)
        if hello is not None:
            hellos[conn] = (hello.server_name, hello.alpn)
    return hellos


@pytest.mark.oracle
@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(QUIC_FILES))
def test_quic_client_hellos_agree_with_tshark(corpus: Path, tshark: str, name: str) -> None:
    path = corpus / name
    assert path.is_file(), path
    ours, theirs = _our_hellos(path), _tshark_hellos(tshark, path)
    assert ours == theirs, QUIC_FILES[name]


@pytest.mark.corpus
def test_quic_captures_hold_the_names_the_manifest_lists(corpus: Path) -> None:
    names = {name: {sni for sni, _ in _our_hellos(corpus / name).values()} for name in QUIC_FILES}
    assert names == {
        "ndpi__quic.pcap": set(),
        "ndpi__quic-v2.pcapng": {"test"},
        "zeek__quic_curl-8.1.2-dev-http3-www-google-de.pcap": {"www.google.de"},
        "suricata-verify__ja4-tls-quic.pcap": {"cloudflare-quic.com"},
    }


@pytest.mark.oracle
@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(DRAFT_FILES))
def test_quic_draft_versions_are_left_to_tshark(corpus: Path, tshark: str, name: str) -> None:
    theirs = _tshark_hellos(tshark, corpus / name)
    assert theirs and all(alpn for _, alpn in theirs.values()), DRAFT_FILES[name]
    assert _our_hellos(corpus / name) == {}


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(PUBLISHED_JA4))
def test_quic_ja4_matches_the_published_value(corpus: Path, name: str) -> None:
    records = [
        quic.from_hello(state.version, state.dcid, hello)
        for state in _our_conns(corpus / name).values()
        if (hello := state.assembler.client_hello()) is not None
    ]
    assert [r.ja4 for r in records] == [PUBLISHED_JA4[name]]
    assert all(r.complete for r in records)


@pytest.mark.corpus
def test_quic_original_dcid_opens_a_clients_later_initials(corpus: Path) -> None:
    # zeek curl capture frame 4: after the server's Initial, curl writes the server's ID (c15d62c7...) but keeps
    # the keys of its first DCID; the datagram carries an ACK-only Initial and a Handshake packet
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    with PcapReader(str(corpus / "zeek__quic_curl-8.1.2-dev-http3-www-google-de.pcap")) as reader:
        payloads = [bytes(pkt[UDP].payload) for pkt in itertools.islice(reader, 4)]
    first = quic.initial_crypto(payloads[0])
    assert first is not None and first[1].hex() == "815d62c70884f4b51e8ccadd5beed372"
    assert quic.initial_crypto(payloads[3]) is None
    assert quic.initial_crypto(payloads[3], original_dcid=first[1]) == (quic.QUIC_V1, first[1], [])
