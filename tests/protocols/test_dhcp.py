"""DHCPv4 / BOOTP (RFC 2131/2132, fingerprints.md B12): header, option walk, client fingerprint facts."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import dhcp
from auditor.protocols.dhcp import DhcpRecord

COOKIE = b"\x63\x82\x53\x63"
MAC = bytes.fromhex("accc8e123456")  # an Axis OUI (fingerprints.md A)


def bootp(
    options: bytes,
    op: int = 1,
    xid: int = 0x3903F326,
    chaddr: bytes = MAC,
    htype: int = 1,
    ciaddr: bytes = bytes(4),
    yiaddr: bytes = bytes(4),
    cookie: bytes = COOKIE,
    hlen: int | None = None,
) -> bytes:
    """A BOOTP message (RFC 2131 §2 figure 1): fixed 236 bytes, magic cookie, options."""
    header = struct.pack(">BBBBIHH", op, htype, len(chaddr) if hlen is None else hlen, 0, xid, 0, 0x8000)
    header += ciaddr + yiaddr + bytes(4) + bytes(4) + chaddr.ljust(16, b"\x00") + bytes(64) + bytes(128)
    assert len(header) == 236
    return header + cookie + options


def opt(code: int, value: bytes) -> bytes:
    """One option: code, length, value (RFC 2132 §2)."""
    return bytes([code, len(value)]) + value


END = b"\xff"

# fingerprints.md B12 (satori fingerprints/dhcp.xml): Axis order 53,61,57,55,60,12,255 and PRL 1,3,6,12,15,28,42
AXIS_DISCOVER = bootp(
    opt(53, b"\x01")
    + opt(61, b"\x01" + MAC)
    + opt(57, b"\x02\x40")
    + opt(55, bytes([1, 3, 6, 12, 15, 28, 42]))
    + opt(60, b"AXIS,Network Camera,P1435-LE,10.12.114")
    + opt(12, b"axis-accc8e123456")
    + END
)

# fingerprints.md B12: Amcrest IP3M-943 (Dahua OEM) discover opts 53,55,12,61,255, PRL 1,3,4,5,6,12,15,28,42
AMCREST_DISCOVER = bootp(
    opt(53, b"\x01")
    + opt(55, bytes([1, 3, 4, 5, 6, 12, 15, 28, 42]))
    + opt(12, b"IP3M-943")
    + opt(61, b"\x01" + bytes.fromhex("9c8ecd0a0b0c"))
    + END,
    chaddr=bytes.fromhex("9c8ecd0a0b0c"),
)

# a busybox udhcp request (fingerprints.md B12: 'udhcp 1.22.1', PRL 1,3,6,12,15,28,42) with requested address
UDHCP_REQUEST = bootp(
    opt(53, b"\x03")
    + opt(61, b"\x01" + MAC)
    + opt(50, bytes([192, 168, 1, 64]))
    + opt(54, bytes([192, 168, 1, 1]))
    + opt(57, b"\x02\x40")
    + opt(60, b"udhcp 1.22.1")
    + opt(12, b"WyzeCam")
    + opt(55, bytes([1, 3, 6, 12, 15, 28, 42]))
    + END
)

SERVER_OFFER = bootp(
    opt(53, b"\x02")
    + opt(54, bytes([192, 168, 1, 1]))
    + opt(51, b"\x00\x01\x51\x80")
    + opt(1, bytes([255] * 3 + [0]))
    + END,
    op=2,
    yiaddr=bytes([192, 168, 1, 64]),
)

GOOD = [AXIS_DISCOVER, AMCREST_DISCOVER, UDHCP_REQUEST, SERVER_OFFER]


def test_dhcp_parse_reads_an_axis_discover() -> None:
    assert dhcp.parse(AXIS_DISCOVER) == DhcpRecord(
        op=1,
        xid=0x3903F326,
        message="discover",
        chaddr="AC-CC-8E-12-34-56",
        hostname="axis-accc8e123456",
        vendor_class="AXIS,Network Camera,P1435-LE,10.12.114",
        prl="1,3,6,12,15,28,42",
        client_id="01accc8e123456",
        options="53,61,57,55,60,12,255",
    )


def test_dhcp_facts_describe_an_axis_client() -> None:
    record = dhcp.parse(AXIS_DISCOVER)
    assert record is not None
    assert record.protocol == "dhcp"
    assert list(record.facts()) == [
        ("message", "discover"),
        ("hostname", "axis-accc8e123456"),
        ("vendor_class", "AXIS,Network Camera,P1435-LE,10.12.114"),
        ("prl", "1,3,6,12,15,28,42"),
        ("options", "53,61,57,55,60,12,255"),
        ("client_id", "01accc8e123456"),
    ]


def test_dhcp_parse_reads_the_amcrest_option_order() -> None:
    record = dhcp.parse(AMCREST_DISCOVER)
    assert record is not None
    assert (record.options, record.prl, record.hostname) == ("53,55,12,61,255", "1,3,4,5,6,12,15,28,42", "IP3M-943")
    assert record.chaddr == "9C-8E-CD-0A-0B-0C"


def test_dhcp_parse_reads_requested_address_and_vendor_class() -> None:
    record = dhcp.parse(UDHCP_REQUEST)
    assert record is not None
    assert record.message == "request"
    assert record.requested_address == "192.168.1.64"
    assert record.vendor_class == "udhcp 1.22.1"
    assert record.options == "53,61,50,54,57,60,12,55,255"


def test_dhcp_facts_of_a_server_reply_name_only_the_message() -> None:
    record = dhcp.parse(SERVER_OFFER)
    assert record is not None
    assert (record.op, record.message, record.yiaddr, record.ciaddr) == (2, "offer", "192.168.1.64", None)
    assert list(record.facts()) == [("message", "offer")]


def test_dhcp_parse_reads_fqdn_user_class_and_mud_url() -> None:
    payload = bootp(
        opt(53, b"\x08")
        + opt(81, b"\x05\x00\x00" + b"\x05cam01\x07example\x03com\x00")  # RFC 4702: flags S+E, wire name
        + opt(77, b"\x04iPXE\x03lab")  # RFC 3004: two instances
        + opt(161, b"https://mud.example.com/cam.json")
        + END,
        ciaddr=bytes([10, 0, 0, 7]),
    )
    record = dhcp.parse(payload)
    assert record is not None
    assert list(record.facts()) == [
        ("message", "inform"),
        ("options", "53,81,77,161,255"),
        ("fqdn", "cam01.example.com"),
        ("user_class", "iPXE,lab"),
        ("mud_url", "https://mud.example.com/cam.json"),
    ]
    assert record.ciaddr == "10.0.0.7"


def test_dhcp_parse_reads_ascii_fqdn_and_bare_user_class() -> None:
    # RFC 4702 §2.3.1 deprecated ASCII name (E clear); Windows sends user class as one bare string
    payload = bootp(opt(53, b"\x01") + opt(81, b"\x00\x00\x00DESKTOP-1.corp") + opt(77, b"MSFT 5.0") + END)
    record = dhcp.parse(payload)
    assert record is not None
    assert (record.fqdn, record.user_class) == ("DESKTOP-1.corp", "MSFT 5.0")


def test_dhcp_parse_concatenates_split_options() -> None:
    # RFC 3396 §7: several instances of one option are concatenated; the code list keeps both
    payload = bootp(opt(53, b"\x01") + opt(12, b"front-") + opt(12, b"door") + END)
    record = dhcp.parse(payload)
    assert record is not None
    assert (record.hostname, record.options) == ("front-door", "53,12,12,255")


def test_dhcp_parse_skips_pads_and_accepts_a_missing_end() -> None:
    record = dhcp.parse(bootp(b"\x00\x00" + opt(53, b"\x01") + b"\x00" + opt(12, b"cam\x00")))
    assert record is not None
    assert (record.options, record.hostname) == ("53,12", "cam")  # trailing NUL some clients count is dropped


def test_dhcp_parse_names_plain_bootp_and_unknown_types() -> None:
    plain = dhcp.parse(bootp(END))
    assert plain is not None and plain.message == "bootp"
    unknown = dhcp.parse(bootp(opt(53, b"\x6a") + END))
    assert unknown is not None and unknown.message == "106"
    lease = dhcp.parse(bootp(opt(53, b"\x0a") + END))
    assert lease is not None and lease.message == "leasequery"


def test_dhcp_parse_writes_non_ethernet_hardware_addresses_as_hex() -> None:
    record = dhcp.parse(bootp(opt(53, b"\x01") + END, htype=6, chaddr=bytes.fromhex("0102030405060708")))
    assert record is not None and record.chaddr == "0102030405060708"
    empty = dhcp.parse(bootp(opt(53, b"\x01") + END, chaddr=bytes(6)))
    assert empty is not None and empty.chaddr is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        AXIS_DISCOVER[:239],  # no room for the cookie
        bootp(END, cookie=b"\x00\x00\x00\x00"),  # RFC 2131 §3: the cookie is required
        bootp(END, op=3),
        bootp(END, hlen=17),  # hlen 17 > the 16-byte chaddr field
        bootp(opt(53, b"\x01") + b"\x0c\x10short"),  # option length past the end
        b"GET / HTTP/1.1\r\n\r\n" * 20,
    ],
)
def test_dhcp_parse_rejects_malformed_payloads(payload: bytes) -> None:
    assert dhcp.parse(payload) is None


def test_dhcp_dns_wire_name_rejects_pointers_and_overruns() -> None:
    assert dhcp.dns_wire_name(b"\x03cam\x00") == "cam"
    assert dhcp.dns_wire_name(b"\x03cam\x04home") == "cam.home"  # RFC 4702 §2.3: a partial name
    assert dhcp.dns_wire_name(b"\x03cam\xc0\x0c") is None
    assert dhcp.dns_wire_name(b"\x09cam") is None
    assert dhcp.dns_wire_name(b"\x00") == ""


def test_dhcp_parse_bounds_a_huge_payload() -> None:
    # 1 MB of small options: the walk stops after MAX_OPTIONS, repeats concatenate up to MAX_OPTION_VALUE
    payload = bootp(opt(53, b"\x01") + opt(12, b"xy") * 250_000)
    assert len(payload) > 1_000_000
    record = dhcp.parse(payload)
    assert record is not None
    assert len(record.options.split(",")) == dhcp.MAX_OPTIONS
    assert record.hostname == "xy" * 127


def test_dhcp_parse_keeps_the_options_before_its_own_byte_cap() -> None:
    # 1 MB of 255-byte host names: only MAX_PAYLOAD bytes are read, the option cut there is dropped
    payload = bootp(opt(53, b"\x01") + opt(12, b"x" * 255) * 4200)
    record = dhcp.parse(payload)
    assert record is not None
    assert record.options == ",".join(["53"] + ["12"] * ((dhcp.MAX_PAYLOAD - 240 - 3) // 257))
    assert record.hostname == "x" * 256


def test_dhcp_parse_bounds_a_megabyte_of_pads() -> None:
    record = dhcp.parse(bootp(opt(53, b"\x01") + bytes(1_000_000)))
    assert record is not None and record.options == "53"


@given(st.binary(max_size=2048))
def test_dhcp_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    record = dhcp.parse(payload)
    assert record is None or isinstance(record, DhcpRecord)
    if record is not None:
        list(record.facts())


@given(st.binary(max_size=1024))
def test_dhcp_parse_never_raises_behind_a_valid_header(options: bytes) -> None:
    record = dhcp.parse(bootp(options))
    assert record is None or isinstance(record, DhcpRecord)
    if record is not None:
        list(record.facts())


@pytest.mark.parametrize("good", GOOD)
def test_dhcp_parse_survives_every_truncation(good: bytes) -> None:
    assert dhcp.parse(good) is not None
    for n in range(len(good) + 1):
        record = dhcp.parse(good[:n])
        assert record is None or isinstance(record, DhcpRecord)


DHCP_FILES = (
    "iotsentinel__D-LinkDayCam_Setup-C-1.pcap",
    "iotsentinel__EdimaxCam2_Setup-C-2.pcap",
    "ndpi__android.pcap",
    "tcpdump__dhcp-rfc4388.pcap",
    "zeek__dhcp_dhcp.pcap",
    "zeek__dhcp_dhcp_inform.pcap",
    "suricata-verify__dhcp-request-flood.pcap",
)
"""Corpus files with DHCPv4 (MANIFEST.md); the request flood is read up to MAX_FRAMES only."""

MAX_FRAMES = 400


def _udp_payloads(path: Path, frames: set[int]) -> dict[int, bytes]:
    """Return {frame number: UDP payload} for the wanted frames among the first MAX_FRAMES of a capture."""
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    out: dict[int, bytes] = {}
    with PcapReader(str(path)) as reader:
        for number, pkt in enumerate(reader, 1):
            if number > MAX_FRAMES:
                break
            if number in frames and UDP in pkt:
                out[number] = bytes(pkt[UDP].payload)
    return out


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", DHCP_FILES)
def test_dhcp_parse_agrees_with_tshark_on_options_12_55_60(corpus: Path, tshark: str, name: str) -> None:
    fields = ("dhcp.option.hostname", "dhcp.option.vendor_class_id", "dhcp.option.request_list_item")
    cmd = [tshark, "-r", str(corpus / name), "-c", str(MAX_FRAMES), "-Y", "dhcp and not _ws.malformed"]
    cmd += ["-T", "fields", "-E", "separator=|", "-e", "frame.number", *(a for f in fields for a in ("-e", f))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    expected = {int(row[0]): tuple(v or None for v in row[1:4]) for row in rows if row and row[0]}
    assert expected, f"tshark found no DHCP in {name}"
    payloads = _udp_payloads(corpus / name, set(expected))
    for number, want in expected.items():
        record = dhcp.parse(payloads[number])
        assert record is not None, f"{name} frame {number}"
        assert (record.hostname, record.vendor_class, record.prl) == want, f"{name} frame {number}"
