"""PassiveDns over the real captures: bindings agree with scapy's own DNS dissector.

The expectation is computed from scapy's dissection (not dns.parse): for each response, the
question name, the CNAME chain reachable from it in the answer section, and the A/AAAA records at
its end. Captures are read with the streaming PcapReader; IPv6 fragments are reassembled with
scapy's defragment6 so the fragmented response of zeek__ipv6-fragmented-dns.pcap is checked whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.names.passive_dns import PassiveDns
from auditor.names.types import Address, address_key
from auditor.protocols import dns
from tests.conftest import CORPUS

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus absent: {CORPUS}"),
]

S = 1_000_000_000
DNS_PORT = 53

CLEAN = (
    "ndpi__android.pcap",
    "ndpi__dns_doh.pcap",  # DNS over HTTPS only: nothing on port 53, nothing bound
    "zeek__ipv6-fragmented-dns.pcap",
    "zeek__pcapng-multi-interface.pcapng",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Captures whose port-53 responses scapy dissects completely."""

Binding = tuple[Address, Address, str, tuple[str, ...], int]
"""(client, address, question name, chain, expires_ns)."""


def _name(raw: bytes | str) -> str:
    """Return a scapy name as dns.parse writes plain names: lower-case, no trailing dot."""
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    return text.lower().rstrip(".")


def _ttl(value: int) -> int:
    """RFC 2181 §8: a TTL with the top bit set counts as zero."""
    return 0 if value > 0x7FFFFFFF else value


def expected_bindings(message: Any, client: Address, ts_ns: int, max_chain: int = 8) -> set[Binding]:
    """Return the bindings a response should give, walked over scapy's dissection of it."""
    if not message.qr or message.rcode != 0 or message.opcode != 0:
        return set()
    answers = [rr for rr in (message.an or []) if rr.rclass == 1]
    out: set[Binding] = set()
    for q in message.qd or []:
        if q.qclass not in (1, 255):
            continue
        chain = [_name(q.qname)]
        ttl = 0x7FFFFFFF
        while True:
            here = [rr for rr in answers if _name(rr.rrname) == chain[-1]]
            addresses = [rr for rr in here if rr.type in (1, 28)]
            if addresses:
                for rr in addresses:
                    expires = ts_ns + min(ttl, _ttl(rr.ttl)) * S
                    out.add((client, address_key(rr.rdata), chain[0], tuple(chain), expires))
                break
            cname = next((rr for rr in here if rr.type == 5), None)
            if cname is None or len(chain) >= max_chain or _name(cname.rdata) in chain:
                break
            chain.append(_name(cname.rdata))
            ttl = min(ttl, _ttl(cname.ttl))
    return out


def dns_responses(path: Path) -> Iterator[tuple[int, Address, bytes, Any]]:
    """Yield (ts_ns, client, UDP payload, scapy packet) for each UDP port-53 response, in capture order."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6
    from scapy.utils import PcapReader

    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    fragments: dict[tuple[str, str, int], list[Any]] = {}
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if IPv6ExtHdrFragment in pkt:
                frag = pkt[IPv6ExtHdrFragment]
                key = (pkt[IPv6].src, pkt[IPv6].dst, frag.id)
                held = fragments.setdefault(key, [])
                held.append(pkt[IPv6])
                if not _complete(held):
                    continue
                del fragments[key]
                whole = IPv6(bytes(defragment6(held)))  # defragment6 leaves the payload undissected
                whole.time = pkt.time  # the datagram arrived with its last fragment
                pkt = whole
            if UDP not in pkt or pkt[UDP].sport != DNS_PORT:
                continue
            if IP in pkt:
                client = address_key(pkt[IP].dst)
            elif IPv6 in pkt:
                client = address_key(pkt[IPv6].dst)
            else:
                continue
            yield int(pkt.time * S), client, bytes(pkt[UDP].payload), pkt


def _complete(fragments: list[Any]) -> bool:
    """Return True when IPv6 fragments cover their datagram from offset 0 to a last fragment."""
    from scapy.layers.inet6 import IPv6ExtHdrFragment

    end = 0
    for frag in sorted((f[IPv6ExtHdrFragment] for f in fragments), key=lambda f: f.offset):
        if frag.offset * 8 != end:
            return False
        end += len(bytes(frag.payload))
        if not frag.m:
            return True
    return False


def got_bindings(pdns: PassiveDns) -> set[Binding]:
    """Return what a PassiveDns holds in the form expected_bindings uses."""
    return {(c, a, n.name, n.chain, n.expires_ns) for c, a, n in pdns.bindings()}


@pytest.mark.parametrize("name", CLEAN)
def test_dns_corpus_bindings_match_scapy(name: str) -> None:
    from scapy.layers.dns import DNS

    everything = PassiveDns()
    responses = 0
    want_all: set[Binding] = set()
    for ts_ns, client, payload, pkt in dns_responses(CORPUS / name):
        responses += 1
        assert DNS in pkt, (name, ts_ns)
        message = dns.parse(payload)
        assert message is not None and message.complete, (name, ts_ns)
        want = expected_bindings(pkt[DNS], client, ts_ns)
        one = PassiveDns()  # per response: exactly what this answer binds
        assert one.observe(client, ts_ns, message) == len(want), (name, ts_ns)
        assert got_bindings(one) == want, (name, ts_ns)
        everything.observe(client, ts_ns, message)
        want_all |= want
    # over the whole capture: every expected binding still names its address when its TTL runs out
    for client, address, qname, _chain, expires in want_all:
        assert everything.name_of(client, address, expires) is not None, (name, qname)
    assert len(everything) <= len(want_all)
    if name == "ndpi__dns_doh.pcap":
        assert responses == 0 and not want_all
    else:
        assert responses > 0


def test_dns_corpus_totals() -> None:
    """The clean captures together bind a known number of names (guards against a vacuous pass)."""
    from scapy.layers.dns import DNS

    total = 0
    names: set[str] = set()
    for name in CLEAN:
        for ts_ns, client, _payload, pkt in dns_responses(CORPUS / name):
            found = expected_bindings(pkt[DNS], client, ts_ns)
            total += len(found)
            names |= {b[2] for b in found}
    assert total >= 40
    assert {"www.apple.com", "google.com"} <= names


def test_dns_corpus_cname_chain_real() -> None:
    pdns = PassiveDns()
    for ts_ns, client, payload, _pkt in dns_responses(CORPUS / "zeek__pcapng-multi-interface.pcapng"):
        message = dns.parse(payload)
        assert message is not None
        pdns.observe(client, ts_ns, message)
    named = pdns.any_name_of(address_key("23.194.101.24"), 0)
    assert named is None  # 1970: long before the answer
    hits = [n for _, a, n in pdns.bindings() if a == address_key("23.194.101.24")]
    assert [(n.name, n.chain) for n in hits] == [
        (
            "www.apple.com",
            ("www.apple.com", "www-apple-com.v.aaplimg.com", "www.apple.com.edgekey.net", "e6858.dsce9.akamaiedge.net"),
        )
    ]
    assert pdns.name_of(address_key("172.17.0.2"), address_key("23.194.101.24"), hits[0].seen_ns) == hits[0]


def test_dns_corpus_truncated_captures_bind_only_the_question_chain() -> None:
    """ndpi__badpackets.pcap: answers cut by the capture's snap length, glue in the additional section."""
    pdns = PassiveDns()
    responses = parsed = 0
    for ts_ns, client, payload, _pkt in dns_responses(CORPUS / "ndpi__badpackets.pcap"):
        responses += 1
        message = dns.parse(payload)
        if message is None:
            continue
        parsed += 1
        before = {(c, a, n) for c, a, n in pdns.bindings()}
        pdns.observe(client, ts_ns, message)
        for _c, address, named in set(pdns.bindings()) - before:
            # independent of dns.parse: the address's bytes are in the payload, the name was asked
            assert _packed(address) in payload
            assert named.name in {q.name for q in message.questions}
    assert responses == 93
    assert parsed >= 80
    lightning = {a for _, a, n in pdns.bindings() if n.name == "www.lightningsafety.noaa.gov"}
    assert lightning == {address_key("140.90.113.200")}  # not the name servers' glue (140.90.33.237...)
    assert len(pdns) >= 20


def _packed(address: Address) -> bytes:
    """Return an address key as its wire bytes."""
    version, hi, lo = address
    return lo.to_bytes(4, "big") if version == 4 else ((hi << 64) | lo).to_bytes(16, "big")


def test_dns_corpus_malformed_does_not_crash() -> None:
    pdns = PassiveDns()
    responses = parsed = learnt = 0
    for ts_ns, client, payload, _pkt in dns_responses(CORPUS / "ndpi__malformed_dns.pcap"):
        responses += 1
        message = dns.parse(payload)
        if message is not None:
            parsed += 1
            learnt += pdns.observe(client, ts_ns, message)
    assert responses == 4
    # the second question's name is longer than 255 bytes, so dns.parse rejects the whole message
    assert (parsed, learnt, len(pdns)) == (0, 0, 0)


def test_dns_corpus_reassembled_response_glue_not_bound() -> None:
    """zeek__ipv6-fragmented-dns.pcap: TXT answers with an NS and its A glue; the glue names nothing."""
    pdns = PassiveDns()
    sizes = []
    for ts_ns, client, payload, _pkt in dns_responses(CORPUS / "zeek__ipv6-fragmented-dns.pcap"):
        message = dns.parse(payload)
        assert message is not None and message.complete
        assert any(rr.rtype == dns.TYPE_A for rr in message.additional)
        sizes.append(len(payload))
        assert pdns.observe(client, ts_ns, message) == 0
    assert sizes == [323, 3230]  # the second arrived in three fragments (an orphan fragment is left out)
    assert pdns.any_name_of(address_key("192.150.187.31"), 0) is None
