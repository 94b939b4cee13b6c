"""Give later IP fragments the ports of their first fragment, so a datagram counts to one flow."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

from auditor.decode.types import Headers

DEFAULT_MAX_DATAGRAMS = 65_536
DEFAULT_FRAGMENT_TIMEOUT_NS = 60 * 1_000_000_000  # RFC 791 suggests 15 s; Linux keeps 30 s

_FragKey = tuple[int, int, int, int, int, int, int]


class FragmentTracker:
    """Remembers the ports of each fragmented datagram's first fragment, bounded in size and time.

    A later fragment whose first fragment was never seen (lost, or sent after it and not yet
    arrived) keeps no ports: it still counts, to a flow of its addresses and protocol alone.
    """

    def __init__(
        self,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
        timeout_ns: int = DEFAULT_FRAGMENT_TIMEOUT_NS,
    ) -> None:
        self.max_datagrams = max_datagrams
        self.timeout_ns = timeout_ns
        self._ports: OrderedDict[_FragKey, tuple[int, int, int]] = OrderedDict()
        self.orphans = 0
        """Later fragments whose first fragment was not seen."""

    def __len__(self) -> int:
        return len(self._ports)

    def resolve(
        self, h: Headers, rows: NDArray[np.int64]
    ) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
        """Return sport/dport for IP `rows` of `h`, with later fragments given their datagram's ports."""
        sport = h.sport[rows].copy()
        dport = h.dport[rows].copy()
        frag = np.flatnonzero(h.is_fragment[rows])
        if not frag.size:
            return sport, dport
        ts = h.batch.ts_ns
        fr = rows[frag]
        keys = list(
            zip(
                h.ip_version[fr].tolist(), h.ip_proto[fr].tolist(), h.frag_id[fr].tolist(),
                h.src_hi[fr].tolist(), h.src_lo[fr].tolist(), h.dst_hi[fr].tolist(), h.dst_lo[fr].tolist(),
                strict=True,
            )
        )
        first = (h.frag_offset[fr] == 0) & h.has_ports[fr]
        # First fragments of the whole batch go in before any lookup: fragments are often sent
        # last-first (Linux did for years), and a batch holds them all.
        for i in np.flatnonzero(first).tolist():
            key = keys[i]
            self._ports[key] = (int(sport[frag[i]]), int(dport[frag[i]]), int(ts[fr[i]]))
            self._ports.move_to_end(key)
        for i in np.flatnonzero(~first & (h.frag_offset[fr] != 0)).tolist():
            got = self._ports.get(keys[i])
            if got is not None and int(ts[fr[i]]) - got[2] > self.timeout_ns:
                got = None  # that datagram timed out: this fragment belongs to no known first fragment
            if got is None:
                self.orphans += 1
            else:
                sport[frag[i]], dport[frag[i]] = got[0], got[1]
        self._expire(int(ts[fr[-1]]))
        return sport, dport

    def _expire(self, now_ns: int) -> None:
        while self._ports and len(self._ports) > self.max_datagrams:
            self._ports.popitem(last=False)
        while self._ports:
            key, (_, _, seen) = next(iter(self._ports.items()))
            if now_ns - seen <= self.timeout_ns:
                break
            del self._ports[key]
