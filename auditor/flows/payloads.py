"""The payload hand-off: later stages say which packets they want, and receive just those payloads.

Wants are declared once (by ethertype, by protocol and port, or "the first N payload packets of
each flow"); each batch is then filtered with numpy and only the selected packets become Python
objects. A handler that raises is counted and logged once, never allowed to stop a capture.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import IPPROTO_TCP, KIND_IP, NO_VLAN, Headers
from auditor.flows.table import BatchFlows
from auditor.flows.types import Payload

logger = logging.getLogger(__name__)

Handler = Callable[[Payload], None]
IsLocal = Callable[[NDArray[np.uint8], NDArray[np.uint64], NDArray[np.uint64]], NDArray[np.bool_]]


@dataclass(frozen=True, slots=True)
class _Want:
    name: str
    handler: Handler
    ethertype: int | None = None
    proto: int | None = None
    port: int | None = None
    head_packets: int | None = None
    to_port_only: bool = False
    from_port_only: bool = False
    first_bytes: NDArray[np.bool_] | None = None
    """256 flags: deliver only payloads whose first byte is set (None: any)."""
    any_sender: bool = False
    """Ignore the registry's sender filter (e.g. DNS answers come from remote resolvers)."""
    initiator_only: bool = False
    also_flows: Callable[[], NDArray[np.uint64]] | None = None
    """Flow ids whose head packets are delivered whatever their first byte (a message that continues)."""


class PayloadRegistry:
    """Who wants which payloads; `dispatch` hands each batch's matching packets to them."""

    def __init__(self, senders: IsLocal | None = None) -> None:
        """With `senders`, IP payloads are handed over only when it accepts their sender's address
        (vectorised over the batch): e.g. only what devices of the site say, not remote servers."""
        self._senders = senders
        self._wants: list[_Want] = []
        self.delivered: Counter[str] = Counter()
        """Payloads handed to each named want."""
        self.crashed: Counter[str] = Counter()
        """Handler exceptions per named want (each is a bug in that handler)."""

    def by_ethertype(self, name: str, ethertype: int, handler: Handler) -> None:
        """Deliver every non-IP frame of this ethertype (payload = bytes after the link header)."""
        self._wants.append(_Want(name, handler, ethertype=ethertype))

    def by_port(self, name: str, proto: int, port: int, handler: Handler, to_port_only: bool = False,
                from_port_only: bool = False, any_sender: bool = False) -> None:
        """Deliver every payload-carrying packet of `proto` with `port` as source or destination (with
        `to_port_only`, as destination: requests to a service, not its answers; with `from_port_only`,
        as source: the service's answers). With `any_sender`, the registry's sender filter is ignored."""
        if to_port_only and from_port_only:
            raise ValueError("to_port_only and from_port_only exclude each other")
        self._wants.append(_Want(name, handler, proto=proto, port=port, to_port_only=to_port_only,
                                 from_port_only=from_port_only, any_sender=any_sender))

    def by_flow_head(self, name: str, packets: int, handler: Handler, proto: int = IPPROTO_TCP,
                     first_bytes: Iterable[int] | None = None, initiator_only: bool = False,
                     any_sender: bool = False,
                     also_flows: Callable[[], NDArray[np.uint64]] | None = None) -> None:
        """Deliver the first `packets` payload-carrying packets of every flow of `proto`; with
        `first_bytes`, only those whose payload starts with one of them (checked with numpy, so the
        others never become Python objects); with `initiator_only`, only the initiator's packets. With
        `also_flows`, the head packets of the flows it names pass the first-byte check too (the rest of
        a message whose start was handed over)."""
        if packets < 1:
            raise ValueError("packets must be at least 1")
        table = None
        if first_bytes is not None:
            table = np.zeros(256, dtype=bool)
            table[list(first_bytes)] = True
        self._wants.append(_Want(name, handler, proto=proto, head_packets=packets, first_bytes=table,
                                 initiator_only=initiator_only, any_sender=any_sender, also_flows=also_flows))

    def __len__(self) -> int:
        return len(self._wants)

    @property
    def needs_payload_index(self) -> bool:
        """True when some want asks for the first N payload packets of each flow."""
        return any(w.head_packets is not None for w in self._wants)

    def dispatch(self, h: Headers, flows: BatchFlows) -> int:
        """Hand the matching packets of one batch to their handlers; return how many were handed."""
        total = 0
        for want in self._wants:
            if want.ethertype is not None:
                rows = np.flatnonzero((h.kind != KIND_IP) & (h.ethertype == want.ethertype) & (h.skip_reason == 0))
                picked = np.full(rows.size, -1, dtype=np.int64)
            else:
                picked = self._select_ip(h, flows, want)
                rows = flows.rows[picked]
            if rows.size:
                for payload in _payloads(h, flows, rows, picked):
                    total += self._deliver(want, payload)
            if want.also_flows is not None and picked.size:
                total += self._continuations(h, flows, want, picked)
        return total

    def _continuations(self, h: Headers, flows: BatchFlows, want: _Want, done: NDArray[np.int64]) -> int:
        """Deliver, in order, the head packets of this batch that continue a message a handler started
        holding while the batch was being handed over (they failed the first-byte check before it did)."""
        assert want.also_flows is not None
        total = 0
        for _ in range(want.head_packets or 1):  # a message held again may need the next packet too
            held = want.also_flows()
            if not held.size:
                break
            candidates = self._select_ip(h, flows, _without_first_bytes(want))
            later = candidates[np.isin(flows.flow_id[candidates], held) & ~np.isin(candidates, done)]
            # only packets after the first one handed over for their flow: never before a message's start
            starts = {int(f): int(i) for i, f in zip(done[::-1], flows.flow_id[done[::-1]], strict=True)}
            later = np.array([i for i in later.tolist() if i > starts.get(int(flows.flow_id[i]), 1 << 62)],
                             dtype=np.int64)
            if not later.size:
                break
            for payload in _payloads(h, flows, flows.rows[later], later):
                total += self._deliver(want, payload)
            done = np.concatenate([done, later])
        return total

    def _select_ip(self, h: Headers, flows: BatchFlows, want: _Want) -> NDArray[np.int64]:
        r = flows.rows
        # later fragments carry the middle of a datagram, not a protocol message: never handed off
        mask = (h.ip_proto[r] == want.proto) & (h.payload_len[r] > 0) & (h.frag_offset[r] == 0)
        if want.port is not None:
            if want.to_port_only:
                mask &= h.dport[r] == want.port
            elif want.from_port_only:
                mask &= h.sport[r] == want.port
            else:
                mask &= (h.dport[r] == want.port) | (h.sport[r] == want.port)
        if want.head_packets is not None:
            if flows.payload_index is None:
                raise ValueError("flow-head hand-off needs FlowTable.process(payload_index=True)")
            mask &= (flows.payload_index >= 0) & (flows.payload_index < want.head_packets)
        if want.initiator_only:
            mask &= flows.from_initiator
        if self._senders is not None and not want.any_sender and mask.any():
            at = np.flatnonzero(mask)
            mask[at[~self._senders(h.ip_version[r[at]], h.src_hi[r[at]], h.src_lo[r[at]])]] = False
        if want.first_bytes is not None:
            at = np.flatnonzero(mask)
            first = h.batch.data[h.batch.offset[r[at]].astype(np.int64) + h.payload_off[r[at]]]
            ok = want.first_bytes[first]
            if want.also_flows is not None:
                extra = want.also_flows()
                if extra.size:
                    ok |= np.isin(flows.flow_id[at], extra)
            mask[at[~ok]] = False
        return np.flatnonzero(mask)

    def _deliver(self, want: _Want, payload: Payload) -> int:
        try:
            want.handler(payload)
        except Exception:  # a handler bug must not end a 10-hour capture: count it, log it once
            if not self.crashed[want.name]:
                logger.exception("payload handler %r failed; further failures are only counted", want.name)
            self.crashed[want.name] += 1
            return 0
        self.delivered[want.name] += 1
        return 1


def _without_first_bytes(want: _Want) -> _Want:
    return _Want(want.name, want.handler, proto=want.proto, head_packets=want.head_packets,
                 initiator_only=want.initiator_only, any_sender=want.any_sender)


def _payloads(h: Headers, flows: BatchFlows, rows: NDArray[np.int64], picked: NDArray[np.int64]) -> list[Payload]:
    """Build the Payloads of batch rows `rows` (`picked`: their indexes in `flows`, -1 if not IP); every
    column is turned into Python values once, not per field per packet."""
    b = h.batch
    ip = picked >= 0
    flow_pos = np.where(ip, picked, 0)
    off = np.where(ip, h.payload_off[rows], h.l3_off[rows]).astype(np.int64)
    length = np.where(ip, h.payload_len[rows], np.maximum(b.caplen[rows].astype(np.int64) - off, 0))
    start = b.offset[rows].astype(np.int64) + off
    end = start + length
    flow_id = np.where(ip, flows.flow_id[flow_pos] if len(flows.flow_id) else 0, 0)
    from_initiator = np.where(ip, flows.from_initiator[flow_pos] if len(flows.flow_id) else True, True)
    vlan = h.vlan_outer[rows]
    data = b.data
    return [
        Payload(fid, ts, ver, proto, shi, slo, dhi, dlo, sp, dp, bool(init), smac, dmac,
                None if v == NO_VLAN else v, et, data[s:e].tobytes())
        for fid, ts, ver, proto, shi, slo, dhi, dlo, sp, dp, init, smac, dmac, v, et, s, e in zip(
            flow_id.tolist(), b.ts_ns[rows].tolist(), h.ip_version[rows].tolist(), h.ip_proto[rows].tolist(),
            h.src_hi[rows].tolist(), h.src_lo[rows].tolist(), h.dst_hi[rows].tolist(), h.dst_lo[rows].tolist(),
            h.sport[rows].tolist(), h.dport[rows].tolist(), from_initiator.tolist(), h.src_mac[rows].tolist(),
            h.dst_mac[rows].tolist(), vlan.tolist(), h.ethertype[rows].tolist(), start.tolist(), end.tolist(),
            strict=True,
        )
    ]
