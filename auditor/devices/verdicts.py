"""Turn the device table into records: addresses as text, the IEEE registry block, and each device's
verdict from its OUI and protocol evidence (devices/classify.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from auditor.devices.classify import classify
from auditor.devices.evidence import DeviceFacts, EvidenceTable
from auditor.devices.oui import OuiRegistry, is_locally_administered
from auditor.devices.table import Device, DeviceTable
from auditor.devices.types import AnalystPin, DeviceAddress, DeviceRecord, VendorVerdict
from auditor.devices.vendors import VendorCatalog
from auditor.flows.types import ip_text


def device_records(table: DeviceTable, verdicts: DeviceVerdicts) -> list[DeviceRecord]:
    """Return one record per device, ordered by MAC."""
    return list(iter_device_records(table, verdicts))


def iter_device_records(table: DeviceTable, verdicts: DeviceVerdicts) -> Iterator[DeviceRecord]:
    """Yield one record per device, ordered by MAC, built one at a time (a large site's records, with
    their observations, need not all be in memory at once)."""
    table.settle()
    for mac in sorted(table.devices):
        yield _record(table.devices[mac], verdicts)


class DeviceVerdicts:
    """The verdict of each MAC (devices/classify.py), remembered until its protocol evidence changes.

    Both the policy stage (per batch of flows) and the outputs ask; a verdict is recomputed only when
    the device states a fact that matched a signature. The same object is returned while it holds,
    so callers may cache what they derive from it by identity.
    """

    def __init__(self, registry: OuiRegistry, catalog: VendorCatalog | None, evidence: EvidenceTable | None = None,
                 pins: Iterable[AnalystPin] = (), max_entries: int = 200_000) -> None:
        self.registry = registry
        self.catalog = catalog
        self.evidence = evidence
        self.pins = {p.mac: p for p in pins}
        self._max = max_entries
        self._known: dict[int, tuple[int, VendorVerdict | None]] = {}

    def set_pins(self, pins: Iterable[AnalystPin]) -> None:
        """Replace the analysts' pins (rule files reloaded) and forget every cached verdict."""
        self.pins = {p.mac: p for p in pins}
        self._known.clear()

    def facts(self, mac: int) -> DeviceFacts | None:
        """Return what `mac` stated on the wire, or None."""
        return self.evidence.get(mac) if self.evidence is not None else None

    def mud_url(self, mac: int) -> str | None:
        """Return the MUD URL `mac` announced, or None."""
        facts = self.facts(mac)
        return facts.mud_url if facts is not None else None

    def __call__(self, mac: int) -> VendorVerdict | None:
        """Return the verdict of `mac` (None when neither its OUI nor its packets name anything)."""
        facts = self.facts(mac)
        version = facts.version if facts is not None else 0
        known = self._known.get(mac)
        if known is not None and known[0] == version:
            return known[1]
        verdict = classify(mac, self.registry.lookup(mac), self.catalog, facts, self.pins.get(mac))
        if len(self._known) >= self._max:
            self._known.clear()  # a flood of distinct MACs: start over rather than grow
        self._known[mac] = (version, verdict)
        return verdict


def _record(dev: Device, verdicts: DeviceVerdicts) -> DeviceRecord:
    oui = verdicts.registry.lookup(dev.mac)
    vendor = verdicts(dev.mac)
    facts = verdicts.facts(dev.mac)
    addresses = tuple(
        DeviceAddress(ip_text(*addr), seen.first_ns, seen.last_ns)
        for addr, seen in sorted(dev.own_addresses().items())
    )
    return DeviceRecord(
        mac=dev.mac,
        first_ns=dev.first_ns,
        last_ns=dev.last_ns,
        packets=dev.packets,
        bytes=dev.bytes,
        addresses=addresses,
        vlans=tuple(sorted(dev.vlans)),
        role="gateway" if dev.is_gateway else "host",
        locally_administered=is_locally_administered(dev.mac),
        oui=oui,
        vendor=vendor,
        observations=tuple(facts.observations()) if facts is not None else (),
    )
