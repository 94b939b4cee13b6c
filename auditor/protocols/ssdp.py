"""SSDP, the discovery half of UPnP: HTTP-like datagrams on UDP 1900 (239.255.255.250, ff02::c).

Sources: fingerprints.md B9 (SERVER, USN, NT/ST, LOCATION; cameras send M-SEARCH for an Internet
Gateway Device to open ports, see B7), UPnP Device Architecture 2.0 §1.2 (NOTIFY ssdp:alive /
ssdp:byebye), §1.3 (M-SEARCH request and its HTTP/1.1 200 response), §1.3.2 (USER-AGENT on
M-SEARCH); UPnP IGD:2 (urn:schemas-upnp-org:device:InternetGatewayDevice, service WANIPConnection,
WANPPPConnection). Real samples: the shared corpus MANIFEST.md (SERVER 'Cellvision UPnP/1.0' from
a D-Link DCS-930LB camera, 'Embedded UPnP/1.0' from an Edimax IC-3115W, both also searching for an IGD).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols._heads import Head, parse_head
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a datagram looked at: SSDP messages are a few hundred bytes."""

MAX_HEADERS = 64
"""Header lines read."""

SSDP_METHODS = ("NOTIFY", "M-SEARCH")
"""Request methods on the SSDP multicast channel (UDA 2.0 §1.2, §1.3)."""

SSDP_RESPONSE = "RESPONSE"
"""The method name this module gives a search response ('HTTP/1.1 200 OK', UDA 2.0 §1.3.3)."""

IGD_TARGETS = ("internetgatewaydevice", "wanipconnection", "wanpppconnection")
"""Search targets of a device looking for a router to open ports on (UPnP IGD; fingerprints.md B7, B9)."""


@dataclass(frozen=True, slots=True)
class SsdpRecord:
    """One SSDP datagram."""

    protocol: ClassVar[str] = "ssdp"

    method: str
    """'NOTIFY', 'M-SEARCH' or 'RESPONSE' (a 200 reply to an M-SEARCH)."""

    server: str | None = None
    """SERVER: 'OS/version UPnP/1.0 product/version', e.g. 'Cellvision UPnP/1.0'."""

    usn: str | None = None
    """USN: unique service name, 'uuid:<device uuid>[::<type>]'."""

    nt: str | None = None
    """NT (NOTIFY): the announced type, e.g. 'upnp:rootdevice'."""

    nts: str | None = None
    """NTS (NOTIFY): 'ssdp:alive', 'ssdp:byebye' or 'ssdp:update'."""

    st: str | None = None
    """ST: what an M-SEARCH looks for, or what a response answers for."""

    location: str | None = None
    """LOCATION: URL of the device description XML."""

    user_agent: str | None = None
    """USER-AGENT (or X-User-Agent) of an M-SEARCH."""

    igd_search: bool = False
    """An M-SEARCH for an Internet Gateway Device or its WAN connection services: the sender wants
    to open ports on the router (UPnP port forwarding)."""

    def facts(self) -> Iterator[Fact]:
        """Yield method, server, usn, nt, st, location, user_agent, igd_search; empty values are skipped."""
        yield ("method", self.method)
        for field, value in (
            ("server", self.server),
            ("usn", self.usn),
            ("nt", self.nt),
            ("st", self.st),
            ("location", self.location),
            ("user_agent", self.user_agent),
        ):
            if value:
                yield (field, value)
        if self.igd_search:
            yield ("igd_search", "true")


def _method(start_line: str) -> str | None:
    """Return the SSDP method of a start line, 'RESPONSE' for a 200 status line, or None."""
    parts = start_line.split()
    if len(parts) < 2:
        return None
    first = parts[0].upper()
    if first.startswith("HTTP/1."):
        return SSDP_RESPONSE if parts[1] == "200" else None
    if first in SSDP_METHODS and len(parts) == 3 and parts[2].upper().startswith("HTTP/1."):
        return first
    return None


def _get(head: Head, name: str) -> str | None:
    """Return the first non-empty value of a header, or None."""
    return head.get(name) or None


def parse(payload: bytes) -> SsdpRecord | None:
    """Return the SSDP message in a UDP 1900 payload, or None when it is not NOTIFY, M-SEARCH or a 200 reply.

    A 200 reply must carry ST or USN, as every search response does (UDA 2.0 §1.3.3).
    """
    head = parse_head(payload, MAX_PAYLOAD, MAX_HEADERS)
    if head is None:
        return None
    method = _method(head.start_line)
    if method is None:
        return None
    st, usn = _get(head, "st"), _get(head, "usn")
    if method == SSDP_RESPONSE and st is None and usn is None:
        return None
    target = (st or "").lower()
    return SsdpRecord(
        method=method,
        server=_get(head, "server"),
        usn=usn,
        nt=_get(head, "nt"),
        nts=_get(head, "nts"),
        st=st,
        location=_get(head, "location"),
        user_agent=_get(head, "user-agent") or _get(head, "x-user-agent"),
        # only a search looks for a router: a router's own NOTIFY of these types is an announcement
        igd_search=method == "M-SEARCH" and any(t in target for t in IGD_TARGETS),
    )
