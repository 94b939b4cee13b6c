"""DHCPv6 client/server messages on UDP 546/547: the client's DUID, vendor class, FQDN and option fingerprint.

Sources: RFC 8415 §8 (client/server message format: msg-type, 3-byte transaction-id, options),
§9 (relay-forw / relay-repl: hop-count, link-address, peer-address, options), §7.3 (message types),
§11 (DUID-LLT, DUID-EN, DUID-LL, DUID-UUID), §21 (option format and options 1, 6, 15, 16);
RFC 4704 §4 (client FQDN option 39: flags, then the name in uncompressed DNS wire format);
RFC 8520 §10 (MUD URL option 112). fingerprints.md B12: DHCP option lists separate embedded Linux
from PCs; the MUD URL is logged when present.

Relay messages are only named: their options wrap the client's message, which the relay agent
forwards, so they say nothing about the relay itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.dhcp import dns_wire_name
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a payload looked at: DHCPv6 messages are a few hundred bytes."""

MAX_OPTIONS = 64
"""Options walked before the walk stops: real clients send 5 to 12."""

MAX_DUID = 130
"""RFC 8415 §11.1: a DUID is at most 128 bytes plus its 2-byte type."""

MAX_CLASS_ITEMS = 16
"""Cap on the strings kept from one user class or vendor class option."""

MAX_ORO = 128
"""Cap on the option codes kept from an option request option."""

DHCP6_OPT_CLIENTID = 1  # RFC 8415 §21.2
DHCP6_OPT_ORO = 6  # RFC 8415 §21.7
DHCP6_OPT_USER_CLASS = 15  # RFC 8415 §21.15
DHCP6_OPT_VENDOR_CLASS = 16  # RFC 8415 §21.16
DHCP6_OPT_CLIENT_FQDN = 39  # RFC 4704 §4
DHCP6_OPT_MUD_URL = 112  # RFC 8520 §10

DUID_LLT = 1  # RFC 8415 §11.2: type, hardware type, time, link-layer address
DUID_EN = 2  # RFC 8415 §11.3
DUID_LL = 3  # RFC 8415 §11.4: type, hardware type, link-layer address
HWTYPE_ETHERNET = 1
"""IANA hardware type 1 (Ethernet): the link-layer address is a 6-byte MAC."""

RELAY_FORW = 12  # RFC 8415 §7.3
RELAY_REPL = 13

DHCP6_MESSAGE_TYPES = {
    1: "solicit",
    2: "advertise",
    3: "request",
    4: "confirm",
    5: "renew",
    6: "rebind",
    7: "reply",
    8: "release",
    9: "decline",
    10: "reconfigure",
    11: "information-request",
    12: "relay-forw",
    13: "relay-repl",
    14: "leasequery",  # RFC 5007
    15: "leasequery-reply",
    16: "leasequery-done",  # RFC 5460
    17: "leasequery-data",
    18: "reconfigure-request",  # RFC 6977
    19: "reconfigure-reply",
    20: "dhcpv4-query",  # RFC 7341
    21: "dhcpv4-response",
    22: "activeleasequery",  # RFC 7653
    23: "starttls",
    24: "bndupd",  # RFC 8156
    25: "bndreply",
    26: "poolreq",
    27: "poolresp",
    28: "updreq",
    29: "updreqall",
    30: "upddone",
    31: "connect",
    32: "connectreply",
    33: "disconnect",
    34: "state",
    35: "contact",
    36: "addr-reg-inform",  # RFC 9686
    37: "addr-reg-reply",
}
"""RFC 8415 §7.3 and the IANA registry: msg-type -> name. Other values are not DHCPv6."""

CLIENT_MESSAGES = frozenset({1, 3, 4, 5, 6, 8, 9, 11})
"""RFC 8415 §7.3: the message types a client sends; only these describe their sender's options."""

_CLIENT_MESSAGE_NAMES = frozenset(DHCP6_MESSAGE_TYPES[t] for t in CLIENT_MESSAGES)


@dataclass(frozen=True, slots=True)
class Dhcp6Record:
    """One DHCPv6 message."""

    protocol: ClassVar[str] = "dhcp6"

    message: str
    """Message type name: 'solicit', 'reply', 'relay-forw'..."""

    transaction_id: int | None = None
    """The 24-bit transaction id (None for relay messages, which have none)."""

    client_duid: str | None = None
    """Option 1, the client's DUID in hex (type included), capped at MAX_DUID bytes."""

    duid_mac: str | None = None
    """The link-layer address of a DUID-LLT / DUID-LL with Ethernet hardware type, as 'AA-BB-CC-DD-EE-FF'."""

    vendor_class: str | None = None
    """Option 16 as 'enterprise:string[,string...]', e.g. '311:MSFT 5.0'."""

    user_class: str | None = None
    """Option 15, the user class strings joined with ','."""

    fqdn: str | None = None
    """Option 39, the client's name decoded from DNS wire format."""

    oro: str | None = None
    """Option 6, the requested option codes in wire order: '23,24,39'."""

    mud_url: str | None = None
    """Option 112, Manufacturer Usage Description URL (RFC 8520)."""

    options: str = ""
    """Option codes in wire order: '1,6,8,3,16,39'."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; only client messages say more than the type.

        A server's Advertise/Reply repeats the client's DUID and FQDN, which describe the client.
        """
        yield ("message", self.message)
        if self.message not in _CLIENT_MESSAGE_NAMES:
            return
        texts = (
            ("vendor_class", self.vendor_class),
            ("user_class", self.user_class),
            ("fqdn", self.fqdn),
            ("oro", self.oro),
            ("options", self.options),
            ("duid_mac", self.duid_mac),
            ("mud_url", self.mud_url),
        )
        for name, value in texts:
            if value:
                yield (name, value)


def parse(payload: bytes) -> Dhcp6Record | None:
    """Return the DHCPv6 message in a UDP 546/547 payload, or None when it is not one or is malformed."""
    r = _wire.Reader(payload[:MAX_PAYLOAD])
    try:
        msg_type = r.u8()
        message = DHCP6_MESSAGE_TYPES.get(msg_type)
        if message is None:
            return None
        if msg_type in (RELAY_FORW, RELAY_REPL):
            r.skip(1 + 16 + 16)  # hop-count, link-address, peer-address (RFC 8415 §9)
            return Dhcp6Record(message=message)
        transaction_id = r.u24()
        codes, values = _walk_options(r, cut=len(payload) > MAX_PAYLOAD)
    except _wire.Malformed:
        return None
    if not codes:
        return None  # RFC 8415 §16/§18: every client/server message carries options (DUIDs, elapsed time)
    duid = values.get(DHCP6_OPT_CLIENTID)
    return Dhcp6Record(
        message=message,
        transaction_id=transaction_id,
        client_duid=duid[:MAX_DUID].hex() if duid else None,
        duid_mac=_duid_mac(duid),
        vendor_class=_vendor_class(values.get(DHCP6_OPT_VENDOR_CLASS)),
        user_class=_user_class(values.get(DHCP6_OPT_USER_CLASS)),
        fqdn=_fqdn(values.get(DHCP6_OPT_CLIENT_FQDN)),
        oro=_oro(values.get(DHCP6_OPT_ORO)),
        mud_url=_text(values.get(DHCP6_OPT_MUD_URL)),
        options=",".join(str(c) for c in codes),  # bounded by MAX_OPTIONS
    )


def _walk_options(r: _wire.Reader, cut: bool) -> tuple[list[int], dict[int, bytes]]:
    """Return option codes in wire order and the first value of each code.

    The walk ends at the end of the data or after MAX_OPTIONS options. An option whose length runs
    past the data raises Malformed, unless the data was `cut` at MAX_PAYLOAD by us: then the options
    before it are kept.
    """
    codes: list[int] = []
    values: dict[int, bytes] = {}
    while r.left and len(codes) < MAX_OPTIONS:
        try:
            code = r.u16()
            value = r.take(r.u16())
        except _wire.Malformed:
            if cut:
                break
            raise
        codes.append(code)
        values.setdefault(code, value)
    return codes, values


def _duid_mac(duid: bytes | None) -> str | None:
    """Return the MAC of a DUID-LLT or DUID-LL whose hardware type is Ethernet, else None."""
    if duid is None or len(duid) < 4:
        return None
    duid_type = int.from_bytes(duid[0:2], "big")
    hwtype = int.from_bytes(duid[2:4], "big")
    if hwtype != HWTYPE_ETHERNET:
        return None
    if duid_type == DUID_LLT:
        addr = duid[8:]  # type 2, hardware type 2, time 4
    elif duid_type == DUID_LL:
        addr = duid[4:]
    else:
        return None
    if len(addr) != 6:
        return None
    return "-".join(f"{b:02X}" for b in addr)


def _strings(r: _wire.Reader) -> list[str]:
    """Return the RFC 8415 §21.15/§21.16 opaque-data items (2-byte length + data) left in `r`, capped."""
    items: list[str] = []
    while r.left and len(items) < MAX_CLASS_ITEMS:
        item = _wire.text(r.take(r.u16()))
        if item:
            items.append(item)
    return items


def _vendor_class(raw: bytes | None) -> str | None:
    """Return option 16 as 'enterprise:item,item', or None when it is absent or malformed."""
    if raw is None:
        return None
    r = _wire.Reader(raw)
    try:
        enterprise = r.u32()
        items = _strings(r)
    except _wire.Malformed:
        return None
    return _wire.text(f"{enterprise}:{','.join(items)}".encode())


def _user_class(raw: bytes | None) -> str | None:
    """Return option 15's items joined with ',', or None when it is absent, empty or malformed."""
    if raw is None:
        return None
    try:
        items = _strings(_wire.Reader(raw))
    except _wire.Malformed:
        return None
    return _wire.text(",".join(items).encode()) or None


def _fqdn(raw: bytes | None) -> str | None:
    """Return the name of an RFC 4704 client FQDN option (1 flag byte, then the wire-format name)."""
    if raw is None or len(raw) < 2:
        return None
    return dns_wire_name(raw[1:]) or None


def _oro(raw: bytes | None) -> str | None:
    """Return the option request option's codes as '23,24,39' (a trailing odd byte is dropped), None if empty."""
    if not raw:
        return None
    n = min(len(raw) // 2, MAX_ORO)
    return ",".join(str(int.from_bytes(raw[2 * i : 2 * i + 2], "big")) for i in range(n)) or None


def _text(raw: bytes | None) -> str | None:
    """Return option bytes as capped text, None if absent or empty."""
    if raw is None:
        return None
    return _wire.text(raw) or None
