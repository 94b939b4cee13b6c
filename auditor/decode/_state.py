"""The columns being filled while one batch is decoded, shared by the layer decoders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditor.decode._view import FrameView, IntArray
from auditor.decode.types import KIND_SKIPPED, NO_VLAN, SKIP_CODE


@dataclass(slots=True)
class DecodeState:
    """Mutable per-batch columns; each layer reads the ones before it and fills its own."""

    view: FrameView
    kind: NDArray[np.uint8]
    skip_reason: NDArray[np.uint8]
    src_mac: NDArray[np.uint64]
    dst_mac: NDArray[np.uint64]
    vlan_outer: NDArray[np.uint16]
    vlan_inner: NDArray[np.uint16]
    ethertype: NDArray[np.uint16]
    l3_off: IntArray
    ip_version: NDArray[np.uint8]
    ip_proto: NDArray[np.uint8]
    src_hi: NDArray[np.uint64]
    src_lo: NDArray[np.uint64]
    dst_hi: NDArray[np.uint64]
    dst_lo: NDArray[np.uint64]
    l4_off: IntArray
    ip_end: IntArray
    """End of the IP packet within the frame: min(IP length, captured length)."""
    is_fragment: NDArray[np.bool_]
    frag_offset: NDArray[np.uint16]
    frag_id: NDArray[np.uint32]
    sport: NDArray[np.uint16]
    dport: NDArray[np.uint16]
    has_ports: NDArray[np.bool_]
    tcp_flags: NDArray[np.uint8]
    payload_off: IntArray
    payload_len: IntArray
    arp_op: NDArray[np.uint16]

    @classmethod
    def empty(cls, view: FrameView, n: int) -> DecodeState:
        """Return columns for n frames, all zero / absent."""

        def u64() -> NDArray[np.uint64]:
            return np.zeros(n, dtype=np.uint64)

        return cls(
            view=view,
            kind=np.full(n, KIND_SKIPPED, dtype=np.uint8),
            skip_reason=np.zeros(n, dtype=np.uint8),
            src_mac=u64(),
            dst_mac=u64(),
            vlan_outer=np.full(n, NO_VLAN, dtype=np.uint16),
            vlan_inner=np.full(n, NO_VLAN, dtype=np.uint16),
            ethertype=np.zeros(n, dtype=np.uint16),
            l3_off=np.zeros(n, dtype=np.int64),
            ip_version=np.zeros(n, dtype=np.uint8),
            ip_proto=np.zeros(n, dtype=np.uint8),
            src_hi=u64(),
            src_lo=u64(),
            dst_hi=u64(),
            dst_lo=u64(),
            l4_off=np.zeros(n, dtype=np.int64),
            ip_end=np.zeros(n, dtype=np.int64),
            is_fragment=np.zeros(n, dtype=np.bool_),
            frag_offset=np.zeros(n, dtype=np.uint16),
            frag_id=np.zeros(n, dtype=np.uint32),
            sport=np.zeros(n, dtype=np.uint16),
            dport=np.zeros(n, dtype=np.uint16),
            has_ports=np.zeros(n, dtype=np.bool_),
            tcp_flags=np.zeros(n, dtype=np.uint8),
            payload_off=np.full(n, -1, dtype=np.int64),
            payload_len=np.zeros(n, dtype=np.int64),
            arp_op=np.zeros(n, dtype=np.uint16),
        )

    def skip(self, rows: IntArray, reason: str) -> None:
        """Mark `rows` as skipped for `reason`, unless an earlier layer already skipped them."""
        if rows.size:
            fresh = rows[self.skip_reason[rows] == 0]
            self.skip_reason[fresh] = SKIP_CODE[reason]

    def live(self, rows: IntArray) -> IntArray:
        """Return the rows not skipped so far."""
        keep: NDArray[np.bool_] = self.skip_reason[rows] == 0  # ndarray.__eq__ is typed as returning Any
        return rows[keep]

    def reject(self, rows: IntArray, *checks: tuple[NDArray[np.bool_], str]) -> IntArray:
        """Skip each row for the first check it fails (checks are (failed mask, reason)); return the rest."""
        failed = np.zeros(rows.shape[0], dtype=np.bool_)
        for mask, reason in checks:
            fresh = mask & ~failed
            if fresh.any():
                self.skip(rows[fresh], reason)
                failed |= fresh
        return rows[~failed] if failed.any() else rows

    def split(self, rows: IntArray, ok: NDArray[np.bool_], reason: str) -> IntArray:
        """Skip rows[~ok] for `reason` and return rows[ok]."""
        self.skip(rows[~ok], reason)
        return rows[ok]
