"""Big-endian field gathers for many frames at once: one numpy fancy-index per field.

The first PREFIX bytes of every frame are copied once into a compact (frames x PREFIX) array,
so the many field reads of link, network and transport headers hit a small array that stays in
cache instead of the whole chunk (one cache miss per frame instead of one per field). Fields
beyond the prefix (deep tag stacks, long IPv6 extension chains) are read from the chunk itself.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from auditor.capture.types import Batch

IntArray = NDArray[np.int64]
Position = IntArray | int

PREFIX = 128  # Ethernet + 2 VLAN tags + IPv6 + a TCP header with options: 14 + 8 + 40 + 60 = 122
_WIDTHS = {1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}


def _strided(data: NDArray[np.uint8], width: int) -> NDArray[np.generic]:
    """A view whose element k is the big-endian integer of `width` bytes starting at byte k."""
    return np.ndarray(shape=(data.size - width + 1,), dtype=_WIDTHS[width], buffer=data, strides=(1,))


class FrameView:
    """Reads fixed-width big-endian fields at frame-relative positions, for a chosen subset of frames.

    Callers check lengths against `caplen` first: a read past a frame's end returns bytes of the
    next frame, zeros, or a clamped position, never raises, and its value is discarded.
    """

    def __init__(self, batch: Batch) -> None:
        data = np.ascontiguousarray(batch.data, dtype=np.uint8)
        if data.size < 8:  # strided views need at least one whole u64
            data = np.concatenate([data, np.zeros(8 - data.size, dtype=np.uint8)])
        self._size = int(data.size)
        self.base: IntArray = batch.offset.astype(np.int64, copy=False)
        self.caplen: IntArray = batch.caplen.astype(np.int64)
        self._chunk = {w: _strided(data, w) for w in _WIDTHS}
        prefix = _prefixes(data, self.base)
        self._prefix = {w: _strided(prefix, w) for w in _WIDTHS}

    def _read(self, width: int, rows: IntArray, pos: Position) -> NDArray[np.generic]:
        pos_arr = np.asarray(pos, dtype=np.int64)
        inside = pos_arr + width <= PREFIX
        if inside.all():
            # int64 * int + int64 is typed signedinteger[Any]; indexing with it is typed Any
            got: NDArray[np.generic] = self._prefix[width][rows * PREFIX + pos_arr]
            return got
        out = self._prefix[width][rows * PREFIX + np.where(inside, pos_arr, 0)]
        far = ~np.broadcast_to(inside, rows.shape)
        far_pos = np.broadcast_to(pos_arr, rows.shape)[far]
        idx = np.clip(self.base[rows[far]] + far_pos, 0, self._size - width)
        out[far] = self._chunk[width][idx]
        return out

    def u8(self, rows: IntArray, pos: Position) -> NDArray[np.uint8]:
        """Return the byte at frame-relative `pos` of each frame in `rows`."""
        return self._read(1, rows, pos).astype(np.uint8, copy=False)

    def u16(self, rows: IntArray, pos: Position) -> NDArray[np.uint16]:
        """Return the big-endian u16 at frame-relative `pos` of each frame in `rows`."""
        return self._read(2, rows, pos).astype(np.uint16)

    def u32(self, rows: IntArray, pos: Position) -> NDArray[np.uint32]:
        """Return the big-endian u32 at frame-relative `pos` of each frame in `rows`."""
        return self._read(4, rows, pos).astype(np.uint32)

    def u64(self, rows: IntArray, pos: Position) -> NDArray[np.uint64]:
        """Return the big-endian u64 at frame-relative `pos`: one gather for 8 header bytes."""
        return self._read(8, rows, pos).astype(np.uint64)

    def mac(self, rows: IntArray, pos: Position) -> NDArray[np.uint64]:
        """Return the 48-bit MAC at frame-relative `pos` of each frame in `rows`, as an integer."""
        return self.u64(rows, pos) >> np.uint64(16)


def _prefixes(data: NDArray[np.uint8], offset: IntArray) -> NDArray[np.uint8]:
    """Return the first PREFIX bytes of each frame, back to back (zeros past the buffer's end)."""
    n = int(offset.shape[0])
    flat = np.zeros(n * PREFIX + 8, dtype=np.uint8)  # 8 spare bytes: the u64 view needs one element
    out = flat[: n * PREFIX].reshape(n, PREFIX)
    limit = data.size - PREFIX
    if limit >= 0 and n:
        # one PREFIX-byte void item per window: the gather copies each frame's prefix as one block
        windows = np.ndarray(shape=(limit + 1,), dtype=np.dtype((np.void, PREFIX)), buffer=data, strides=(1,))
        out.view(np.dtype((np.void, PREFIX))).reshape(n)[:] = windows[np.minimum(offset, limit)]
    # frames that start within PREFIX bytes of the buffer's end: copy what there is (at most a few)
    for i in np.flatnonzero(offset > limit).tolist():
        start = int(offset[i])
        tail = data[start : start + PREFIX]
        out[i, : tail.size] = tail
        out[i, tail.size :] = 0
    return flat
