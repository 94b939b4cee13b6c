"""mdns.parse: what an mDNS / DNS-SD message says about its sender."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import dns, mdns
from auditor.protocols.mdns import MdnsRecord
from tests.protocols.test_dns import DLINK_PROBE, encode_name, message, question, resource, txt

# iotsentinel__D-LinkDayCam_Setup-C-1.pcap: the DCS-930LB camera's announcement
DLINK_ANNOUNCE = (
    b"\x00\x00\x84\x00\x00\x00\x00\x06\x00\x00\x00\x00\x11DCS-930LB1_1C7185\x05local\x00\x00\x01\x80\x01\x00\x00\x00<"
    b"\x00\x04\n\n\n:\x0258\x0210\x0210\x0210\x07in-addr\x04arpa\x00\x00\x0c\x80\x01\x00\x00\x00<\x00\x02\xc0\x0c\x10"
    b"DCS-930LB_1C7185\x05_http\x04_tcp\xc0\x1e\x00!\x80\x01\x00\x00\x00x\x00\x08\x00\x00\x00\x00\x00P\xc0\x0c\xc0Y"
    b"\x00\x10\x80\x01\x00\x00\x11\x94\x00\x01\x00\t_services\x07_dns-sd\x04_udp\xc0\x1e\x00\x0c\x00\x01\x00\x00\x11"
    b"\x94\x00\x02\xc0j\xc0j\x00\x0c\x00\x01\x00\x00\x11\x94\x00\x02\xc0Y"
)
# iotsentinel__EdimaxCam2_Setup-C-2.pcap: the IC-3115W camera's announcement (instance name with a leading space)
EDIMAX_ANNOUNCE = (
    b"\x00\x00\x84\x00\x00\x00\x00\x06\x00\x00\x00\x00\x08localcam\x05local\x00\x00\x01\x80\x01\x00\x00\x00x\x00\x04"
    b"\n\n\n\xe3\x03227\x0210\x0210\x0210\x07in-addr\x04arpa\x00\x00\x0c\x80\x01\x00\x00\x00x\x00\x02\xc0\x0c\x14 [74:"
    b"da:38:80:79:fc]\x05_http\x04_tcp\xc0\x15\x00!\x80\x01\x00\x00\x00x\x00\x08\x00\x00\x00\x00\x00P\xc0\x0c\xc0Q\x00"
    b"\x10\x80\x01\x00\x00\x11\x94\x00\x18\x17IC-3115W Network Camera\t_services\x07_dns-sd\x04_udp\xc0\x15\x00\x0c\x00"
    b"\x01\x00\x00\x11\x94\x00\x02\xc0f\xc0f\x00\x0c\x00\x01\x00\x00\x11\x94\x00\x02\xc0Q"
)
# ndpi__android.pcap and zeek__dns_mdns.pcap: service browsing
SPOTIFY_QUERY = (
    b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x10_spotify-connect\x04_tcp\x05local\x00\x00\x0c\x00\x01"
)
IPP_QUERY = (
    b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x04_ipp\x04_tcp\x05local\x00\x00\x0c\x00\x01"
    b"\x05_ipps\xc0\x11\x00\x0c\x00\x01"
)
# zeek__wikipedia.pcap: a query with a known answer (a TXT record it already holds)
GOMEZ_KNOWN_ANSWER = (
    b"\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x05gomez\t_sftp-ssh\x04_tcp\x05local\x00\x00\x10\x00\x01\xc0\x0c"
    b"\x00\x10\x00\x01\x00\x00\x11\x94\x00\x01\x00"
)


def axis_announce() -> bytes:
    """Return an Axis camera's DNS-SD announcement (service type from fingerprints.md B10)."""
    instance = "AXIS M3045-V - ACCC8E123456._axis-video._tcp.local"
    srv = struct.pack(">HHH", 0, 0, 80) + encode_name("axis-accc8e123456.local")
    return message(
        0x8400,
        answers=[
            resource("_services._dns-sd._udp.local", dns.TYPE_PTR, encode_name("_axis-video._tcp.local")),
            resource("_axis-video._tcp.local", dns.TYPE_PTR, encode_name(instance)),
            resource(instance, dns.TYPE_SRV, srv, rclass=0x8001),
            resource(instance, dns.TYPE_TXT, txt(b"macaddress=ACCC8E123456", b"", b"path=/")),
        ],
        additional=[resource("axis-accc8e123456.local", dns.TYPE_A, bytes([192, 168, 0, 90]), rclass=0x8001)],
    )


GOOD = (DLINK_PROBE, DLINK_ANNOUNCE, EDIMAX_ANNOUNCE, SPOTIFY_QUERY, IPP_QUERY, axis_announce())


def test_mdns_parse_reads_a_camera_probe() -> None:
    rec = mdns.parse(DLINK_PROBE)
    assert rec == MdnsRecord(
        is_response=False,
        queries=("dcs-930lb1_1c7185", "dcs-930lb_1c7185._http._tcp"),
        services=("_http._tcp",),
        instances=("dcs-930lb_1c7185",),
        hostnames=("dcs-930lb1_1c7185",),
    )
    assert list(rec.facts()) == [
        ("query", "dcs-930lb1_1c7185"),
        ("query", "dcs-930lb_1c7185._http._tcp"),
        ("service", "_http._tcp"),
        ("instance", "dcs-930lb_1c7185"),
        ("hostname", "dcs-930lb1_1c7185"),
    ]


def test_mdns_parse_reads_a_camera_announcement() -> None:
    rec = mdns.parse(DLINK_ANNOUNCE)
    assert rec == MdnsRecord(
        is_response=True,
        services=("_http._tcp",),
        instances=("dcs-930lb_1c7185",),
        hostnames=("dcs-930lb1_1c7185",),
        txt=(),
    )


def test_mdns_parse_reads_txt_attributes() -> None:
    rec = mdns.parse(EDIMAX_ANNOUNCE)
    assert rec is not None
    assert list(rec.facts()) == [
        ("service", "_http._tcp"),
        ("instance", "[74:da:38:80:79:fc]"),
        ("hostname", "localcam"),
        ("txt", "IC-3115W Network Camera"),
    ]


def test_mdns_parse_reads_an_axis_announcement() -> None:
    rec = mdns.parse(axis_announce())
    assert rec is not None
    assert list(rec.facts()) == [
        ("service", "_axis-video._tcp"),
        ("instance", "axis m3045-v - accc8e123456"),
        ("hostname", "axis-accc8e123456"),
        ("txt", "macaddress=ACCC8E123456"),
        ("txt", "path=/"),
    ]


def test_mdns_parse_reads_service_browsing() -> None:
    rec = mdns.parse(SPOTIFY_QUERY)
    assert rec == MdnsRecord(is_response=False, queries=("_spotify-connect._tcp",))
    rec = mdns.parse(IPP_QUERY)
    assert rec is not None
    assert list(rec.facts()) == [("query", "_ipp._tcp"), ("query", "_ipps._tcp")]
    meta = message(0, questions=[question("_services._dns-sd._udp.local", dns.TYPE_PTR)])
    assert mdns.parse(meta) == MdnsRecord(is_response=False, queries=("_services._dns-sd._udp",))


def test_mdns_parse_ignores_known_answers_in_queries() -> None:
    rec = mdns.parse(GOMEZ_KNOWN_ANSWER)
    assert rec == MdnsRecord(is_response=False, queries=("gomez._sftp-ssh._tcp",))


def test_mdns_parse_reads_subtypes_and_reverse_pointers() -> None:
    payload = message(
        0x8400,
        answers=[
            resource("_printer._sub._http._tcp.local", dns.TYPE_PTR, encode_name("Lobby._http._tcp.local")),
            resource("64.1.168.192.in-addr.arpa", dns.TYPE_PTR, encode_name("NVR-Lobby.local")),
        ],
    )
    rec = mdns.parse(payload)
    assert rec == MdnsRecord(is_response=True, services=("_http._tcp",), instances=("lobby",), hostnames=("nvr-lobby",))


def test_mdns_parse_deduplicates_values() -> None:
    payload = message(0x8400, answers=[resource("cam.local", dns.TYPE_A, bytes([10, 0, 0, n])) for n in range(5)])
    assert mdns.parse(payload) == MdnsRecord(is_response=True, hostnames=("cam",))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x84\x00",
        message(0x2800, questions=[question("cam.local", 1)]),  # opcode 5 (UPDATE)
        message(0x8403, answers=[resource("cam.local", 1, b"\x0a\0\0\1")]),  # rcode 3
        b"M-SEARCH * HTTP/1.1\r\n",
    ],
)
def test_mdns_parse_rejects_non_mdns(payload: bytes) -> None:
    assert mdns.parse(payload) is None


def test_mdns_parse_caps_names_and_txt() -> None:
    answers = [
        resource(f"_svc{n}._tcp.local", dns.TYPE_PTR, encode_name(f"cam{n}._svc{n}._tcp.local")) for n in range(60)
    ]
    answers.append(resource("cam._http._tcp.local", dns.TYPE_TXT, txt(*(f"k{n}=v".encode() for n in range(60)))))
    rec = mdns.parse(message(0x8400, answers=answers))
    assert rec is not None
    assert len(rec.services) == mdns.MAX_NAMES
    assert len(rec.instances) == mdns.MAX_NAMES
    assert len(rec.txt) == mdns.MAX_TXT_PAIRS


def test_mdns_parse_bounds_a_huge_payload() -> None:
    # 1 MB: thousands of TXT strings of 255 bytes behind a header claiming 65535 answers
    rdata = txt(*([b"k=" + b"v" * 253] * 255))
    payload = struct.pack(">HHHHHH", 0, 0x8400, 0, 0xFFFF, 0, 0) + resource("cam._http._tcp.local", 16, rdata) * 16
    assert len(payload) > 1_000_000
    rec = mdns.parse(payload)
    assert rec is not None
    assert rec.txt == ("k=" + "v" * 253,)
    assert rec.services == ("_http._tcp",)


@given(st.binary(max_size=2048))
def test_mdns_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    rec = mdns.parse(payload)
    assert rec is None or isinstance(rec, MdnsRecord)
    if rec is not None:
        list(rec.facts())


@pytest.mark.parametrize("good", GOOD)
def test_mdns_parse_survives_every_truncation(good: bytes) -> None:
    assert mdns.parse(good) is not None
    for n in range(len(good) + 1):
        rec = mdns.parse(good[:n])
        assert rec is None or isinstance(rec, MdnsRecord)


MDNS_FILES = (
    "iotsentinel__D-LinkDayCam_Setup-C-1.pcap",
    "iotsentinel__EdimaxCam2_Setup-C-2.pcap",
    "ndpi__android.pcap",
    "zeek__dns_mdns.pcap",
    "zeek__igmp_home-multicast-short.pcap",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Corpus files with mDNS on UDP 5353."""


@pytest.mark.corpus
def test_mdns_parse_reads_every_corpus_message(corpus: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    seen = 0
    for name in MDNS_FILES:
        with PcapReader(str(corpus / name)) as reader:
            for pkt in reader:
                if UDP in pkt and 5353 in (pkt[UDP].sport, pkt[UDP].dport):
                    rec = mdns.parse(bytes(pkt[UDP].payload))
                    assert rec is not None, (name, bytes(pkt[UDP].payload)[:64])
                    assert list(rec.facts()), name
                    seen += 1
    assert seen >= 60
