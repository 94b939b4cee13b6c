"""What each device said about itself on the wire: protocol facts per sender MAC, bounded.

Every fact of a parsed payload (protocols/*: facts()) is about the payload's sender, so it is
kept under the sender's MAC, once per (protocol, field, value) with first/last seen and a count,
together with the signatures it matched (looked up once, when the fact is first seen). Each
device's facts change a version number, so a verdict cached on it knows when it is stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from auditor.devices.signatures import Match, SignatureSet
from auditor.devices.types import Observation

MAX_FACTS_PER_DEVICE = 64
"""Facts that matched a signature kept per device."""
MAX_UNMATCHED_FACTS = 32
"""Facts that matched no signature kept per device (for analysts)."""
MAX_UNMATCHED_NAMES = 8
"""Names a device looked up or called (DNS queries, TLS SNI, HTTP Host, request paths) that matched
no signature, kept per device for analysts; the rest are counted, not kept. A busy host looks up
hundreds of names: kept whole, they would fill memory on a large site (the names stage, not the
inventory, records destinations)."""
NAME_FIELDS = frozenset({("dns", "query"), ("tls", "sni"), ("http", "host"), ("mdns", "query"), ("http", "path"),
                         ("rtsp", "path")})
"""Facts that vary with what a device visits (names, request paths), not with what it is."""
MAX_DEVICES = 100_000


@dataclass(slots=True)
class _Fact:
    first_ns: int
    last_ns: int
    count: int
    matches: tuple[Match, ...]


@dataclass(slots=True)
class DeviceFacts:
    """The facts one MAC stated."""

    facts: dict[tuple[str, str, str], _Fact] = field(default_factory=dict)
    version: int = 0
    matched: int = 0
    """Facts kept that matched a signature (at most MAX_FACTS_PER_DEVICE)."""
    unmatched_names: int = 0
    """NAME_FIELDS facts kept that matched no signature."""
    mud_url: str | None = None
    """The MUD URL (RFC 8520) the device announced last (DHCP option 161, DHCPv6 option 112): kept
    apart from the capped facts, since policies select devices by it."""
    dropped: int = 0
    """Facts not kept: the device already had MAX_FACTS_PER_DEVICE matched ones, MAX_UNMATCHED_FACTS
    unmatched ones, or MAX_UNMATCHED_NAMES unmatched names."""

    def observations(self) -> list[Observation]:
        """Return the facts as observations, in the order they were first seen."""
        return [_observation(key, x) for key, x in self.facts.items()]

    def matches(self) -> list[tuple[Observation, Match]]:
        """Return each (observation, signature match) pair."""
        out: list[tuple[Observation, Match]] = []
        for key, x in self.facts.items():
            if x.matches:
                obs = _observation(key, x)
                out.extend((obs, m) for m in x.matches)
        return out


def _observation(key: tuple[str, str, str], fact: _Fact) -> Observation:
    protocol, field_, value = key
    return Observation(protocol, field_, value, fact.first_ns, fact.last_ns, fact.count,
                       tuple(m.signature.id for m in fact.matches))


class EvidenceTable:
    """Facts by sender MAC."""

    def __init__(self, signatures: SignatureSet, max_devices: int = MAX_DEVICES) -> None:
        self.signatures = signatures
        self.max_devices = max_devices
        self.devices: dict[int, DeviceFacts] = {}
        self.dropped_devices = 0
        self.records: dict[str, int] = {}
        """Records observed per protocol."""

    def get(self, mac: int) -> DeviceFacts | None:
        """Return the facts of `mac`, or None when it stated none."""
        return self.devices.get(mac)

    def observe(self, mac: int, ts_ns: int, protocol: str, facts: Iterable[tuple[str, str]]) -> None:
        """Record the facts one payload of `protocol` stated about its sender `mac` (0 = no MAC: ignored)."""
        self.records[protocol] = self.records.get(protocol, 0) + 1
        facts = list(facts)
        if not mac or not facts:
            return
        device = self.devices.get(mac)
        if device is None:
            if len(self.devices) >= self.max_devices:
                self.dropped_devices += 1
                return
            device = self.devices[mac] = DeviceFacts()
        for field_, value in facts:
            if field_ == "mud_url" and protocol in ("dhcp", "dhcp6"):
                device.mud_url = value
            key = (protocol, field_, value)
            fact = device.facts.get(key)
            if fact is not None:  # the common case: a fact the device stated before (no max/min calls)
                if ts_ns > fact.last_ns:
                    fact.last_ns = ts_ns
                elif ts_ns < fact.first_ns:
                    fact.first_ns = ts_ns
                fact.count += 1
                continue
            # matched first: a device flooding unmatched facts (SSDP service types, mDNS records) must not
            # crowd out the one fact that names it
            matches = self.signatures.match(protocol, field_, value)
            if matches:
                if device.matched >= MAX_FACTS_PER_DEVICE:
                    device.dropped += 1
                    continue
                device.matched += 1
            else:
                if len(device.facts) - device.matched >= MAX_UNMATCHED_FACTS or (
                    (protocol, field_) in NAME_FIELDS and device.unmatched_names >= MAX_UNMATCHED_NAMES
                ):
                    device.dropped += 1
                    continue
                if (protocol, field_) in NAME_FIELDS:
                    device.unmatched_names += 1
            device.facts[key] = _Fact(ts_ns, ts_ns, 1, matches)
            if matches:
                device.version += 1  # only facts that matched can change a verdict
