"""Chunked reading of a capture stream: fresh buffers, a carried-over partial record, bounded memory.

Both file readers walk records inside a chunk and hand the chunk itself to the Batches they yield
(zero copy), so every chunk is a new buffer: a consumer may still hold the previous Batch.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from auditor.capture.types import Batch
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 16 << 20
"""8 MiB: big enough to amortise the per-chunk numpy work, small enough to stay in L3 cache."""
READ_PIECE_BYTES = 256 << 10
"""Chunks are read in pieces this size, each walked right after the read while it is still in L2 cache
(walking a whole 8 MiB chunk after one read measured ~3x slower per record: one cache miss per record)."""
MAX_RECORD_BYTES = 16 << 20
"""No capture record or pcapng block is believed beyond this: a larger length is corruption."""

Bytes = NDArray[np.uint8]
Int64s = NDArray[np.int64]


class _Closable(Protocol):
    def close(self) -> None: ...


class ChunkStream:
    """Reads a binary stream into fresh numpy buffers, each starting with the carried-over bytes."""

    def __init__(self, stream: io.BufferedIOBase, name: str, chunk_bytes: int, closers: Sequence[_Closable]) -> None:
        self.name = name
        self.offset = 0
        """Bytes consumed from the (uncompressed) stream so far."""
        self.eof = False
        self.closed = False
        self.early_end: str | None = None
        """Why a compressed stream ended before its end marker (gzip truncation or corruption)."""
        self.recycle = False
        """Reuse chunk buffers (two in turn) instead of allocating: only for a consumer that keeps
        no Batch once it asks for the next chunk's (the prefetch child copies each batch away)."""
        self._pool: list[Bytes] = []
        self._stream = stream
        self._chunk_bytes = max(int(chunk_bytes), 64)
        self._closers = tuple(closers)
        # GzipFile.readinto loops inside BufferedReader and loses what it decompressed when the
        # stream ends early; readinto1 returns one decompression step at a time, so we keep all of it.
        is_gzip = isinstance(stream, gzip.GzipFile)
        self._compressed = stream.fileobj if is_gzip else None  # type: ignore[attr-defined]
        self._readinto: Callable[[memoryview], int] = stream.readinto1 if is_gzip else stream.readinto

    @property
    def file_offset(self) -> int:
        """Bytes consumed from the file itself: compressed bytes for gzip (progress against the file size)."""
        if self._compressed is None:
            return self.offset
        try:
            return int(self._compressed.tell())
        except (OSError, ValueError):  # closed or unseekable: the uncompressed count is all we know
            return self.offset

    def read_exact(self, n: int) -> bytes:
        """Return the next n bytes, or fewer if the stream ends first."""
        buf = np.empty(n, dtype=np.uint8)
        filled = 0
        while filled < n and not self.eof:
            filled = self.read_piece(buf, filled)
        return buf[:filled].tobytes()

    def start(self, carry: Bytes, need: int = 0) -> Bytes:
        """Return a buffer for the next chunk (fresh unless `recycle`), holding `carry` at its start.

        Its capacity is a chunk beyond the carry, or `need` bytes if that is more (a record larger
        than a chunk). Fill it with read_piece().
        """
        kept = int(carry.shape[0])
        size = max(kept + self._chunk_bytes, need)
        buf = None
        if self.recycle:
            # two buffers in turn: the newest one still holds `carry`, the other is free again
            for old in self._pool:
                if old.shape[0] >= size and not np.may_share_memory(old, carry):
                    buf = old[:size]  # same capacity as a fresh buffer: same chunks, same batches
                    break
        if buf is None:
            buf = np.empty(size, dtype=np.uint8)
            if self.recycle:
                self._pool = [*self._pool[-1:], buf]
        buf[:kept] = carry
        return buf

    def read_piece(self, buf: Bytes, filled: int) -> int:
        """Read up to READ_PIECE_BYTES more into buf[filled:]; return the new fill level.

        Returns `filled` unchanged when the buffer is full or the stream has ended (then `eof` is set).
        """
        stop = min(int(buf.shape[0]), filled + READ_PIECE_BYTES)
        if stop <= filled or self.eof:
            return filled
        try:
            got = self._readinto(memoryview(buf)[filled:stop])  # type: ignore[arg-type]
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            # A gzip stream cut short or damaged: a truncated tail, not a bad file.
            self.eof = True
            self.early_end = f"compressed stream ends early ({exc})"
            return filled
        except OSError as exc:
            raise CaptureError(f"{self.name}: read error at byte {self.offset}: {exc.strerror or exc}") from exc
        if not got:
            self.eof = True
            return filled
        self.offset += got
        return filled + got

    def close(self) -> None:
        """Close the stream and whatever it wraps; reading then stops, as at the end of the stream."""
        self.closed = self.eof = True
        for closer in self._closers:
            try:
                closer.close()
            except OSError:  # closing a read-only file cannot lose data; nothing to report
                logger.debug("error closing %s", self.name, exc_info=True)


def u32_view(buf: Bytes, byteorder: str) -> NDArray[np.uint32]:
    """Return a view whose element k is the u32 starting at byte k of `buf` (for unaligned gathers)."""
    n = max(int(buf.shape[0]) - 3, 0)
    return np.ndarray(shape=(n,), dtype=np.dtype(f"{byteorder}u4"), buffer=buf, strides=(1,))


def split_batches(
    data: Bytes,
    ts_ns: Int64s,
    caplen: NDArray[np.uint32],
    wirelen: NDArray[np.uint32],
    offset: Int64s,
    linktype: NDArray[np.uint16],
    first_frame: int,
    max_frames: int,
) -> list[Batch]:
    """Cut one chunk's columns into Batches of at most max_frames frames, all sharing `data`."""
    n = int(ts_ns.shape[0])
    step = max(int(max_frames), 1)
    out = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        out.append(
            Batch(
                ts_ns=ts_ns[start:stop],
                caplen=caplen[start:stop],
                wirelen=wirelen[start:stop],
                offset=offset[start:stop],
                linktype=linktype[start:stop],
                data=data,
                first_frame=first_frame + start,
            )
        )
    return out
