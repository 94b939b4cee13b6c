"""The payload hand-off: later stages say which packets they want, and receive just those payloads.

Wants are declared once (by ethertype, by protocol and port, or "the first N payload packets of
each flow"); each batch is then filtered with numpy and only the selected packets become Python
objects. A handler that raises is counted and logged once, never allowed to stop a capture.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import IPPROTO_TCP, KIND_IP, NO_VLAN, Headers
from auditor.flows.table import BatchFlows
from auditor.flows.types import Payload, ip_text

logger = logging.getLogger(__name__)

Handler = Callable[[Payload], None]


@dataclass(frozen=True, slots=True)
class _Want:
    name: str
    handler: Handler
    ethertype: int | None = None
    proto: int | None = None
    port: int | None = None
    head_packets: int | None = None


class PayloadRegistry:
    """Who wants which payloads; `dispatch` hands each batch's matching packets to them."""

    def __init__(self) -> None:
        self._wants: list[_Want] = []
        self.delivered: Counter[str] = Counter()
        """Payloads handed to each named want."""
        self.crashed: Counter[str] = Counter()
        """Handler exceptions per named want (each is a bug in that handler)."""

    def by_ethertype(self, name: str, ethertype: int, handler: Handler) -> None:
        """Deliver every non-IP frame of this ethertype (payload = bytes after the link header)."""
        self._wants.append(_Want(name, handler, ethertype=ethertype))

    def by_port(self, name: str, proto: int, port: int, handler: Handler) -> None:
        """Deliver every payload-carrying packet of `proto` with `port` as source or destination."""
        self._wants.append(_Want(name, handler, proto=proto, port=port))

    def by_flow_head(self, name: str, packets: int, handler: Handler, proto: int = IPPROTO_TCP) -> None:
        """Deliver the first `packets` payload-carrying packets of every flow of `proto`."""
        if packets < 1:
            raise ValueError("packets must be at least 1")
        self._wants.append(_Want(name, handler, proto=proto, head_packets=packets))

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
            for row, flow_pos in zip(rows.tolist(), picked.tolist(), strict=True):
                total += self._deliver(want, _payload(h, flows, row, flow_pos))
        return total

    @staticmethod
    def _select_ip(h: Headers, flows: BatchFlows, want: _Want) -> NDArray[np.int64]:
        r = flows.rows
        # later fragments carry the middle of a datagram, not a protocol message: never handed off
        mask = (h.ip_proto[r] == want.proto) & (h.payload_len[r] > 0) & (h.frag_offset[r] == 0)
        if want.port is not None:
            mask &= (h.sport[r] == want.port) | (h.dport[r] == want.port)
        if want.head_packets is not None:
            if flows.payload_index is None:
                raise ValueError("flow-head hand-off needs FlowTable.process(payload_index=True)")
            mask &= (flows.payload_index >= 0) & (flows.payload_index < want.head_packets)
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


def _payload(h: Headers, flows: BatchFlows, row: int, flow_pos: int) -> Payload:
    """Build the Payload of batch row `row` (`flow_pos` is its index in `flows`, -1 if not IP)."""
    b = h.batch
    start = int(b.offset[row])
    caplen = int(b.caplen[row])
    if flow_pos >= 0:
        off, length = int(h.payload_off[row]), int(h.payload_len[row])
    else:
        off = int(h.l3_off[row])
        length = max(caplen - off, 0)
    data = b.data[start + off : start + off + length].tobytes()
    version = int(h.ip_version[row])
    vlan = int(h.vlan_outer[row])
    return Payload(
        flow_id=int(flows.flow_id[flow_pos]) if flow_pos >= 0 else 0,
        ts_ns=int(b.ts_ns[row]),
        ip_version=version,
        ip_proto=int(h.ip_proto[row]),
        src_ip=ip_text(version, int(h.src_hi[row]), int(h.src_lo[row])) if version else "",
        dst_ip=ip_text(version, int(h.dst_hi[row]), int(h.dst_lo[row])) if version else "",
        sport=int(h.sport[row]),
        dport=int(h.dport[row]),
        from_initiator=bool(flows.from_initiator[flow_pos]) if flow_pos >= 0 else True,
        src_mac=int(h.src_mac[row]),
        dst_mac=int(h.dst_mac[row]),
        vlan=None if vlan == NO_VLAN else vlan,
        ethertype=int(h.ethertype[row]),
        data=data,
    )
