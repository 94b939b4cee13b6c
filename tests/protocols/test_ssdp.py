"""ssdp.parse: NOTIFY, M-SEARCH and search responses on UDP 1900, and UPnP IGD searches."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import ssdp
from auditor.protocols.ssdp import SsdpRecord

# iotsentinel__D-LinkDayCam_Setup-C-1.pcap: the D-Link DCS-930LB camera (MANIFEST: 'Cellvision UPnP/1.0')
DLINK_NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
    b"LOCATION: http://10.10.10.58:8021/rootdesc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
    b"SERVER: Cellvision UPnP/1.0\r\nUSN: uuid:ae67e622-7a66-465e-bab0-b0c5541c7185::upnp:rootdevice\r\n\r\n"
)
DLINK_IGD_SEARCH = (
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b'ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMAN: "ssdp:discover"\r\nMX: 3\r\n\r\n'
)
# iotsentinel__EdimaxCam2_Setup-C-2.pcap: the Edimax IC-3115W camera (MANIFEST: 'Embedded UPnP/1.0')
EDIMAX_NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=300\r\n"
    b"LOCATION: http://10.10.10.227:80/IPCamDesc.xml\r\nSERVER: Embedded UPnP/1.0\r\nNT: upnp:rootdevice\r\n"
    b"USN: uuid:upnp-BasicDevice-1_0-74DA388079FC::upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n"
)
EDIMAX_BYEBYE = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: BasicDevice1\r\n"
    b"USN: uuid:upnp-BasicDevice-1_0-74DA388079FC::BasicDevice1\r\nNTS: ssdp:byebye\r\n\r\n"
)
EDIMAX_WANIP_SEARCH = (
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b'ST: urn:schemas-upnp-org:service:WANIPConnection:1\r\nMAN: "ssdp:discover"\r\nMX: 2\r\n\r\n'
)
EDIMAX_WANPPP_SEARCH = EDIMAX_WANIP_SEARCH.replace(b"WANIPConnection", b"WANPPPConnection")
EDIMAX_ROOT_SEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: upnp:rootdevice\r\nMAN: "ssdp:discover"\r\nMX: 2\r\n\r\n'
)
# suricata-verify__sip-ssdp-pm_ssdp.pcap: a MiniUPnPd router; note the 'lOCATION' spelling
TOMATO_NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=120\r\n"
    b"lOCATION: http://192.168.1.1:7406/rootDesc.xml\r\n"
    b"SERVER: UPnP/Tomato 1.28.7500 MIPSR2Toastman-RT K26 USB Ext UPnP/1.0 MiniUPnPd/1.6\r\nNT: upnp:rootdevice\r\n"
    b"USN: uuid:04645c3d-e6b4-4eea-bd35-5c320c12969f::upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
    b'OPT: "http://schemas.upnp.org/upnp/1/0/";\r\n01-NLS: 1\r\nBOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n'
)
# ndpi__android.pcap: a DIAL search with a trailing NUL after the head
ANDROID_DIAL_SEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
    b"ST: urn:dial-multiscreen-org:service:dial:1\r\n\r\n\x00"
)
# ndpi__ssdp-m-search.pcap: a bare M-SEARCH line (Plex GDM on udp/32412)
BARE_SEARCH = b"M-SEARCH * HTTP/1.1\r\n"
# An Axis camera's search response; SERVER shaped like recog's Axis pattern (fingerprints.md B9)
AXIS_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Mon, 06 May 2024 10:00:00 GMT\r\nEXT:\r\n"
    b"LOCATION: http://192.168.0.90:49152/rootdesc1.xml\r\n"
    b"SERVER: Linux/2.6.35-axis1, UPnP/1.0, Portable SDK for UPnP devices/1.6.18\r\n"
    b"ST: upnp:rootdevice\r\nUSN: uuid:Upnp-BasicDevice-1_0-ACCC8E123456::upnp:rootdevice\r\n\r\n"
)

GOOD = (DLINK_NOTIFY, DLINK_IGD_SEARCH, EDIMAX_NOTIFY, TOMATO_NOTIFY, ANDROID_DIAL_SEARCH, AXIS_RESPONSE)


def test_ssdp_parse_reads_a_camera_notify() -> None:
    rec = ssdp.parse(DLINK_NOTIFY)
    assert rec == SsdpRecord(
        method="NOTIFY",
        server="Cellvision UPnP/1.0",
        usn="uuid:ae67e622-7a66-465e-bab0-b0c5541c7185::upnp:rootdevice",
        nt="upnp:rootdevice",
        nts="ssdp:alive",
        location="http://10.10.10.58:8021/rootdesc.xml",
    )
    assert list(rec.facts()) == [
        ("method", "NOTIFY"),
        ("server", "Cellvision UPnP/1.0"),
        ("usn", "uuid:ae67e622-7a66-465e-bab0-b0c5541c7185::upnp:rootdevice"),
        ("nt", "upnp:rootdevice"),
        ("location", "http://10.10.10.58:8021/rootdesc.xml"),
    ]


def test_ssdp_parse_reads_the_edimax_notify_and_byebye() -> None:
    rec = ssdp.parse(EDIMAX_NOTIFY)
    assert rec is not None
    assert (rec.server, rec.location, rec.nts) == (
        "Embedded UPnP/1.0",
        "http://10.10.10.227:80/IPCamDesc.xml",
        "ssdp:alive",
    )
    rec = ssdp.parse(EDIMAX_BYEBYE)
    assert rec == SsdpRecord(
        method="NOTIFY",
        usn="uuid:upnp-BasicDevice-1_0-74DA388079FC::BasicDevice1",
        nt="BasicDevice1",
        nts="ssdp:byebye",
    )


@pytest.mark.parametrize(
    ("payload", "st"),
    [
        (DLINK_IGD_SEARCH, "urn:schemas-upnp-org:device:InternetGatewayDevice:1"),
        (EDIMAX_WANIP_SEARCH, "urn:schemas-upnp-org:service:WANIPConnection:1"),
        (EDIMAX_WANPPP_SEARCH, "urn:schemas-upnp-org:service:WANPPPConnection:1"),
    ],
)
def test_ssdp_parse_flags_igd_searches(payload: bytes, st: str) -> None:
    rec = ssdp.parse(payload)
    assert rec == SsdpRecord(method="M-SEARCH", st=st, igd_search=True)
    assert list(rec.facts()) == [("method", "M-SEARCH"), ("st", st), ("igd_search", "true")]


def test_ssdp_parse_does_not_flag_other_searches_or_router_announcements() -> None:
    rec = ssdp.parse(EDIMAX_ROOT_SEARCH)
    assert rec == SsdpRecord(method="M-SEARCH", st="upnp:rootdevice")
    router = TOMATO_NOTIFY.replace(b"NT: upnp:rootdevice", b"NT: urn:schemas-upnp-org:device:InternetGatewayDevice:1")
    rec = ssdp.parse(router)
    assert rec is not None
    assert rec.nt == "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    assert not rec.igd_search  # the router announcing itself is not looking for one
    response = AXIS_RESPONSE.replace(b"ST: upnp:rootdevice", b"ST: urn:schemas-upnp-org:service:WANIPConnection:1")
    rec = ssdp.parse(response)
    assert rec is not None
    assert not rec.igd_search


def test_ssdp_parse_reads_headers_case_insensitively() -> None:
    rec = ssdp.parse(TOMATO_NOTIFY)
    assert rec is not None
    assert rec.location == "http://192.168.1.1:7406/rootDesc.xml"
    assert rec.server == "UPnP/Tomato 1.28.7500 MIPSR2Toastman-RT K26 USB Ext UPnP/1.0 MiniUPnPd/1.6"


def test_ssdp_parse_reads_a_search_response() -> None:
    rec = ssdp.parse(AXIS_RESPONSE)
    assert rec == SsdpRecord(
        method="RESPONSE",
        server="Linux/2.6.35-axis1, UPnP/1.0, Portable SDK for UPnP devices/1.6.18",
        usn="uuid:Upnp-BasicDevice-1_0-ACCC8E123456::upnp:rootdevice",
        st="upnp:rootdevice",
        location="http://192.168.0.90:49152/rootdesc1.xml",
    )


def test_ssdp_parse_reads_user_agents() -> None:
    rec = ssdp.parse(ANDROID_DIAL_SEARCH)
    assert rec == SsdpRecord(method="M-SEARCH", st="urn:dial-multiscreen-org:service:dial:1")
    with_ua = EDIMAX_ROOT_SEARCH.replace(b"MX: 2\r\n", b"MX: 2\r\nUSER-AGENT: Android/9 UPnP/1.1 Chrome/79\r\n")
    rec = ssdp.parse(with_ua)
    assert rec is not None
    assert rec.user_agent == "Android/9 UPnP/1.1 Chrome/79"
    assert ("user_agent", "Android/9 UPnP/1.1 Chrome/79") in list(rec.facts())
    x_ua = EDIMAX_ROOT_SEARCH.replace(b"MX: 2\r\n", b"MX: 2\r\nX-User-Agent: redsonic\r\n")
    rec = ssdp.parse(x_ua)
    assert rec is not None
    assert rec.user_agent == "redsonic"


def test_ssdp_parse_reads_lf_only_and_bare_messages() -> None:
    # UniversalScanner SSDP.selftest: LF line ends, no space after the colon
    selftest = (
        b"NOTIFY * HTTP/1.1\nHOST:239.255.255.250:1900\nCACHE-CONTROL:max-age=1810\n"
        b"LOCATION:http://240.0.1.0/rootDesc.xml\nSERVER: Universal Scanner/0.0, Virtual/1.0\n"
        b"NT:uuid:unique-id-12345678\nUSN:uuid:unique-id-12345678\nNTS:ssdp:alive\n "
    )
    assert ssdp.parse(selftest) == SsdpRecord(
        method="NOTIFY",
        server="Universal Scanner/0.0, Virtual/1.0",
        usn="uuid:unique-id-12345678",
        nt="uuid:unique-id-12345678",
        nts="ssdp:alive",
        location="http://240.0.1.0/rootDesc.xml",
    )
    assert ssdp.parse(BARE_SEARCH) == SsdpRecord(method="M-SEARCH")


def test_ssdp_parse_skips_empty_values() -> None:
    rec = ssdp.parse(b"NOTIFY * HTTP/1.1\r\nSERVER:\r\nNT:   \r\nUSN: uuid:1\r\n\r\n")
    assert rec == SsdpRecord(method="NOTIFY", usn="uuid:1")
    assert list(rec.facts()) == [("method", "NOTIFY"), ("usn", "uuid:1")]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01\x02",
        b"GET / HTTP/1.1\r\nHost: cam\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nST: upnp:rootdevice\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: Hikvision-Webs\r\n\r\n",  # a web reply: no ST or USN
        b"NOTIFY\r\n",
        b"NOTIFY * SIP/2.0\r\n",
        b"M-SEARCH * HTTP/1.1 extra\r\n",
        b'<?xml version="1.0"?><Probe/>',
    ],
)
def test_ssdp_parse_rejects_other_payloads(payload: bytes) -> None:
    assert ssdp.parse(payload) is None


def test_ssdp_parse_bounds_a_huge_payload() -> None:
    payload = b"NOTIFY * HTTP/1.1\r\nSERVER: " + b"S" * 5000 + b"\r\n" + b"X-Pad: 1\r\n" * 100_000 + b"USN: late\r\n"
    assert len(payload) > 1_000_000
    rec = ssdp.parse(payload)
    assert rec is not None
    assert rec.server == "S" * 256
    assert rec.usn is None  # beyond the header cap


@given(st.binary(max_size=2048))
def test_ssdp_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    rec = ssdp.parse(payload)
    assert rec is None or isinstance(rec, SsdpRecord)


@given(st.lists(st.sampled_from(["ST", "NT", "USN", "SERVER", "LOCATION", "USER-AGENT", "x"]), max_size=8), st.text())
def test_ssdp_parse_never_raises_on_odd_header_values(names: list[str], value: str) -> None:
    payload = b"M-SEARCH * HTTP/1.1\r\n" + b"".join(f"{n}: {value}\r\n".encode(errors="replace") for n in names)
    rec = ssdp.parse(payload)
    assert rec is None or isinstance(rec, SsdpRecord)
    if rec is not None:
        list(rec.facts())


@pytest.mark.parametrize("good", GOOD)
def test_ssdp_parse_survives_every_truncation(good: bytes) -> None:
    assert ssdp.parse(good) is not None
    for n in range(len(good) + 1):
        rec = ssdp.parse(good[:n])
        assert rec is None or isinstance(rec, SsdpRecord)


SSDP_FILES = (
    "iotsentinel__D-LinkDayCam_Setup-C-1.pcap",
    "iotsentinel__EdimaxCam2_Setup-C-2.pcap",
    "ndpi__android.pcap",
    "ndpi__ssdp-m-search.pcap",
    "suricata-verify__sip-ssdp-pm_ssdp.pcap",
    "zeek__igmp_home-multicast-short.pcap",
)
"""Corpus files with SSDP (MANIFEST.md quick index; ndpi__ssdp-m-search.pcap sends it to udp/32412)."""


@pytest.mark.corpus
def test_ssdp_parse_reads_every_corpus_message(corpus: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    servers: set[str] = set()
    igd = seen = 0
    for name in SSDP_FILES:
        with PcapReader(str(corpus / name)) as reader:
            for pkt in reader:
                ports = {1900, 32412} if name == "ndpi__ssdp-m-search.pcap" else {1900}
                if UDP not in pkt or not {pkt[UDP].sport, pkt[UDP].dport} & ports:
                    continue
                payload = bytes(pkt[UDP].payload)
                rec = ssdp.parse(payload)
                assert rec is not None, (name, payload[:64])
                seen += 1
                igd += rec.igd_search
                if rec.server:
                    servers.add(rec.server)
    assert seen == 61
    assert igd == 9  # 3 from the D-Link camera, 6 from the Edimax
    assert {"Cellvision UPnP/1.0", "Embedded UPnP/1.0"} <= servers
