"""Payload parsers, one module per protocol: `parse(payload) -> Record | None`, stdlib only.

Each parser does bounded work, never raises on any input (hostile bytes give None), and returns a
frozen record whose `facts()` are (field, value) pairs that describe the SENDER of the payload
(what it is, what it runs, what it looked up or called): the device classifier matches
signatures (rules/fingerprints) against them.
"""

from __future__ import annotations

from collections.abc import Callable

from auditor.protocols import dahua, dhcp, dhcp6, dns, http, mdns, sadp, ssdp, tls, wsdiscovery
from auditor.protocols.types import Record

Parser = Callable[[bytes], Record | None]

UDP, TCP = 17, 6

# Well-known ports whose every payload is parsed (both directions: a reply speaks for its sender).
# fingerprints.md section C; RFC 2131 (DHCP), RFC 8415 (DHCPv6), RFC 6762 (mDNS), RFC 1035 (DNS).
PORT_PARSERS: tuple[tuple[str, int, int, Parser], ...] = (
    ("sadp", UDP, 37020, sadp.parse),
    ("dhip", UDP, 37810, dahua.parse_dhip),
    ("dahua-v1", UDP, 5050, dahua.parse_v1),
    ("easy4ip", UDP, 8800, dahua.parse_easy4ip),
    ("wsdiscovery", UDP, 3702, wsdiscovery.parse),
    ("ssdp", UDP, 1900, ssdp.parse),
    ("mdns", UDP, 5353, mdns.parse),
    ("dns", UDP, 53, dns.parse),  # queries only (QUERY_ONLY_PORTS): what a device looks up is about it
    ("dhcp", UDP, 67, dhcp.parse),
    ("dhcp6", UDP, 547, dhcp6.parse),
)
"""(name, IP protocol, port, parser). A packet to or from the port goes to the parser."""

QUERY_ONLY: frozenset[str] = frozenset({"dns"})
"""Parsers handed only packets TO their port. A DNS answer states nothing about its sender (the
resolver) that a signature uses; the names stage will read answers for itself."""

ETHERTYPE_PARSERS: tuple[tuple[str, int, Parser], ...] = (
    ("sadp-ethernet", 0x8033, sadp.parse_ethernet),  # fingerprints.md B2: header checked, not just the type
)

FLOW_HEAD_PACKETS = 4
"""Payload packets per TCP flow handed to parse_flow_head: enough for RTSP, whose 401 with the realm answers
the second request (OPTIONS, 200, DESCRIBE, 401)."""


FLOW_HEAD_FIRST_BYTES: frozenset[int] = frozenset({0x16, *range(0x41, 0x5B), 0xA0, 0xA3, 0xB0, 0xB3, 0xF6})
"""First payload bytes parse_flow_head can read: a TLS handshake record, an upper-case letter (HTTP or
RTSP), a DVRIP command. The pipeline hands over only payloads starting with one of them."""


def parse_flow_head(payload: bytes) -> Record | None:
    """Return the record of a TCP flow's first payloads, on any port: TLS, HTTP/RTSP or Dahua DVRIP.

    The first byte picks the parser (TLS handshake records start 0x16, DVRIP commands 0xa0-0xf6,
    HTTP/RTSP heads with a letter), so a payload costs one parse attempt, not three.
    """
    if not payload:
        return None
    first = payload[0]
    if first == 0x16:
        return tls.parse(payload)
    if 0x41 <= first <= 0x5A:  # 'A'..'Z': a request method or an HTTP/RTSP status line
        return http.parse(payload)
    if first in (0xA0, 0xA3, 0xB0, 0xB3, 0xF6):
        return dahua.parse_dvrip(payload)
    return None
