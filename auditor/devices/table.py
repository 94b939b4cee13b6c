"""The device table: one row per MAC that sends frames on the captured segment.

A device is keyed by its MAC, never by IP. It collects the IP addresses it sends from (with
first/last seen, ARP included), its VLANs, and its traffic. A MAC that sends from many remote
addresses is a router forwarding other hosts' traffic onto the segment: it is marked a gateway and
those remote addresses are not its own. Everything is bounded: devices, and addresses per device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import KIND_ARP, KIND_IP, KIND_SKIPPED, NO_VLAN, Headers

logger = logging.getLogger(__name__)

DEFAULT_MAX_DEVICES = 100_000
DEFAULT_MAX_ADDRESSES = 64
GATEWAY_REMOTE_ADDRESSES = 2
"""A MAC seen sending from this many distinct remote addresses of one IP version is routing them,
not owning them (a host has at most one public address per version; a dual-stack host two in all)."""

IsLocal = Callable[[NDArray[np.uint8], NDArray[np.uint64], NDArray[np.uint64]], NDArray[np.bool_]]
Address = tuple[int, int, int]  # (ip version, hi, lo) as in the engine's columns


@dataclass(slots=True)
class SeenAddress:
    """An address a device sent from."""

    first_ns: int
    last_ns: int
    local: bool


@dataclass(slots=True)
class Device:
    """What the segment showed of one MAC."""

    mac: int
    first_ns: int
    last_ns: int
    packets: int = 0
    bytes: int = 0
    addresses: dict[Address, SeenAddress] = field(default_factory=dict)
    vlans: set[int] = field(default_factory=set)
    remote_sources: dict[int, int] = field(default_factory=dict)
    """Distinct remote source addresses seen, per IP version (counted up to the gateway threshold)."""
    dropped_addresses: int = 0
    """Addresses not kept because the per-device cap was reached."""

    @property
    def is_gateway(self) -> bool:
        """True when this MAC forwards traffic of remote hosts (a router), by the remote-source rule."""
        return any(n >= GATEWAY_REMOTE_ADDRESSES for n in self.remote_sources.values())

    def own_addresses(self) -> dict[Address, SeenAddress]:
        """Return the addresses that are this device's own: a gateway's remote sources are not."""
        if not self.is_gateway:
            return self.addresses
        return {a: s for a, s in self.addresses.items() if s.local}


class DeviceTable:
    """Devices by MAC, updated batch by batch from decoded headers."""

    def __init__(
        self,
        is_local: IsLocal,
        max_devices: int = DEFAULT_MAX_DEVICES,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
    ) -> None:
        self._is_local = is_local
        self.max_devices = max_devices
        self.max_addresses = max_addresses
        self.devices: dict[int, Device] = {}
        self.dropped_devices = 0
        """MACs not tracked because the table was full."""

    def __len__(self) -> int:
        return len(self.devices)

    def update(self, h: Headers) -> None:
        """Count every decoded frame to its source MAC; record the addresses and VLANs it used."""
        rows = np.flatnonzero((h.src_mac != 0) & (h.kind != KIND_SKIPPED))
        if not rows.size:
            return
        ts = h.batch.ts_ns[rows]
        macs = h.src_mac[rows]
        order, starts = _groups(macs)
        sizes = np.diff(np.append(starts, order.size))
        octets = np.add.reduceat(h.batch.wirelen[rows][order].astype(np.int64), starts)
        ts_s = ts[order]
        first, last = np.minimum.reduceat(ts_s, starts), np.maximum.reduceat(ts_s, starts)
        for mac, n, b, f, la in zip(
            macs[order[starts]].tolist(), sizes.tolist(), octets.tolist(), first.tolist(), last.tolist(), strict=True
        ):
            dev = self._device(mac, f)
            if dev is None:
                continue
            dev.first_ns, dev.last_ns = min(dev.first_ns, f), max(dev.last_ns, la)
            dev.packets += n
            dev.bytes += b
        self._addresses(h, rows, ts)
        self._vlans(h, rows)

    def _device(self, mac: int, ts: int) -> Device | None:
        dev = self.devices.get(mac)
        if dev is None:
            if len(self.devices) >= self.max_devices:
                self.dropped_devices += 1
                return None
            dev = self.devices[mac] = Device(mac=mac, first_ns=ts, last_ns=ts)
        return dev

    def _addresses(self, h: Headers, rows: NDArray[np.int64], ts: NDArray[np.int64]) -> None:
        # IP packets: the source address; ARP: the sender's IPv4 address (src_lo, version 4)
        kind = h.kind[rows]
        # the unspecified address (0.0.0.0, ::: DHCP discovers, DAD probes) belongs to nobody
        specified = (h.src_lo[rows] != 0) | (h.src_hi[rows] != 0)
        has = ((kind == KIND_IP) | (kind == KIND_ARP)) & specified
        sel = rows[has]
        if not sel.size:
            return
        version = np.where(h.kind[sel] == KIND_ARP, 4, h.ip_version[sel]).astype(np.uint64)
        cols = (h.src_mac[sel], version, h.src_hi[sel], h.src_lo[sel])
        order, starts = _groups(*cols)
        t = ts[has][order]
        first, last = np.minimum.reduceat(t, starts), np.maximum.reduceat(t, starts)
        rep = order[starts]
        mac, v, hi, lo = (c[rep] for c in cols)
        local = self._is_local(v.astype(np.uint8), hi, lo)
        for m, ver, a_hi, a_lo, f, la, loc in zip(
            mac.tolist(), v.tolist(), hi.tolist(), lo.tolist(), first.tolist(), last.tolist(), local.tolist(),
            strict=True,
        ):
            dev = self.devices.get(m)
            if dev is None:
                continue
            addr = (ver, a_hi, a_lo)
            seen = dev.addresses.get(addr)
            if seen is not None:
                seen.first_ns, seen.last_ns = min(seen.first_ns, f), max(seen.last_ns, la)
                continue
            if not loc and dev.remote_sources.get(ver, 0) < GATEWAY_REMOTE_ADDRESSES:
                dev.remote_sources[ver] = dev.remote_sources.get(ver, 0) + 1
            if len(dev.addresses) >= self.max_addresses:
                dev.dropped_addresses += 1
                continue
            dev.addresses[addr] = SeenAddress(f, la, bool(loc))

    def _vlans(self, h: Headers, rows: NDArray[np.int64]) -> None:
        tagged = rows[h.vlan_outer[rows] != NO_VLAN]
        if not tagged.size:
            return
        pairs = np.unique(np.stack([h.src_mac[tagged], h.vlan_outer[tagged].astype(np.uint64)]), axis=1)
        for mac, vlan in pairs.T.tolist():
            dev = self.devices.get(mac)
            if dev is not None and len(dev.vlans) < self.max_addresses:
                dev.vlans.add(int(vlan))


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB),
        np.uint64(0xFF51AFD7ED558CCD))


def _groups(*cols: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return an order that brings equal rows of `cols` together, and where each group starts.

    Rows are grouped by a 64-bit mix of the columns (one integer sort); if two different rows share
    a mix (a collision), the exact but slower lexsort decides instead.
    """
    h = cols[0].astype(np.uint64, copy=True)
    for c, k in zip(cols[1:], _MIX, strict=False):
        h *= _MIX[3]
        h ^= h >> np.uint64(29)
        h ^= c.astype(np.uint64) * k
    order = np.argsort(h)
    hs = h[order]
    start = np.empty(hs.size, dtype=np.bool_)
    start[:1] = True
    np.not_equal(hs[1:], hs[:-1], out=start[1:])
    rep = order[np.flatnonzero(start)][np.cumsum(start) - 1]
    if all((c[order] == c[rep]).all() for c in cols):
        return order, np.flatnonzero(start)
    order = np.lexsort(cols[::-1])
    start[1:] = False
    for c in cols:
        s = c[order]
        start[1:] |= s[1:] != s[:-1]
    return order, np.flatnonzero(start)
