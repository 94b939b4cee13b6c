"""Device inventory outputs: devices.json (full records) and devices.csv (one line per device).

Organisation names come from the IEEE registry and, later, names and banners from the wire: all
untrusted. JSON escapes by construction; CSV cells that a spreadsheet would run as a formula
(leading =, +, -, @, tab or carriage return) are prefixed with a quote (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, BinaryIO, TextIO

import numpy as np
import orjson

from auditor.devices.types import DeviceRecord, Observation
from auditor.output._text import iso_time, iso_times, mac_text

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "mac", "role", "vendor", "vendor_id", "class", "lists", "confidence", "how", "oui_block", "organization",
    "locally_administered", "ips", "vlans", "first_seen", "last_seen", "packets", "bytes",
    "brand", "model", "firmware", "oem_relabel",
)


def _observations(observations: tuple[Observation, ...]) -> list[dict[str, Any]]:
    """Return observations as JSON-ready data; their times are formatted in one numpy call."""
    if not observations:
        return []
    times = iso_times(np.array([t for o in observations for t in (o.first_ns, o.last_ns)], dtype=np.int64))
    out = []
    for i, o in enumerate(observations):
        doc: dict[str, Any] = {"protocol": o.protocol, "field": o.field, "value": o.value,
                               "first_seen": times[2 * i], "last_seen": times[2 * i + 1], "count": o.count}
        if o.signatures:
            doc["signatures"] = list(o.signatures)
        out.append(doc)
    return out


def device_document(d: DeviceRecord) -> dict[str, Any]:
    """Return one device as JSON-ready data (ECS-like names where ECS has them)."""
    doc: dict[str, Any] = {
        "mac": mac_text(d.mac),
        "role": d.role,
        "first_seen": iso_time(d.first_ns),
        "last_seen": iso_time(d.last_ns),
        "packets": d.packets,
        "bytes": d.bytes,
        "ips": [
            {"ip": a.ip, "first_seen": iso_time(a.first_ns), "last_seen": iso_time(a.last_ns)} for a in d.addresses
        ],
        "vlans": list(d.vlans),
        "mac_locally_administered": d.locally_administered,
        "oui": None if d.oui is None else {"block": d.oui.block, "organization": d.oui.organization},
        "vendor": None,
        "observed": _observations(d.observations),
    }
    if d.vendor is not None:
        v = d.vendor
        doc["vendor"] = {
            "id": v.vendor_id,
            "name": v.name,
            "class": v.device_class,
            "parents": list(v.parents),
            "confidence": v.confidence,
            "lists": [
                {"id": m.list_id, "name": m.list_name, "clause": m.clause, "since": m.since, "note": m.note}
                for m in v.lists
            ],
            "brand": v.brand,
            "model": v.model,
            "firmware": v.firmware,
            "oem_relabel": v.relabel,
            "how": v.how,
            "evidence": [{"source": v.how, "value": v.detail}] + [
                {"source": "signature", **o} for o in _observations(v.evidence)
            ],
        }
    return doc


def write_devices_json(devices: Iterable[DeviceRecord], stream: BinaryIO) -> int:
    """Write {"devices": [...]} one device per line, built and written one at a time; return how many."""
    stream.write(b'{"devices": [\n')
    n = 0
    for d in devices:
        stream.write((b",\n" if n else b"") + orjson.dumps(device_document(d)))
        n += 1
    stream.write(b"\n]}\n")
    return n


def write_devices(devices: Iterable[DeviceRecord], json_stream: BinaryIO, csv_stream: TextIO) -> int:
    """Write devices.json and devices.csv in one pass over `devices`, one device at a time; return how many."""
    writer = csv.writer(csv_stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    json_stream.write(b'{"devices": [\n')
    n = 0
    for d in devices:
        json_stream.write((b",\n" if n else b"") + orjson.dumps(device_document(d)))
        writer.writerow(csv_row(d))
        n += 1
    json_stream.write(b"\n]}\n")
    return n


def write_devices_csv(devices: Iterable[DeviceRecord], stream: TextIO) -> int:
    """Write one CSV line per device (formula-looking cells neutralised); return how many."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for d in devices:
        writer.writerow(csv_row(d))
        n += 1
    return n


def csv_row(d: DeviceRecord) -> list[Any]:
    """Return one device's CSV cells (formula-looking cells neutralised)."""
    v = d.vendor
    row = [
        mac_text(d.mac), d.role, (v.name or "") if v else "", (v.vendor_id or "") if v else "",
        v.device_class if v else "",
        ";".join(m.list_id for m in v.lists) if v else "", f"{v.confidence:.2f}" if v else "",
        v.how if v else "", d.oui.block if d.oui else "", d.oui.organization if d.oui else "",
        "yes" if d.locally_administered else "no", " ".join(a.ip for a in d.addresses),
        " ".join(map(str, d.vlans)), iso_time(d.first_ns), iso_time(d.last_ns), d.packets, d.bytes,
        (v.brand or "") if v else "", (v.model or "") if v else "", (v.firmware or "") if v else "",
        (v.relabel or "") if v else "",
    ]
    return [neutralise(cell) if isinstance(cell, str) else cell for cell in row]


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, CR, LF stay: CSV quotes them


def neutralise(cell: str) -> str:
    """Return a CSV cell a spreadsheet will show as text, never run as a formula: control characters
    from the wire (a leading NUL would hide a formula from the first-character check) become U+FFFD."""
    cell = _CONTROLS.sub("\ufffd", cell)
    return "'" + cell if cell.lstrip("\ufffd").startswith(FORMULA_START) else cell
