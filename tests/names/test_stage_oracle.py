"""The names stage on the shared real corpus, against tshark: every flow the stage names from a TLS or QUIC
ClientHello ('sni' / 'quic') carries exactly the server_name tshark decodes from that flow's ClientHello, and
every flow named from its HTTP Host ('http-host') carries the Host of the flow's first request.

The whole pipeline runs as `auditor analyze` runs it (EvidenceTable + fingerprint_payloads + NameStage). TLS
ClientHellos and HTTP requests reach the stage only from local senders, so each file runs with the default
local networks plus the addresses tshark shows sending a ClientHello or request (the clients).

Differences that are by design, and how they are handled here:
- ECH (ndpi__tls_ech.pcapng, zeek__tls_tls13-ech.pcap): the inner ClientHello is encrypted; both tools report
  the outer ClientHello's server_name (the client-facing server, e.g. cloudflare-ech.com).
- A ClientHello without SNI (ndpi__google_ssl.pcap, ndpi__os_detected.pcapng) names nothing on either side.
- The stage reads a TCP flow's first 4 payload packets only: a ClientHello after them (STARTTLS) would be
  missed. None of these captures has one, so the sets must be equal.
- Names are compared as the stage keeps them: lower-case, without a final dot; an SNI or Host that is an IP
  literal is not a name (the stage refuses it), and a Host's port is dropped.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from auditor.config import Settings
from auditor.devices.evidence import EvidenceTable
from auditor.devices.signatures import SignatureSet
from auditor.flows.community_id import with_community_ids
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS, LocalNetworks
from auditor.names.stage import NameStage
from auditor.output.ecs import flow_documents
from auditor.pipeline import analyze_files, fingerprint_payloads

pytestmark = pytest.mark.oracle

TLS_FILES = (
    "ndpi__android.pcap",
    "ndpi__dns_doh.pcap",
    "ndpi__google_ssl.pcap",
    "ndpi__http_ipv6.pcap",
    "ndpi__os_detected.pcapng",
    "ndpi__tls_ech.pcapng",
    "ndpi__tls_esni_sni_both.pcap",
    "zeek__tls_tls13-ech.pcap",
    "zeek__wikipedia.pcap",  # plain HTTP only: no ClientHello on either side
)
"""Corpus files with a TLS ClientHello over TCP (`tshark -Y 'tls.handshake.type == 1'`), and wikipedia."""

QUIC_FILES = (
    "ndpi__quic-v2.pcapng",
    "suricata-verify__ja4-tls-quic.pcap",  # a TLS connection and a QUIC one to the same server
    "zeek__quic_curl-8.1.2-dev-http3-www-google-de.pcap",
)
"""Corpus files with a QUIC client Initial that tshark 4.0 decrypts (the same display filter shows it)."""

HTTP_FILES = (
    "ndpi__android.pcap",
    "ndpi__ipp.pcap",
    "suricata-verify__decode-sll2-02.pcap",
    "zeek__http-vlan-0.pcap",
    "zeek__mixed-vlan-mpls.pcap",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Corpus files with an HTTP request over TCP (`tshark -Y 'http.request and tcp'`)."""

HELLO_FIELDS = ("ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport",
                "udp.dstport", "tls.handshake.extensions_server_name")
HTTP_FIELDS = ("ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "http.host")

FlowKey = tuple[str, int, str, int, str]
"""(client address, client port, server address, server port, name)."""


def _tshark_rows(tshark: str, path: Path, shown: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    cmd = [tshark, "-r", str(path), "-Y", shown, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    cmd += [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines() if line.strip()]


def _address(text: str) -> str:
    return ipaddress.ip_address(text).compressed


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _name(text: str) -> str | None:
    """A wire name as the stage keeps it, None when it keeps none."""
    name = text.strip().lower().rstrip(".")
    return None if not name or _is_address(name) else name


def _host_name(host: str) -> str | None:
    """An HTTP Host as the stage keeps it: the port dropped, an address literal refused."""
    text = host.strip()
    if not text or text.startswith("["):
        return None
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return _name(text)


def _endpoints(row: dict[str, str], proto: str) -> tuple[str, int, str, int]:
    return (_address(row["ip.src"] or row["ipv6.src"]), int(row[f"{proto}.srcport"]),
            _address(row["ip.dst"] or row["ipv6.dst"]), int(row[f"{proto}.dstport"]))


def tshark_hellos(tshark: str, path: Path) -> tuple[set[FlowKey], set[str]]:
    """Return the (client, port, server, port, SNI) of every ClientHello with a name, and every client address."""
    keys: set[FlowKey] = set()
    clients: set[str] = set()
    for row in _tshark_rows(tshark, path, "tls.handshake.type == 1", HELLO_FIELDS):
        proto = "udp" if row["udp.dstport"] else "tcp"
        client, cport, server, sport = _endpoints(row, proto)
        clients.add(client)
        name = _name(row["tls.handshake.extensions_server_name"])
        if name is not None:
            keys.add((client, cport, server, sport, name))
    return keys, clients


def tshark_http_hosts(tshark: str, path: Path) -> tuple[set[FlowKey], set[str]]:
    """Return the Host of each TCP connection's first HTTP request (the one the stage names it by)."""
    first: dict[tuple[str, int, str, int], str] = {}
    for row in _tshark_rows(tshark, path, "http.request and tcp", HTTP_FIELDS):
        first.setdefault(_endpoints(row, "tcp"), row["http.host"])
    keys = {(*ends, name) for ends, host in first.items() if (name := _host_name(host)) is not None}
    return keys, {ends[0] for ends in first}


def run_names(path: Path, clients: set[str]) -> list[dict[str, Any]]:
    """Run the pipeline with the names stage, `clients` counted local; return the flow documents."""
    extra = tuple(f"{c}/{32 if ':' not in c else 128}" for c in sorted(clients))
    settings = Settings(local_networks=DEFAULT_LOCAL_NETWORKS + extra)
    names = NameStage()
    payloads = fingerprint_payloads(EvidenceTable(SignatureSet([], [])), Counter(),
                                    LocalNetworks(settings.local_networks), names)
    docs: list[dict[str, Any]] = []
    stats = analyze_files([path], settings, lambda r: docs.extend(flow_documents(with_community_ids(r))),
                          payloads, prefetch=False, names=names)
    assert not stats.errors
    assert stats.to_dict()["payload_handler_crashes"] == {}
    assert sum(v for k, v in names.summary().items() if k.startswith("flows_")) == len(docs)
    return docs


def named(docs: list[dict[str, Any]], sources: tuple[str, ...]) -> Counter[FlowKey]:
    """(client, port, server, port, name) of the flows named from one of `sources`, client first even when
    the flow table took the server for the initiator (the name is then on the source side)."""
    out: Counter[FlowKey] = Counter()
    for d in docs:
        if d["auditor"]["name_source"] not in sources:
            continue
        src, dst = d["source"], d["destination"]
        if "domain" in src:  # a mid-stream connection that looked inbound: its client is the responder
            out[(dst["ip"], dst["port"], src["ip"], src["port"], src["domain"])] += 1
        else:
            out[(src["ip"], src["port"], dst["ip"], dst["port"], dst["domain"])] += 1
    return out


@pytest.mark.parametrize("name", TLS_FILES + QUIC_FILES)
def test_sni_and_quic_sni_equal_tsharks_server_name(corpus: Path, tshark: str, name: str) -> None:
    path = corpus / name
    if not path.exists():
        pytest.skip(f"{name} not in the corpus")
    theirs, clients = tshark_hellos(tshark, path)
    docs = run_names(path, clients)
    ours = named(docs, ("sni", "quic"))
    assert all(n == 1 for n in ours.values()), ours  # one flow per connection
    assert set(ours) == theirs
    # the coarser comparison the brief states: (client, server, server port, name)
    assert {(c, s, p, n) for c, _, s, p, n in ours} == {(c, s, p, n) for c, _, s, p, n in theirs}
    # QUIC flows are named 'quic', TCP ones 'sni'
    for d in docs:
        source = d["auditor"]["name_source"]
        if source in ("sni", "quic"):
            assert d["network"]["transport"] == ("udp" if source == "quic" else "tcp")


def test_the_corpus_gives_names_of_both_kinds(corpus: Path, tshark: str) -> None:
    """A guard on the comparison above: it compares real names, not two empty sets."""
    sources: Counter[str] = Counter()
    for name in ("ndpi__android.pcap", "zeek__tls_tls13-ech.pcap", "suricata-verify__ja4-tls-quic.pcap",
                 "zeek__quic_curl-8.1.2-dev-http3-www-google-de.pcap"):
        path = corpus / name
        if not path.exists():
            pytest.skip(f"{name} not in the corpus")
        _, clients = tshark_hellos(tshark, path)
        sources.update(d["auditor"]["name_source"] for d in run_names(path, clients))
    assert sources["sni"] >= 18 + 2 + 1
    assert sources["quic"] >= 2


@pytest.mark.parametrize("name", HTTP_FILES)
def test_http_host_names_equal_tsharks_first_host(corpus: Path, tshark: str, name: str) -> None:
    path = corpus / name
    if not path.exists():
        pytest.skip(f"{name} not in the corpus")
    theirs, clients = tshark_http_hosts(tshark, path)
    ours = named(run_names(path, clients), ("http-host",))
    assert all(n == 1 for n in ours.values()), ours
    assert set(ours) == theirs
