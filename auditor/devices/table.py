"""The device table: one row per MAC that sends frames on the captured segment.

A device is keyed by its MAC, never by IP. It collects the IP addresses it sends from (with
first/last seen, ARP included), its VLANs, and its traffic: IP traffic from finished flows (each
side's MAC, address and counts), other frames (ARP, LLDP...) batch by batch. A MAC that sends from many remote
addresses is a router forwarding other hosts' traffic onto the segment: it is marked a gateway and
those remote addresses are not its own. Everything is bounded: devices, and addresses per device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import KIND_ARP, KIND_OTHER_L2, NO_VLAN, Headers
from auditor.flows.types import FlowRecords, group_rows

logger = logging.getLogger(__name__)

DEFAULT_MAX_DEVICES = 100_000
FOLD_FLOWS = 20_000
"""Finished flows buffered before they are folded into the devices (bounded: a few MB of columns)."""
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
        self._pending: list[FlowRecords] = []
        self._pending_flows = 0
        self.dropped_devices = 0
        """MACs not tracked because the table was full."""

    def __len__(self) -> int:
        return len(self.devices)

    def update(self, h: Headers) -> None:
        """Count a batch's non-IP frames (ARP, LLDP, ...) to their source MACs; ARP gives addresses.

        IP packets are counted through their flows (add_flows): far fewer rows than packets.
        """
        rows = np.flatnonzero((h.src_mac != 0) & ((h.kind == KIND_ARP) | (h.kind == KIND_OTHER_L2)))
        if not rows.size:
            return
        ts = h.batch.ts_ns[rows]
        arp = h.kind[rows] == KIND_ARP
        self._observe(
            macs=h.src_mac[rows],
            version=np.where(arp, 4, 0).astype(np.uint64),
            hi=np.zeros(rows.size, dtype=np.uint64),
            lo=np.where(arp, h.src_lo[rows], 0).astype(np.uint64),
            packets=np.ones(rows.size, dtype=np.int64),
            octets=h.batch.wirelen[rows].astype(np.int64),
            first=ts,
            last=ts,
            vlan=h.vlan_outer[rows],
        )

    def add_flows(self, flows: FlowRecords) -> None:
        """Count finished flows to the MACs that sent them: each side's packets, bytes and address.

        A side's time span is its flow's (first/last seen of a device are accurate to its flows).
        The responder's MAC is that of its first packet: a router's for a remote host. Flows are
        folded in by the FOLD_FLOWS (one Python step per distinct MAC per fold, not per flow);
        settle() folds the rest before the devices are read.
        """
        if len(flows):
            self._pending.append(flows)
            self._pending_flows += len(flows)
        if self._pending_flows >= FOLD_FLOWS:
            self.settle()

    def settle(self) -> None:
        """Fold every flow given so far into the devices."""
        pending, self._pending, self._pending_flows = self._pending, [], 0
        if not pending:
            return
        both = np.concatenate
        flows = _join(pending)
        self._observe(
            macs=both([flows.src_mac, flows.dst_mac]),
            version=both([flows.ip_version, flows.ip_version]).astype(np.uint64),
            hi=both([flows.src_hi, flows.dst_hi]),
            lo=both([flows.src_lo, flows.dst_lo]),
            packets=both([flows.src_packets, flows.dst_packets]).astype(np.int64),
            octets=both([flows.src_bytes, flows.dst_bytes]).astype(np.int64),
            first=both([flows.first_ns, flows.first_ns]),
            last=both([flows.last_ns, flows.last_ns]),
            vlan=both([flows.vlan_outer, flows.vlan_outer]),
        )

    def _observe(
        self,
        macs: NDArray[np.uint64],
        version: NDArray[np.uint64],
        hi: NDArray[np.uint64],
        lo: NDArray[np.uint64],
        packets: NDArray[np.int64],
        octets: NDArray[np.int64],
        first: NDArray[np.int64],
        last: NDArray[np.int64],
        vlan: NDArray[np.uint16],
    ) -> None:
        """Fold rows (mac, address, counts, times, vlan) into the devices; one loop step per distinct MAC."""
        sent = (macs != 0) & (packets > 0)
        if not sent.all():
            macs, version, hi, lo, packets, octets, first, last, vlan = (
                x[sent] for x in (macs, version, hi, lo, packets, octets, first, last, vlan)
            )
        if not macs.size:
            return
        order, starts = group_rows(macs)
        sums = np.add.reduceat(np.stack([packets[order], octets[order]]), starts, axis=1)
        lo_t, hi_t = np.minimum.reduceat(first[order], starts), np.maximum.reduceat(last[order], starts)
        for mac, n, b, f, la in zip(
            macs[order[starts]].tolist(), sums[0].tolist(), sums[1].tolist(), lo_t.tolist(), hi_t.tolist(),
            strict=True,
        ):
            dev = self._device(mac, f)
            if dev is None:
                continue
            dev.first_ns, dev.last_ns = min(dev.first_ns, f), max(dev.last_ns, la)
            dev.packets += n
            dev.bytes += b
        # the unspecified address (0.0.0.0, ::: DHCP discovers, DAD probes) belongs to nobody
        has = (version != 0) & ((lo != 0) | (hi != 0))
        if has.any():
            self._addresses(macs[has], version[has], hi[has], lo[has], first[has], last[has])
        tagged = vlan != NO_VLAN
        if tagged.any():
            pairs = np.unique(np.stack([macs[tagged], vlan[tagged].astype(np.uint64)]), axis=1)
            for mac, vid in pairs.T.tolist():
                dev = self.devices.get(mac)
                if dev is not None and len(dev.vlans) < self.max_addresses:
                    dev.vlans.add(int(vid))

    def _device(self, mac: int, ts: int) -> Device | None:
        dev = self.devices.get(mac)
        if dev is None:
            if len(self.devices) >= self.max_devices:
                self.dropped_devices += 1
                return None
            dev = self.devices[mac] = Device(mac=mac, first_ns=ts, last_ns=ts)
        return dev

    def _addresses(
        self,
        macs: NDArray[np.uint64],
        version: NDArray[np.uint64],
        hi: NDArray[np.uint64],
        lo: NDArray[np.uint64],
        first: NDArray[np.int64],
        last: NDArray[np.int64],
    ) -> None:
        cols = (macs, version, hi, lo)
        order, starts = group_rows(*cols)
        f_all, l_all = np.minimum.reduceat(first[order], starts), np.maximum.reduceat(last[order], starts)
        rep = order[starts]
        mac, v, a_hi, a_lo = (c[rep] for c in cols)
        local = self._is_local(v.astype(np.uint8), a_hi, a_lo)
        for m, ver, h_, l_, f, la, loc in zip(
            mac.tolist(), v.tolist(), a_hi.tolist(), a_lo.tolist(), f_all.tolist(), l_all.tolist(), local.tolist(),
            strict=True,
        ):
            dev = self.devices.get(m)
            if dev is None:
                continue
            addr = (ver, h_, l_)
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


def _join(parts: list[FlowRecords]) -> _Sides:
    """The columns add_flows needs, of several record batches."""
    def col(name: str) -> NDArray[Any]:
        return np.concatenate([getattr(p, name) for p in parts])

    return _Sides(*(col(n) for n in _Sides.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class _Sides:
    src_mac: NDArray[np.uint64]
    dst_mac: NDArray[np.uint64]
    ip_version: NDArray[np.uint8]
    src_hi: NDArray[np.uint64]
    dst_hi: NDArray[np.uint64]
    src_lo: NDArray[np.uint64]
    dst_lo: NDArray[np.uint64]
    src_packets: NDArray[np.uint64]
    dst_packets: NDArray[np.uint64]
    src_bytes: NDArray[np.uint64]
    dst_bytes: NDArray[np.uint64]
    first_ns: NDArray[np.int64]
    last_ns: NDArray[np.int64]
    vlan_outer: NDArray[np.uint16]
