"""Multicast DNS and DNS-Based Service Discovery (UDP 5353, 224.0.0.251 / ff02::fb).

Sources: RFC 6762 (mDNS: §8.1-§8.2 probes carry the proposed records in the authority section,
§7.1 known answers in queries, §18.3 and §18.11 non-zero OPCODE or RCODE must be ignored),
RFC 6763 (DNS-SD: §4.1 '<Instance>.<Service>.<Domain>' names, §6 TXT 'key=value' strings,
§7 '_service._tcp|_udp' types, §7.1 '_sub' subtypes, §9 the '_services._dns-sd._udp' meta-query),
fingerprints.md B10 (camera service types: `_axis-video._tcp`, `_axis-nvr._tcp`, `_arec._tcp`).

Built on dns.parse; this module only reads what the sender says about itself. In a query, the
answer section holds records the asker already knows about *other* hosts, so only the questions
and (for probes) the authority section are used; in a response every section is the sender's.
Names are given without the '.local' domain, so 'DCS-930LB1_1C7185.local' is host 'dcs-930lb1_1c7185'.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import dns
from auditor.protocols.types import Fact

MAX_NAMES = 32
"""Entries kept per field (queries, services, instances, host names)."""

MAX_TXT_PAIRS = 32
"""TXT strings kept per message."""

MDNS_DOMAIN = "local"
"""The link-local domain (RFC 6762 §3), dropped from the names in the record."""

DNSSD_PROTOCOLS = frozenset({"_tcp", "_udp"})
"""The protocol label of a service type (RFC 6763 §7)."""

DNSSD_SUBTYPE = "_sub"
"""Subtype label: '<sub>._sub.<service>' (RFC 6763 §7.1)."""

DNSSD_META_QUERY = "_services._dns-sd._udp.local"
"""Service type enumeration: its PTR answers name service types (RFC 6763 §9)."""

_REVERSE_SUFFIXES = (".in-addr.arpa", ".ip6.arpa")
"""Owner names of reverse-mapping PTRs, whose targets are host names (RFC 6762 §4)."""


@dataclass(frozen=True, slots=True)
class MdnsRecord:
    """What one mDNS message says about its sender."""

    protocol: ClassVar[str] = "mdns"

    is_response: bool
    """True for a response or announcement, False for a query or probe."""

    queries: tuple[str, ...] = ()
    """Names asked in a query: a service type ('_spotify-connect._tcp') or a name ('dcs-930lb1_1c7185')."""

    services: tuple[str, ...] = ()
    """Service types announced or probed, e.g. '_axis-video._tcp', '_http._tcp'."""

    instances: tuple[str, ...] = ()
    """Service instance names (the first label of '<Instance>.<Service>.local'), spaces stripped."""

    hostnames: tuple[str, ...] = ()
    """Host names: SRV targets, A/AAAA owners, reverse-PTR targets ('localcam')."""

    txt: tuple[str, ...] = ()
    """TXT strings of the sender's services: 'key=value', or a bare key/attribute ('IC-3115W Network Camera')."""

    def facts(self) -> Iterator[Fact]:
        """Yield query, service, instance, hostname and txt facts; empty values are skipped."""
        for field, values in (
            ("query", self.queries),
            ("service", self.services),
            ("instance", self.instances),
            ("hostname", self.hostnames),
            ("txt", self.txt),
        ):
            for value in values:
                if value:
                    yield (field, value)


class _Names:
    """An insertion-ordered set capped at `cap` entries; empty values are ignored."""

    __slots__ = ("cap", "items")

    def __init__(self, cap: int = MAX_NAMES) -> None:
        self.cap = cap
        self.items: dict[str, None] = {}

    def add(self, value: str) -> None:
        """Add a value unless it is empty, already present, or the cap is reached."""
        if value and len(self.items) < self.cap:
            self.items.setdefault(value, None)

    def get(self) -> tuple[str, ...]:
        """Return the values in insertion order."""
        return tuple(self.items)


def _strip_local(name: str) -> str:
    """Return a name without the '.local' domain."""
    if name == MDNS_DOMAIN:
        return ""
    return name.removesuffix("." + MDNS_DOMAIN)


def _split_service(name: str) -> tuple[str, str] | None:
    """Return (instance, service type) of a DNS-SD name, or None when it names no service.

    '_http._tcp.local' gives ('', '_http._tcp'); 'cam 1._http._tcp.local' gives ('cam 1', '_http._tcp');
    a subtype '_printer._sub._http._tcp.local' gives ('', '_http._tcp').
    """
    parts = dns.labels(name)
    # the last '_tcp'/'_udp' label preceded by an '_service' label marks the service type
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in DNSSD_PROTOCOLS and parts[i - 1].startswith("_"):
            service = f"{parts[i - 1]}.{parts[i]}"
            head = parts[: i - 1]
            if len(head) >= 2 and head[-1] == DNSSD_SUBTYPE:
                return "", service
            return ".".join(head).strip(), service
    return None


def parse(payload: bytes) -> MdnsRecord | None:
    """Return what an mDNS message says about its sender, or None when it is not a usable mDNS message."""
    message = dns.parse(payload)
    if message is None or message.opcode != 0 or message.rcode != 0:
        return None  # RFC 6762 §18.3, §18.11: such messages are silently ignored
    queries, services, instances, hostnames = _Names(), _Names(), _Names(), _Names()
    txt = _Names(MAX_TXT_PAIRS)

    def note_service_name(name: str) -> None:
        split = _split_service(name)
        if split is not None:
            instance, service = split
            services.add(service)
            instances.add(instance)

    if not message.qr:
        for q in message.questions:
            split = _split_service(q.name)
            if split is not None and not split[0]:
                queries.add(split[1])  # browsing for a service type
            else:
                queries.add(_strip_local(q.name).strip())
        own = message.authority  # a probe's proposed records (RFC 6762 §8.2)
    else:
        own = message.answers + message.authority + message.additional
    for rr in own:
        if rr.rtype == dns.TYPE_PTR and isinstance(rr.rdata, str):
            if rr.name == DNSSD_META_QUERY:
                note_service_name(rr.rdata)
            elif rr.name.endswith(_REVERSE_SUFFIXES):
                hostnames.add(_strip_local(rr.rdata))
            else:
                note_service_name(rr.name)
                note_service_name(rr.rdata)
        elif rr.rtype == dns.TYPE_SRV:
            note_service_name(rr.name)
            if isinstance(rr.rdata, dns.SrvData):
                hostnames.add(_strip_local(rr.rdata.target))
        elif rr.rtype == dns.TYPE_TXT:
            note_service_name(rr.name)
            if isinstance(rr.rdata, tuple):
                for item in rr.rdata:
                    txt.add(item)
        elif rr.rtype in (dns.TYPE_A, dns.TYPE_AAAA):
            hostnames.add(_strip_local(rr.name))
    return MdnsRecord(
        is_response=message.qr,
        queries=queries.get(),
        services=services.get(),
        instances=instances.get(),
        hostnames=hostnames.get(),
        txt=txt.get(),
    )
