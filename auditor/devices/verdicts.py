"""Turn the device table into records: addresses as text, IEEE registry and vendor catalog verdicts."""

from __future__ import annotations

from auditor.devices.oui import OuiRegistry, is_locally_administered
from auditor.devices.table import Device, DeviceTable
from auditor.devices.types import DeviceAddress, DeviceRecord, ListEntry, OuiMatch, VendorVerdict
from auditor.devices.vendors import VendorCatalog
from auditor.flows.types import ip_text

# How much an attribution is worth on its own: a pinned OUI was checked by a person; a registry
# name match can be an OEM module inside someone else's product (issue #4 adds protocol evidence).
CONFIDENCE = {"oui-pin": 0.8, "org-pattern": 0.7}


def device_records(table: DeviceTable, registry: OuiRegistry, catalog: VendorCatalog | None) -> list[DeviceRecord]:
    """Return one record per device, ordered by MAC."""
    table.settle()
    return [_record(dev, registry, catalog) for _, dev in sorted(table.devices.items())]


def vendor_verdict(mac: int, oui: OuiMatch | None, catalog: VendorCatalog) -> VendorVerdict | None:
    """Return the vendor a MAC is attributed to by the catalog, or None (unknown, local or group MAC)."""
    match = catalog.vendor_for(mac, oui)
    if match is None:
        return None
    v = match.vendor
    return VendorVerdict(
        vendor_id=v.id,
        name=v.name,
        device_class=v.default_class,
        how=match.how,
        detail=match.detail,
        confidence=CONFIDENCE[match.how],
        lists=tuple(
            ListEntry(m.list, catalog.lists[m.list].name, m.clause, m.since.isoformat(), m.note) for m in v.lists
        ),
        parents=tuple(p.id for p in catalog.parents(v)),
    )


class VerdictCache:
    """vendor_verdict per MAC, remembered (bounded): the policy stage asks once per MAC per batch."""

    def __init__(self, registry: OuiRegistry, catalog: VendorCatalog | None, max_entries: int = 200_000) -> None:
        self._registry = registry
        self._catalog = catalog
        self._max = max_entries
        self._known: dict[int, VendorVerdict | None] = {}

    def __call__(self, mac: int) -> VendorVerdict | None:
        """Return the vendor verdict of `mac` (None when the catalog attributes it to no vendor)."""
        if mac in self._known:
            return self._known[mac]
        verdict = None if self._catalog is None else vendor_verdict(mac, self._registry.lookup(mac), self._catalog)
        if len(self._known) >= self._max:
            self._known.clear()  # a flood of distinct MACs: start over rather than grow
        self._known[mac] = verdict
        return verdict


def _record(dev: Device, registry: OuiRegistry, catalog: VendorCatalog | None) -> DeviceRecord:
    oui = registry.lookup(dev.mac)
    vendor = None if catalog is None else vendor_verdict(dev.mac, oui, catalog)
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
    )
