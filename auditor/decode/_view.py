"""Big-endian field gathers over a batch buffer: one numpy fancy-index per field for many frames."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from auditor.capture.types import Batch

IntArray = NDArray[np.int64]


class FrameView:
    """Reads fixed-width big-endian fields at per-frame offsets, for a chosen subset of frames.

    Each width gets a strided view of the whole buffer whose element k starts at byte k, so one
    gather reads a u16/u32/u64 at an arbitrary (unaligned) position of every selected frame.
    Callers check lengths against `caplen` first: a read past a frame's end returns bytes of the
    next frame (or is clamped at the buffer end), never raises, and its value is discarded.
    """

    def __init__(self, batch: Batch) -> None:
        data = np.ascontiguousarray(batch.data, dtype=np.uint8)
        if data.size < 8:  # strided views need at least one whole u64
            data = np.concatenate([data, np.zeros(8 - data.size, dtype=np.uint8)])
        self._size = int(data.size)
        self.base: IntArray = batch.offset.astype(np.int64, copy=False)
        self.caplen: IntArray = batch.caplen.astype(np.int64)
        self._u8 = data
        self._u16 = self._strided(data, ">u2")
        self._u32 = self._strided(data, ">u4")
        self._u64 = self._strided(data, ">u8")

    @staticmethod
    def _strided(data: NDArray[np.uint8], dtype: str) -> NDArray[np.generic]:
        width = np.dtype(dtype).itemsize
        return np.ndarray(shape=(data.size - width + 1,), dtype=dtype, buffer=data, strides=(1,))

    def at(self, rows: IntArray, pos: IntArray | int = 0) -> IntArray:
        """Return buffer positions of frame-relative `pos` in each frame of `rows` (for the *_at reads)."""
        return self.base[rows] + pos

    def u16_at(self, idx: IntArray) -> NDArray[np.uint16]:
        """Return the big-endian u16 at each buffer position (from `at`)."""
        return self._u16[np.clip(idx, 0, self._size - 2)].astype(np.uint16)

    def u32_at(self, idx: IntArray) -> NDArray[np.uint32]:
        """Return the big-endian u32 at each buffer position (from `at`)."""
        return self._u32[np.clip(idx, 0, self._size - 4)].astype(np.uint32)

    def u64_at(self, idx: IntArray) -> NDArray[np.uint64]:
        """Return the big-endian u64 at each buffer position (from `at`): one gather for 8 header bytes."""
        return self._u64[np.clip(idx, 0, self._size - 8)].astype(np.uint64)

    def _index(self, rows: IntArray, pos: IntArray | int, width: int) -> IntArray:
        idx = self.base[rows] + pos
        return np.clip(idx, 0, self._size - width, out=idx)

    def u8(self, rows: IntArray, pos: IntArray | int) -> NDArray[np.uint8]:
        """Return the byte at frame-relative `pos` of each frame in `rows`."""
        return self._u8[self._index(rows, pos, 1)]

    def u16(self, rows: IntArray, pos: IntArray | int) -> NDArray[np.uint16]:
        """Return the big-endian u16 at frame-relative `pos` of each frame in `rows`."""
        return self._u16[self._index(rows, pos, 2)].astype(np.uint16)

    def u32(self, rows: IntArray, pos: IntArray | int) -> NDArray[np.uint32]:
        """Return the big-endian u32 at frame-relative `pos` of each frame in `rows`."""
        return self._u32[self._index(rows, pos, 4)].astype(np.uint32)

    def u64(self, rows: IntArray, pos: IntArray | int) -> NDArray[np.uint64]:
        """Return the big-endian u64 at frame-relative `pos` of each frame in `rows`."""
        return self._u64[self._index(rows, pos, 8)].astype(np.uint64)

    def mac(self, rows: IntArray, pos: IntArray | int) -> NDArray[np.uint64]:
        """Return the 48-bit MAC at frame-relative `pos` of each frame in `rows`, as an integer."""
        hi = self.u16(rows, pos).astype(np.uint64)
        lo = self.u32(rows, np.asarray(pos) + 2).astype(np.uint64)
        return (hi << np.uint64(32)) | lo
