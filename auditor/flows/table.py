"""The bidirectional flow table: packets of a batch in, per-packet flow ids and finished flows out.

Everything here works on whole batches with numpy: packets are grouped by a 64-bit key hash
(argsort + reduceat), groups are matched against the table through a sorted hash index
(searchsorted), and counters are updated with one fancy-index operation per column. Every match
is verified against the stored key, so a hash collision re-hashes the newcomer (a salt chain)
instead of merging two flows: the table is exact.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import IPPROTO_TCP, KIND_IP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Headers
from auditor.flows.community_id import flow_tuple
from auditor.flows.fragments import FragmentTracker
from auditor.flows.keys import hash_keys, pack_small_fields
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS, LocalNetworks, direction
from auditor.flows.types import END_CAPACITY, END_IDLE, END_OF_CAPTURE, END_TCP_CLOSE, FlowRecords

logger = logging.getLogger(__name__)

NS = 1_000_000_000
_BIG = np.iinfo(np.int64).max

_ScalarT = TypeVar("_ScalarT", bound=np.generic)


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """Limits and timeouts of the flow table (defaults follow common practice: Zeek, nfstream)."""

    udp_idle_timeout_s: float = 120.0
    """UDP, ICMP and every other non-TCP flow ends after this long without a packet."""
    tcp_idle_timeout_s: float = 3600.0
    tcp_close_linger_s: float = 5.0
    """A TCP flow that saw RST, or FIN both ways, ends once quiet this long (late ACKs still count)."""
    max_flows: int = 1_000_000
    """Above this many active flows the least recently seen are ended early ('capacity')."""
    sweep_interval_s: float = 1.0
    """How often (in capture time) idle flows are looked for."""
    local_networks: LocalNetworks = field(default_factory=lambda: LocalNetworks(DEFAULT_LOCAL_NETWORKS))
    """Addresses that count as local when a flow's direction is judged."""


@dataclass(frozen=True, slots=True)
class BatchFlows:
    """Which flow each IP packet of a batch went to."""

    rows: NDArray[np.int64]
    """Batch row of each IP packet (non-IP frames have no flow)."""
    flow_id: NDArray[np.uint64]
    from_initiator: NDArray[np.bool_]
    payload_index: NDArray[np.int64] | None
    """0 for the first packet with payload in its flow, 1 for the second...; -1 without payload.
    None when the caller did not ask for it (FlowTable.process(payload_index=False))."""


_KEY_COLS = ("a_hi", "a_lo", "b_hi", "b_lo", "w1", "w2")
_COLUMNS: dict[str, type] = {
    "a_hi": np.uint64, "a_lo": np.uint64, "b_hi": np.uint64, "b_lo": np.uint64,
    "w1": np.uint64, "w2": np.uint64, "flow_id": np.uint64,
    "init_is_a": np.bool_, "pk_ab": np.uint64, "pk_ba": np.uint64, "by_ab": np.uint64,
    "by_ba": np.uint64, "fl_ab": np.uint8, "fl_ba": np.uint8, "mac_a": np.uint64, "mac_b": np.uint64,
    "first_ns": np.int64, "last_ns": np.int64, "closed_ns": np.int64, "payloads": np.int64,
    "is_tcp": np.bool_, "active": np.bool_, "saw_syn": np.bool_,
}


@dataclass(frozen=True, slots=True)
class _Packets:
    """The IP packets of a batch (or of a time chunk of it), as the table needs them."""

    keys: tuple[NDArray[np.uint64], ...]
    swapped: NDArray[np.bool_]
    ts: NDArray[np.int64]
    wirelen: NDArray[np.uint32]
    flags: NDArray[np.uint8]
    proto: NDArray[np.uint8]
    mac: NDArray[np.uint64]
    has_payload: NDArray[np.bool_]

    def take(self, part: slice) -> _Packets:
        return _Packets(
            keys=tuple(col[part] for col in self.keys),
            swapped=self.swapped[part],
            ts=self.ts[part],
            wirelen=self.wirelen[part],
            flags=self.flags[part],
            proto=self.proto[part],
            mac=self.mac[part],
            has_payload=self.has_payload[part],
        )


@dataclass(frozen=True, slots=True)
class _Answers:
    flow_id: NDArray[np.uint64]
    from_initiator: NDArray[np.bool_]
    payload_index: NDArray[np.int64] | None


class FlowTable:
    """Bidirectional flows keyed by protocol, address pair, port pair and VLAN ids."""

    def __init__(self, options: FlowOptions | None = None, capacity: int = 4096) -> None:
        self.options = options or FlowOptions()
        self._cap = capacity
        # one array per column, each of its own dtype (_COLUMNS)
        self._col: dict[str, NDArray[Any]] = {name: np.zeros(capacity, dtype=dt) for name, dt in _COLUMNS.items()}
        self._high = 0  # slots [0, _high) have been used at least once
        self._free: list[NDArray[np.int64]] = []
        self._index_hash = np.empty(0, dtype=np.uint64)
        self._index_slot = np.empty(0, dtype=np.int64)
        self._next_id = 1
        self._last_sweep_ns: int | None = None
        self._now_ns = 0
        self.fragments = FragmentTracker()
        self.collisions = 0
        """Keys that had to be re-hashed because another key had the same hash."""
        self.flows_started = 0

    @property
    def active(self) -> int:
        """Return the number of flows in the table."""
        return int(self._index_hash.shape[0])

    def process(self, h: Headers, payload_index: bool = True) -> tuple[BatchFlows, FlowRecords | None]:
        """Add a batch's IP packets to their flows; return per-packet flow ids and any flows ended.

        `payload_index=False` skips numbering payload packets (BatchFlows.payload_index is then
        None): a run with no "first N payloads of each flow" hand-off does not pay for it.
        """
        rows = np.flatnonzero(h.kind == KIND_IP)
        if not rows.size:
            if len(h):
                self._now_ns = max(self._now_ns, int(h.batch.ts_ns.max()))
            return _empty_batch_flows(), _concat_records([self._maybe_sweep(self._now_ns)])
        sport, dport = self.fragments.resolve(h, rows)
        ver, proto = h.ip_version[rows], h.ip_proto[rows]
        ft = flow_tuple(ver, proto, h.src_hi[rows], h.src_lo[rows], h.dst_hi[rows], h.dst_lo[rows], sport, dport)
        w1, w2 = pack_small_fields(ver, proto, ft.port_a, ft.port_b, h.vlan_outer[rows], h.vlan_inner[rows])
        pkt = _Packets(
            keys=(ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo, w1, w2),
            swapped=ft.swapped,
            ts=h.batch.ts_ns[rows],
            wirelen=h.batch.wirelen[rows],
            flags=h.tcp_flags[rows],
            proto=proto,
            mac=h.src_mac[rows],
            has_payload=(h.payload_len[rows] > 0) & (h.frag_offset[rows] == 0),
        )
        ended: list[FlowRecords | None] = []
        parts: list[_Answers] = []
        # No chunk spans more than the shortest quiet limit (idle timeouts, close linger), so no
        # flow can end inside a chunk unseen; a flow that ended before a chunk is closed off when
        # the chunk meets it, and the chunk's packets start a new flow.
        for lo, hi in self._time_chunks(pkt.ts):
            chunk = pkt if (lo, hi) == (0, rows.size) else pkt.take(slice(lo, hi))
            ended.append(self._maybe_sweep(int(chunk.ts[0])))
            part, stale = self._add(chunk, payload_index)
            ended.append(stale)
            parts.append(part)
        ended.append(self._maybe_sweep(self._now_ns, only_if_over=True))
        flow_id = np.concatenate([p.flow_id for p in parts]) if len(parts) > 1 else parts[0].flow_id
        from_init = np.concatenate([p.from_initiator for p in parts]) if len(parts) > 1 else parts[0].from_initiator
        index = None
        if payload_index:
            pieces = [p.payload_index for p in parts if p.payload_index is not None]
            index = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        flows = BatchFlows(rows=rows, flow_id=flow_id, from_initiator=from_init, payload_index=index)
        return flows, _concat_records(ended)

    def expire(self, now_ns: int) -> FlowRecords | None:
        """End the flows idle at `now_ns` and return them: on a live link time passes without packets,
        and a flow whose peer fell silent must still end (this sweeps whenever it is due)."""
        self._now_ns = max(self._now_ns, now_ns)
        return self._maybe_sweep(self._now_ns)

    def flush(self, max_flows: int | None = None) -> FlowRecords | None:
        """End every flow still in the table (end of capture) and return them, None when none is left.
        With `max_flows`, end at most that many (call again for the next share): a stopping sensor
        hands its open flows to the writer in parts, so formatting starts while the rest are judged."""
        slots = np.sort(self._index_slot)
        if max_flows is not None:
            slots = slots[:max_flows]
        return self._evict(slots, np.full(slots.size, END_OF_CAPTURE, dtype=np.uint8))

    def _time_chunks(self, ts: NDArray[np.int64]) -> list[tuple[int, int]]:
        o = self.options
        # at least 1 s, so that a linger near 0 cannot cut a batch into one chunk per packet
        span = int(max(min(o.udp_idle_timeout_s, o.tcp_idle_timeout_s, o.tcp_close_linger_s), 1.0) * NS)
        if int(ts.max()) - int(ts.min()) <= span:
            return [(0, ts.size)]
        # sparse capture: cut by time (running maximum, so out-of-order timestamps cannot loop)
        running = np.maximum.accumulate(ts)
        bounds: list[tuple[int, int]] = []
        lo = 0
        while lo < ts.size:
            hi = int(np.searchsorted(running, running[lo] + span, side="right"))
            bounds.append((lo, hi))
            lo = hi
        return bounds

    def _add(self, pkt: _Packets, payload_index: bool) -> tuple[_Answers, FlowRecords | None]:
        """Add packets spanning at most one idle timeout; return per-packet answers and stale flows ended."""
        keys = pkt.keys
        order, starts = self._group(keys)
        rep = order[starts]
        group_hash = hash_keys(*(col[rep] for col in keys))
        slot = self._lookup(group_hash, keys, rep)
        ts_s = pkt.ts[order]
        first_ts = np.minimum.reduceat(ts_s, starts)
        stale = self._stale(slot, first_ts)
        if stale.any():
            # the stored flow ended (idle, or closed and quiet) before this group's first packet
            ended = self._evict(slot[stale], self._end_reason(slot[stale]))
            slot[stale] = -1
        else:
            ended = None
        new = slot < 0
        if new.any():
            created = self._create(keys, order, starts, new, pkt)
            slot[new] = created
            self._index_insert(group_hash[new], created)
        sizes = np.diff(np.append(starts, order.size))
        self._accumulate(pkt, order, starts, sizes, slot, ts_s)

        # per-packet answers, back in batch order
        row_slot = np.empty(order.size, dtype=np.int64)
        row_slot[order] = np.repeat(slot, sizes)
        c = self._col
        from_init = ~pkt.swapped == c["init_is_a"][row_slot]
        index = self._payload_index(pkt.has_payload, order, starts, sizes, slot) if payload_index else None
        self._now_ns = max(self._now_ns, int(pkt.ts.max()))
        return _Answers(c["flow_id"][row_slot], from_init, index), ended

    # -- grouping and lookup ------------------------------------------------------------------

    def _group(self, keys: tuple[NDArray[np.uint64], ...]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return a sort order that brings equal keys together, and where each group starts."""
        hsh = hash_keys(*keys)
        # quicksort, not stable: 4x faster here; whatever needs "the earliest packet of a group"
        # takes the minimum batch row of the group instead of relying on sort order
        order = np.argsort(hsh)
        hs = hsh[order]
        is_start = np.empty(hs.size, dtype=np.bool_)
        is_start[0] = True
        np.not_equal(hs[1:], hs[:-1], out=is_start[1:])
        # Verify: every row's key must equal its group's first row's key, else two keys share a hash.
        rep_row = np.empty(hs.size, dtype=np.int64)
        rep_row[order] = order[np.flatnonzero(is_start)][np.cumsum(is_start) - 1]
        for col in keys:
            if col.any() and (col != col[rep_row]).any():
                self.collisions += 1
                return self._group_exact(keys, hsh)
        return order, np.flatnonzero(is_start)

    @staticmethod
    def _group_exact(
        keys: tuple[NDArray[np.uint64], ...], hsh: NDArray[np.uint64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        # Rare path (a 64-bit hash collision inside one batch): sort by hash, then by the full key.
        order = np.lexsort((*keys[::-1], hsh))  # the last key sorts first
        differs = np.zeros(order.size, dtype=np.bool_)
        differs[0] = True
        for col in (hsh, *keys):
            s = col[order]
            differs[1:] |= s[1:] != s[:-1]
        return order, np.flatnonzero(differs)

    def _lookup(
        self, group_hash: NDArray[np.uint64], keys: tuple[NDArray[np.uint64], ...], rep: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Return the stored slot of each group's key, or -1; several stored flows may share a hash."""
        slot = np.full(group_hash.size, -1, dtype=np.int64)
        if not self._index_hash.size:
            return slot
        lo = np.searchsorted(self._index_hash, group_hash, side="left")
        hi = np.searchsorted(self._index_hash, group_hash, side="right")
        count = hi - lo
        one = np.flatnonzero(count == 1)
        cand = self._index_slot[lo[one]]
        match = np.ones(one.size, dtype=np.bool_)
        for name, col in zip(_KEY_COLS, keys, strict=True):
            match &= self._col[name][cand] == col[rep[one]]
        slot[one[match]] = cand[match]
        self.collisions += int(one.size - match.sum())
        for g in np.flatnonzero(count > 1).tolist():  # shared hashes: compare each stored key
            self.collisions += 1
            for s in self._index_slot[lo[g] : hi[g]].tolist():
                if all(self._col[name][s] == col[rep[g]] for name, col in zip(_KEY_COLS, keys, strict=True)):
                    slot[g] = s
                    break
        return slot

    def _index_insert(self, hashes: NDArray[np.uint64], slots: NDArray[np.int64]) -> None:
        # group hashes of a hash-sorted batch arrive sorted: then one merge and no re-sort
        if hashes.size > 1 and (hashes[1:] < hashes[:-1]).any():
            order = np.argsort(hashes)
            hashes, slots = hashes[order], slots[order]
        pos = np.searchsorted(self._index_hash, hashes)
        self._index_hash = np.insert(self._index_hash, pos, hashes)
        self._index_slot = np.insert(self._index_slot, pos, slots)

    def _stale(self, slot: NDArray[np.int64], first_ts: NDArray[np.int64]) -> NDArray[np.bool_]:
        found = np.flatnonzero(slot >= 0)
        stale = np.zeros(slot.size, dtype=np.bool_)
        if found.size:
            s = slot[found]
            stale[found] = first_ts[found] - self._col["last_ns"][s] > self._quiet_limit(s)
        return stale

    def _quiet_limit(self, slots: NDArray[np.int64]) -> NDArray[np.int64]:
        """Return how long each flow may stay quiet before it has ended."""
        o, c = self.options, self._col
        idle = np.where(c["is_tcp"][slots], int(o.tcp_idle_timeout_s * NS), int(o.udp_idle_timeout_s * NS))
        return np.where(c["closed_ns"][slots] >= 0, np.minimum(idle, int(o.tcp_close_linger_s * NS)), idle)

    def _end_reason(self, slots: NDArray[np.int64]) -> NDArray[np.uint8]:
        return np.where(self._col["closed_ns"][slots] >= 0, END_TCP_CLOSE, END_IDLE).astype(np.uint8)

    # -- creating and updating flows ----------------------------------------------------------

    def _create(
        self,
        keys: tuple[NDArray[np.uint64], ...],
        order: NDArray[np.int64],
        starts: NDArray[np.int64],
        new: NDArray[np.bool_],
        pkt: _Packets,
    ) -> NDArray[np.int64]:
        """Open flows for the groups marked `new` (groups begin at sorted positions `starts`)."""
        k = int(new.sum())
        slots = self._allocate(k)
        rep = order[starts[new]]
        c = self._col
        for name, col in zip(_KEY_COLS, keys, strict=True):
            c[name][slots] = col[rep]
        c["flow_id"][slots] = np.arange(self._next_id, self._next_id + k, dtype=np.uint64)
        self._next_id += k
        self.flows_started += k
        # Until a SYN says otherwise (see _accumulate), the initiator is whoever sent first.
        first_row = np.minimum.reduceat(order, starts)[new]
        c["init_is_a"][slots] = ~pkt.swapped[first_row]
        c["saw_syn"][slots] = False
        c["is_tcp"][slots] = pkt.proto[rep] == IPPROTO_TCP
        for name in ("pk_ab", "pk_ba", "by_ab", "by_ba", "fl_ab", "fl_ba", "mac_a", "mac_b", "payloads"):
            c[name][slots] = 0
        c["first_ns"][slots] = _BIG
        c["last_ns"][slots] = np.iinfo(np.int64).min
        c["closed_ns"][slots] = -1
        c["active"][slots] = True
        return slots

    def _allocate(self, k: int) -> NDArray[np.int64]:
        got: list[NDArray[np.int64]] = []
        need = k
        while need and self._free:
            chunk = self._free.pop()
            take, rest = chunk[:need], chunk[need:]
            if rest.size:
                self._free.append(rest)
            got.append(take)
            need -= take.size
        if need:
            if self._high + need > self._cap:
                self._grow(self._high + need)
            got.append(np.arange(self._high, self._high + need, dtype=np.int64))
            self._high += need
        return np.concatenate(got) if len(got) > 1 else got[0]

    def _grow(self, at_least: int) -> None:
        cap = max(self._cap * 2, at_least)
        for name, arr in self._col.items():
            bigger = np.zeros(cap, dtype=arr.dtype)
            bigger[: self._cap] = arr
            self._col[name] = bigger
        self._cap = cap

    def _accumulate(
        self,
        pkt: _Packets,
        order: NDArray[np.int64],
        starts: NDArray[np.int64],
        sizes: NDArray[np.int64],
        slot: NDArray[np.int64],
        ts_s: NDArray[np.int64],
    ) -> None:
        c = self._col
        sw = pkt.swapped[order]
        wl_s = pkt.wirelen[order].astype(np.uint64)
        fl_s = pkt.flags[order]
        pk_ba = np.add.reduceat(sw.astype(np.uint64), starts)
        by_all = np.add.reduceat(wl_s, starts)
        by_ba = np.add.reduceat(np.where(sw, wl_s, np.uint64(0)), starts)
        c["pk_ab"][slot] += sizes.astype(np.uint64) - pk_ba
        c["pk_ba"][slot] += pk_ba
        c["by_ab"][slot] += by_all - by_ba
        c["by_ba"][slot] += by_ba
        c["fl_ab"][slot] |= np.bitwise_or.reduceat(np.where(sw, 0, fl_s).astype(np.uint8), starts)
        c["fl_ba"][slot] |= np.bitwise_or.reduceat(np.where(sw, fl_s, 0).astype(np.uint8), starts)
        c["first_ns"][slot] = np.minimum(c["first_ns"][slot], np.minimum.reduceat(ts_s, starts))
        last = np.maximum(c["last_ns"][slot], np.maximum.reduceat(ts_s, starts))
        c["last_ns"][slot] = last
        # The initiator is the sender of the first SYN without ACK, even when other packets of
        # the flow came first (SPAN ports reorder); it is fixed once a SYN has been seen.
        pure_syn = (fl_s & (TCP_SYN | TCP_ACK)) == TCP_SYN
        if pure_syn.any():
            first_syn = np.minimum.reduceat(np.where(pure_syn, order, _BIG), starts)
            turn = (first_syn < _BIG) & ~c["saw_syn"][slot]
            c["init_is_a"][slot[turn]] = ~pkt.swapped[first_syn[turn]]
            c["saw_syn"][slot[turn]] = True
        # MAC of each side: the source MAC of the first packet that side sent
        for name, side in (("mac_a", ~sw), ("mac_b", sw)):
            first = np.minimum.reduceat(np.where(side, order, _BIG), starts)  # earliest row per side
            need = (c[name][slot] == 0) & (first < _BIG)
            c[name][slot[need]] = pkt.mac[first[need]]
        # TCP close: RST either way, or FIN both ways (RFC 9293 §3.6)
        fl = c["fl_ab"][slot] | c["fl_ba"][slot]
        closing = (
            c["is_tcp"][slot]
            & (c["closed_ns"][slot] < 0)
            & (((fl & TCP_RST) != 0) | (((c["fl_ab"][slot] & c["fl_ba"][slot]) & TCP_FIN) != 0))
        )
        c["closed_ns"][slot[closing]] = last[closing]

    def _payload_index(
        self,
        has_payload: NDArray[np.bool_],
        order: NDArray[np.int64],
        starts: NDArray[np.int64],
        sizes: NDArray[np.int64],
        slot: NDArray[np.int64],
    ) -> NDArray[np.int64]:
        """Number each group's payload-carrying packets 0, 1, 2... in capture order, across batches."""
        c = self._col
        n = order.size
        out = np.full(n, -1, dtype=np.int64)
        group_of = np.repeat(np.arange(starts.size), sizes)
        carried = np.flatnonzero(has_payload[order])
        if carried.size:
            # group-major, row-minor: within a group, payload packets in capture order
            rank_key = group_of[carried] * n + order[carried]
            by_key = carried[np.argsort(rank_key)]
            g = group_of[by_key]
            first_of_group = np.searchsorted(g, g, side="left")
            out[order[by_key]] = np.arange(by_key.size) - first_of_group + c["payloads"][slot[g]]
        c["payloads"][slot] += np.bincount(group_of[carried], minlength=starts.size)
        return out

    # -- eviction -----------------------------------------------------------------------------

    def _maybe_sweep(self, now: int, only_if_over: bool = False) -> FlowRecords | None:
        """End flows idle at capture time `now` (every sweep_interval_s), and trim to max_flows."""
        o = self.options
        over = self.active > o.max_flows
        due = self._last_sweep_ns is None or now - self._last_sweep_ns >= o.sweep_interval_s * NS
        if not over and (only_if_over or not due):
            return None
        if due:
            self._last_sweep_ns = now
        slots = self._index_slot
        c = self._col
        last = c["last_ns"][slots]
        expired = now - last > self._quiet_limit(slots)
        reason = self._end_reason(slots)
        keep = ~expired
        if over and keep.sum() > o.max_flows:
            # end the least recently seen flows, down to 90 % of the limit, oldest first
            alive = np.flatnonzero(keep)
            excess = alive.size - int(o.max_flows * 0.9)
            oldest = alive[np.argpartition(last[alive], excess - 1)[:excess]]
            expired[oldest] = True
            reason[oldest] = END_CAPACITY
        if not expired.any():
            return None
        sel = np.flatnonzero(expired)
        sel = sel[np.argsort(last[sel], kind="stable")]
        return self._evict(slots[sel], reason[sel])

    def _evict(self, slots: NDArray[np.int64], reason: NDArray[np.uint8]) -> FlowRecords | None:
        if not slots.size:
            return None
        c = self._col
        records = self._records(slots, reason)
        c["active"][slots] = False
        keep = c["active"][self._index_slot]
        self._index_hash = self._index_hash[keep]
        self._index_slot = self._index_slot[keep]
        self._free.append(slots.copy())
        return records

    def _records(self, slots: NDArray[np.int64], reason: NDArray[np.uint8]) -> FlowRecords:
        c = self._col
        ia = c["init_is_a"][slots]
        w1, w2 = c["w1"][slots], c["w2"][slots]
        version = (w1 & np.uint64(0xFF)).astype(np.uint8)
        proto = ((w1 >> np.uint64(8)) & np.uint64(0xFF)).astype(np.uint8)
        port_a = (w1 >> np.uint64(48)).astype(np.uint16)
        port_b = ((w1 >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.uint16)
        a_hi, a_lo, b_hi, b_lo = (c[n][slots] for n in ("a_hi", "a_lo", "b_hi", "b_lo"))

        def pick(x_a: NDArray[_ScalarT], x_b: NDArray[_ScalarT]) -> NDArray[_ScalarT]:
            return np.where(ia, x_a, x_b)

        local = self.options.local_networks
        local_a, local_b = local.contains(version, a_hi, a_lo), local.contains(version, b_hi, b_lo)
        return FlowRecords(
            flow_id=c["flow_id"][slots].copy(),
            ip_version=version,
            ip_proto=proto,
            src_hi=pick(a_hi, b_hi),
            src_lo=pick(a_lo, b_lo),
            dst_hi=pick(b_hi, a_hi),
            dst_lo=pick(b_lo, a_lo),
            src_port=pick(port_a, port_b),
            dst_port=pick(port_b, port_a),
            vlan_outer=(w2 >> np.uint64(16)).astype(np.uint16),
            vlan_inner=(w2 & np.uint64(0xFFFF)).astype(np.uint16),
            src_mac=pick(c["mac_a"][slots], c["mac_b"][slots]),
            dst_mac=pick(c["mac_b"][slots], c["mac_a"][slots]),
            src_packets=pick(c["pk_ab"][slots], c["pk_ba"][slots]),
            dst_packets=pick(c["pk_ba"][slots], c["pk_ab"][slots]),
            src_bytes=pick(c["by_ab"][slots], c["by_ba"][slots]),
            dst_bytes=pick(c["by_ba"][slots], c["by_ab"][slots]),
            src_tcp_flags=pick(c["fl_ab"][slots], c["fl_ba"][slots]),
            dst_tcp_flags=pick(c["fl_ba"][slots], c["fl_ab"][slots]),
            first_ns=c["first_ns"][slots].copy(),
            last_ns=c["last_ns"][slots].copy(),
            end_reason=reason,
            direction=direction(pick(local_a, local_b), pick(local_b, local_a)),
        )


def _concat_records(parts: list[FlowRecords | None]) -> FlowRecords | None:
    """Join finished-flow batches in order; None when there are none."""
    got = [p for p in parts if p is not None and len(p)]
    if not got:
        return None
    if len(got) == 1:
        return got[0]
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(FlowRecords):
        values = [getattr(p, f.name) for p in got]
        if f.name in ("community_id", "domain", "name_mismatch"):
            fields[f.name] = None if any(v is None for v in values) else [x for v in values for x in v]
        elif f.name == "name_source" and any(v is None for v in values):
            fields[f.name] = None
        else:
            fields[f.name] = np.concatenate(values)
    return FlowRecords(**fields)


def _empty_batch_flows() -> BatchFlows:
    return BatchFlows(
        rows=np.empty(0, dtype=np.int64),
        flow_id=np.empty(0, dtype=np.uint64),
        from_initiator=np.empty(0, dtype=np.bool_),
        payload_index=np.empty(0, dtype=np.int64),
    )
