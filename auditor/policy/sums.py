"""Alerts being summed, in columns: one row per alert, found by its key in one dict.

There may be up to max_alerts alerts held until the end of a run, so each costs little: a dict
entry, a 64-byte key and one row of numpy columns (about 0.35 KB in all, against about 1 KB as a
Python object per alert). The first flow of an alert fills its row; only an alert that sees a
second source address, service, VLAN or flow gets a small Python record of extras.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_SOURCE_IPS = 16
MAX_SERVICES = 32
MAX_VLANS = 16
MAX_SAMPLES = 5
"""Flows per alert whose Community IDs are kept (the first ones)."""
NO_VLAN = 0xFFFF

KEY = np.dtype([("policy", "<u8"), ("mac", "<u8"), ("dev_version", "<u8"), ("dev_hi", "<u8"), ("dev_lo", "<u8"),
                ("dst_version", "<u8"), ("dst_hi", "<u8"), ("dst_lo", "<u8")])
"""What makes an alert: policy, device (MAC, or source address when there is no MAC), destination."""

_COLUMNS: dict[str, Any] = {
    "policy": np.int32, "selector": np.int32, "mac": np.uint64, "dst_version": np.uint8, "dst_hi": np.uint64,
    "dst_lo": np.uint64, "dst_local": np.bool_, "first_ns": np.int64, "last_ns": np.int64, "flows": np.int64,
    "src_packets": np.uint64, "src_bytes": np.uint64, "dst_packets": np.uint64, "dst_bytes": np.uint64,
    # the first flow: its source address, service, VLAN and ports (for its Community ID)
    "src_version": np.uint8, "src_hi": np.uint64, "src_lo": np.uint64, "proto": np.uint8, "port": np.uint16,
    "vlan": np.uint16, "sport": np.uint16, "dport": np.uint16,
    "samples": np.uint8,  # flows kept for Community IDs, the first included
}

Sample = tuple[int, int, int, int, int, int, int, int]
"""A flow kept for its Community ID: (version, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport)."""


@dataclass(slots=True)
class Extras:
    """What an alert saw beyond its first flow (each list capped)."""

    sources: list[tuple[int, int, int]] = field(default_factory=list)
    services: list[tuple[int, int]] = field(default_factory=list)
    vlans: list[int] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Findings:
    """Columns of the finding flows of one batch (all of equal length)."""

    key: NDArray[Any]
    """KEY records."""
    selector: NDArray[np.int32]
    dst_local: NDArray[np.bool_]
    first_ns: NDArray[np.int64]
    last_ns: NDArray[np.int64]
    src_packets: NDArray[np.uint64]
    src_bytes: NDArray[np.uint64]
    dst_packets: NDArray[np.uint64]
    dst_bytes: NDArray[np.uint64]
    src_version: NDArray[np.uint8]
    src_hi: NDArray[np.uint64]
    src_lo: NDArray[np.uint64]
    proto: NDArray[np.uint8]
    port: NDArray[np.uint16]
    """Destination port, 0 for protocols without ports."""
    vlan: NDArray[np.uint16]
    sport: NDArray[np.uint16]
    """The flow's ports as the flow table keeps them (ICMP type/code equivalents): for Community IDs."""
    dport: NDArray[np.uint16]
    names: NDArray[Any] | None = None
    """Destination name per flow (None where never named), or None when no names stage ran."""
    name_source: NDArray[np.uint8] | None = None
    """Where each name came from (names.types.NAME_SOURCES index)."""


class AlertSums:
    """Sums finding flows into alert rows."""

    def __init__(self, max_alerts: int) -> None:
        self.max_alerts = max_alerts
        self._index: dict[bytes, int] = {}
        self._cols = {name: np.zeros(0, dtype=dtype) for name, dtype in _COLUMNS.items()}
        self.extras: dict[int, Extras] = {}
        self.names: dict[int, tuple[str, int]] = {}
        """Per alert row: the first name its destination was known by, and where it came from."""
        self.dropped = 0
        """Finding flows not summed because max_alerts rows existed."""

    def __len__(self) -> int:
        return len(self._index)

    def column(self, name: str) -> NDArray[Any]:
        """Return a column over the alerts so far (row = alert number)."""
        return self._cols[name][: len(self._index)]

    def add(self, f: Findings, limits: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Sum one batch of finding flows into their alerts, making new alerts while there are fewer than
        each flow's limit (so low-severity floods leave room for severe ones); return which were kept."""
        keys = f.key.view(f"V{KEY.itemsize}").ravel().tolist()
        rows = np.empty(len(keys), dtype=np.int64)
        first_of_row = np.zeros(len(keys), dtype=bool)
        index = self._index
        for i, (key, limit) in enumerate(zip(keys, limits.tolist(), strict=True)):  # one dict lookup per flow
            row = index.get(key)
            if row is None:
                if len(index) >= limit:
                    rows[i] = -1
                    continue
                row = index[key] = len(index)
                first_of_row[i] = True
            rows[i] = row
        kept = rows >= 0
        self.dropped += int((~kept).sum())
        self._grow(len(index))
        c = self._cols
        new = np.flatnonzero(first_of_row)
        new_rows = rows[new]
        for name in ("selector", "dst_local", "src_version", "src_hi", "src_lo", "proto", "port", "vlan", "sport",
                     "dport"):
            c[name][new_rows] = getattr(f, name)[new]
        for name in ("policy", "mac", "dst_version", "dst_hi", "dst_lo"):
            c[name][new_rows] = f.key[name][new]
        c["samples"][new_rows] = 1
        c["first_ns"][new_rows] = np.iinfo(np.int64).max
        c["last_ns"][new_rows] = np.iinfo(np.int64).min
        at = rows[kept]
        np.add.at(c["flows"], at, 1)
        for name in ("src_packets", "src_bytes", "dst_packets", "dst_bytes"):
            np.add.at(c[name], at, getattr(f, name)[kept])
        np.minimum.at(c["first_ns"], at, f.first_ns[kept])
        np.maximum.at(c["last_ns"], at, f.last_ns[kept])
        if f.names is not None and f.name_source is not None:
            self._name_rows(f, rows, kept)
        later = np.flatnonzero(kept & ~first_of_row)
        if later.size:
            # most later flows repeat their alert's first source, service and VLAN, and once an alert
            # holds all its samples they add nothing: leave those out of the per-flow Python step
            r = rows[later]
            nothing_new = (
                (c["samples"][r] >= MAX_SAMPLES)
                & (f.src_version[later] == c["src_version"][r]) & (f.src_hi[later] == c["src_hi"][r])
                & (f.src_lo[later] == c["src_lo"][r]) & (f.proto[later] == c["proto"][r])
                & (f.port[later] == c["port"][r]) & (f.vlan[later] == c["vlan"][r])
            )
            later = later[~nothing_new]
            if later.size:
                self._extras(f, rows, later)
        return kept

    def _name_rows(self, f: Findings, rows: NDArray[np.int64], kept: NDArray[np.bool_]) -> None:
        """Give each alert the first name one of its flows was known by (one Python step per named
        finding flow of an alert that has no name yet)."""
        assert f.names is not None and f.name_source is not None
        names = self.names
        for i in np.flatnonzero(kept & (f.name_source > 0)).tolist():
            row = int(rows[i])
            if row not in names and f.names[i]:
                names[row] = (f.names[i], int(f.name_source[i]))

    def _extras(self, f: Findings, rows: NDArray[np.int64], later: NDArray[np.int64]) -> None:
        """Record what flows after an alert's first one add: other addresses, services, VLANs, samples."""
        c = self._cols
        for i, row in zip(later.tolist(), rows[later].tolist(), strict=True):
            extra = self.extras.get(row)
            if extra is None:
                extra = self.extras[row] = Extras()
            source = (int(f.src_version[i]), int(f.src_hi[i]), int(f.src_lo[i]))
            if (source != (int(c["src_version"][row]), int(c["src_hi"][row]), int(c["src_lo"][row]))
                    and source not in extra.sources and len(extra.sources) < MAX_SOURCE_IPS - 1):
                extra.sources.append(source)
            service = (int(f.proto[i]), int(f.port[i]))
            if (service != (int(c["proto"][row]), int(c["port"][row])) and service not in extra.services
                    and len(extra.services) < MAX_SERVICES - 1):
                extra.services.append(service)
            vlan = int(f.vlan[i])
            room = MAX_VLANS - (c["vlan"][row] != NO_VLAN)
            if vlan not in (NO_VLAN, int(c["vlan"][row])) and vlan not in extra.vlans and len(extra.vlans) < room:
                extra.vlans.append(vlan)
            if c["samples"][row] < MAX_SAMPLES:
                c["samples"][row] += 1
                extra.samples.append((source[0], int(f.proto[i]), source[1], source[2], int(f.key["dst_hi"][i]),
                                      int(f.key["dst_lo"][i]), int(f.sport[i]), int(f.dport[i])))

    def samples(self) -> Iterator[tuple[int, Sample]]:
        """Yield (row, flow) for every kept flow sample: each row's first flow, then its extras."""
        c = {name: self.column(name).tolist() for name in ("src_version", "proto", "src_hi", "src_lo", "dst_hi",
                                                           "dst_lo", "sport", "dport")}
        for row in range(len(self)):
            yield row, (c["src_version"][row], c["proto"][row], c["src_hi"][row], c["src_lo"][row],
                        c["dst_hi"][row], c["dst_lo"][row], c["sport"][row], c["dport"][row])
        for row, extra in self.extras.items():
            for sample in extra.samples:
                yield row, sample

    def _grow(self, needed: int) -> None:
        size = len(self._cols["flows"])
        if needed <= size:
            return
        new_size = min(max(needed, 2 * size, 1024), max(self.max_alerts, needed))
        for name, col in self._cols.items():
            grown = np.zeros(new_size, dtype=col.dtype)
            grown[:size] = col
            self._cols[name] = grown
