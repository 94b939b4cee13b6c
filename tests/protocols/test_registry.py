"""The parser registry (protocols/__init__.py): every parser's contract, flow-head dispatch, and the demo end to end."""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.config import Settings
from auditor.devices.evidence import EvidenceTable
from auditor.pipeline import analyze_files, fingerprint_payloads
from auditor.protocols import ETHERTYPE_PARSERS, PORT_PARSERS, Parser, dahua, parse_flow_head
from auditor.protocols.types import Record
from tests.protocols.test_dahua import (
    DVRIP_REALM_REQUEST,
    GOOD_DHIP,
    GOOD_DVRIP,
    GOOD_E4,
    GOOD_V1,
)
from tests.protocols.test_dhcp import GOOD as GOOD_DHCP
from tests.protocols.test_dhcp6 import GOOD as GOOD_DHCP6
from tests.protocols.test_dns import GOOD as GOOD_DNS
from tests.protocols.test_http import DAHUA_RTSP_OPTIONS, ISAPI_REQUEST
from tests.protocols.test_http import GOOD as GOOD_HEADS
from tests.protocols.test_mdns import GOOD as GOOD_MDNS
from tests.protocols.test_sadp import GOOD_LEGACY, GOOD_XML
from tests.protocols.test_ssdp import GOOD as GOOD_SSDP
from tests.protocols.test_tls import CHROME_HELLO, SERVER_FLIGHT, client_hello, record, sni
from tests.protocols.test_wsdiscovery import GOOD as GOOD_WSD

DEMO = Path(__file__).resolve().parents[2] / "pcaps" / "demo-site.pcap"

MAX_VALUE = 4096
"""Longest fact value a parser may yield (characters); each parser caps its own strings well below this."""

FLOW_HEAD = "parse_flow_head"

PARSERS: dict[str, Parser] = {
    **{name: parse for name, _, _, parse in PORT_PARSERS},
    **{name: parse for name, _, parse in ETHERTYPE_PARSERS},
    FLOW_HEAD: parse_flow_head,
}
"""Every parser the pipeline calls, by its registry name."""

GOOD: dict[str, list[bytes]] = {
    "sadp": GOOD_XML,
    "dhip": GOOD_DHIP,
    "dahua-v1": GOOD_V1,
    "easy4ip": GOOD_E4,
    "wsdiscovery": list(GOOD_WSD),
    "ssdp": list(GOOD_SSDP),
    "mdns": list(GOOD_MDNS),
    "dns": list(GOOD_DNS),
    "dhcp": list(GOOD_DHCP),
    "dhcp6": list(GOOD_DHCP6),
    "sadp-ethernet": GOOD_LEGACY,
    FLOW_HEAD: [*GOOD_HEADS, *GOOD_DVRIP, CHROME_HELLO, SERVER_FLIGHT],
}
"""Payloads each parser reads (the per-protocol tests' samples), mutated by the property test below."""


def assert_record(rec: Record) -> None:
    """Check the Record contract: a str protocol, facts as (str, str) with clean names and capped, non-empty values."""
    assert isinstance(rec.protocol, str) and rec.protocol
    assert type(rec).protocol == rec.protocol  # a ClassVar of the record class, not per instance
    for fact in rec.facts():
        assert isinstance(fact, tuple) and len(fact) == 2, fact
        name, value = fact
        assert isinstance(name, str) and isinstance(value, str), fact
        assert name, fact
        assert not any(unicodedata.category(c) == "Cc" and c != "\t" for c in name), fact
        assert value, fact
        assert len(value) <= MAX_VALUE, (name, len(value))


def test_registry_good_samples_cover_every_parser() -> None:
    assert set(GOOD) == set(PARSERS)


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(payload=st.binary(max_size=2048))
def test_registry_parser_never_raises_on_random_bytes(name: str, payload: bytes) -> None:
    rec = PARSERS[name](payload)
    if rec is not None:
        assert_record(rec)


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(data=st.data())
def test_registry_parser_keeps_the_contract_on_mutated_samples(name: str, data: st.DataObject) -> None:
    good = data.draw(st.sampled_from(GOOD[name]))
    at = data.draw(st.integers(0, len(good)))
    junk = data.draw(st.binary(max_size=64))
    cut = data.draw(st.integers(0, len(good)))
    for payload in (good[:at] + junk + good[at + len(junk) :], good[:cut]):
        rec = PARSERS[name](payload)
        if rec is not None:
            assert_record(rec)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_registry_parser_reads_its_samples(name: str) -> None:
    for payload in GOOD[name]:
        rec = PARSERS[name](payload)
        assert rec is not None, (name, payload[:32])
        assert_record(rec)


@pytest.mark.parametrize(("name", "parse"), [(n, p) for n, _, _, p in PORT_PARSERS])
def test_registry_port_parser_records_carry_its_name(name: str, parse: Parser) -> None:
    # the pipeline counts refusals under the registry name and facts under record.protocol: the same word
    for payload in GOOD[name]:
        rec = parse(payload)
        assert rec is not None and rec.protocol == name


def test_registry_names_and_ports_are_unique() -> None:
    names = [name for name, _, _, _ in PORT_PARSERS] + [name for name, _, _ in ETHERTYPE_PARSERS]
    assert len(names) == len(set(names))
    assert FLOW_HEAD not in names
    ports = [(proto, port) for _, proto, port, _ in PORT_PARSERS]
    assert len(ports) == len(set(ports))
    ethertypes = [ethertype for _, ethertype, _ in ETHERTYPE_PARSERS]
    assert len(ethertypes) == len(set(ethertypes))


@pytest.mark.parametrize(
    ("payload", "protocol"),
    [
        (client_hello([0x1301, 0xC02F], [sni(b"cam.example")]), "tls"),
        (SERVER_FLIGHT, "tls"),
        (ISAPI_REQUEST, "http"),
        (DAHUA_RTSP_OPTIONS, "rtsp"),
        (DVRIP_REALM_REQUEST, "dvrip"),
    ],
    ids=["tls-client-hello", "tls-server-flight", "http-request", "rtsp-response", "dvrip"],
)
def test_parse_flow_head_dispatches_by_first_byte(payload: bytes, protocol: str) -> None:
    rec = parse_flow_head(payload)
    assert rec is not None
    assert rec.protocol == protocol


def test_parse_flow_head_reads_the_client_hello_sni() -> None:
    rec = parse_flow_head(client_hello([0x1301, 0xC02F], [sni(b"cam.example")]))
    assert rec is not None and ("sni", "cam.example") in list(rec.facts())


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        record(23, bytes(40), 0x0303),  # TLS application data
        record(20, b"\x01", 0x0303),  # TLS change_cipher_spec
        b"\x00",
        b"\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL before a head
        b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL inside the start line
        b"\x00" + DVRIP_REALM_REQUEST,
        b"get / HTTP/1.1\r\n\r\n",  # lower case is no request method
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ],
    ids=[
        "empty",
        "tls-app-data",
        "tls-ccs",
        "nul",
        "nul-then-head",
        "nul-in-start-line",
        "nul-then-dvrip",
        "lower-case",
        "ssh",
    ],
)
def test_parse_flow_head_gives_none_for_other_payloads(payload: bytes) -> None:
    assert parse_flow_head(payload) is None


def test_parse_flow_head_reaches_every_dvrip_command() -> None:
    # the dispatcher picks DVRIP by the first byte: a command code whose first byte it misses is never parsed
    for code in dahua.DVRIP_COMMANDS:
        header = code + bytes(dahua.DVRIP_HEADER_LEN - len(code))
        rec = parse_flow_head(header)
        assert rec is not None and rec.protocol == "dvrip", code.hex()


# --- the demo capture through the pipeline ---------------------------------------------------------


@pytest.fixture(scope="module")
def demo_evidence() -> tuple[EvidenceTable, Counter[str]]:
    """The demo capture run through fingerprint_payloads: (evidence table, refusals per parser)."""
    # the shipped signatures: facts that match one are always kept, the others only up to a cap per device
    from auditor.devices.signatures import load_signatures

    rules = Path(__file__).resolve().parents[2] / "rules"
    table = EvidenceTable(load_signatures(rules / "fingerprints", None))
    rejected: Counter[str] = Counter()
    analyze_files([DEMO], Settings(), lambda records: None, payloads=fingerprint_payloads(table, rejected))
    return table, rejected


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def test_demo_records_per_protocol(demo_evidence: tuple[EvidenceTable, Counter[str]]) -> None:
    table, rejected = demo_evidence
    assert table.records == {
        "sadp": 2,  # Hikvision camera, Hikvision Wi-Fi camera
        "dhip": 2,  # Dahua NVR, Lorex-OUI camera
        "wsdiscovery": 1,  # Hikvision camera Hello
        "ssdp": 1,  # EZVIZ M-SEARCH
        "mdns": 2,  # VMS query, Axis answer
        "dns": 5,  # the 5 queries (QUERY_ONLY: answers are not handed over)
        "dhcp": 4,  # Axis DISCOVER/OFFER/REQUEST/ACK
        "rtsp": 12,  # 3 RTSP flows x FLOW_HEAD_PACKETS (OPTIONS, 200, DESCRIBE, 401)
        "tls": 8,  # 4 sessions: ClientHello, ServerHello
        "http": 4,  # Axis GET and 200, scanner POST and 201
    }
    # nothing is refused: the flow-head payloads no parser reads (per TLS session the change_cipher_spec and
    # an application-data record, the later segments of the scanner's upload body) never leave numpy, since
    # their first byte is not in FLOW_HEAD_FIRST_BYTES
    assert rejected == {}


DEMO_FACTS: dict[str, set[tuple[str, str, str]]] = {
    "4c:bd:8f:21:10:21": {  # Hikvision camera
        ("sadp", "model", "DS-2CD2143G2-I"),
        ("sadp", "mac", "4C-BD-8F-21-10-21"),
        ("sadp", "ipv4", "192.168.10.21"),
        ("sadp", "firmware", "V5.7.3build 220112"),
        ("sadp", "oem_code", "1"),
        ("sadp", "hc_platform", "true"),
        ("sadp", "hc_platform_enabled", "false"),
        ("wsdiscovery", "message", "Hello"),
        ("wsdiscovery", "type", "NetworkVideoTransmitter"),
        ("wsdiscovery", "type", "Device"),
        ("wsdiscovery", "scope", "onvif://www.onvif.org/type/video_encoder"),
        ("wsdiscovery", "scope", "onvif://www.onvif.org/type/Network_Video_Transmitter"),
        ("wsdiscovery", "scope", "onvif://www.onvif.org/hardware/DS-2CD2143G2-I"),
        ("wsdiscovery", "scope", "onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G2-I"),
        ("wsdiscovery", "scope", "onvif://www.onvif.org/location/city/hangzhou"),
        ("wsdiscovery", "hardware", "DS-2CD2143G2-I"),
        ("wsdiscovery", "name", "HIKVISION DS-2CD2143G2-I"),
        ("wsdiscovery", "xaddr", "http://192.168.10.21/onvif/device_service"),
        ("rtsp", "status", "401"),
        ("rtsp", "realm", "Hikvision"),
        ("rtsp", "auth_scheme", "digest"),
    },
    "ac:cc:8e:4a:1b:2c": {  # Axis camera
        ("dhcp", "hostname", "axis-accc8e4a1b2c"),
        ("dhcp", "vendor_class", "AXIS,Network Camera,P3245-LV,10.12.182"),
        ("dhcp", "prl", "1,3,6,12,15,28,42"),
        ("mdns", "service", "_axis-video._tcp"),
        ("http", "status", "200"),
    },
    "3c:ef:8c:30:10:30": {  # Dahua NVR
        ("dhip", "method", "client.notifyDevInfo"),
        ("dhip", "device_type", "DHI-NVR4208-8P-4KS2/L"),
        ("dhip", "serial", "7K0DEMO0030"),
        ("dhip", "vendor", "General"),
        ("dhip", "firmware", "4.001.0000000.6"),
        ("dhip", "machine_name", "dahua-nvr"),
        ("dhip", "ipv4", "192.168.10.30"),
        ("dns", "query", "www.easy4ipcloud.com"),
        ("tls", "sni", "www.easy4ipcloud.com"),
        ("rtsp", "server", "Dahua Rtsp Server"),
        ("rtsp", "realm", "Login to 7K0DEMO0030"),
    },
    "58:8f:cf:40:10:40": {  # EZVIZ camera
        ("dns", "query", "litedev.ezvizlife.com"),
        ("tls", "sni", "litedev.ezvizlife.com"),
        ("ssdp", "method", "M-SEARCH"),
        ("ssdp", "st", "urn:schemas-upnp-org:device:InternetGatewayDevice:1"),
        ("ssdp", "igd_search", "true"),
    },
    "00:1f:54:50:10:50": {  # Lorex-OUI Dahua camera
        ("dhip", "device_type", "IPC-HDW2431T-AS-S2"),
        ("dhip", "serial", "7M0DEMO0050"),
        ("dhip", "vendor", "Lorex"),
        ("dhip", "firmware", "2.800.0000000.25.R"),
        ("dhip", "machine_name", "oem-dahua-cam"),
        ("rtsp", "server", "Dahua Rtsp Server"),
        ("rtsp", "realm", "Login to 7M0DEMO0050"),
    },
    "24:0a:c4:60:10:60": {  # Hikvision Wi-Fi camera
        ("sadp", "model", "DS-2CV2041G2-IDW"),
        ("sadp", "mac", "24-0A-C4-60-10-60"),
        ("sadp", "firmware", "V5.5.800build 230615"),
        ("sadp", "oem_code", "1"),
        ("sadp", "hc_platform", "true"),
        ("sadp", "hc_platform_enabled", "true"),
        ("dns", "query", "litedev.hik-connect.com"),
        ("tls", "sni", "litedev.hik-connect.com"),
    },
}
"""What pcaps/README.md says each demo camera states on the wire, as (protocol, field, value) facts."""


@pytest.mark.parametrize("mac", sorted(DEMO_FACTS))
def test_demo_camera_states_what_the_readme_says(demo_evidence: tuple[EvidenceTable, Counter[str]], mac: str) -> None:
    table, _ = demo_evidence
    device = table.get(_mac(mac))
    assert device is not None, mac
    missing = DEMO_FACTS[mac] - set(device.facts)
    assert not missing, (mac, sorted(missing))


def test_parse_flow_head_reads_nothing_that_the_first_byte_prefilter_drops() -> None:
    """The pipeline hands over only payloads starting with FLOW_HEAD_FIRST_BYTES: no other first byte may
    ever give a record, or the prefilter would lose it."""
    from auditor.protocols import FLOW_HEAD_FIRST_BYTES

    samples = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
               bytes.fromhex("16030100") + bytes(60), bytes.fromhex("a0010000") + bytes(28)]
    for first in range(256):
        if first in FLOW_HEAD_FIRST_BYTES:
            continue
        for sample in samples:
            assert parse_flow_head(bytes([first]) + sample[1:]) is None, (first, sample[:8])
