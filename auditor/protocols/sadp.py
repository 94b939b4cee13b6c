"""Hikvision SADP (Search Active Devices Protocol): XML over UDP 37020 and the legacy raw-Ethernet form.

Sources (fingerprints.md B1, B2): UniversalScanner `Hikvision.cs` / `Hikvision.selftest` (the ProbeMatch
sample the tests use), hiktools `hiktools/sadp/` (UDP client, message types), ethodump-ng `hikvision.py`
(Probe / ProbeMatch / Hello, line-split replies), hiktools `lua/sadp.lua` and `hiktools/csadp/model.py`
(the ethertype 0x8033 header).

The UDP form is plain XML, but firmware sends replies that are not well-formed (fingerprints.md B1), so
elements are picked out with one bounded, linear regex instead of an XML parser (which would also
expose entity expansion to hostile input). Tag names are matched case-insensitively: hiktools
`sadp/message.py` documents `Ipv4Address` where devices in the selftest write `IPv4Address`.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a payload looked at: a full ProbeMatch is about 1.5 KB."""

MAX_ELEMENTS = 128
"""Elements scanned per XML message: a ProbeMatch carries about 40."""

MAX_TAG = 64
"""Longest tag name considered (characters)."""

SADP_ROOTS = {"probe": "probe", "probematch": "probematch", "hello": "hello"}
"""Root elements of SADP XML (fingerprints.md B1): request, reply, unsolicited announcement."""

SADP_FIELDS = {
    "uuid": "uuid",
    "devicetype": "device_type",
    "devicedescription": "model",
    "devicesn": "serial",
    "mac": "mac",
    "ipv4address": "ipv4",
    "softwareversion": "firmware",
    "dspversion": "dsp_version",
    "detailoemcode": "oem_code",
    "supporthcplatform": "hc_platform",
    "hcplatformenable": "hc_platform_enabled",
    "activated": "activated",
    "commandport": "command_port",
    "httpport": "http_port",
}
"""Lower-cased SADP element name -> record field (fingerprints.md B1 field list)."""

SADP_ETHERTYPE = 0x8033
"""Legacy SADP ethertype (fingerprints.md B2); IEEE gives it to VIA Systems, so it proves nothing alone."""

SADP_ETH_MARKER = 0x21
"""Byte 0 of the legacy header (fingerprints.md B2; hiktools `lua/sadp.lua`)."""

SADP_ETH_RESPONSE = 1
"""Byte 1: packet type 1 = response (fingerprints.md B2)."""

SADP_ETH_REQUEST = 2
"""Byte 1: packet type 2 = request (fingerprints.md B2)."""

SADP_ETH_MARKER2 = b"\x06\x04"
"""Bytes 8-9 of the legacy header (fingerprints.md B2; hiktools `csadp/model.py` packs 0x0604 big-endian)."""

SADP_ETH_HEADER_LEN = 0x26
"""Legacy header length: 14 bytes of fields, then MAC, IPv4, MAC, IPv4, mask (fingerprints.md B2)."""

SADP_ETH_QUERY_TYPES = {
    0x02: "device-online-request",
    0x03: "inquiry",
    0x04: "inquiry-response",
    0x06: "update-ip",
    0x07: "update-ip-response",
    0x0A: "reset-password",
    0x0B: "reset-password-response",
    0x0C: "cms-info",
    0x0D: "cms-info-response",
    0x10: "modify-net-param",
    0x11: "modify-net-param-response",
}
"""Byte 10, query type -> name used in the record's message as 'legacy-<name>' (fingerprints.md B2)."""

_ROOT = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^<>]{0,256}\?>\s*)?<([A-Za-z][\w.:-]{0,%d})(?=[\s/>])" % MAX_TAG)
"""The first element, after an optional BOM and XML declaration."""

_ELEMENT = re.compile(rb"<([A-Za-z][\w.-]{0,%d})(?:\s[^<>/]{0,256})?>([^<]*)" % MAX_TAG)
"""An opening tag and the text up to the next '<': closing tags are optional (line-split replies)."""

_LINE_END = re.compile(rb"[\r\n\x00]")

_FLAGS = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false", "no": "false", "flase": "false"}
"""Boolean spellings; 'flase' is in UniversalScanner's `Hikvision.selftest` (HCPlatformEnable)."""


@dataclass(frozen=True, slots=True)
class SadpRecord:
    """One Hikvision SADP message (UDP XML or legacy Ethernet)."""

    protocol: ClassVar[str] = "sadp"

    message: str
    """'probe', 'probematch', 'hello' (XML root), or 'legacy-<query type>' for ethertype 0x8033."""

    uuid: str | None = None
    """Uuid: the prober's GUID in a Probe, echoed in the reply."""

    device_type: str | None = None
    """DeviceType: Hikvision's numeric device class code."""

    model: str | None = None
    """DeviceDescription: the model, e.g. 'DS-2CD2143G0-I'."""

    serial: str | None = None
    """DeviceSN: model + date + serial string."""

    mac: str | None = None
    """MAC normalised to 'AA-BB-CC-DD-EE-FF' (legacy form: the header's current MAC)."""

    ipv4: str | None = None
    """IPv4Address (legacy form: the header's current IPv4), only when it is a valid address."""

    firmware: str | None = None
    """SoftwareVersion, e.g. 'V5.5.0build 170725'."""

    dsp_version: str | None = None
    """DSPVersion."""

    oem_code: str | None = None
    """DetailOEMCode: flags rebadged Hikvision hardware."""

    hc_platform: str | None = None
    """SupportHCPlatform ('true'/'false'): the device can use Hik-Connect."""

    hc_platform_enabled: str | None = None
    """HCPlatformEnable ('true'/'false'): Hik-Connect cloud access is switched on."""

    activated: str | None = None
    """Activated ('true'/'false'): an admin password has been set."""

    command_port: int | None = None
    """CommandPort: the SDK port (default 8000)."""

    http_port: int | None = None
    """HttpPort."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender; empty values are skipped."""
        yield ("message", self.message)
        texts = (
            ("device_type", self.device_type),
            ("model", self.model),
            ("serial", self.serial),
            ("mac", self.mac),
            ("ipv4", self.ipv4),
            ("firmware", self.firmware),
            ("dsp_version", self.dsp_version),
            ("oem_code", self.oem_code),
            ("hc_platform", self.hc_platform),
            ("hc_platform_enabled", self.hc_platform_enabled),
            ("activated", self.activated),
        )
        for name, value in texts:
            if value:
                yield (name, value)
        if self.command_port is not None:
            yield ("command_port", str(self.command_port))
        if self.http_port is not None:
            yield ("http_port", str(self.http_port))


def parse(payload: bytes) -> SadpRecord | None:
    """Return the SADP XML message in a UDP 37020 payload, or None when it is not SADP XML."""
    data = payload[:MAX_PAYLOAD]
    root = _ROOT.match(data)
    if root is None:
        return None
    message = SADP_ROOTS.get(root.group(1).decode("ascii").lower())
    if message is None:
        return None  # other XML on the port (e.g. a SOAP envelope) is not SADP
    values: dict[str, str] = {}
    for count, element in enumerate(_ELEMENT.finditer(data)):
        if count >= MAX_ELEMENTS:
            break
        field = SADP_FIELDS.get(element.group(1).decode("ascii").lower())
        if field is None or field in values:
            continue  # the first occurrence wins
        # an unclosed element (line-split reply) ends at its line: junk may follow the last one
        raw = element.group(2).lstrip()
        end = _LINE_END.search(raw)
        value = html.unescape(_wire.text(raw if end is None else raw[: end.start()]))
        if value:
            values[field] = value
    return SadpRecord(
        message=message,
        uuid=values.get("uuid"),
        device_type=values.get("device_type"),
        model=values.get("model"),
        serial=values.get("serial"),
        mac=_wire.mac_text(values.get("mac"), "-:."),
        ipv4=_wire.ipv4_text(values.get("ipv4")),
        firmware=values.get("firmware"),
        dsp_version=values.get("dsp_version"),
        oem_code=values.get("oem_code"),
        hc_platform=_flag(values.get("hc_platform")),
        hc_platform_enabled=_flag(values.get("hc_platform_enabled")),
        activated=_flag(values.get("activated")),
        command_port=_port(values.get("command_port")),
        http_port=_port(values.get("http_port")),
    )


def parse_ethernet(payload: bytes) -> SadpRecord | None:
    """Return the legacy SADP message after an ethertype 0x8033 header, or None when the header is not SADP's."""
    r = _wire.Reader(payload[:MAX_PAYLOAD])
    try:
        if r.u8() != SADP_ETH_MARKER or r.u8() not in (SADP_ETH_RESPONSE, SADP_ETH_REQUEST):
            return None
        r.skip(2 + 4)  # bytes 2-3 origin, 4-7 counter
        if r.take(2) != SADP_ETH_MARKER2:
            return None
        query = r.u8()
        r.skip(1 + 2)  # byte 11 params, bytes 12-13 checksum
        mac = r.take(6)  # current MAC (the sender's)
        ip = r.take(4)  # current IPv4
        r.skip(6 + 4 + 4)  # destination MAC, destination IPv4, subnet mask: the header ends at 0x26
    except _wire.Malformed:
        return None
    name = SADP_ETH_QUERY_TYPES.get(query, f"0x{query:02x}")
    return SadpRecord(
        message=f"legacy-{name}",
        mac=None if mac == bytes(6) else "-".join(f"{b:02X}" for b in mac),
        ipv4=None if ip == bytes(4) else str(ipaddress.IPv4Address(ip)),
    )


def _port(value: str | None) -> int | None:
    """Return a TCP/UDP port number, or None when `value` is not one."""
    if value is None or len(value) > 5 or not value.isascii() or not value.isdigit():
        return None
    port = int(value)
    return port if port <= 0xFFFF else None


def _flag(value: str | None) -> str | None:
    """Return 'true'/'false' for the boolean spellings seen, other text lower-cased, None for nothing."""
    if value is None:
        return None
    return _FLAGS.get(value.lower(), value.lower())
