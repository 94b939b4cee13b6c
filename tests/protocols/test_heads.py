"""parse_head: the HTTP-like head shared by the SSDP, HTTP and RTSP parsers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols._heads import MAX_HEADERS, Head, parse_head

# shared corpus iotsentinel__D-LinkDayCam_Setup-C-1.pcap: a D-Link DCS-930LB camera's NOTIFY
DLINK_NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
    b"LOCATION: http://10.10.10.58:8021/rootdesc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
    b"SERVER: Cellvision UPnP/1.0\r\nUSN: uuid:ae67e622-7a66-465e-bab0-b0c5541c7185::upnp:rootdevice\r\n\r\n"
)

# shared corpus ndpi__ipp.pcap: the HTTP reply head of an HP printer's embedded server
EMWEB_REPLY = b"HTTP/1.1 200 OK\r\nServer: Virata-EmWeb/R6_2_1\r\nContent-Type: application/ipp\r\n\r\n\x01\x01\x00\x00"

GOOD = (DLINK_NOTIFY, EMWEB_REPLY, b"M-SEARCH * HTTP/1.1\r\n")


def test_heads_parse_reads_start_line_and_headers() -> None:
    head = parse_head(DLINK_NOTIFY)
    assert head == Head(
        start_line="NOTIFY * HTTP/1.1",
        headers=(
            ("host", "239.255.255.250:1900"),
            ("cache-control", "max-age=1800"),
            ("location", "http://10.10.10.58:8021/rootdesc.xml"),
            ("nt", "upnp:rootdevice"),
            ("nts", "ssdp:alive"),
            ("server", "Cellvision UPnP/1.0"),
            ("usn", "uuid:ae67e622-7a66-465e-bab0-b0c5541c7185::upnp:rootdevice"),
        ),
    )


def test_heads_get_is_case_insensitive_and_returns_the_first_value() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\n\r\n")
    assert head is not None
    assert head.get("set-cookie") == "a=1"
    assert head.get("Set-Cookie") == "a=1"
    assert head.get_all("SET-cookie") == ("a=1", "b=2")
    assert head.get("server") is None
    assert head.get_all("server") == ()


def test_heads_parse_stops_at_the_blank_line() -> None:
    head = parse_head(EMWEB_REPLY + b"X-Body: not a header\r\n")
    assert head is not None
    assert head.start_line == "HTTP/1.1 200 OK"
    assert head.headers == (("server", "Virata-EmWeb/R6_2_1"), ("content-type", "application/ipp"))


def test_heads_parse_accepts_bare_lf_and_no_space_after_colon() -> None:
    # UniversalScanner SSDP.selftest: LF line ends, 'HOST:239.255.255.250:1900'
    head = parse_head(b"NOTIFY * HTTP/1.1\nHOST:239.255.255.250:1900\nNTS:ssdp:alive\n ")
    assert head == Head(
        start_line="NOTIFY * HTTP/1.1", headers=(("host", "239.255.255.250:1900"), ("nts", "ssdp:alive"))
    )


def test_heads_parse_skips_lines_without_colon_and_folded_lines() -> None:
    payload = b"GET / HTTP/1.1\r\nHost: cam\r\ngarbage line\r\n\tfolded: value\r\n: no name\r\nAccept: */*\r\n\r\n"
    head = parse_head(payload)
    assert head is not None
    assert head.headers == (("host", "cam"), ("accept", "*/*"))


def test_heads_parse_skips_leading_blank_lines() -> None:
    head = parse_head(b"\r\n\r\nOPTIONS rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert head == Head(start_line="OPTIONS rtsp://cam/ RTSP/1.0", headers=(("cseq", "1"),))


def test_heads_parse_keeps_a_truncated_last_line() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nServer: Hikvision-Webs\r\nContent-Len")
    assert head is not None
    assert head.headers == (("server", "Hikvision-Webs"),)
    head = parse_head(b"HTTP/1.1 200 OK\r\nServer: Hikv")
    assert head is not None
    assert head.headers == (("server", "Hikv"),)


def test_heads_parse_keeps_colons_in_values() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.64:8000/desc.xml\r\n\r\n")
    assert head is not None
    assert head.get("location") == "http://192.168.1.64:8000/desc.xml"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\r\n\r\n",
        b"   \r\n",
        b"\x00\x01\x02\x03",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /\x00 HTTP/1.1\r\n",
    ],
)
def test_heads_parse_rejects_payloads_without_a_printable_start_line(payload: bytes) -> None:
    assert parse_head(payload) is None


def test_heads_parse_caps_headers_bytes_and_lengths() -> None:
    payload = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 10_000 + b"\r\n" + b"X-Late: 1\r\n" * 100
    head = parse_head(payload)
    assert head is not None
    assert head.get("x-filler") == "a" * 256
    assert head.get("x-late") is None  # beyond the first 8192 bytes
    head = parse_head(b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 100, max_headers=5)
    assert head is not None
    assert len(head.headers) == 5


def test_heads_parse_bounds_a_huge_payload() -> None:
    payload = b"NOTIFY * HTTP/1.1\r\n" + b"SERVER: Linux UPnP/1.0\r\n" * 50_000  # ~1.2 MB
    head = parse_head(payload)
    assert head is not None
    assert len(head.headers) == MAX_HEADERS
    head = parse_head(b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n")
    assert head is not None
    assert len(head.start_line) <= 1024


def test_heads_head_is_frozen() -> None:
    head = parse_head(EMWEB_REPLY)
    assert head is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        head.start_line = "x"  # type: ignore[misc]


@given(st.binary(max_size=2048))
def test_heads_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    head = parse_head(payload)
    assert head is None or isinstance(head, Head)


@pytest.mark.parametrize("good", GOOD)
def test_heads_parse_survives_every_truncation(good: bytes) -> None:
    for n in range(len(good) + 1):
        head = parse_head(good[:n])
        assert head is None or isinstance(head, Head)
