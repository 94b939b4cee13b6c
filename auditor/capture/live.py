"""Frames from a live interface through libpcap (pcapy-ng): a SPAN or mirror port, in batches.

libpcap's TPACKET_V3 ring can block forever in a read when no frame arrives, so the handle is
non-blocking and every read waits in select() with a timeout: an idle link returns an empty poll,
and the caller's loop keeps running (flush timers, the systemd watchdog). Frames come out of the
ring many at a time (pcapy-ng next_batch: one buffer and a packed header table), so a batch is
built with numpy, not per frame in Python.

Drops are never silent: stats() gives libpcap's counters (received, dropped by the kernel because
the buffer was full, dropped by the interface or driver).
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from auditor.capture.types import DEFAULT_BATCH_FRAMES, Batch, SourceStats
from auditor.errors import CaptureError

POLL_TIMEOUT_S = 0.25
"""How long a poll waits for frames before returning none (the loop's housekeeping tick)."""
READ_TIMEOUT_MS = 100
"""libpcap's buffer timeout: frames wait at most this long in the kernel ring before delivery."""
MAX_READS_PER_POLL = 64
BATCH_WINDOW_S = 0.2
"""Once frames arrive, how long a poll keeps collecting before it hands them over (a latency bound)."""
"""next_batch calls per poll (each returns what the ring holds, up to the batch size)."""
_ACTIVATE_ERRORS = {  # pcap/pcap.h PCAP_ERROR_*
    -1: "libpcap error",
    -3: "the interface is not up or not a capture device",
    -5: "no such device",
    -6: "RF monitor mode is not supported",
    -7: "the interface is not up",
    -8: "permission denied (needs CAP_NET_RAW, and CAP_NET_ADMIN for promiscuous mode)",
    -9: "the interface went down",
    -11: "promiscuous mode is not permitted (needs CAP_NET_ADMIN)",
}
_META = np.dtype([("sec", "=u4"), ("usec", "=u4"), ("offset", "=u4"), ("caplen", "=u4")])


@dataclass(frozen=True, slots=True)
class CaptureCounters:
    """libpcap's statistics since the capture started (pcap_stats)."""

    received: int
    """Frames the kernel handed to the capture (before the BPF filter on some systems)."""
    dropped: int
    """Frames the kernel dropped because the capture buffer was full: the engine fell behind."""
    interface_dropped: int
    """Frames the interface or driver dropped (not always known: 0)."""


class LiveSource:
    """A capture handle on one interface; poll() returns what arrived, or an empty batch when idle."""

    def __init__(self, interface: str, bpf: str = "", snaplen: int = 65_535, promiscuous: bool = True,
                 buffer_mib: int = 64) -> None:
        try:
            import pcapy  # type: ignore[import-not-found]  # the libpcap binding (no type stubs): live capture only
        except ImportError as exc:
            raise CaptureError(f"{interface}: live capture needs pcapy-ng (pip install pcapy-ng)") from exc
        self.name = interface
        self.stats = SourceStats()
        self._pcapy = pcapy
        try:
            handle = pcapy.create(interface)
            handle.set_snaplen(snaplen)
            handle.set_promisc(1 if promiscuous else 0)
            handle.set_buffer_size(buffer_mib * 1024 * 1024)
            handle.set_timeout(READ_TIMEOUT_MS)
            code = handle.activate()  # pcapy-ng returns libpcap's status instead of raising
            if isinstance(code, int) and code < 0:
                why = _ACTIVATE_ERRORS.get(code, f"libpcap error {code}")
                raise CaptureError(f"{interface}: cannot capture: {why}")
            if bpf:
                handle.setfilter(bpf)
            handle.setnonblock(1)
        except CaptureError:
            raise
        except Exception as exc:  # pcapy raises PcapError and BPFError, both one-line messages
            raise CaptureError(f"{interface}: cannot capture: {_reason(exc)}") from exc
        self._handle: Any = handle
        self._raw = [0, 0, 0]
        self._totals = [0, 0, 0]
        self.linktype = int(handle.datalink())
        self._fd = int(handle.getfd())
        self._first_frame = 1

    def poll(self, max_frames: int = DEFAULT_BATCH_FRAMES, timeout_s: float = POLL_TIMEOUT_S) -> Batch:
        """Return the frames that arrived, waiting at most timeout_s for the first one; then keep
        collecting for up to BATCH_WINDOW_S (or max_frames): the engine's cost per batch is mostly fixed,
        so a busy link is handed over in large batches, and an idle one in small ones without delay."""
        parts: list[tuple[bytes, np.ndarray[Any, Any]]] = []
        count = 0
        start = time.monotonic()
        first_at: float | None = None
        try:
            while count < max_frames:
                now = time.monotonic()
                wait = (start + timeout_s - now) if first_at is None else (first_at + BATCH_WINDOW_S - now)
                if wait <= 0:
                    break
                ready, _, _ = select.select([self._fd], [], [], wait)
                if not ready:
                    break
                before = count
                for _ in range(MAX_READS_PER_POLL):
                    data, meta = self._handle.next_batch(max_frames - count)
                    table = np.frombuffer(meta, dtype=_META)
                    if not table.size:
                        break
                    parts.append((data, table))
                    count += table.size
                    if first_at is None:
                        first_at = time.monotonic()
                    if count >= max_frames:
                        break
                if count == before:
                    break  # readable yet nothing to read: hand over what there is rather than spin
        except InterruptedError:  # a signal arrived during select: the caller's loop looks at it
            pass
        except self._pcapy.PcapError as exc:
            raise CaptureError(f"{self.name}: capture failed: {_reason(exc)}") from exc
        return self._batch(parts)

    def _batch(self, parts: list[tuple[bytes, np.ndarray[Any, Any]]]) -> Batch:
        if not parts:
            return _empty(self.linktype)
        offsets, datas, metas = [], [], []
        base = 0
        for data, table in parts:
            offsets.append(table["offset"].astype(np.int64) + base)
            datas.append(np.frombuffer(data, dtype=np.uint8))
            metas.append(table)
            base += len(data)
        meta = np.concatenate(metas) if len(metas) > 1 else metas[0]
        n = int(meta.size)
        caplen = meta["caplen"].astype(np.uint32)
        batch = Batch(
            ts_ns=meta["sec"].astype(np.int64) * 1_000_000_000 + meta["usec"].astype(np.int64) * 1_000,
            caplen=caplen,
            # next_batch gives no wire length: a frame cut by snaplen counts at its captured size
            wirelen=caplen.copy(),
            offset=np.concatenate(offsets) if len(offsets) > 1 else offsets[0],
            linktype=np.full(n, self.linktype, dtype=np.uint16),
            data=np.concatenate(datas) if len(datas) > 1 else datas[0],
            first_frame=self._first_frame,
        )
        self._first_frame += n
        self.stats.frames += n
        self.stats.bytes_read += int(caplen.sum(dtype=np.uint64))
        return batch

    def counters(self) -> CaptureCounters:
        """Return libpcap's received / dropped / interface-dropped counters since the capture started.

        pcap_stat holds 32-bit counters, which wrap every 2**32 frames (hours on a busy port): the
        totals are kept here from the differences. When libpcap cannot tell, the last totals stay."""
        if self._handle is not None:
            try:
                raw = tuple(int(v) for v in self._handle.stats())
            except self._pcapy.PcapError:
                raw = None
            if raw is not None:
                for i, value in enumerate(raw[:3]):
                    self._totals[i] += (value - self._raw[i]) % (1 << 32)
                    self._raw[i] = value
        return CaptureCounters(*self._totals)

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]:
        """Yield non-empty batches until close() (PacketSource); idle periods yield nothing."""
        while self._handle is not None:
            batch = self.poll(max_frames)
            if len(batch):
                yield batch

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None:
        self.close()


def _empty(linktype: int) -> Batch:
    return Batch(ts_ns=np.empty(0, np.int64), caplen=np.empty(0, np.uint32), wirelen=np.empty(0, np.uint32),
                 offset=np.empty(0, np.int64), linktype=np.full(0, linktype, np.uint16), data=np.empty(0, np.uint8))


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
