"""HTTP/1.x and RTSP/1.0 heads (RFC 9112, RFC 2326; fingerprints.md B13 banners and realms)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import http
from auditor.protocols.http import HttpRecord, RtspRecord

ISAPI_REQUEST = (
    b"GET /ISAPI/System/deviceInfo HTTP/1.1\r\n"
    b"Host: 192.168.1.64\r\n"
    b"User-Agent: python-requests/2.31.0\r\n"
    b"Accept: */*\r\n"
    b"Connection: keep-alive\r\n\r\n"
)

# fingerprints.md B13: Hikvision IP camera 'App-webs/' banner with a digest challenge
HIKVISION_401 = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Server: App-webs/\r\n"
    b"Content-Length: 178\r\n"
    b"Content-Type: text/html\r\n"
    b'WWW-Authenticate: Digest qop="auth", realm="IP Camera(C2183)", nonce="4e5468694e7a51794f5445364e6a63784d513d3d",'
    b' stale="FALSE"\r\n'
    b"\r\n<!DOCTYPE html>\n<html><head><title>Document Error: Unauthorized</title></head></html>"
)

# fingerprints.md B13 (nmap): RTSP on 554, older Hikvision: 401 with Digest realm="Hikvision"
HIKVISION_RTSP_401 = (
    b"RTSP/1.0 401 Unauthorized\r\n"
    b"CSeq: 2\r\n"
    b'WWW-Authenticate: Digest realm="Hikvision", nonce="b5a1e3c2d4f6a8b0"\r\n'
    b"Date:  Mon, Jan 01 2024 00:00:00 GMT\r\n\r\n"
)

# fingerprints.md B13 (recog rtsp_servers): 'Dahua Rtsp Server'
DAHUA_RTSP_OPTIONS = (
    b"RTSP/1.0 200 OK\r\n"
    b"CSeq: 1\r\n"
    b"Server: Dahua Rtsp Server\r\n"
    b"Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n\r\n"
)

DAHUA_DESCRIBE = (
    b"DESCRIBE rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0 RTSP/1.0\r\n"
    b"CSeq: 3\r\n"
    b"User-Agent: LibVLC/3.0.16 (LIVE555 Streaming Media v2016.11.28)\r\n"
    b"Accept: application/sdp\r\n\r\n"
)

# fingerprints.md B13 (recog, nmap): Lorex digest/basic realm 'Login to <serial>'; Dahua: upper-case field names
LOREX_401 = (
    b"HTTP/1.1 401 Unauthorized\r\n"
    b"CONNECTION: close\r\n"
    b"CONTENT-LENGTH: 0\r\n"
    b"CONTENT-TYPE: text/plain\r\n"
    b'WWW-Authenticate: Basic realm="Login to 8F0A1B2C3D4E5F6"\r\n\r\n'
)

GOOD = [ISAPI_REQUEST, HIKVISION_401, HIKVISION_RTSP_401, DAHUA_RTSP_OPTIONS, DAHUA_DESCRIBE, LOREX_401]


def test_http_parse_reads_a_request() -> None:
    assert http.parse(ISAPI_REQUEST) == HttpRecord(
        kind="request",
        version="HTTP/1.1",
        method="GET",
        target="/ISAPI/System/deviceInfo",
        path="/ISAPI/System/deviceInfo",
        host="192.168.1.64",
        user_agent="python-requests/2.31.0",
    )


def test_http_facts_describe_a_client() -> None:
    record = http.parse(ISAPI_REQUEST)
    assert record is not None
    assert record.protocol == "http"
    assert list(record.facts()) == [
        ("method", "GET"),
        ("path", "/ISAPI/System/deviceInfo"),
        ("host", "192.168.1.64"),
        ("user_agent", "python-requests/2.31.0"),
    ]


def test_http_parse_reads_a_hikvision_challenge() -> None:
    record = http.parse(HIKVISION_401)
    assert record == HttpRecord(
        kind="response",
        version="HTTP/1.1",
        status=401,
        reason="Unauthorized",
        server="App-webs/",
        auth_scheme="digest",
        realm="IP Camera(C2183)",
        content_type="text/html",
    )
    assert record is not None
    assert list(record.facts()) == [
        ("server", "App-webs/"),
        ("status", "401"),
        ("realm", "IP Camera(C2183)"),
        ("auth_scheme", "digest"),
        ("content_type", "text/html"),
    ]


def test_http_parse_gives_rtsp_records_for_rtsp() -> None:
    record = http.parse(HIKVISION_RTSP_401)
    assert isinstance(record, RtspRecord)
    assert record.protocol == "rtsp"
    assert list(record.facts()) == [("status", "401"), ("realm", "Hikvision"), ("auth_scheme", "digest")]
    dahua = http.parse(DAHUA_RTSP_OPTIONS)
    assert isinstance(dahua, RtspRecord)
    assert list(dahua.facts()) == [("server", "Dahua Rtsp Server"), ("status", "200")]


def test_http_parse_strips_the_rtsp_url_authority_from_the_path() -> None:
    record = http.parse(DAHUA_DESCRIBE)
    assert isinstance(record, RtspRecord)
    assert record.target == "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0"
    assert list(record.facts()) == [
        ("method", "DESCRIBE"),
        ("path", "/cam/realmonitor?channel=1&subtype=0"),
        ("user_agent", "LibVLC/3.0.16 (LIVE555 Streaming Media v2016.11.28)"),
    ]


def test_http_parse_strips_only_a_leading_authority() -> None:
    record = http.parse(b"GET /login?next=http://evil.example/x HTTP/1.1\r\n\r\n")
    assert record is not None and record.path == "/login?next=http://evil.example/x"
    proxied = http.parse(b"GET http://cam.example:8080/doc/page/login.asp HTTP/1.1\r\n\r\n")
    assert proxied is not None and proxied.path == "/doc/page/login.asp"


def test_http_parse_reads_upper_case_fields_and_basic_realm() -> None:
    record = http.parse(LOREX_401)
    assert record is not None
    assert (record.auth_scheme, record.realm, record.content_type) == (
        "basic",
        "Login to 8F0A1B2C3D4E5F6",
        "text/plain",
    )


@pytest.mark.parametrize(
    ("header", "scheme", "realm"),
    [
        (b"Basic realm=camera", "basic", "camera"),  # token form (RFC 9110 §11.2)
        (b'Digest nonce="1", Realm = "Spaced"', "digest", "Spaced"),
        (b'Digest xrealm="no", realm="yes"', "digest", "yes"),
        (b'Digest realm="cut off', "digest", "cut off"),
        (b"Negotiate", "negotiate", None),
        (b"", None, None),
    ],
)
def test_http_parse_reads_realm_forms(header: bytes, scheme: str | None, realm: str | None) -> None:
    record = http.parse(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: " + header + b"\r\n\r\n")
    assert record is not None
    assert (record.auth_scheme, record.realm) == (scheme, realm)


def test_http_parse_reads_a_status_line_without_reason() -> None:
    record = http.parse(b"HTTP/1.0 200\r\nServer: Hikvision-Webs\r\n\r\n")
    assert record is not None
    assert (record.status, record.reason, record.server) == (200, None, "Hikvision-Webs")


def test_http_parse_keeps_a_head_cut_by_the_packet_end() -> None:
    record = http.parse(ISAPI_REQUEST[:60])
    assert record is not None
    assert (record.method, record.host, record.user_agent) == ("GET", "192.168.1.64", None)


def test_http_parse_caps_the_path() -> None:
    record = http.parse(b"GET /" + b"a" * 500 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert record is not None
    assert record.path == "/" + "a" * (http.MAX_PATH - 1)
    assert record.target is not None and len(record.target) == http.MAX_TARGET


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"<!DOCTYPE html>\r\n<html><body>GET / HTTP/1.1</body></html>",  # a body fragment
        b"GET /\r\n\r\n",  # HTTP/0.9 has no version
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface is not a text head
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\n\r\n",
        b"HTTP/1.2 200 OK\r\n\r\n",
        b"RTSP/2.0 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\x01GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_http_parse_rejects_what_is_not_a_head(payload: bytes) -> None:
    assert http.parse(payload) is None


def test_http_parse_bounds_a_huge_payload() -> None:
    # 1 MB of header lines: the head stops at MAX_PAYLOAD bytes and MAX_HEADERS fields; values stay capped
    payload = (
        b"HTTP/1.1 200 OK\r\nServer: " + b"S" * 1000 + b"\r\n" + b"X-Pad: 1\r\n" * 100_000 + b"Content-Type: x\r\n"
    )
    assert len(payload) > 1_000_000
    record = http.parse(payload)
    assert record is not None
    assert record.server == "S" * 256
    assert record.content_type is None  # beyond the caps


def test_http_parse_bounds_a_huge_start_line() -> None:
    assert http.parse(b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n\r\n") is None  # the start line is capped


@given(st.binary(max_size=2048))
def test_http_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    record = http.parse(payload)
    assert record is None or isinstance(record, HttpRecord)
    if record is not None:
        list(record.facts())


@given(st.text(max_size=512))
def test_http_parse_never_raises_behind_a_valid_start_line(rest: str) -> None:
    record = http.parse(b"RTSP/1.0 401 Unauthorized\r\n" + rest.encode("utf-8", errors="replace"))
    assert isinstance(record, RtspRecord)
    list(record.facts())


@pytest.mark.parametrize("good", GOOD)
def test_http_parse_survives_every_truncation(good: bytes) -> None:
    assert http.parse(good) is not None
    for n in range(len(good) + 1):
        record = http.parse(good[:n])
        assert record is None or isinstance(record, HttpRecord)


HTTP_FILES = (
    "ndpi__android.pcap",
    "ndpi__rtsp.pcap",
    "ndpi__rtsp_setup_http.pcapng",
    "zeek__http-vlan-0.pcap",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Corpus files with HTTP or RTSP over TCP (MANIFEST.md)."""


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", HTTP_FILES)
def test_http_parse_agrees_with_tshark(corpus: Path, tshark: str, name: str) -> None:
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader

    # heads tshark reassembled from several segments are left out: this parser sees one payload
    shown = "(http.request or http.response or rtsp.request or rtsp.response) and tcp and not tcp.segments"
    fields = (
        "http.request.method",
        "rtsp.method",
        "http.response.code",
        "rtsp.status",
        "http.user_agent",
        "http.server",
    )
    cmd = [tshark, "-r", str(corpus / name), "-Y", shown, "-T", "fields", "-E", "separator=|", "-e", "frame.number"]
    cmd += [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [[v or None for v in line.split("|")] for line in out.splitlines()]
    # tshark 4.0 has no RTSP User-Agent/Server fields: those two are compared for HTTP only
    expected = {int(r[0] or 0): (r[1] or r[2], r[3] or r[4], r[5], r[6]) for r in rows if r[0]}
    assert expected, f"tshark found no heads in {name}"
    seen = 0
    with PcapReader(str(corpus / name)) as reader:
        for number, pkt in enumerate(reader, 1):
            if number in expected:
                record = http.parse(bytes(pkt[TCP].payload))
                assert record is not None, f"{name} frame {number}"
                status = None if record.status is None else str(record.status)
                got = (record.method, status, record.user_agent, record.server)
                if record.protocol == "rtsp":
                    got = (*got[:2], *expected[number][2:])
                assert got == expected[number], f"{name} frame {number}"
                seen += 1
    assert seen == len(expected)
