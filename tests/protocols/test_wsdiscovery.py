"""wsdiscovery.parse: ONVIF WS-Discovery envelopes, any namespace prefix, malformed XML tolerated."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import wsdiscovery
from auditor.protocols.wsdiscovery import WsDiscoveryRecord

# shared corpus ndpi__upnp.pcap: one of the 14 datagrams a Windows host sent to udp/3702 (all Resolve)
CORPUS_RESOLVE = (
    b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/'
    b'discovery"><soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To><wsa:Action>http://schemas'
    b".xmlsoap.org/ws/2005/04/discovery/Resolve</wsa:Action><wsa:MessageID>urn:uuid:3f42dc9a-24ce-48d1-88f9-16b96a137d71"
    b"</wsa:MessageID></soap:Header><soap:Body><wsd:Resolve><wsa:EndpointReference><wsa:Address>urn:uuid:e3248000-80ce-"
    b"11db-8000-001ba99ec956</wsa:Address></wsa:EndpointReference></wsd:Resolve></soap:Body></soap:Envelope>"
)

# UniversalScanner `Wsdiscovery.selftest` (fingerprints.md E): prefixes e:, a:, d:
SELFTEST_PROBE_MATCHES = b"""<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" \
xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<e:Header>
<a:MessageID>urn:uuid:11223344-5566-7788-9900-000000000000</a:MessageID>
<a:RelatesTo>urn:uuid:11223344-5566-7788-9900-000000000001</a:RelatesTo>
<a:To e:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
<a:Action e:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action>
<d:AppSequence InstanceId="2" MessageNumber="135"></d:AppSequence>
</e:Header>
<e:Body>
<d:ProbeMatches>
<d:ProbeMatch>
<a:EndpointReference>
<a:Address>urn:uuid:11223344-5566-7788-9900-000000000002</a:Address>
</a:EndpointReference>
<d:Types>Virtual tds:Device</d:Types>
<d:Scopes></d:Scopes>
<d:XAddrs>http://127.0.01/ http://[::1]/</d:XAddrs>
<d:MetadataVersion>2</d:MetadataVersion>
</d:ProbeMatch>
</d:ProbeMatches>
</e:Body>
</e:Envelope>"""

# A Hikvision camera's reply, laid out as fingerprints.md B8 describes (name/HIKVISION%20<model>, hardware/DS-...)
HIKVISION_PROBE_MATCHES = b"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" \
xmlns:wsadis="http://schemas.xmlsoap.org/ws/2004/08/addressing" \
xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" \
xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<env:Header><wsadis:MessageID>urn:uuid:6b2a5e3c-1dd2-11b2-8c6e-c42f90abcdef</wsadis:MessageID>
<wsadis:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsadis:RelatesTo>
<wsadis:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsadis:Action></env:Header>
<env:Body><d:ProbeMatches><d:ProbeMatch>
<wsadis:EndpointReference><wsadis:Address>urn:uuid:44454c4c-3400-1058-8032-c42f90abcdef</wsadis:Address>
</wsadis:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming \
onvif://www.onvif.org/MAC/C4:2F:90:AB:CD:EF onvif://www.onvif.org/hardware/DS-2CD2143G0-I \
onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G0-I onvif://www.onvif.org/location/city/hangzhou</d:Scopes>
<d:XAddrs>http://192.168.1.64/onvif/device_service http://[fe80::c62f:90ff:feab:cdef]/onvif/device_service</d:XAddrs>
<d:MetadataVersion>10</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>"""

# A Dahua camera's Hello, scopes as fingerprints.md B8 lists them; no Action header, other prefixes
DAHUA_HELLO = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/'
    b'discovery"><SOAP-ENV:Body><wsdd:Hello><wsa:EndpointReference><wsa:Address>urn:uuid:74f7e627-c54f-49fb-84ed-'
    b"6de9b7f588a5</wsa:Address></wsa:EndpointReference><wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types>"
    b"<wsdd:Scopes>onvif://www.onvif.org/location/country/china onvif://www.onvif.org/name/Dahua "
    b"onvif://www.onvif.org/hardware/DH-IPC-HDW1230T2 onvif://www.onvif.org/Profile/Streaming "
    b"onvif://www.onvif.org/type/Network_Video_Transmitter onvif://www.onvif.org/extension/unique_identifier/1 "
    b"onvif://www.onvif.org/Profile/T</wsdd:Scopes><wsdd:XAddrs>http://10.20.30.11/onvif/device_service</wsdd:XAddrs>"
    b"<wsdd:MetadataVersion>1</wsdd:MetadataVersion></wsdd:Hello></SOAP-ENV:Body></SOAP-ENV:Envelope>"
)

# What an ONVIF client or NVR multicasts to find cameras
NVR_PROBE = (
    b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:Action s:mustUnderstand="1">'
    b"http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>uuid:0a6dc791-2be6-4991-9af1-"
    b'454778a1917a</a:MessageID><a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
    b'</s:Header><s:Body><Probe xmlns="http://schemas.xmlsoap.org/ws/2005/04/discovery"><d:Types '
    b'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dp0="http://www.onvif.org/ver10/network/wsdl">'
    b"dp0:NetworkVideoTransmitter</d:Types></Probe></s:Body></s:Envelope>"
)

# WS-Discovery 1.1 (OASIS 2009/01) namespace, default namespaces (no prefixes at all)
WSDD11_BYE = (
    b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><Action xmlns="http://www.w3.org/2005/08/'
    b'addressing">http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Bye</Action></Header><Body>'
    b'<Bye xmlns="http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"><EndpointReference xmlns="http://www.w3.org/'
    b'2005/08/addressing"><Address>urn:uuid:5f5a69c2-e0ae-504f-829b-00409c9b3c44</Address></EndpointReference></Bye>'
    b"</Body></Envelope>"
)

GOOD = (CORPUS_RESOLVE, SELFTEST_PROBE_MATCHES, HIKVISION_PROBE_MATCHES, DAHUA_HELLO, NVR_PROBE, WSDD11_BYE)


def test_wsdiscovery_parse_reads_a_resolve_from_the_corpus() -> None:
    rec = wsdiscovery.parse(CORPUS_RESOLVE)
    assert rec == WsDiscoveryRecord(message="Resolve", endpoint="urn:uuid:e3248000-80ce-11db-8000-001ba99ec956")
    # the endpoint being resolved belongs to another device
    assert list(rec.facts()) == [("message", "Resolve")]


def test_wsdiscovery_parse_reads_the_selftest_probe_matches() -> None:
    rec = wsdiscovery.parse(SELFTEST_PROBE_MATCHES)
    assert rec == WsDiscoveryRecord(
        message="ProbeMatches",
        types=("Virtual", "Device"),
        xaddrs=("http://127.0.01/", "http://[::1]/"),
        endpoint="urn:uuid:11223344-5566-7788-9900-000000000002",
    )


def test_wsdiscovery_parse_reads_a_hikvision_probe_match() -> None:
    rec = wsdiscovery.parse(HIKVISION_PROBE_MATCHES)
    assert rec == WsDiscoveryRecord(
        message="ProbeMatches",
        types=("NetworkVideoTransmitter", "Device"),
        scopes=(
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/MAC/C4:2F:90:AB:CD:EF",
            "onvif://www.onvif.org/hardware/DS-2CD2143G0-I",
            "onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G0-I",
            "onvif://www.onvif.org/location/city/hangzhou",
        ),
        scope_types=("video_encoder",),
        hardware="DS-2CD2143G0-I",
        name="HIKVISION DS-2CD2143G0-I",
        locations=("city/hangzhou",),
        mac="c4:2f:90:ab:cd:ef",
        xaddrs=("http://192.168.1.64/onvif/device_service", "http://[fe80::c62f:90ff:feab:cdef]/onvif/device_service"),
        endpoint="urn:uuid:44454c4c-3400-1058-8032-c42f90abcdef",
    )
    assert list(rec.facts()) == [
        ("message", "ProbeMatches"),
        ("type", "NetworkVideoTransmitter"),
        ("type", "Device"),
        ("type", "video_encoder"),
        ("scope", "onvif://www.onvif.org/type/video_encoder"),
        ("scope", "onvif://www.onvif.org/Profile/Streaming"),
        ("scope", "onvif://www.onvif.org/MAC/C4:2F:90:AB:CD:EF"),
        ("scope", "onvif://www.onvif.org/hardware/DS-2CD2143G0-I"),
        ("scope", "onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G0-I"),
        ("scope", "onvif://www.onvif.org/location/city/hangzhou"),
        ("hardware", "DS-2CD2143G0-I"),
        ("name", "HIKVISION DS-2CD2143G0-I"),
        ("location", "city/hangzhou"),
        ("mac", "c4:2f:90:ab:cd:ef"),
        ("xaddr", "http://192.168.1.64/onvif/device_service"),
        ("xaddr", "http://[fe80::c62f:90ff:feab:cdef]/onvif/device_service"),
        ("endpoint", "urn:uuid:44454c4c-3400-1058-8032-c42f90abcdef"),
    ]


def test_wsdiscovery_parse_reads_a_dahua_hello_without_action() -> None:
    rec = wsdiscovery.parse(DAHUA_HELLO)
    assert rec is not None
    assert rec.message == "Hello"
    assert rec.types == ("NetworkVideoTransmitter", "Device")
    assert rec.scope_types == ("Network_Video_Transmitter",)
    assert (rec.hardware, rec.name, rec.locations, rec.mac) == ("DH-IPC-HDW1230T2", "Dahua", ("country/china",), None)
    assert rec.endpoint == "urn:uuid:74f7e627-c54f-49fb-84ed-6de9b7f588a5"
    assert len(rec.scopes) == 7
    facts = list(rec.facts())
    assert ("type", "Network_Video_Transmitter") in facts
    assert ("location", "country/china") in facts
    assert ("scope", "onvif://www.onvif.org/extension/unique_identifier/1") in facts


def test_wsdiscovery_parse_marks_probe_types_as_searched_for() -> None:
    rec = wsdiscovery.parse(NVR_PROBE)
    assert rec == WsDiscoveryRecord(message="Probe", types=("NetworkVideoTransmitter",))
    assert list(rec.facts()) == [("message", "Probe"), ("probe_type", "NetworkVideoTransmitter")]


def test_wsdiscovery_parse_reads_ws_dd_1_1_without_prefixes() -> None:
    rec = wsdiscovery.parse(WSDD11_BYE)
    assert rec == WsDiscoveryRecord(message="Bye", endpoint="urn:uuid:5f5a69c2-e0ae-504f-829b-00409c9b3c44")
    assert list(rec.facts()) == [("message", "Bye"), ("endpoint", "urn:uuid:5f5a69c2-e0ae-504f-829b-00409c9b3c44")]


def test_wsdiscovery_parse_tolerates_malformed_xml() -> None:
    # closing tags missing, line breaks inside lists, an entity, an unknown Action falling back to the Body
    payload = (
        b"<SOAP-ENV:Envelope><SOAP-ENV:Header><wsa:Action>urn:vendor:action</wsa:Action>"
        b"<SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch><wsdd:Types>dn:NetworkVideoTransmitter\r\n"
        b"<wsdd:Scopes>onvif://www.onvif.org/name/IP-Camera\r\nonvif://www.onvif.org/hardware/IPC%20BO\r\n"
        b"onvif://www.onvif.org/name/second onvif://www.onvif.org/hardware/%zz%ff"
        b"<wsdd:XAddrs>http://192.168.1.129:8899/onvif/device_service?a=1&amp;b=2"
    )
    rec = wsdiscovery.parse(payload)
    assert rec is not None
    assert rec.message == "ProbeMatches"
    assert rec.types == ("NetworkVideoTransmitter",)
    assert (rec.name, rec.hardware) == ("IP-Camera", "IPC BO")
    assert rec.xaddrs == ("http://192.168.1.129:8899/onvif/device_service?a=1&b=2",)


def test_wsdiscovery_parse_replaces_bad_percent_escapes() -> None:
    payload = DAHUA_HELLO.replace(b"hardware/DH-IPC-HDW1230T2", b"hardware/%zz%ff%41")
    rec = wsdiscovery.parse(payload)
    assert rec is not None
    assert rec.hardware == "%zz\ufffdA"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00" * 64,
        # SADP (fingerprints.md B1) is XML too, but not a SOAP envelope
        b'<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>13A888A9-F1B1-4020-AE9F-05607682D23B</Uuid>'
        b"<Types>inquiry</Types></Probe>",
        # an ONVIF device-service call is SOAP, but no discovery message
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><tds:GetDeviceInformation/>'
        b"</s:Body></s:Envelope>",
        b"<s:Envelope><s:Body><d:ProbeMatch>",  # the inner element alone names no message kind
    ],
)
def test_wsdiscovery_parse_rejects_other_payloads(payload: bytes) -> None:
    assert wsdiscovery.parse(payload) is None


def test_wsdiscovery_parse_bounds_a_huge_payload() -> None:
    scopes = b" ".join(b"onvif://www.onvif.org/location/city/c%d" % n for n in range(50_000))
    payload = HIKVISION_PROBE_MATCHES.replace(b"<d:Scopes>", b"<d:Scopes>" + scopes + b" ", 1)
    assert len(payload) > 1_000_000
    rec = wsdiscovery.parse(payload)
    assert rec is not None
    assert rec.message == "ProbeMatches"
    assert len(rec.scopes) == wsdiscovery.MAX_ITEMS
    assert len(rec.locations) == wsdiscovery.MAX_ITEMS
    assert rec.hardware is None  # beyond the first 4096 characters of the element
    many = b"<s:Envelope><s:Body><d:Hello>" + b"<d:XAddrs>http://" + b"x" * 2000 + b" </d:XAddrs>" * 5000
    rec = wsdiscovery.parse(many)
    assert rec is not None
    assert len(rec.xaddrs) == 1
    assert all(len(x) <= 256 for x in rec.xaddrs)


@given(st.binary(max_size=2048))
def test_wsdiscovery_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    rec = wsdiscovery.parse(payload)
    assert rec is None or isinstance(rec, WsDiscoveryRecord)


@given(st.text(alphabet="<>/: dwsa=\"'%&;ProbeMatchesHelloTypScAddrEnvlpX", max_size=512))
def test_wsdiscovery_parse_never_raises_on_tag_soup(soup: str) -> None:
    rec = wsdiscovery.parse(b"<Envelope>" + soup.encode())
    assert rec is None or isinstance(rec, WsDiscoveryRecord)
    if rec is not None:
        list(rec.facts())


@pytest.mark.parametrize("good", GOOD)
def test_wsdiscovery_parse_survives_every_truncation(good: bytes) -> None:
    assert wsdiscovery.parse(good) is not None
    for n in range(len(good) + 1):
        rec = wsdiscovery.parse(good[:n])
        assert rec is None or isinstance(rec, WsDiscoveryRecord)


@pytest.mark.corpus
def test_wsdiscovery_parse_reads_every_corpus_message(corpus: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    kinds = []
    with PcapReader(str(corpus / "ndpi__upnp.pcap")) as reader:
        for pkt in reader:
            if UDP in pkt and 3702 in (pkt[UDP].sport, pkt[UDP].dport):
                rec = wsdiscovery.parse(bytes(pkt[UDP].payload))
                assert rec is not None
                kinds.append(rec.message)
    assert kinds == ["Resolve"] * 14
