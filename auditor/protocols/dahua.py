"""Dahua discovery and management: DHIP (UDP 37810), discovery v1 (UDP 5050), DVRIP (TCP 37777), easy4ip P2P.

Sources (fingerprints.md B4, B5, B6): UniversalScanner `Dahua2.cs` (DHIP header checks, field
extraction by regex) and `Dahua1.cs` (the v1 reply struct and its two text sections), DahuaConsole
`net.py` (DHIP / DVRIP headers, the DVRIP command codes, the v1 request bytes), ethodump-ng `dhip.py`
(notifyDevInfo fields, trailing padding), dh-p2p `README.md` / `helpers.py` (DHGET / DHPOST requests
to www.easy4ipcloud.com:8800).

Each wire format has its own function and record; they share nothing but the helpers at the bottom.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a payload looked at: a notifyDevInfo reply is about 1.5 KB."""

MAX_JSON_BRACKETS = 256
"""More '{' + '[' than this and json.loads is not tried (nesting depth, node count); regexes are used."""

MAX_JSON_PAIRS = 256
"""String "key":"value" pairs the regex fallback looks at."""

MAX_TAIL_LINES = 64
"""'Key:Value' lines read from the text tail of a v1 reply."""

DHIP_PREFIX = b"\x20\x00\x00\x00DHIP"
"""u32le header size 0x20, then ASCII 'DHIP' (fingerprints.md B4; ethodump-ng DHIP_HEADER)."""

DHIP_HEADER_LEN = 0x20
"""DHIP header; u32le @0x10 and @0x18 hold the JSON body length (fingerprints.md B4)."""

DV1_REQUEST = b"\xa3\x01\x00\x01"
"""First bytes of the 32-byte v1 search request on UDP 5050 (fingerprints.md B5; DahuaConsole, UniversalScanner)."""

DV1_REPLY = b"\xb3\x00"
"""First bytes of a v1 reply (fingerprints.md B5)."""

DV1_HEADER_LEN = 0x20
"""The v1 / DVRIP header; the reply's binary part follows, its length in u32le @0x04 (0x58 seen)."""

DV1_MIN_BODY = 0x28
"""Least binary part that holds the fields read: device type @0x28 (16 B), IPv4 @0x38 (fingerprints.md B5)."""

DV1_MAC_TEXT = 17
"""The reply's first text section starts with the MAC as 17 characters (UniversalScanner `Dahua1.cs`)."""

DVRIP_HEADER_LEN = 0x20
"""DVRIP header; u32le @0x04 is the length of what follows (DahuaConsole `net.py`)."""

DVRIP_MAX_BODY = 1 << 24
"""A larger announced body is taken as not DVRIP."""

DVRIP_COMMANDS = {
    b"\xa0\x00": ("request", "login-3des"),
    b"\xa0\x01": ("request", "realm-request"),
    b"\xa0\x05": ("request", "login-details"),
    b"\xb0\x00": ("reply", "receive"),
    b"\xb0\x01": ("reply", "receive"),
    b"\xa3\x01": ("request", "discover-request"),
    b"\xb3\x00": ("reply", "discover-response"),
    b"\xf6\x00": ("json", "json"),
}
"""First two bytes -> (direction, command) (fingerprints.md B5; DahuaConsole `net.py` dahua_proto).

f6 00 frames JSON-RPC after login in both directions, so its header does not tell who sent it.
"""

EASY4IP_METHODS = ("DHGET", "DHPOST")
"""Request methods of the P2P rendezvous protocol (fingerprints.md B6; dh-p2p `helpers.py`)."""

_JSON_PAIR = re.compile(r'"([A-Za-z][A-Za-z0-9_]{0,31})"\s{0,16}:\s{0,16}"([^"\\]{0,256})')
"""A "key" : "string value" pair; the closing quote is not required (truncated bodies)."""

_DEVICE_INFO_KEYS = ("DeviceType", "SerialNo", "Vendor", "Version", "MachineName", "mac")
"""params.deviceInfo keys kept (fingerprints.md B4)."""

_MAC_TEXT = re.compile(rb"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}")
_REQUEST_LINE = re.compile(rb"\A(DHGET|DHPOST) (/[!-~]{0,1024}) HTTP/1\.[01]\r?(?:\n|\Z)")
"""'DHGET /probe/p2psrv HTTP/1.1' (fingerprints.md B6)."""

_SERIAL_PATH = re.compile(r"\A/(?:online/p2psrv|probe/device|device)/([A-Za-z0-9._-]{1,64})(?=[/?]|\Z)")
"""Paths that carry the device serial: /online/p2psrv/{SN}, /probe/device/{SN}, /device/{SN}/..."""


@dataclass(frozen=True, slots=True)
class DhipRecord:
    """One DHIP message: 32-byte header + JSON (UDP 37810 discovery, also the TCP console)."""

    protocol: ClassVar[str] = "dhip"

    method: str | None = None
    """JSON-RPC method: 'DHDiscover.search' (probe), 'client.notifyDevInfo' (device reply)..."""

    device_type: str | None = None
    """params.deviceInfo.DeviceType: the model, e.g. 'DHI-NVR4104HS-P-4KS2' or 'IPC-HDW2431T-AS-S2'."""

    serial: str | None = None
    """params.deviceInfo.SerialNo."""

    vendor: str | None = None
    """params.deviceInfo.Vendor: the OEM label ('General' on generic firmware)."""

    firmware: str | None = None
    """params.deviceInfo.Version."""

    machine_name: str | None = None
    """params.deviceInfo.MachineName: the name the owner gave the device."""

    mac: str | None = None
    """Top-level mac (else params.deviceInfo.mac), normalised to 'AA-BB-CC-DD-EE-FF'."""

    ipv4: str | None = None
    """params.deviceInfo.IPv4Address.IPAddress, only when it is a valid address."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; empty values are skipped."""
        yield from _present(
            ("method", self.method),
            ("device_type", self.device_type),
            ("serial", self.serial),
            ("vendor", self.vendor),
            ("firmware", self.firmware),
            ("machine_name", self.machine_name),
            ("mac", self.mac),
            ("ipv4", self.ipv4),
        )


@dataclass(frozen=True, slots=True)
class DahuaV1Record:
    """One binary discovery datagram on UDP 5050 (Dahua discovery v1)."""

    protocol: ClassVar[str] = "dahua-v1"

    message: str
    """'request' (a3 01 search) or 'reply' (b3 00 device answer)."""

    device_type: str | None = None
    """The reply's 16-byte type string @0x28, replaced by the text after the MAC when there is one."""

    serial: str | None = None
    """'SerialNo:' line of the reply's text tail."""

    mac: str | None = None
    """The MAC opening the reply's text tail, normalised to 'AA-BB-CC-DD-EE-FF'."""

    ipv4: str | None = None
    """The reply's IPv4 @0x38."""

    firmware: str | None = None
    """'Version:' line of the reply's text tail, when there is one."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; empty values are skipped."""
        yield from _present(
            ("message", self.message),
            ("device_type", self.device_type),
            ("serial", self.serial),
            ("mac", self.mac),
            ("ipv4", self.ipv4),
            ("firmware", self.firmware),
        )


@dataclass(frozen=True, slots=True)
class DvripRecord:
    """The header of a DVRIP message (TCP 37777, Dahua's private SDK protocol)."""

    protocol: ClassVar[str] = "dvrip"

    message: str
    """'request' (client to device), 'reply' (device to client) or 'json' (f6 00, either way)."""

    command: str
    """The command named by the first two bytes: 'realm-request', 'login-3des', 'receive'..."""

    body_length: int
    """u32le @0x04: bytes announced after the 32-byte header."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender."""
        yield ("message", self.message)
        yield ("command", self.command)


@dataclass(frozen=True, slots=True)
class Easy4ipRecord:
    """One request line of the Dahua / Imou easy4ip P2P rendezvous protocol (UDP 8800)."""

    protocol: ClassVar[str] = "easy4ip"

    method: str
    """'DHGET' or 'DHPOST'."""

    path: str
    """The request path, e.g. '/online/p2psrv/4L0xxxxPAZxxxxx' (capped at 256 characters)."""

    serial: str | None = None
    """The device serial number named in the path, when the path names one."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; empty values are skipped."""
        yield from _present(("method", self.method), ("path", self.path), ("serial", self.serial))


def parse_dhip(payload: bytes) -> DhipRecord | None:
    """Return the DHIP message in a payload, or None when it does not start with the DHIP header."""
    r = _wire.Reader(payload[:MAX_PAYLOAD])
    try:
        if r.take(8) != DHIP_PREFIX:
            return None
        r.skip(8)  # @0x08 session id, @0x0c request id
        body_len = r.u32le()  # @0x10; @0x18 repeats it
        r.skip(DHIP_HEADER_LEN - 0x14)
    except _wire.Malformed:
        return None
    # ethodump-ng drops 2 trailing bytes: '\n' or NUL padding may follow the JSON; a truncated
    # datagram (or one longer than MAX_PAYLOAD) keeps what there is for the regex fallback
    body = r.take(min(body_len, r.left)).rstrip(b"\x00\r\n\t ")
    method, mac, info = _json_fields(body)
    return DhipRecord(
        method=method,
        device_type=info.get("DeviceType"),
        serial=info.get("SerialNo"),
        vendor=info.get("Vendor"),
        firmware=info.get("Version"),
        machine_name=info.get("MachineName"),
        mac=_wire.mac_text(mac or info.get("mac")),
        ipv4=_wire.ipv4_text(info.get("IPAddress")),
    )


def parse_v1(payload: bytes) -> DahuaV1Record | None:
    """Return the Dahua v1 discovery datagram (UDP 5050), or None when the header is not v1's."""
    data = payload[:MAX_PAYLOAD]
    if data[:4] == DV1_REQUEST and len(data) >= DV1_HEADER_LEN:
        return DahuaV1Record(message="request")
    r = _wire.Reader(data)
    try:
        if r.take(2) != DV1_REPLY:
            return None
        text2_len = r.u16le()  # @0x02: first text section (MAC, maybe the type)
        body_len = r.u32le()  # @0x04: binary part after the header
        r.skip(0x14 - 0x08)
        text3_len = r.u16le()  # @0x14: second text section ('Key:Value' lines)
        r.skip(DV1_HEADER_LEN - 0x16)
        if body_len < DV1_MIN_BODY:
            return None
        body = r.sub(body_len)
        body.skip(0x28 - DV1_HEADER_LEN)
        type_raw = body.take(16)  # @0x28
        ip = body.take(4)  # @0x38; mask, gateway, DNS follow
    except _wire.Malformed:
        return None
    tail = r.rest()
    section2 = tail[: min(text2_len, len(tail))]
    section3 = tail[len(section2) : len(section2) + text3_len]
    mac = _MAC_TEXT.match(section2)
    device_type = _wire.text(type_raw.split(b"\x00", 1)[0])
    if mac is not None:
        after = _wire.text(section2[DV1_MAC_TEXT:].split(b"\x00", 1)[0])
        device_type = after or device_type  # UniversalScanner: the text after the MAC wins
    # without a second section's length, the 'Key:Value' lines are looked for in all that follows
    lines = _key_values(section3 if text3_len else tail[len(section2) :])
    return DahuaV1Record(
        message="reply",
        device_type=device_type or lines.get("Device") or None,
        serial=lines.get("SerialNo"),
        mac=_wire.mac_text(mac.group(0).decode("ascii")) if mac is not None else None,
        ipv4=None if ip == bytes(4) else str(ipaddress.IPv4Address(ip)),
        firmware=lines.get("Version"),
    )


def parse_dvrip(payload: bytes) -> DvripRecord | None:
    """Return the DVRIP header of a TCP 37777 payload, or None when its command code is not a known one."""
    r = _wire.Reader(payload[:DVRIP_HEADER_LEN])
    try:
        kind = DVRIP_COMMANDS.get(r.take(2))
        r.skip(2)
        body_len = r.u32le()
        r.skip(DVRIP_HEADER_LEN - 8)
    except _wire.Malformed:
        return None
    if kind is None or body_len > DVRIP_MAX_BODY:
        return None
    return DvripRecord(message=kind[0], command=kind[1], body_length=body_len)


def parse_easy4ip(payload: bytes) -> Easy4ipRecord | None:
    """Return the DHGET / DHPOST request line of an easy4ip P2P payload, or None when it has none."""
    line = _REQUEST_LINE.match(payload[:1100])
    if line is None:
        return None
    path = _wire.text(line.group(2))
    serial = _SERIAL_PATH.match(path)
    return Easy4ipRecord(
        method=line.group(1).decode("ascii"),
        path=path,
        serial=serial.group(1) if serial is not None else None,
    )


def _json_fields(body: bytes) -> tuple[str | None, str | None, dict[str, str]]:
    """Return (method, top-level mac, deviceInfo strings) of a DHIP JSON body, by json or else by regex."""
    text = body.decode("utf-8", errors="replace")
    if body.count(b"{") + body.count(b"[") <= MAX_JSON_BRACKETS:
        try:
            doc, _ = json.JSONDecoder().raw_decode(text.lstrip())  # junk after the object is ignored
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            params = doc.get("params")
            raw_info = params.get("deviceInfo") if isinstance(params, dict) else None
            info = raw_info if isinstance(raw_info, dict) else {}
            address = info.get("IPv4Address")
            if isinstance(address, dict):
                address = address.get("IPAddress")
            found = {key: _scalar(info.get(key)) for key in _DEVICE_INFO_KEYS}
            found["IPAddress"] = _scalar(address)
            values = {key: value for key, value in found.items() if value}
            return _scalar(doc.get("method")), _scalar(doc.get("mac")), values
    # broken or truncated JSON: the first "key":"value" of each key, wherever it is (UniversalScanner
    # `Dahua2.cs` reads every field this way)
    pairs: dict[str, str] = {}
    for count, pair in enumerate(_JSON_PAIR.finditer(text)):
        if count >= MAX_JSON_PAIRS:
            break
        value = pair.group(2).strip()
        if value:
            pairs.setdefault(pair.group(1), value)
    return pairs.get("method"), pairs.get("mac"), pairs


def _scalar(value: object) -> str | None:
    """Return a JSON string or number as capped text, None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return _wire.text(str(value).encode("utf-8", errors="replace"))


def _key_values(section: bytes) -> dict[str, str]:
    """Return the 'Key:Value' lines of a v1 text section (first of each key, at most MAX_TAIL_LINES lines)."""
    out: dict[str, str] = {}
    for line in section.replace(b"\r", b"\n").split(b"\n", MAX_TAIL_LINES)[:MAX_TAIL_LINES]:
        key, colon, value = line.partition(b":")
        if colon and key.strip() and value.strip():
            out.setdefault(_wire.text(key, 64), _wire.text(value.split(b"\x00", 1)[0]))
    return out


def _present(*pairs: tuple[str, str | None]) -> Iterator[Fact]:
    """Yield the pairs whose value is not empty."""
    for name, value in pairs:
        if value:
            yield (name, value)
