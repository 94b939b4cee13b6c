"""Records the capture stage produces: columnar batches of raw frames, and what a source reports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import numpy as np
from numpy.typing import NDArray

# Link-layer header types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version from the first nibble
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# OpenBSD and some libpcap builds write 12 or 14 for raw IP (pcap-common.c DLT_RAW mapping)
LINKTYPE_RAW_ALIASES = (12, 14)

DEFAULT_BATCH_FRAMES = 65_536


@dataclass(frozen=True, slots=True)
class Batch:
    """N frames, back to back in one buffer, with their per-frame fields as columns."""

    ts_ns: NDArray[np.int64]
    """Capture time, epoch nanoseconds."""
    caplen: NDArray[np.uint32]
    """Bytes of the frame present in `data`."""
    wirelen: NDArray[np.uint32]
    """Length of the frame on the wire (pcap orig_len); >= caplen when the capture was snapped."""
    offset: NDArray[np.int64]
    """Frame i is data[offset[i] : offset[i] + caplen[i]]."""
    linktype: NDArray[np.uint16]
    """Link-layer header type of each frame (pcapng files may mix interfaces)."""
    data: NDArray[np.uint8]
    """All frames back to back."""
    first_frame: int = 0
    """1-based number, within its file, of the first frame of this batch (as Wireshark numbers frames)."""

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    def frame(self, i: int) -> bytes:
        """Return the captured bytes of frame i (for tests and per-packet parsers, not the hot path)."""
        start = int(self.offset[i])
        return self.data[start : start + int(self.caplen[i])].tobytes()


@dataclass(slots=True)
class SourceStats:
    """What a packet source saw besides frames: counts and warnings about the file itself."""

    frames: int = 0
    bytes_read: int = 0
    """Bytes read from the file on disk so far (compressed bytes for .gz): for progress bars."""
    warnings: list[str] = field(default_factory=list)
    """One line each: a truncated tail, a corrupt block, an unknown link type (with the byte offset)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Frames the reader had to drop, by reason (e.g. 'unknown-interface', 'oversized-record')."""


class PacketSource(Protocol):
    """Anything that yields batches of frames: a capture file, a live interface, a list in a test."""

    name: str
    stats: SourceStats

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None: ...


def batch_from_frames(
    frames: list[bytes],
    ts_ns: list[int] | None = None,
    linktype: int = LINKTYPE_ETHERNET,
    wirelen: list[int] | None = None,
    first_frame: int = 1,
) -> Batch:
    """Build a Batch from a list of frames (tests and small sources; not for the hot path)."""
    n = len(frames)
    caplen = np.fromiter((len(f) for f in frames), dtype=np.uint32, count=n)
    offset = np.zeros(n, dtype=np.int64)
    if n:
        offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
    data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    return Batch(
        ts_ns=np.asarray(ts_ns if ts_ns is not None else range(n), dtype=np.int64),
        caplen=caplen,
        wirelen=np.asarray(wirelen, dtype=np.uint32) if wirelen is not None else caplen.copy(),
        offset=offset,
        linktype=np.full(n, linktype, dtype=np.uint16),
        data=data,
        first_frame=first_frame,
    )
