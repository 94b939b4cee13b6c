"""DHCPv6 (RFC 8415): message types, DUIDs, vendor/user class, FQDN, ORO, MUD URL, option order."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import dhcp6
from auditor.protocols.dhcp6 import Dhcp6Record

MAC = bytes.fromhex("4c6af69ff627")


def msg(msg_type: int, options: bytes, xid: int = 0x5A1B2C) -> bytes:
    """A client/server message (RFC 8415 §8): msg-type, 3-byte transaction-id, options."""
    return bytes([msg_type]) + xid.to_bytes(3, "big") + options


def opt(code: int, value: bytes) -> bytes:
    """One option (RFC 8415 §21.1): code, length, value."""
    return struct.pack(">HH", code, len(value)) + value


def items(*values: bytes) -> bytes:
    """opaque-data items of user/vendor class options (RFC 8415 §21.15): 2-byte length + data each."""
    return b"".join(struct.pack(">H", len(v)) + v for v in values)


DUID_LLT = struct.pack(">HHI", 1, 1, 0x2A3B4C5D) + MAC  # RFC 8415 §11.2
DUID_LL = struct.pack(">HH", 3, 1) + MAC  # RFC 8415 §11.4
DUID_EN = struct.pack(">HI", 2, 9) + bytes.fromhex("0c0001020304")  # RFC 8415 §11.3

# a Windows-style Solicit: elapsed time, client id, IA_NA, FQDN, vendor class 311 "MSFT 5.0", ORO
WINDOWS_SOLICIT = msg(
    1,
    opt(8, b"\x00\x00")
    + opt(1, DUID_LLT)
    + opt(3, bytes(12))
    + opt(39, b"\x00" + b"\x0bDESKTOP-CAM\x04corp\x00")
    + opt(16, struct.pack(">I", 311) + items(b"MSFT 5.0"))
    + opt(6, struct.pack(">HHHH", 17, 23, 24, 39)),
)

# the Android Solicit of ndpi__android.pcap: options 1,3,8,6 and ORO 23,24 (DUID-LL)
ANDROID_SOLICIT = msg(1, opt(1, DUID_LL) + opt(3, bytes(12)) + opt(8, b"\x00\x00") + opt(6, b"\x00\x17\x00\x18"))

SERVER_REPLY = msg(7, opt(1, DUID_LL) + opt(2, DUID_EN) + opt(39, b"\x00\x03cam\x00"))

RELAY_FORW = bytes([12, 0]) + bytes(16) + bytes(16) + opt(9, WINDOWS_SOLICIT)

GOOD = [WINDOWS_SOLICIT, ANDROID_SOLICIT, SERVER_REPLY, RELAY_FORW]


def test_dhcp6_parse_reads_a_windows_solicit() -> None:
    assert dhcp6.parse(WINDOWS_SOLICIT) == Dhcp6Record(
        message="solicit",
        transaction_id=0x5A1B2C,
        client_duid=DUID_LLT.hex(),
        duid_mac="4C-6A-F6-9F-F6-27",
        vendor_class="311:MSFT 5.0",
        fqdn="DESKTOP-CAM.corp",
        oro="17,23,24,39",
        options="8,1,3,39,16,6",
    )


def test_dhcp6_facts_describe_the_client() -> None:
    record = dhcp6.parse(WINDOWS_SOLICIT)
    assert record is not None
    assert record.protocol == "dhcp6"
    assert list(record.facts()) == [
        ("message", "solicit"),
        ("vendor_class", "311:MSFT 5.0"),
        ("fqdn", "DESKTOP-CAM.corp"),
        ("oro", "17,23,24,39"),
        ("options", "8,1,3,39,16,6"),
        ("duid_mac", "4C-6A-F6-9F-F6-27"),
    ]


def test_dhcp6_parse_reads_a_duid_ll() -> None:
    record = dhcp6.parse(ANDROID_SOLICIT)
    assert record is not None
    assert list(record.facts()) == [
        ("message", "solicit"),
        ("oro", "23,24"),
        ("options", "1,3,8,6"),
        ("duid_mac", "4C-6A-F6-9F-F6-27"),
    ]


@pytest.mark.parametrize(
    ("duid", "mac"),
    [
        (DUID_EN, None),
        (struct.pack(">H", 4) + bytes(16), None),  # DUID-UUID
        (struct.pack(">HH", 3, 6) + MAC, None),  # DUID-LL, IEEE 802 hardware type 6: not Ethernet
        (struct.pack(">HH", 3, 1) + MAC[:5], None),  # a 5-byte "MAC"
    ],
)
def test_dhcp6_parse_gives_a_mac_only_for_ethernet_ll_duids(duid: bytes, mac: str | None) -> None:
    record = dhcp6.parse(msg(1, opt(1, duid)))
    assert record is not None
    assert (record.client_duid, record.duid_mac) == (duid.hex(), mac)


def test_dhcp6_parse_reads_user_class_vendor_strings_and_mud_url() -> None:
    payload = msg(
        11,
        opt(1, DUID_LL)
        + opt(15, items(b"cam", b"lab"))
        + opt(16, struct.pack(">I", 4491) + items(b"docsis3.0", b"x"))
        + opt(112, b"https://mud.example.com/nvr.json"),
    )
    record = dhcp6.parse(payload)
    assert record is not None
    assert record.message == "information-request"
    assert (record.user_class, record.vendor_class) == ("cam,lab", "4491:docsis3.0,x")
    assert ("mud_url", "https://mud.example.com/nvr.json") in list(record.facts())


def test_dhcp6_facts_of_a_server_reply_name_only_the_message() -> None:
    record = dhcp6.parse(SERVER_REPLY)
    assert record is not None
    assert (record.message, record.duid_mac, record.fqdn) == ("reply", "4C-6A-F6-9F-F6-27", "cam")
    assert list(record.facts()) == [("message", "reply")]


def test_dhcp6_parse_only_names_relay_messages() -> None:
    assert dhcp6.parse(RELAY_FORW) == Dhcp6Record(message="relay-forw")
    assert dhcp6.parse(RELAY_FORW[:20]) is None  # shorter than hop-count + two addresses


def test_dhcp6_parse_tolerates_malformed_class_options() -> None:
    record = dhcp6.parse(msg(1, opt(1, DUID_LL) + opt(16, b"\x00\x00") + opt(15, b"\x00\x09ab") + opt(6, b"\x00")))
    assert record is not None
    assert (record.vendor_class, record.user_class, record.oro) == (None, None, None)
    assert record.options == "1,16,15,6"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01\x00\x00",
        msg(1, b""),  # no options at all
        msg(0, opt(1, DUID_LL)),  # msg-type 0 is not assigned
        msg(200, opt(1, DUID_LL)),
        msg(1, opt(1, DUID_LL) + b"\x00\x27\x00\x10ab"),  # option length past the end
        msg(1, opt(1, DUID_LL) + b"\x00"),  # half an option header
        b"\x16\x03\x01\x00\x10" + bytes(16),  # a TLS record
    ],
)
def test_dhcp6_parse_rejects_malformed_payloads(payload: bytes) -> None:
    assert dhcp6.parse(payload) is None


def test_dhcp6_parse_bounds_a_huge_payload() -> None:
    # 1 MB of small options: the walk stops after MAX_OPTIONS
    payload = msg(1, opt(1, DUID_LL) + opt(15, items(b"ab")) * 125_000)
    assert len(payload) > 1_000_000
    record = dhcp6.parse(payload)
    assert record is not None
    assert len(record.options.split(",")) == dhcp6.MAX_OPTIONS
    assert record.user_class == "ab"


def test_dhcp6_parse_keeps_the_options_before_its_own_byte_cap() -> None:
    # 1 MB of 306-byte options: only MAX_PAYLOAD bytes are read, the option cut there is dropped
    payload = msg(1, opt(1, DUID_LL) + opt(15, items(b"x" * 300)) * 4000)
    record = dhcp6.parse(payload)
    assert record is not None
    assert record.options == ",".join(["1"] + ["15"] * ((dhcp6.MAX_PAYLOAD - 4 - 12) // 306))
    assert record.user_class == "x" * 256


@given(st.binary(max_size=2048))
def test_dhcp6_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    record = dhcp6.parse(payload)
    assert record is None or isinstance(record, Dhcp6Record)
    if record is not None:
        list(record.facts())


@given(st.binary(max_size=1024))
def test_dhcp6_parse_never_raises_behind_a_valid_header(options: bytes) -> None:
    record = dhcp6.parse(msg(1, options))
    assert record is None or isinstance(record, Dhcp6Record)
    if record is not None:
        list(record.facts())


@pytest.mark.parametrize("good", GOOD)
def test_dhcp6_parse_survives_every_truncation(good: bytes) -> None:
    assert dhcp6.parse(good) is not None
    for n in range(len(good) + 1):
        record = dhcp6.parse(good[:n])
        assert record is None or isinstance(record, Dhcp6Record)


@pytest.mark.corpus
@pytest.mark.oracle
def test_dhcp6_parse_agrees_with_tshark_on_the_android_capture(corpus: Path, tshark: str) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    path = corpus / "ndpi__android.pcap"
    cmd = [tshark, "-r", str(path), "-Y", "dhcpv6", "-T", "fields", "-E", "separator=|", "-e", "frame.number"]
    cmd += ["-e", "dhcpv6.option.type", "-e", "dhcpv6.duidll.link_layer_addr", "-e", "dhcpv6.duidllt.link_layer_addr"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    expected = {int(row[0]): (row[1], (row[2] or row[3]).replace(":", "-").upper()) for row in rows if row and row[0]}
    assert len(expected) == 2
    found = 0
    with PcapReader(str(path)) as reader:
        for number, pkt in enumerate(reader, 1):
            if number in expected:
                record = dhcp6.parse(bytes(pkt[UDP].payload))
                assert record is not None
                assert (record.options, record.duid_mac) == expected[number]
                found += 1
    assert found == len(expected)
