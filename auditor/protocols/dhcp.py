"""DHCPv4 / BOOTP messages on UDP 67/68: the client's identity and its option fingerprint.

Sources: RFC 2131 §2 (the fixed BOOTP header, op, xid, ciaddr/yiaddr/chaddr) and §3 (the magic
cookie), RFC 2132 (options 12, 50, 53, 55, 60, 61), RFC 3396 (a long option split into several
instances is concatenated), RFC 3004 (user class 77), RFC 4702 (client FQDN 81), RFC 8520 §10 (MUD
URL 161), RFC 4388 / RFC 6926 / RFC 7724 (the lease-query message types). fingerprints.md B12: the
parameter request list (55) and the order of the options a client sends separate embedded Linux
(BusyBox udhcp, Axis) from PCs, and option 60 names Axis models.

Option overload (RFC 2132 §9.3: more options in the `sname` / `file` fields) is not followed: the
clients that matter here (cameras, NVRs) never use it, and the fixed fields are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a payload looked at: a DHCP message is at most a few hundred bytes on real networks."""

MAX_OPTIONS = 128
"""Options (not counting pads) walked before the walk stops: real clients send 5 to 20."""

MAX_OPTION_VALUE = 1024
"""Cap on the bytes kept for one option code after RFC 3396 concatenation."""

MAX_CLIENT_ID = 128
"""Bytes of the client identifier (61) kept: 256 hex characters."""

MAX_DNS_NAME = 255
"""RFC 1035 §3.1: a domain name is at most 255 bytes on the wire."""

BOOTP_FIXED_LEN = 236
"""RFC 2131 §2 figure 1: op .. file, before the options field."""

BOOTREQUEST = 1
"""RFC 2131 §2: op 1, a message from a client."""

BOOTREPLY = 2
"""RFC 2131 §2: op 2, a message from a server."""

HTYPE_ETHERNET = 1
"""RFC 1700 / IANA ARP hardware type 1 (10 Mb Ethernet), with hlen 6."""

DHCP_MAGIC_COOKIE = b"\x63\x82\x53\x63"
"""RFC 2131 §3: the first four option bytes are 99.130.83.99."""

DHCP_OPT_PAD = 0  # RFC 2132 §3.1
DHCP_OPT_HOSTNAME = 12  # RFC 2132 §3.14
DHCP_OPT_REQUESTED_ADDRESS = 50  # RFC 2132 §9.1
DHCP_OPT_MESSAGE_TYPE = 53  # RFC 2132 §9.6
DHCP_OPT_PARAMETER_REQUEST_LIST = 55  # RFC 2132 §9.8
DHCP_OPT_VENDOR_CLASS = 60  # RFC 2132 §9.13
DHCP_OPT_CLIENT_ID = 61  # RFC 2132 §9.14
DHCP_OPT_USER_CLASS = 77  # RFC 3004 §4
DHCP_OPT_CLIENT_FQDN = 81  # RFC 4702 §2
DHCP_OPT_MUD_URL = 161  # RFC 8520 §10
DHCP_OPT_END = 255  # RFC 2132 §3.2

FQDN_FLAG_E = 0x04
"""RFC 4702 §2.1: E set means the name is in DNS wire format (else deprecated ASCII)."""

DHCP_MESSAGE_TYPES = {
    1: "discover",
    2: "offer",
    3: "request",
    4: "decline",
    5: "ack",
    6: "nak",
    7: "release",
    8: "inform",
    9: "forcerenew",  # RFC 3203
    10: "leasequery",  # RFC 4388
    11: "leaseunassigned",
    12: "leaseunknown",
    13: "leaseactive",
    14: "bulkleasequery",  # RFC 6926
    15: "leasequerydone",
    16: "activeleasequery",  # RFC 7724
    17: "leasequerystatus",
    18: "tls",
}
"""RFC 2132 §9.6 option 53 values (and the IANA registry's later ones) -> name."""

BOOTP_MESSAGE = "bootp"
"""Message name of a request or reply with the magic cookie but no option 53 (plain BOOTP, RFC 1542)."""


@dataclass(frozen=True, slots=True)
class DhcpRecord:
    """One DHCPv4 (or BOOTP) message."""

    protocol: ClassVar[str] = "dhcp"

    op: int
    """1 = BOOTREQUEST (client), 2 = BOOTREPLY (server)."""

    xid: int
    """Transaction id chosen by the client."""

    message: str
    """Option 53 as a name ('discover', 'request', 'ack'...), the number for unknown types, or 'bootp'."""

    chaddr: str | None = None
    """Client hardware address: 'AA-BB-CC-DD-EE-FF' for Ethernet, else hex of the hlen bytes."""

    ciaddr: str | None = None
    """Client IP address from the header (None when 0.0.0.0)."""

    yiaddr: str | None = None
    """'Your' IP address, the one a server offers or acks (None when 0.0.0.0)."""

    hostname: str | None = None
    """Option 12, host name."""

    vendor_class: str | None = None
    """Option 60, vendor class identifier, e.g. 'udhcp 1.22.1' or 'AXIS,Network Camera,...'."""

    prl: str | None = None
    """Option 55, parameter request list in wire order: '1,3,6,12,15,28,42'."""

    client_id: str | None = None
    """Option 61 in hex, type byte included ('01' + MAC for Ethernet), capped at MAX_CLIENT_ID bytes."""

    requested_address: str | None = None
    """Option 50, the address the client asks for."""

    fqdn: str | None = None
    """Option 81, the name part of the client FQDN."""

    user_class: str | None = None
    """Option 77: the RFC 3004 instances joined with ',', or the raw text clients send instead."""

    mud_url: str | None = None
    """Option 161, Manufacturer Usage Description URL (RFC 8520)."""

    options: str = ""
    """Option codes in wire order, pads left out, END included: '53,61,57,55,60,12,255'."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; only client messages say more than the type."""
        yield ("message", self.message)
        if self.op != BOOTREQUEST:
            return  # a server's reply carries the client's fields, not its own
        texts = (
            ("hostname", self.hostname),
            ("vendor_class", self.vendor_class),
            ("prl", self.prl),
            ("options", self.options),
            ("client_id", self.client_id),
            ("fqdn", self.fqdn),
            ("user_class", self.user_class),
            ("mud_url", self.mud_url),
        )
        for name, value in texts:
            if value:
                yield (name, value)


def parse(payload: bytes) -> DhcpRecord | None:
    """Return the DHCPv4/BOOTP message in a UDP 67/68 payload, or None when it is not one or is malformed."""
    r = _wire.Reader(payload[:MAX_PAYLOAD])
    try:
        op = r.u8()
        htype = r.u8()
        hlen = r.u8()
        r.skip(1)  # hops
        xid = r.u32()
        r.skip(2 + 2)  # secs, flags
        ciaddr = r.take(4)
        yiaddr = r.take(4)
        r.skip(4 + 4)  # siaddr, giaddr
        chaddr = r.take(16)
        r.skip(64 + 128)  # sname, file (option overload is not followed)
        if op not in (BOOTREQUEST, BOOTREPLY) or hlen > len(chaddr):
            return None
        if r.take(4) != DHCP_MAGIC_COOKIE:
            return None
        codes, values = _walk_options(r, cut=len(payload) > MAX_PAYLOAD)
    except _wire.Malformed:
        return None
    return DhcpRecord(
        op=op,
        xid=xid,
        message=_message(values.get(DHCP_OPT_MESSAGE_TYPE)),
        chaddr=_hardware_address(htype, chaddr[:hlen]),
        ciaddr=_address(ciaddr),
        yiaddr=_address(yiaddr),
        hostname=_text(values.get(DHCP_OPT_HOSTNAME)),
        vendor_class=_text(values.get(DHCP_OPT_VENDOR_CLASS)),
        prl=_join(values.get(DHCP_OPT_PARAMETER_REQUEST_LIST)),
        client_id=_hex(values.get(DHCP_OPT_CLIENT_ID)),
        requested_address=_address(values.get(DHCP_OPT_REQUESTED_ADDRESS)),
        fqdn=_fqdn(values.get(DHCP_OPT_CLIENT_FQDN)),
        user_class=_user_class(values.get(DHCP_OPT_USER_CLASS)),
        mud_url=_text(values.get(DHCP_OPT_MUD_URL)),
        options=",".join(str(c) for c in codes),  # bounded by MAX_OPTIONS
    )


def dns_wire_name(raw: bytes) -> str | None:
    """Return an uncompressed DNS wire-format name as dotted text, or None when it is malformed.

    RFC 4702 §2.3 and RFC 4704 §4.1 forbid compression in the FQDN options, so a pointer is malformed.
    A name without the terminating zero (a partial name, RFC 4702 §2.3) is accepted. The root name
    (a lone zero byte) gives ''.
    """
    labels: list[str] = []
    r = _wire.Reader(raw[:MAX_DNS_NAME])
    try:
        while r.left:
            n = r.u8()
            if n == 0:
                break
            if n > 63:  # RFC 1035 §3.1 label length; 0xC0 would be a compression pointer
                return None
            labels.append(r.take(n).decode("ascii", errors="replace"))
    except _wire.Malformed:
        return None
    return _wire.text(".".join(labels).encode("utf-8"))


def _walk_options(r: _wire.Reader, cut: bool) -> tuple[list[int], dict[int, bytes]]:
    """Return the option codes in wire order and each code's value (RFC 3396: repeats concatenated).

    The walk ends at END, at the end of the data, or after MAX_OPTIONS options. An option whose
    length runs past the data raises Malformed, unless the data was `cut` at MAX_PAYLOAD by us: then
    the options before it are kept.
    """
    codes: list[int] = []
    values: dict[int, bytes] = {}
    while r.left and len(codes) < MAX_OPTIONS:
        code = r.u8()
        if code == DHCP_OPT_PAD:
            continue
        if code == DHCP_OPT_END:
            codes.append(code)
            break
        try:
            value = r.take(r.u8())
        except _wire.Malformed:
            if cut:
                break
            raise
        codes.append(code)
        values[code] = (values.get(code, b"") + value)[:MAX_OPTION_VALUE]
    return codes, values


def _message(raw: bytes | None) -> str:
    """Return the option 53 message name; 'bootp' without option 53; the number when unknown."""
    if not raw:
        return BOOTP_MESSAGE
    return DHCP_MESSAGE_TYPES.get(raw[0], str(raw[0]))


def _hardware_address(htype: int, addr: bytes) -> str | None:
    """Return an Ethernet MAC as 'AA-BB-CC-DD-EE-FF', other hardware addresses as hex, None when empty."""
    if not addr.strip(b"\x00"):
        return None
    if htype == HTYPE_ETHERNET and len(addr) == 6:
        return "-".join(f"{b:02X}" for b in addr)
    return addr.hex()


def _address(raw: bytes | None) -> str | None:
    """Return 4 bytes as a dotted IPv4 address; None for 0.0.0.0 or another length."""
    if raw is None or len(raw) != 4 or raw == bytes(4):
        return None
    return str(ipaddress.IPv4Address(raw))


def _text(raw: bytes | None) -> str | None:
    """Return option bytes as capped text (trailing NULs dropped: some clients count them), None if empty."""
    if raw is None:
        return None
    return _wire.text(raw.rstrip(b"\x00")) or None


def _join(raw: bytes | None) -> str | None:
    """Return a list of one-byte codes as '1,3,6', None if empty."""
    if not raw:
        return None
    return ",".join(str(b) for b in raw)


def _hex(raw: bytes | None) -> str | None:
    """Return bytes as lower-case hex, capped at MAX_CLIENT_ID bytes, None if empty."""
    if not raw:
        return None
    return raw[:MAX_CLIENT_ID].hex()


def _fqdn(raw: bytes | None) -> str | None:
    """Return the name in an RFC 4702 client FQDN option (flags, rcode1, rcode2, name), None if absent."""
    if raw is None or len(raw) < 3:
        return None
    name = raw[3:]
    if raw[0] & FQDN_FLAG_E:
        return dns_wire_name(name) or None
    return _text(name)  # RFC 4702 §2.3.1: deprecated ASCII encoding, still sent by old clients


def _user_class(raw: bytes | None) -> str | None:
    """Return RFC 3004 user class instances joined with ',', or the option as text when it is not in that form.

    Many clients (Windows, dhcpcd) send one bare string instead of length-prefixed instances; the
    instances are used only when their lengths cover the option exactly.
    """
    if not raw:
        return None
    parts: list[str] = []
    r = _wire.Reader(raw)
    try:
        while r.left:
            n = r.u8()
            if n == 0:
                raise _wire.Malformed("RFC 3004 §4: an instance is at least one byte")
            parts.append(_wire.text(r.take(n)))
    except _wire.Malformed:
        return _text(raw)
    return _wire.text(",".join(parts).encode("utf-8")) or None
