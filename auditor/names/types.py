"""Records the names stage produces: where a flow's name came from, and a name learnt from DNS."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from auditor.flows.types import ip_text

Address = tuple[int, int, int]
"""An address in the engine's layout: (4, 0, 32-bit address) or (6, top 64 bits, low 64 bits)."""

NAME_SOURCES: tuple[str, ...] = ("none", "sni", "quic", "http-host", "dns", "dhcp", "mdns")
"""Where a flow's name came from; index = the uint8 code stored in flow columns (keep the order)."""
(
    SOURCE_NONE,
    SOURCE_SNI,
    SOURCE_QUIC,
    SOURCE_HTTP_HOST,
    SOURCE_DNS,
    SOURCE_DHCP,
    SOURCE_MDNS,
) = range(len(NAME_SOURCES))

_MASK64 = (1 << 64) - 1


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class DnsName:
    """A name a client resolved to an address, as its DNS answer said."""

    name: str
    """The name the client asked for (the question name): lower-case, no trailing dot."""

    chain: tuple[str, ...]
    """The question name, then each CNAME target followed, in order."""

    seen_ns: int
    """When the answer was seen."""

    expires_ns: int
    """seen_ns + the smallest TTL along the chain used."""


def address_key(text: str) -> Address:
    """Return the engine key of an address written as text ('192.0.2.1', '2001:db8::1').

    Raises ValueError for text that is not an address. inet_pton accepts exactly what
    ipaddress.ip_address does for plain addresses (no scope id) and is several times faster,
    which matters because every A/AAAA answer goes through here.
    """
    try:
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
            return (6, value >> 64, value & _MASK64)
        return (4, 0, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
    except OSError as exc:
        raise ValueError(f"not an IP address: {text!r}") from exc


def address_text(address: Address) -> str:
    """Return an address key as text, spelt the way every output spells it."""
    return ip_text(*address)
