"""Dahua: DHIP (fingerprints.md B4), discovery v1 and DVRIP (B5), easy4ip P2P request lines (B6)."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import dahua
from auditor.protocols.dahua import DahuaV1Record, DhipRecord, DvripRecord, Easy4ipRecord


def dhip(body: bytes, trailing: bytes = b"", announced: int | None = None) -> bytes:
    """A DHIP datagram: 32-byte little-endian header + JSON body (fingerprints.md B4)."""
    size = len(body) if announced is None else announced
    return struct.pack("<I4sIIIIII", 0x20, b"DHIP", 0, 0, size, 0, size, 0) + body + trailing


NOTIFY_DEV_INFO = {
    "mac": "3c:ef:8c:12:34:56",
    "method": "client.notifyDevInfo",
    "params": {
        "deviceInfo": {
            "AlarmInputChannels": 4,
            "AlarmOutputChannels": 1,
            "DeviceClass": "NVR",
            "DeviceType": "DHI-NVR4104HS-P-4KS2",
            "HttpPort": 80,
            "IPv4Address": {
                "DefaultGateway": "192.168.1.1",
                "DhcpEnable": False,
                "IPAddress": "192.168.1.108",
                "SubnetMask": "255.255.255.0",
            },
            "IPv6Address": {"DefaultGateway": "", "DhcpEnable": False, "IPAddress": "fe80::3eef:8cff:fe12:3456/64"},
            "MachineName": "NVR-Lobby",
            "Port": 37777,
            "RemoteVideoInputChannels": 0,
            "SerialNo": "6G0ABCDPAZ12345",
            "Vendor": "General",
            "Version": "4.001.0000000.3",
            "VideoInputChannels": 4,
            "VideoOutputChannels": 1,
        }
    },
    "random": "0123456789",
}
NOTIFY_BODY = json.dumps(NOTIFY_DEV_INFO).encode()
NOTIFY = dhip(NOTIFY_BODY, b"\n\x00")  # ethodump-ng strips 2 trailing bytes after the JSON
SEARCH = dhip(b'{"method":"DHDiscover.search","params":{"mac":"","uni":0}}')  # fingerprints.md B4

NOTIFY_RECORD = DhipRecord(
    method="client.notifyDevInfo",
    device_type="DHI-NVR4104HS-P-4KS2",
    serial="6G0ABCDPAZ12345",
    vendor="General",
    firmware="4.001.0000000.3",
    machine_name="NVR-Lobby",
    mac="3C-EF-8C-12-34-56",
    ipv4="192.168.1.108",
)

# v1: the 32-byte search request (DahuaConsole `net.py`, UniversalScanner `Dahua1.cs`)
V1_REQUEST = bytes.fromhex("a3010001" + "00" * 12 + "02000000" + "00" * 12)


def v1_reply(device_type: bytes, ip: bytes, section2: bytes, section3: bytes, body_len: int = 0x58) -> bytes:
    """A v1 reply: 32-byte header, binary part (type @0x28, IPv4 @0x38...), then the two text sections."""
    header = b"\xb3\x00" + struct.pack("<HI", len(section2), body_len) + bytes(8) + struct.pack("<IH", 2, len(section3))
    header += bytes(0x20 - len(header))
    body = bytes(8) + device_type.ljust(16, b"\x00") + ip + bytes([255, 255, 255, 0]) + bytes([192, 168, 1, 1])
    body += bytes([192, 168, 1, 1])
    return header + body.ljust(body_len, b"\x00") + section2 + section3


V1_TAIL = b"Name:IPC-Front\r\nDevice:IPC-HDW1230S\r\nIPv6Addr:fe80::3eef:8cff:fe00:1/64\r\nSerialNo:4J01234PAZ00001\r\n"
V1_REPLY = v1_reply(b"IPC-HDW1230S", bytes([192, 168, 1, 108]), b"3c:ef:8c:00:00:01", V1_TAIL)

# DVRIP headers (DahuaConsole `net.py`: realm request, 3DES login, JSON framing)
DVRIP_REALM_REQUEST = bytes.fromhex("a0010000") + bytes(20) + bytes.fromhex("050201010000a1aa")
DVRIP_3DES_LOGIN = bytes.fromhex("a000000000000000") + b"admin\x00\x00\x00" + b"pass\x00\x00\x00\x00"
DVRIP_3DES_LOGIN += bytes.fromhex("050200010000a1aa")
REALM_BODY = b"Realm:Login to 4J01234PAZ00001\r\nRandom:1234567890\r\n"
DVRIP_REALM_REPLY = b"\xb0\x01\x00\x00" + struct.pack("<I", len(REALM_BODY)) + bytes(24) + REALM_BODY
JSON_CALL = b'{"method":"global.keepAlive","params":{"timeout":30,"active":true},"id":5,"session":1234}'
DVRIP_JSON = b"\xf6\x00\x00\x00" + struct.pack("<IIIIIII", len(JSON_CALL), 5, 0, len(JSON_CALL), 0, 1234, 0) + JSON_CALL

# easy4ip: dh-p2p `helpers.py` request layout (CRLF lines, CSeq, X-WSSE)
WSSE = (
    b'Authorization: WSSE profile="UsernameToken"\r\n'
    b'X-WSSE: UsernameToken Username="P2PClient", PasswordDigest="bm90IGEgcmVhbCBkaWdlc3Q=", '
    b'Nonce="1234567", Created="2024-01-02T03:04:05Z"\r\n'
)
E4_PROBE = b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n"
E4_ONLINE = b"DHGET /online/p2psrv/4J01234PAZ00001 HTTP/1.1\r\nCSeq: 2\r\n" + WSSE + b"\r\n"
E4_CHANNEL = (
    b"DHPOST /device/4J01234PAZ00001/p2p-channel HTTP/1.1\r\nCSeq: 5\r\n"
    + WSSE
    + b"Content-Type: \r\nContent-Length: 41\r\n\r\n<body><Identify>a b c</Identify></body>\r\n"
)

GOOD_DHIP = [NOTIFY, SEARCH]
GOOD_V1 = [V1_REQUEST, V1_REPLY]
GOOD_DVRIP = [DVRIP_REALM_REQUEST, DVRIP_3DES_LOGIN, DVRIP_REALM_REPLY, DVRIP_JSON]
GOOD_E4 = [E4_PROBE, E4_ONLINE, E4_CHANNEL]
PARSERS = [dahua.parse_dhip, dahua.parse_v1, dahua.parse_dvrip, dahua.parse_easy4ip]
RECORDS = DhipRecord | DahuaV1Record | DvripRecord | Easy4ipRecord


# --- DHIP -------------------------------------------------------------------------------------


def test_parse_dhip_reads_notify_dev_info() -> None:
    record = dahua.parse_dhip(NOTIFY)
    assert record == NOTIFY_RECORD
    assert list(record.facts()) == [
        ("method", "client.notifyDevInfo"),
        ("device_type", "DHI-NVR4104HS-P-4KS2"),
        ("serial", "6G0ABCDPAZ12345"),
        ("vendor", "General"),
        ("firmware", "4.001.0000000.3"),
        ("machine_name", "NVR-Lobby"),
        ("mac", "3C-EF-8C-12-34-56"),
        ("ipv4", "192.168.1.108"),
    ]


def test_parse_dhip_reads_search_request() -> None:
    record = dahua.parse_dhip(SEARCH)
    assert record == DhipRecord(method="DHDiscover.search")
    assert list(record.facts()) == [("method", "DHDiscover.search")]


def test_parse_dhip_recovers_truncated_json() -> None:
    cut = NOTIFY_BODY.index(b'"SerialNo"')  # SerialNo and what follows are gone; the header says the full length
    record = dahua.parse_dhip(dhip(NOTIFY_BODY[:cut], announced=len(NOTIFY_BODY)))
    assert record == DhipRecord(
        method="client.notifyDevInfo",
        device_type="DHI-NVR4104HS-P-4KS2",
        machine_name="NVR-Lobby",
        mac="3C-EF-8C-12-34-56",
        ipv4="192.168.1.108",
    )


def test_parse_dhip_recovers_broken_json() -> None:
    broken = NOTIFY_BODY.replace(b'"Port": 37777,', b'"Port": 37777').replace(b"false", b"flase")
    assert dahua.parse_dhip(dhip(broken)) == NOTIFY_RECORD


def test_parse_dhip_ignores_junk_after_json() -> None:
    assert dahua.parse_dhip(dhip(NOTIFY_BODY + b"\x00\x00trailer{[", announced=len(NOTIFY_BODY) + 11)) == NOTIFY_RECORD


def test_parse_dhip_mac_in_device_info_and_numbers() -> None:
    body = {"method": "client.notifyDevInfo", "params": {"deviceInfo": {"mac": "3CEF8C123456", "Version": 2.5}}}
    record = dahua.parse_dhip(dhip(json.dumps(body).encode()))
    assert record == DhipRecord(method="client.notifyDevInfo", firmware="2.5", mac="3C-EF-8C-12-34-56")


def test_parse_dhip_skips_non_text_values() -> None:
    body = {"method": ["x"], "mac": True, "params": {"deviceInfo": {"SerialNo": {"a": 1}, "IPv4Address": "10.0.0.9"}}}
    assert dahua.parse_dhip(dhip(json.dumps(body).encode())) == DhipRecord(ipv4="10.0.0.9")


def test_parse_dhip_deep_nesting_is_bounded() -> None:
    record = dahua.parse_dhip(dhip(b"[" * 5000 + b'{"method":"x"}' + b"]" * 5000))
    assert record == DhipRecord(method="x")  # too many brackets for json: the regex fallback reads it


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        NOTIFY[:31],
        b"\x21" + NOTIFY[1:],  # header size
        NOTIFY[:4] + b"DHIQ" + NOTIFY[8:],  # magic
        NOTIFY_BODY,  # JSON without the header
        b"\x00" * 64,
    ],
)
def test_parse_dhip_rejects_bad_header(payload: bytes) -> None:
    assert dahua.parse_dhip(payload) is None


def test_parse_dhip_huge_payload_within_caps() -> None:
    body = b'{"method":"client.notifyDevInfo","params":{"deviceInfo":{"MachineName":"' + b"A" * 1_000_000 + b'"}}}'
    assert dahua.parse_dhip(dhip(body)) == DhipRecord(method="client.notifyDevInfo", machine_name="A" * 256)
    pairs = b'{"method":"m",' + b'"k":"v",' * 130_000 + b'"SerialNo":"late"}'
    assert dahua.parse_dhip(dhip(pairs)) == DhipRecord(method="m")


# --- discovery v1 (UDP 5050) ------------------------------------------------------------------


def test_parse_v1_reads_request() -> None:
    record = dahua.parse_v1(V1_REQUEST)
    assert record == DahuaV1Record(message="request")
    assert list(record.facts()) == [("message", "request")]


def test_parse_v1_reads_reply() -> None:
    record = dahua.parse_v1(V1_REPLY)
    assert record == DahuaV1Record(
        message="reply",
        device_type="IPC-HDW1230S",
        serial="4J01234PAZ00001",
        mac="3C-EF-8C-00-00-01",
        ipv4="192.168.1.108",
    )
    assert list(record.facts()) == [
        ("message", "reply"),
        ("device_type", "IPC-HDW1230S"),
        ("serial", "4J01234PAZ00001"),
        ("mac", "3C-EF-8C-00-00-01"),
        ("ipv4", "192.168.1.108"),
    ]


def test_parse_v1_type_after_mac_wins() -> None:
    reply = v1_reply(b"IPC", bytes([10, 0, 0, 5]), b"3c-ef-8c-00-00-02DH-IPC-HFW1431S\x00", b"Version:2.8\r\n")
    assert dahua.parse_v1(reply) == DahuaV1Record(
        message="reply", device_type="DH-IPC-HFW1431S", mac="3C-EF-8C-00-00-02", ipv4="10.0.0.5", firmware="2.8"
    )


def test_parse_v1_device_line_when_no_type() -> None:
    reply = v1_reply(b"", bytes(4), b"", b"Device:NVR2104\r\nSerialNo:SN9\r\n")
    assert dahua.parse_v1(reply) == DahuaV1Record(message="reply", device_type="NVR2104", serial="SN9")


def test_parse_v1_lines_without_section_lengths() -> None:
    reply = v1_reply(b"IPC", bytes([10, 0, 0, 5]), b"", b"") + b"SerialNo:SN7\r\n"
    assert dahua.parse_v1(reply) == DahuaV1Record(message="reply", device_type="IPC", serial="SN7", ipv4="10.0.0.5")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        V1_REQUEST[:31],
        b"\xb3\x01" + V1_REPLY[2:],  # not the reply code
        V1_REPLY[:0x47],  # binary part cut short
        v1_reply(b"IPC", bytes(4), b"", b"", body_len=0x20),  # too short to hold the fields
        DVRIP_REALM_REQUEST,
        bytes(200),
    ],
)
def test_parse_v1_rejects_bad_header(payload: bytes) -> None:
    assert dahua.parse_v1(payload) is None


def test_parse_v1_huge_payload_within_caps() -> None:
    record = dahua.parse_v1(V1_REPLY + b"Junk:" + b"x" * 1_000_000 + b"\r\n")
    assert record is not None and record.serial == "4J01234PAZ00001"
    lines = b"".join(b"K%d:v\r\n" % i for i in range(200_000))
    record = dahua.parse_v1(v1_reply(b"IPC", bytes(4), b"", b"") + lines + b"SerialNo:late\r\n")
    assert record == DahuaV1Record(message="reply", device_type="IPC")
    record = dahua.parse_v1(v1_reply(b"IPC", bytes(4), b"", b"SerialNo:" + b"9" * 2000))
    assert record is not None and record.serial == "9" * 256


# --- DVRIP (TCP 37777) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (DVRIP_REALM_REQUEST, DvripRecord(message="request", command="realm-request", body_length=0)),
        (DVRIP_3DES_LOGIN, DvripRecord(message="request", command="login-3des", body_length=0)),
        (DVRIP_REALM_REPLY, DvripRecord(message="reply", command="receive", body_length=len(REALM_BODY))),
        (DVRIP_JSON, DvripRecord(message="json", command="json", body_length=len(JSON_CALL))),
        (V1_REQUEST, DvripRecord(message="request", command="discover-request", body_length=0)),
        (V1_REPLY, DvripRecord(message="reply", command="discover-response", body_length=0x58)),
    ],
)
def test_parse_dvrip_reads_header(payload: bytes, expected: DvripRecord) -> None:
    assert dahua.parse_dvrip(payload) == expected


def test_parse_dvrip_facts() -> None:
    record = dahua.parse_dvrip(DVRIP_REALM_REPLY)
    assert record is not None
    assert list(record.facts()) == [("message", "reply"), ("command", "receive")]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        DVRIP_REALM_REQUEST[:31],
        b"\xa0\x02" + DVRIP_REALM_REQUEST[2:],  # unknown command
        b"GET / HTTP/1.1\r\nHost: 192.168.1.108:37777\r\n\r\n",
        NOTIFY,  # DHIP framing is not DVRIP
        b"\xb0\x00\x00\x00" + struct.pack("<I", dahua.DVRIP_MAX_BODY + 1) + bytes(24),  # absurd length
    ],
)
def test_parse_dvrip_rejects_other_payloads(payload: bytes) -> None:
    assert dahua.parse_dvrip(payload) is None


def test_parse_dvrip_huge_payload() -> None:
    big = DVRIP_JSON[:32] + b"x" * 1_000_000
    assert dahua.parse_dvrip(big) == DvripRecord(message="json", command="json", body_length=len(JSON_CALL))


# --- easy4ip P2P (UDP 8800) -------------------------------------------------------------------


def test_parse_easy4ip_reads_probe_without_serial() -> None:
    record = dahua.parse_easy4ip(E4_PROBE)
    assert record == Easy4ipRecord(method="DHGET", path="/probe/p2psrv")
    assert list(record.facts()) == [("method", "DHGET"), ("path", "/probe/p2psrv")]


@pytest.mark.parametrize(
    ("payload", "method", "path"),
    [
        (E4_ONLINE, "DHGET", "/online/p2psrv/4J01234PAZ00001"),
        (E4_CHANNEL, "DHPOST", "/device/4J01234PAZ00001/p2p-channel"),
        (b"DHGET /probe/device/4J01234PAZ00001 HTTP/1.1\r\nCSeq: 3\r\n\r\n", "DHGET", "/probe/device/4J01234PAZ00001"),
        (
            b"DHPOST /device/4J01234PAZ00001/relay-channel HTTP/1.1\nCSeq: 9\n\n",
            "DHPOST",
            "/device/4J01234PAZ00001/relay-channel",
        ),
    ],
)
def test_parse_easy4ip_reads_serial_from_path(payload: bytes, method: str, path: str) -> None:
    record = dahua.parse_easy4ip(payload)
    assert record == Easy4ipRecord(method=method, path=path, serial="4J01234PAZ00001")
    assert list(record.facts()) == [("method", method), ("path", path), ("serial", "4J01234PAZ00001")]


@pytest.mark.parametrize(
    "path", ["/online/relay", "/relay/agent", "/relay/start/0123abcd", "/device/", "/probe/p2psrv"]
)
def test_parse_easy4ip_paths_without_serial(path: str) -> None:
    record = dahua.parse_easy4ip(b"DHGET " + path.encode() + b" HTTP/1.1\r\nCSeq: 1\r\n\r\n")
    assert record == Easy4ipRecord(method="DHGET", path=path)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"DHGET",
        b"HTTP/1.1 200 OK\r\nCSeq: 1\r\n\r\n",  # the server's answer
        b"GET /online/p2psrv/4J01234PAZ00001 HTTP/1.1\r\n\r\n",
        b"DHGET online/p2psrv HTTP/1.1\r\n\r\n",  # path must be absolute
        b"DHGET /probe/p2psrv RTSP/1.0\r\n\r\n",
        b"PTCP" + bytes(20),
    ],
)
def test_parse_easy4ip_rejects_other_payloads(payload: bytes) -> None:
    assert dahua.parse_easy4ip(payload) is None


def test_parse_easy4ip_huge_payload_within_caps() -> None:
    long_path = "/device/4J01234PAZ00001/" + "p" * 900
    record = dahua.parse_easy4ip(b"DHPOST " + long_path.encode() + b" HTTP/1.1\r\n" + b"X-Pad: y\r\n" * 100_000)
    assert record == Easy4ipRecord(method="DHPOST", path=long_path[:256], serial="4J01234PAZ00001")
    assert dahua.parse_easy4ip(b"DHGET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n") is None  # past the line cap


# --- hostile input ----------------------------------------------------------------------------


def test_parse_dahua_every_truncation() -> None:
    for goods in (GOOD_DHIP, GOOD_V1, GOOD_DVRIP, GOOD_E4):
        for good in goods:
            for n in range(len(good) + 1):
                for parser in PARSERS:
                    assert isinstance(parser(good[:n]), RECORDS | None)


@given(st.binary(max_size=2048))
def test_parse_dahua_never_raises(data: bytes) -> None:
    for parser in PARSERS:
        assert isinstance(parser(data), RECORDS | None)


@given(st.binary(max_size=2048))
def test_parse_dhip_random_body_never_raises(body: bytes) -> None:
    assert isinstance(dahua.parse_dhip(dhip(body)), DhipRecord)


@given(
    st.sampled_from(GOOD_DHIP + GOOD_V1 + GOOD_DVRIP + GOOD_E4),
    st.integers(min_value=0),
    st.binary(min_size=1, max_size=8),
)
def test_parse_dahua_mutations_never_raise(good: bytes, at: int, junk: bytes) -> None:
    i = at % len(good)
    mutated = good[:i] + junk + good[i + len(junk) :]
    for parser in PARSERS:
        assert isinstance(parser(mutated), RECORDS | None)
