"""Turn the device table into records: addresses as text, IEEE registry and vendor catalog verdicts."""

from __future__ import annotations

import ipaddress

from auditor.devices.oui import OuiRegistry, is_locally_administered
from auditor.devices.table import Device, DeviceTable
from auditor.devices.types import DeviceAddress, DeviceRecord, ListEntry, VendorVerdict
from auditor.devices.vendors import VendorCatalog

# How much an attribution is worth on its own: a pinned OUI was checked by a person; a registry
# name match can be an OEM module inside someone else's product (issue #4 adds protocol evidence).
CONFIDENCE = {"oui-pin": 0.8, "org-pattern": 0.7}


def device_records(table: DeviceTable, registry: OuiRegistry, catalog: VendorCatalog | None) -> list[DeviceRecord]:
    """Return one record per device, ordered by MAC."""
    table.settle()
    return [_record(dev, registry, catalog) for _, dev in sorted(table.devices.items())]


def _record(dev: Device, registry: OuiRegistry, catalog: VendorCatalog | None) -> DeviceRecord:
    oui = registry.lookup(dev.mac)
    vendor = None
    if catalog is not None:
        match = catalog.vendor_for(dev.mac, oui)
        if match is not None:
            v = match.vendor
            vendor = VendorVerdict(
                vendor_id=v.id,
                name=v.name,
                device_class=v.default_class,
                how=match.how,
                detail=match.detail,
                confidence=CONFIDENCE[match.how],
                lists=tuple(
                    ListEntry(m.list, catalog.lists[m.list].name, m.clause, m.since.isoformat(), m.note)
                    for m in v.lists
                ),
                parents=tuple(p.id for p in catalog.parents(v)),
            )
    addresses = tuple(
        DeviceAddress(_ip_text(addr), seen.first_ns, seen.last_ns)
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


def _ip_text(addr: tuple[int, int, int]) -> str:
    version, hi, lo = addr
    return str(ipaddress.IPv4Address(lo) if version == 4 else ipaddress.IPv6Address((hi << 64) | lo))
