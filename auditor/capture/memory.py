"""An in-memory packet source: the test double for anything that reads a PacketSource."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import TracebackType

from auditor.capture.types import DEFAULT_BATCH_FRAMES, LINKTYPE_ETHERNET, Batch, SourceStats, batch_from_frames

logger = logging.getLogger(__name__)


class MemorySource:
    """Yields the given frames, in order, in Batches of at most max_frames (like a capture file would)."""

    def __init__(
        self,
        frames: list[bytes],
        ts_ns: list[int] | None = None,
        linktype: int = LINKTYPE_ETHERNET,
        wirelen: list[int] | None = None,
        name: str = "<memory>",
    ) -> None:
        if ts_ns is not None and len(ts_ns) != len(frames):
            raise ValueError(f"ts_ns has {len(ts_ns)} values for {len(frames)} frames")
        if wirelen is not None and len(wirelen) != len(frames):
            raise ValueError(f"wirelen has {len(wirelen)} values for {len(frames)} frames")
        self.name = name
        self.stats = SourceStats()
        self._frames = list(frames)
        self._ts_ns = list(ts_ns) if ts_ns is not None else list(range(len(frames)))
        self._wirelen = list(wirelen) if wirelen is not None else None
        self._linktype = linktype

    def __enter__(self) -> MemorySource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; present for the PacketSource interface."""

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]:
        """Yield the frames in Batches of at most max_frames; each call starts again from the first frame."""
        step = max(int(max_frames), 1)
        for start in range(0, len(self._frames), step):
            stop = start + step
            batch = batch_from_frames(
                self._frames[start:stop],
                ts_ns=self._ts_ns[start:stop],
                linktype=self._linktype,
                wirelen=self._wirelen[start:stop] if self._wirelen is not None else None,
                first_frame=start + 1,
            )
            self.stats.frames += len(batch)
            self.stats.bytes_read += int(batch.caplen.sum())
            yield batch
