"""ONVIF WS-Discovery: SOAP 1.2 envelopes over UDP 3702 (239.255.255.250, ff02::c).

Sources: fingerprints.md B8 (Action URIs, camera Types, the onvif:// scope vocabulary and the
vendor patterns: Hikvision `name/HIKVISION%20<model>` + `hardware/DS-…`, Dahua `location/country/china`
+ `hardware/IPC-…|DH-…`); WS-Discovery 2005/04 §4-§6 (Hello, Bye, Probe, ProbeMatches, Resolve,
ResolveMatches; Types is a list of QNames, Scopes and XAddrs are space-separated URIs);
ONVIF Core Specification §7.3.2.2 (scope categories type, name, location, hardware, Profile).
Real samples: the shared corpus `ndpi__upnp.pcap` (a Windows host's Resolve messages), and
UniversalScanner `Wsdiscovery.selftest` (a ProbeMatches with prefixes e:/a:/d:).

Devices send envelopes with every namespace prefix imaginable (d:, wsdd:, dn:, none) and some
are not well-formed, so elements are found by local name with bounded, linear regexes over at
most 16 KB; no XML parser ever sees hostile input.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_PAYLOAD = 16384
"""Bytes of a payload looked at: a camera's ProbeMatches is 1-3 KB."""

MAX_ELEMENTS = 16
"""Types / Scopes / XAddrs elements read per message (one per ProbeMatch)."""

MAX_ITEMS = 32
"""Entries kept per list field (types, scopes, locations, xaddrs)."""

MAX_LIST_TEXT = 4096
"""Characters of one Types / Scopes / XAddrs element read."""

WSD_KINDS = ("Probe", "ProbeMatches", "Resolve", "ResolveMatches", "Hello", "Bye")
"""Message kinds: the last segment of the Action URI or the Body element (WS-Discovery §4-§6)."""

WSD_SEARCHES = frozenset({"Probe", "Resolve"})
"""Requests: their Types, Scopes and EndpointReference describe what is searched for, not the sender."""

ONVIF_SCOPE_PREFIX = "onvif://www.onvif.org/"
"""Prefix of the ONVIF scope vocabulary (ONVIF Core §7.3.2.2; fingerprints.md B8)."""

_PREFIX = rb"(?:[A-Za-z_][\w.-]{0,63}+:)?"
"""An optional namespace prefix: devices use any (or none). Possessive quantifiers (no backtracking)
keep every pattern linear; they match the same text, since the repeated class excludes what follows."""

_ATTRS = rb"(?:\s[^<>]{0,512}+)?>"
"""The rest of an opening tag: optional attributes, then '>'."""


def _open(tag: bytes) -> bytes:
    """Return a pattern for an opening tag with any prefix and attributes."""
    return rb"<" + _PREFIX + tag + _ATTRS


_ENVELOPE = re.compile(rb"<" + _PREFIX + rb"Envelope(?=[\s/>])")
"""The SOAP envelope every WS-Discovery message travels in (other XML on the port is not WS-Discovery)."""

_ACTION = re.compile(_open(rb"Action") + rb"([^<]{0,1024})")
_BODY_KIND = re.compile(rb"<" + _PREFIX + rb"(ProbeMatches|ResolveMatches|Probe|Resolve|Hello|Bye)(?=[\s/>])")
_TYPES = re.compile(_open(rb"Types") + rb"([^<]{0,%d})" % MAX_LIST_TEXT)
_SCOPES = re.compile(_open(rb"Scopes") + rb"([^<]{0,%d})" % MAX_LIST_TEXT)
_XADDRS = re.compile(_open(rb"XAddrs") + rb"([^<]{0,%d})" % MAX_LIST_TEXT)
_ENDPOINT = re.compile(_open(rb"EndpointReference") + rb"[^<]{0,256}" + _open(rb"Address") + rb"([^<]{0,512})")
"""The Address inside an EndpointReference (header ReplyTo/From addresses are not the sender's identity)."""


@dataclass(frozen=True, slots=True)
class WsDiscoveryRecord:
    """One WS-Discovery message."""

    protocol: ClassVar[str] = "wsdiscovery"

    message: str
    """'Probe', 'ProbeMatches', 'Resolve', 'ResolveMatches', 'Hello' or 'Bye'."""

    types: tuple[str, ...] = ()
    """Local names of the Types QNames: 'NetworkVideoTransmitter', 'Device' (searched-for types in a Probe)."""

    scopes: tuple[str, ...] = ()
    """Scope URIs as sent (percent-encoded), e.g. 'onvif://www.onvif.org/hardware/DS-2CD2143G0-I'."""

    scope_types: tuple[str, ...] = ()
    """Values of onvif://www.onvif.org/type/<x> scopes, decoded: 'video_encoder', 'Network_Video_Transmitter'."""

    hardware: str | None = None
    """The first onvif hardware/<x> scope, decoded: the model, e.g. 'DS-2CD2143G0-I'."""

    name: str | None = None
    """The first onvif name/<x> scope, decoded: e.g. 'HIKVISION DS-2CD2143G0-I' (OEMs rewrite it)."""

    locations: tuple[str, ...] = ()
    """onvif location/<x> scopes, decoded, e.g. 'country/china', 'city/hangzhou'."""

    mac: str | None = None
    """The first onvif MAC/<x> scope, decoded and lower-cased."""

    xaddrs: tuple[str, ...] = ()
    """Transport addresses, e.g. 'http://192.168.1.64/onvif/device_service'."""

    endpoint: str | None = None
    """The EndpointReference Address (usually 'urn:uuid:…'); in a Resolve, the endpoint being looked up."""

    def facts(self) -> Iterator[Fact]:
        """Yield facts about the sender; a Probe's types become 'probe_type' (what it searches for).

        Probe and Resolve describe what is searched for (an NVR probing for cameras names
        NetworkVideoTransmitter too), so they yield only 'message' and 'probe_type'.
        """
        yield ("message", self.message)
        if self.message in WSD_SEARCHES:
            for t in self.types:
                yield ("probe_type", t)
            return
        for t in dict.fromkeys(self.types + self.scope_types):
            yield ("type", t)
        for scope in self.scopes:
            yield ("scope", scope)
        for field, value in (("hardware", self.hardware), ("name", self.name)):
            if value:
                yield (field, value)
        for location in self.locations:
            yield ("location", location)
        if self.mac:
            yield ("mac", self.mac)
        for xaddr in self.xaddrs:
            yield ("xaddr", xaddr)
        if self.endpoint:
            yield ("endpoint", self.endpoint)


def _values(pattern: re.Pattern[bytes], data: bytes) -> list[str]:
    """Return the whitespace-separated items of every element matching `pattern`, decoded and capped."""
    out: dict[str, None] = {}
    for count, m in enumerate(pattern.finditer(data)):
        if count >= MAX_ELEMENTS:
            break
        raw = m.group(1).decode("utf-8", errors="replace")
        for item in html.unescape(raw).split():
            if len(out) >= MAX_ITEMS:
                return list(out)
            out.setdefault(item[: _wire.MAX_TEXT], None)
    return list(out)


def _kind(data: bytes) -> str | None:
    """Return the message kind from the Action URI, else from the first Body element, else None."""
    action = _ACTION.search(data)
    if action is not None:
        last = _wire.text(action.group(1)).rsplit("/", 1)[-1]
        if last in WSD_KINDS:
            return last
    body = _BODY_KIND.search(data)
    return body.group(1).decode("ascii") if body is not None else None


def _decoded(value: str) -> str:
    """Return a scope value percent-decoded (bad sequences replaced), stripped and capped."""
    return unquote(value, errors="replace").strip()[: _wire.MAX_TEXT]


def parse(payload: bytes) -> WsDiscoveryRecord | None:
    """Return the WS-Discovery message in a UDP 3702 payload, or None without a SOAP envelope and a known kind."""
    data = payload[:MAX_PAYLOAD]
    if _ENVELOPE.search(data) is None:
        return None
    message = _kind(data)
    if message is None:
        return None
    types = [t.rsplit(":", 1)[-1] for t in _values(_TYPES, data)]
    scopes = _values(_SCOPES, data)
    scope_types: list[str] = []
    locations: list[str] = []
    found: dict[str, str] = {}
    for scope in scopes:
        if scope[: len(ONVIF_SCOPE_PREFIX)].lower() != ONVIF_SCOPE_PREFIX:
            continue
        category, _, value = scope[len(ONVIF_SCOPE_PREFIX) :].partition("/")
        category = category.lower()
        value = _decoded(value)
        if not value:
            continue
        if category == "type":
            scope_types.append(value)
        elif category == "location":
            locations.append(value)
        elif category in ("hardware", "name", "mac"):
            found.setdefault(category, value)
    address = _ENDPOINT.search(data)
    endpoint = html.unescape(_wire.text(address.group(1))) if address is not None else ""
    mac = found.get("mac")
    return WsDiscoveryRecord(
        message=message,
        types=tuple(t for t in dict.fromkeys(types) if t),
        scopes=tuple(scopes),
        scope_types=tuple(dict.fromkeys(scope_types)),
        hardware=found.get("hardware"),
        name=found.get("name"),
        locations=tuple(dict.fromkeys(locations)),
        mac=mac.lower() if mac else None,
        xaddrs=tuple(_values(_XADDRS, data)),
        endpoint=endpoint or None,
    )
