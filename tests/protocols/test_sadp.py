"""Hikvision SADP: XML over UDP 37020 (fingerprints.md B1) and the legacy ethertype 0x8033 header (B2)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import sadp
from auditor.protocols.sadp import SadpRecord

# UniversalScanner `Hikvision.selftest` (the sample fingerprints.md B1 cites), byte for byte
SELFTEST_PROBEMATCH = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<ProbeMatch><Uuid>11223344-5566-7788-9900-112233445566</Uuid>\n"
    b"<Types>inquiry</Types>\n"
    b"<DeviceType>123456</DeviceType>\n"
    b"<DeviceDescription>Virtual</DeviceDescription>\n"
    b"<DeviceSN>Virtual-123456789</DeviceSN>\n"
    b"<CommandPort>8000</CommandPort>\n"
    b"<HttpPort>80</HttpPort>\n"
    b"<MAC>00-11-22-33-44-55</MAC>\n"
    b"<IPv4Address>127.0.0.1</IPv4Address>\n"
    b"<IPv4SubnetMask>255.0.0.0</IPv4SubnetMask>\n"
    b"<IPv4Gateway>127.0.0.1</IPv4Gateway>\n"
    b"<IPv6Address>::</IPv6Address>\n"
    b"<IPv6Gateway>::</IPv6Gateway>\n"
    b"<IPv6MaskLen>64</IPv6MaskLen>\n"
    b"<DHCP>false</DHCP>\n"
    b"<AnalogChannelNum>0</AnalogChannelNum>\n"
    b"<DigitalChannelNum>1</DigitalChannelNum>\n"
    b"<SoftwareVersion>V1.0build 200101</SoftwareVersion>\n"
    b"<DSPVersion>V1.0build 200101</DSPVersion>\n"
    b"<BootTime>1970-01-01 00:00:00</BootTime>\n"
    b"<ResetAbility>false</ResetAbility>\n"
    b"<DiskNumber>0</DiskNumber>\n"
    b"<Activated>true</Activated>\n"
    b"<PasswordResetAbility>true</PasswordResetAbility>\n"
    b"<PasswordResetModeSecond>true</PasswordResetModeSecond>\n"
    b"<SupportHCPlatform>true</SupportHCPlatform>\n"
    b"<HCPlatformEnable>flase</HCPlatformEnable>\n"
    b"<IsModifyVerificationCode>true</IsModifyVerificationCode>\n"
    b"</ProbeMatch>\n"
)

# a camera's reply with the fields fingerprints.md B1 lists, including the OEM code
CAMERA_PROBEMATCH = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<ProbeMatch><Uuid>5E1F2A3B-0000-4C4D-8E8F-A1B2C3D4E5F6</Uuid><Types>inquiry</Types>"
    b"<DeviceType>139264</DeviceType><DeviceDescription>DS-2CD2143G0-I</DeviceDescription>"
    b"<DeviceSN>DS-2CD2143G0-I20190523AAWRD12345678</DeviceSN><CommandPort>8000</CommandPort>"
    b"<HttpPort>80</HttpPort><MAC>c0-56-e3-aa-bb-cc</MAC><IPv4Address>192.168.1.64</IPv4Address>"
    b"<IPv4SubnetMask>255.255.255.0</IPv4SubnetMask><IPv4Gateway>192.168.1.1</IPv4Gateway>"
    b"<DHCP>false</DHCP><SoftwareVersion>V5.5.82build 190220</SoftwareVersion>"
    b"<DSPVersion>V7.3 build 190220</DSPVersion><BootTime>2023-04-01 10:11:12</BootTime>"
    b"<Activated>true</Activated><PasswordResetAbility>true</PasswordResetAbility>"
    b"<DetailOEMCode>1</DetailOEMCode><SupportSecurityQuestion>true</SupportSecurityQuestion>"
    b"<SupportHCPlatform>true</SupportHCPlatform><HCPlatformEnable>true</HCPlatformEnable>"
    b"<SDKServerStatus>true</SDKServerStatus></ProbeMatch>"
)

PROBE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b"<Probe><Uuid>A7D1A0C2-6E0E-4F2B-9D55-0C0FFEE00001</Uuid><Types>inquiry</Types></Probe>"
)

# fingerprints.md B1: some firmware sends line-split replies that are not well-formed XML
LINE_SPLIT_HELLO = (
    b"<Hello><Uuid>0A0B0C0D-0000-0000-0000-000000000001</Uuid>\r\n"
    b"<DeviceDescription>DS-7608NI-K2\r\n"
    b"<DeviceSN>DS-7608NI-K20820190101CCRRD00000001WCVU\r\n"
    b"<MAC>44:19:b6:01:02:03\r\n"
    b"<Ipv4Address>10.0.0.20</Ipv4Address>\r\n"
    b"<softwareversion>V4.22.005build 191108</softwareversion>\r\n"
    b"<ACTIVATED>False\r\n"
    b"\x00\x00garbage after the message"
)


def legacy(ptype: int, origin: bytes, query: int, mac: bytes, ip: bytes, payload: bytes = b"") -> bytes:
    """A legacy SADP message as it follows the Ethernet header (fingerprints.md B2)."""
    header = bytes([0x21, ptype]) + origin + struct.pack(">I", 7) + b"\x06\x04" + bytes([query, 0]) + b"\x12\x34"
    return header + mac + ip + b"\xff" * 6 + bytes(4) + bytes([255, 255, 255, 0]) + payload


LEGACY_INQUIRY = legacy(2, b"\x01\x42", 0x03, bytes.fromhex("0050568a0b0c"), bytes([192, 168, 1, 10]), bytes(28))
LEGACY_RESPONSE = legacy(1, b"\x01\xf6", 0x04, bytes.fromhex("c056e3aabbcc"), bytes([192, 168, 1, 64]), bytes(208))

GOOD_XML = [SELFTEST_PROBEMATCH, CAMERA_PROBEMATCH, PROBE, LINE_SPLIT_HELLO]
GOOD_LEGACY = [LEGACY_INQUIRY, LEGACY_RESPONSE]


def test_parse_sadp_reads_selftest_probematch() -> None:
    record = sadp.parse(SELFTEST_PROBEMATCH)
    assert record == SadpRecord(
        message="probematch",
        uuid="11223344-5566-7788-9900-112233445566",
        device_type="123456",
        model="Virtual",
        serial="Virtual-123456789",
        mac="00-11-22-33-44-55",
        ipv4="127.0.0.1",
        firmware="V1.0build 200101",
        dsp_version="V1.0build 200101",
        hc_platform="true",
        hc_platform_enabled="false",
        activated="true",
        command_port=8000,
        http_port=80,
    )


def test_parse_sadp_camera_facts() -> None:
    record = sadp.parse(CAMERA_PROBEMATCH)
    assert record is not None
    assert list(record.facts()) == [
        ("message", "probematch"),
        ("device_type", "139264"),
        ("model", "DS-2CD2143G0-I"),
        ("serial", "DS-2CD2143G0-I20190523AAWRD12345678"),
        ("mac", "C0-56-E3-AA-BB-CC"),
        ("ipv4", "192.168.1.64"),
        ("firmware", "V5.5.82build 190220"),
        ("dsp_version", "V7.3 build 190220"),
        ("oem_code", "1"),
        ("hc_platform", "true"),
        ("hc_platform_enabled", "true"),
        ("activated", "true"),
        ("command_port", "8000"),
        ("http_port", "80"),
    ]


def test_parse_sadp_reads_probe() -> None:
    record = sadp.parse(PROBE)
    assert record == SadpRecord(message="probe", uuid="A7D1A0C2-6E0E-4F2B-9D55-0C0FFEE00001")
    assert list(record.facts()) == [("message", "probe")]


def test_parse_sadp_tolerates_line_split_hello() -> None:
    record = sadp.parse(LINE_SPLIT_HELLO)
    assert record == SadpRecord(
        message="hello",
        uuid="0A0B0C0D-0000-0000-0000-000000000001",
        model="DS-7608NI-K2",
        serial="DS-7608NI-K20820190101CCRRD00000001WCVU",
        mac="44-19-B6-01-02-03",
        ipv4="10.0.0.20",
        firmware="V4.22.005build 191108",
        activated="false",
    )


def test_parse_sadp_root_case_and_no_declaration() -> None:
    record = sadp.parse(b"\xef\xbb\xbf  <probematch><devicesn>SN1</devicesn></probematch>")
    assert record == SadpRecord(message="probematch", serial="SN1")


def test_parse_sadp_unescapes_entities() -> None:
    record = sadp.parse(b"<ProbeMatch><DeviceDescription>A&amp;B &lt;x&gt;</DeviceDescription></ProbeMatch>")
    assert record is not None and record.model == "A&B <x>"


def test_parse_sadp_first_element_wins_and_empty_skipped() -> None:
    record = sadp.parse(
        b"<ProbeMatch><DeviceSN></DeviceSN><DeviceSN>one</DeviceSN><DeviceSN>two</DeviceSN></ProbeMatch>"
    )
    assert record is not None and record.serial == "one"


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("MAC", "00:11:22:aa:bb:cc", "00-11-22-AA-BB-CC"),
        ("MAC", "001122AABBCC", "00-11-22-AA-BB-CC"),
        ("MAC", "00-11-22-33-44", None),
        ("MAC", "zz-11-22-33-44-55", None),
        ("IPv4Address", "192.168.1.300", None),
        ("IPv4Address", "fe80::1", None),
        ("CommandPort", "70000", None),
        ("CommandPort", "80a", None),
        ("CommandPort", "\u0661\u0662", None),
        ("Activated", "TRUE", "true"),
        ("Activated", "maybe", "maybe"),
    ],
)
def test_parse_sadp_normalises_values(field: str, raw: str, expected: object) -> None:
    attr = {"MAC": "mac", "IPv4Address": "ipv4", "CommandPort": "command_port", "Activated": "activated"}[field]
    record = sadp.parse(f"<ProbeMatch><{field}>{raw}</{field}></ProbeMatch>".encode())
    assert record is not None and getattr(record, attr) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello",
        b"<ProbeMatch",  # no end of the root tag
        b'<?xml version="1.0"?><Envelope><Body/></Envelope>',
        b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        b"<d:Probe/></s:Body></s:Envelope>",  # WS-Discovery, not SADP
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n",
        b"junk <ProbeMatch><DeviceSN>x</DeviceSN></ProbeMatch>",  # SADP XML starts the payload
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><ProbeMatch>&lol2;</ProbeMatch>',
    ],
)
def test_parse_sadp_rejects_other_payloads(payload: bytes) -> None:
    assert sadp.parse(payload) is None


def test_parse_sadp_huge_payload_within_caps() -> None:
    filler = b"<Junk>x</Junk>\n" * 70_000  # ~1 MB of elements
    record = sadp.parse(
        b"<ProbeMatch><DeviceSN>" + b"S" * 100_000 + b"</DeviceSN>" + filler + b"<MAC>00-11-22-33-44-55</MAC>"
    )
    assert record is not None
    assert record.serial == "S" * 256  # string cap
    assert record.mac is None  # beyond the bytes looked at
    record = sadp.parse(b"<ProbeMatch>" + filler + b"<DeviceSN>late</DeviceSN></ProbeMatch>")
    assert record == SadpRecord(message="probematch")


def test_parse_sadp_element_cap() -> None:
    many = b"<ProbeMatch>" + b"<A>1</A>" * (sadp.MAX_ELEMENTS + 10) + b"<DeviceSN>late</DeviceSN>"
    assert len(many) < sadp.MAX_PAYLOAD
    assert sadp.parse(many) == SadpRecord(message="probematch")


def test_parse_ethernet_reads_inquiry_from_tool() -> None:
    record = sadp.parse_ethernet(LEGACY_INQUIRY)
    assert record == SadpRecord(message="legacy-inquiry", mac="00-50-56-8A-0B-0C", ipv4="192.168.1.10")
    assert list(record.facts()) == [
        ("message", "legacy-inquiry"),
        ("mac", "00-50-56-8A-0B-0C"),
        ("ipv4", "192.168.1.10"),
    ]


def test_parse_ethernet_reads_device_response() -> None:
    record = sadp.parse_ethernet(LEGACY_RESPONSE)
    assert record == SadpRecord(message="legacy-inquiry-response", mac="C0-56-E3-AA-BB-CC", ipv4="192.168.1.64")


def test_parse_ethernet_unknown_query_and_zero_addresses() -> None:
    record = sadp.parse_ethernet(legacy(1, b"\x01\xf6", 0x55, bytes(6), bytes(4)))
    assert record == SadpRecord(message="legacy-0x55")
    assert list(record.facts()) == [("message", "legacy-0x55")]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        LEGACY_INQUIRY[: sadp.SADP_ETH_HEADER_LEN - 1],  # header cut short
        b"\x22" + LEGACY_INQUIRY[1:],  # marker
        LEGACY_INQUIRY[:1] + b"\x03" + LEGACY_INQUIRY[2:],  # packet type
        LEGACY_INQUIRY[:8] + b"\x08\x06" + LEGACY_INQUIRY[10:],  # bytes 8-9 marker
        bytes(64),
    ],
)
def test_parse_ethernet_rejects_bad_header(payload: bytes) -> None:
    assert sadp.parse_ethernet(payload) is None


def test_parse_ethernet_huge_payload() -> None:
    record = sadp.parse_ethernet(LEGACY_RESPONSE + b"\xaa" * 1_000_000)
    assert record == SadpRecord(message="legacy-inquiry-response", mac="C0-56-E3-AA-BB-CC", ipv4="192.168.1.64")


def test_parse_sadp_every_truncation() -> None:
    for good in GOOD_XML:
        for n in range(len(good) + 1):
            assert isinstance(sadp.parse(good[:n]), SadpRecord | None)
    for good in GOOD_LEGACY:
        for n in range(len(good) + 1):
            out = sadp.parse_ethernet(good[:n])
            assert (out is None) == (n < sadp.SADP_ETH_HEADER_LEN)


@given(st.binary(max_size=2048))
def test_parse_sadp_never_raises(data: bytes) -> None:
    assert isinstance(sadp.parse(data), SadpRecord | None)
    assert isinstance(sadp.parse_ethernet(data), SadpRecord | None)


@given(st.sampled_from(GOOD_XML + GOOD_LEGACY), st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_parse_sadp_mutations_never_raise(good: bytes, at: int, junk: bytes) -> None:
    i = at % len(good)
    mutated = good[:i] + junk + good[i + len(junk) :]
    assert isinstance(sadp.parse(mutated), SadpRecord | None)
    assert isinstance(sadp.parse_ethernet(mutated), SadpRecord | None)
