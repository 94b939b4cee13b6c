"""pcapng capture files (draft-ietf-opsawg-pcapng), read in chunks into columnar Batches.

Blocks are walked in Python (type and length only); runs of Enhanced Packet Blocks take a tight
loop, anything else a slower general path. The fields of all packet blocks of a chunk are then
gathered with numpy, per interface where link type or timestamp resolution differ.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from auditor.capture._chunks import (
    DEFAULT_CHUNK_BYTES,
    MAX_RECORD_BYTES,
    Bytes,
    ChunkStream,
    Int64s,
    _Closable,
    split_batches,
    u32_view,
)
from auditor.capture.pcap import map_linktype
from auditor.capture.types import DEFAULT_BATCH_FRAMES, Batch, SourceStats
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

# Block types (draft-ietf-opsawg-pcapng §4 and appendix: the Packet Block is obsolete but still read)
BT_SHB = 0x0A0D0D0A  # Section Header Block; a palindrome, so it reads the same in both byte orders
BT_IDB = 0x00000001  # Interface Description Block
BT_OPB = 0x00000002  # (obsolete) Packet Block
BT_SPB = 0x00000003  # Simple Packet Block
BT_EPB = 0x00000006  # Enhanced Packet Block
BYTE_ORDER_MAGIC = 0x1A2B3C4D  # SHB §4.1
BYTE_ORDER_MAGIC_SWAPPED = 0x4D3C2B1A  # the same magic written by a machine of the other byte order
OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9  # IDB §4.2: bit 7 clear = 10^-n seconds, set = 2^-n seconds
OPT_IF_TSOFFSET = 14  # IDB §4.2: seconds added to every timestamp of the interface
DEFAULT_TSRESOL = 6  # microseconds when if_tsresol is absent

BLOCK_MIN = 12  # type + length + trailing length
SHB_MIN = 28
IDB_MIN = 20
EPB_HEADER = 28  # type, length, interface, ts high, ts low, captured, original
SPB_HEADER = 12  # type, length, original length
MIN_LENGTH = {BT_SHB: SHB_MIN, BT_IDB: IDB_MIN, BT_EPB: EPB_HEADER + 4, BT_OPB: EPB_HEADER + 4, BT_SPB: SPB_HEADER + 4}
MAX_BLOCK_BYTES = MAX_RECORD_BYTES
MAX_INTERFACES = 4096  # per section; the interface table is keyed by wire data, so it is capped
MAX_TSOFFSET_S = 1 << 33  # ~272 years: anything larger cannot be a real offset

_BO_LE = struct.Struct("<I")
_EMPTY: Bytes = np.empty(0, dtype=np.uint8)
U64 = NDArray[np.uint64]


def is_pcapng_magic(head: bytes) -> bool:
    """Return True if `head` starts with a pcapng Section Header Block type."""
    return len(head) >= 4 and int.from_bytes(head[:4], "little") == BT_SHB


@dataclass(frozen=True, slots=True)
class Interface:
    """What an Interface Description Block says about the packets that name it."""

    linktype: int
    snaplen: int
    """0 means no limit."""
    tsresol: int = DEFAULT_TSRESOL
    """The raw if_tsresol byte."""
    tsoffset_s: int = 0


def ticks_to_ns(ticks: U64, tsresol: int) -> Int64s:
    """Return epoch nanoseconds for timestamps counted in units of the if_tsresol byte `tsresol`."""
    exp = tsresol & 0x7F
    if tsresol & 0x80:  # 2^-exp seconds
        if exp > 63:
            return np.zeros(ticks.shape, dtype=np.int64)
        if exp > 34:  # keep frac * 10^9 below 2^64; drops only sub-nanosecond bits
            ticks = ticks >> np.uint64(exp - 34)
            exp = 34
        shift = np.uint64(exp)
        whole = (ticks >> shift) * np.uint64(1_000_000_000)
        frac = ((ticks & np.uint64((1 << exp) - 1)) * np.uint64(1_000_000_000)) >> shift
        return (whole + frac).view(np.int64)
    if exp <= 9:
        return (ticks * np.uint64(10 ** (9 - exp))).view(np.int64)
    if exp - 9 > 19:  # the divisor would not fit in 64 bits: every timestamp rounds to 0
        return np.zeros(ticks.shape, dtype=np.int64)
    return (ticks // np.uint64(10 ** (exp - 9))).view(np.int64)


def walk_epbs(view: memoryview, pos: int, header: struct.Struct, run: list[int]) -> int:
    """Append to `run` the offsets of consecutive Enhanced Packet Blocks from `pos`; return where it stopped.

    Stops at the first other block, at an EPB too short to be one, or when a block header no
    longer fits in `view`; then the returned offset may lie past the end of `view`, and the last
    offset appended is a block that does not fit.
    """
    unpack = header.unpack_from
    append = run.append
    try:
        while True:
            btype, blen = unpack(view, pos)
            if btype != BT_EPB or blen < EPB_HEADER + 4:
                return pos
            append(pos)
            pos += blen
    except struct.error:
        return pos


class _Corrupt(Exception):
    """A block breaks the format at `offset` (relative to the chunk); reading stops there."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class PcapngSource:
    """Frames of one pcapng stream, in Batches that share the chunk they were read into."""

    def __init__(
        self,
        stream: io.BufferedIOBase,
        name: str,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        closers: Sequence[_Closable] | None = None,
    ) -> None:
        self.name = name
        self.stats = SourceStats()
        self._chunks = ChunkStream(stream, name, chunk_bytes, closers if closers is not None else (stream,))
        try:
            head = self._chunks.read_exact(SHB_MIN)
            self._check_first_section(head)
        except CaptureError:
            self.close()
            raise
        self.stats.bytes_read = self._chunks.file_offset
        self._head = np.frombuffer(head, dtype=np.uint8)
        self._walked = False
        self._run_mixed = False
        self._excess_warned = False
        self._set_section("<")
        self._pending: list[tuple[Int64s, NDArray[np.uint32], NDArray[np.uint32], Int64s, NDArray[np.uint16]]]
        self._pending = []

    def _check_first_section(self, head: bytes) -> None:
        if len(head) < SHB_MIN:
            raise CaptureError(f"{self.name}: too short for a pcapng section header ({len(head)} of {SHB_MIN} bytes)")
        btype, _blen, bom, major, minor = struct.unpack_from("<IIIHH", head)
        if btype != BT_SHB:
            raise CaptureError(f"{self.name}: not a pcapng file (magic 0x{head[:4].hex()})")
        if bom == BYTE_ORDER_MAGIC:
            pass
        elif bom == BYTE_ORDER_MAGIC_SWAPPED:
            major, minor = struct.unpack_from(">HH", head, 12)
        else:
            raise CaptureError(f"{self.name}: bad pcapng byte-order magic 0x{head[8:12].hex()}")
        if major != 1:
            raise CaptureError(f"{self.name}: unsupported pcapng version {major}.{minor}")

    def _set_section(self, order: str) -> None:
        """Start a section: its byte order, and an empty interface table."""
        self._order = order
        self._header = struct.Struct(f"{order}II")
        self._u32 = struct.Struct(f"{order}I")
        self._u32_dtype = np.dtype(f"{order}u4")
        self._interfaces: list[Interface] = []
        self._tables: tuple[NDArray[np.uint16], Int64s, Int64s, list[tuple[int, int]]] | None = None

    def __enter__(self) -> PcapngSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def reuse_buffers(self) -> None:
        """Promise that no Batch is kept once the next one is asked for, so chunk buffers can be reused."""
        self._chunks.recycle = True

    def close(self) -> None:
        """Close the file; batches() yields nothing more."""
        self._chunks.close()

    @property
    def interfaces(self) -> list[Interface]:
        """Interfaces described so far in the current section."""
        return list(self._interfaces)

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]:
        """Yield the file's frames in order, max_frames at most per Batch; one pass only.

        A truncated or corrupt tail ends the iteration with one line in stats.warnings.
        """
        if self._walked or self._chunks.closed:
            return
        self._walked = True
        chunks = self._chunks
        carry = self._head
        need = BLOCK_MIN
        while not chunks.eof:
            buf = chunks.start(carry, need)
            rest, need, filled, bad = self._scan(buf, int(carry.shape[0]))
            data = buf[:filled]
            self.stats.bytes_read = chunks.file_offset
            yield from self._drain(data, max_frames)
            if bad is not None:
                self._warn(f"corrupt block at byte {chunks.offset - filled + bad.offset} ({bad.reason})")
                return
            carry = data[rest:]
        left = int(carry.shape[0])
        if chunks.closed:  # closed by the consumer mid-iteration: not a truncated file
            return
        if left:
            self.stats.skipped["truncated-record"] = self.stats.skipped.get("truncated-record", 0) + 1
            what = "block header" if left < BLOCK_MIN else "block"
            self._warn(f"truncated {what} at byte {chunks.offset - left} (needs {need} bytes, {left} left)")
        elif chunks.early_end:
            self._warn(f"stream ends at byte {chunks.offset}")

    def _scan(self, buf: Bytes, filled: int) -> tuple[int, int, int, _Corrupt | None]:
        """Fill `buf` piece by piece, walking its blocks and queueing their packets.

        Returns (offset of the first block not read, bytes that block needs, fill level, the first
        corrupt block or None); packets before a corrupt block are queued.
        """
        full = memoryview(buf)  # type: ignore[arg-type]
        view = full[:filled]
        run: list[int] = []  # packet blocks read under the current interface table
        pos = 0
        try:
            while True:
                pos = walk_epbs(view, pos, self._header, run)
                if pos > filled:  # the last EPB walked does not end inside what was read
                    pos = run.pop()
                need = BLOCK_MIN
                if filled - pos >= BLOCK_MIN:
                    btype, blen, order = self._block_header(view, pos)
                    need = blen
                if filled - pos < need:
                    more = self._chunks.read_piece(buf, filled)
                    if more == filled:  # chunk full or stream ended: carry the block over
                        self._queue(buf[:filled], run)
                        return pos, need, filled, None
                    filled = more
                    view = full[:filled]
                    continue
                (trailer,) = struct.unpack_from(f"{order}I", view, pos + blen - 4)
                if trailer != blen:
                    raise _Corrupt(pos, f"block length {blen} but trailing length {trailer}")
                if blen < MIN_LENGTH.get(btype, BLOCK_MIN):
                    raise _Corrupt(pos, f"block type {btype} too short ({blen} bytes)")
                if btype == BT_SHB:
                    self._queue(buf[:filled], run)  # queued packets are read with the old section's table
                    self._start_section(view, pos, order)
                elif btype == BT_IDB:
                    if len(self._interfaces) < MAX_INTERFACES:  # else it is ignored: nothing changes
                        self._queue(buf[:filled], run)
                    self._add_interface(view, pos, blen)
                elif btype in (BT_EPB, BT_OPB, BT_SPB):
                    run.append(pos)
                    self._run_mixed = True
                # any other block (NRB, ISB, DSB, custom, unknown) carries no packet: skip it by length
                pos += blen
        except _Corrupt as exc:
            problem = exc
        try:
            self._queue(buf[:filled], run)  # an earlier packet block may be the first bad one
        except _Corrupt as earlier:
            problem = earlier
        return pos, 0, filled, problem

    def _block_header(self, view: memoryview, pos: int) -> tuple[int, int, str]:
        """Return (type, length, byte order) of the block at pos, checking the length."""
        (btype,) = _BO_LE.unpack_from(view, pos)
        order = self._order
        if btype == BT_SHB:  # its own byte-order magic says how to read its length
            (bom,) = _BO_LE.unpack_from(view, pos + 8)
            if bom == BYTE_ORDER_MAGIC:
                order = "<"
            elif bom == BYTE_ORDER_MAGIC_SWAPPED:
                order = ">"
            else:
                raise _Corrupt(pos, f"bad byte-order magic 0x{bytes(view[pos + 8 : pos + 12]).hex()}")
        else:
            (btype,) = self._u32.unpack_from(view, pos)
        (blen,) = struct.unpack_from(f"{order}I", view, pos + 4)
        if blen < BLOCK_MIN or blen % 4 or blen > MAX_BLOCK_BYTES:
            raise _Corrupt(pos, f"bad block length {blen}")
        return btype, blen, order

    def _start_section(self, view: memoryview, pos: int, order: str) -> None:
        major, minor = struct.unpack_from(f"{order}HH", view, pos + 12)
        if major != 1:
            raise _Corrupt(pos, f"unsupported pcapng version {major}.{minor}")
        self._set_section(order)

    def _add_interface(self, view: memoryview, pos: int, blen: int) -> None:
        order = self._order
        linktype, _reserved, snaplen = struct.unpack_from(f"{order}HHI", view, pos + 8)
        tsresol, tsoffset = DEFAULT_TSRESOL, 0
        opt, end = pos + 16, pos + blen - 4
        option = struct.Struct(f"{order}HH")
        while opt + 4 <= end:  # each option advances >= 4 bytes, so this ends
            code, olen = option.unpack_from(view, opt)
            value = opt + 4
            if code == OPT_ENDOFOPT or value + olen > end:
                break
            if code == OPT_IF_TSRESOL and olen >= 1:
                tsresol = view[value]
            elif code == OPT_IF_TSOFFSET and olen >= 8:
                (tsoffset,) = struct.unpack_from(f"{order}q", view, value)
                if abs(tsoffset) > MAX_TSOFFSET_S:
                    tsoffset = 0
            opt = value + ((olen + 3) & ~3)
        if len(self._interfaces) >= MAX_INTERFACES:
            if not self._excess_warned:
                self._excess_warned = True
                line = f"{self.name}: more than {MAX_INTERFACES} interfaces in one section; skipping their packets"
                logger.info("%s", line)
                self.stats.warnings.append(line)
            return
        self._interfaces.append(Interface(map_linktype(linktype), snaplen, tsresol, tsoffset))
        self._tables = None

    def _interface_tables(self) -> tuple[NDArray[np.uint16], Int64s, Int64s, list[tuple[int, int]]]:
        """Return per-interface link type, snaplen and timestamp group, and the groups' (tsresol, offset)."""
        if self._tables is None:
            groups: dict[tuple[int, int], int] = {}
            group_of = [groups.setdefault((i.tsresol, i.tsoffset_s), len(groups)) for i in self._interfaces]
            self._tables = (
                np.array([i.linktype for i in self._interfaces], dtype=np.uint16),
                np.array([i.snaplen for i in self._interfaces], dtype=np.int64),
                np.array(group_of, dtype=np.int64),
                list(groups),
            )
        return self._tables

    def _queue(self, data: Bytes, run: list[int]) -> None:
        """Check the packet blocks at `run` and queue their columns; raise _Corrupt at the first bad one."""
        if not run:
            return
        blocks = np.fromiter(run, dtype=np.int64, count=len(run))
        run.clear()  # queued once, even if an error path queues `run` again
        mixed, self._run_mixed = self._run_mixed, False
        u32 = u32_view(data, self._order)
        tables = self._interface_tables()
        if mixed:
            iface, ticks, caplen, orig, data_off, simple, bad = self._mixed_columns(data, u32, blocks, tables)
        else:
            iface, ticks, caplen, orig, data_off, bad = self._epb_columns(data, u32, blocks)
            simple = None
        n = int(blocks.shape[0])
        problem: _Corrupt | None = None
        first_bad = np.flatnonzero(bad)
        if first_bad.size:
            n = int(first_bad[0])
            problem = self._describe(data, int(blocks[n]))
            iface, ticks, caplen, orig, data_off = iface[:n], ticks[:n], caplen[:n], orig[:n], data_off[:n]
            simple = simple[:n] if simple is not None else None
        if n:
            self._queue_columns(simple, iface, ticks, caplen, orig, data_off, tables)
        if problem is not None:
            raise problem

    def _epb_columns(
        self, data: Bytes, u32: NDArray[np.uint32], blocks: Int64s
    ) -> tuple[Int64s, U64, Int64s, Int64s, Int64s, NDArray[np.bool_]]:
        """Return (interface, ticks, caplen, orig_len, data offset, bad) of Enhanced Packet Blocks."""
        # One gather of every 28-byte EPB header: type, length, interface, ts high, ts low, captured, original.
        rows = np.lib.stride_tricks.as_strided(
            data, shape=(int(data.shape[0]) - EPB_HEADER + 1, EPB_HEADER), strides=(1, 1)
        )
        header = rows[blocks].view(self._u32_dtype)
        blen = header[:, 1].astype(np.int64)
        caplen = header[:, 5].astype(np.int64)
        # The walk checked only type and a minimum length; alignment, the trailing copy of the
        # length and the captured length are checked here for all blocks at once.
        bad = ((blen & 3) != 0) | (u32[blocks + blen - 4] != blen) | (caplen > blen - (EPB_HEADER + 4))
        ticks = (header[:, 3].astype(np.uint64) << np.uint64(32)) | header[:, 4]
        return (
            header[:, 2].astype(np.int64),
            ticks,
            caplen,
            header[:, 6].astype(np.int64),
            blocks + EPB_HEADER,
            bad,
        )

    def _mixed_columns(
        self,
        data: Bytes,
        u32: NDArray[np.uint32],
        blocks: Int64s,
        tables: tuple[NDArray[np.uint16], Int64s, Int64s, list[tuple[int, int]]],
    ) -> tuple[Int64s, U64, Int64s, Int64s, Int64s, NDArray[np.bool_], NDArray[np.bool_]]:
        """Like _epb_columns, for runs that also hold Simple and obsolete Packet Blocks (also: SPB mask)."""
        btype = u32[blocks]
        blen = u32[blocks + 4].astype(np.int64)
        bad = ((blen & 3) != 0) | (u32[blocks + blen - 4] != blen)
        simple = btype == BT_SPB
        n = int(blocks.shape[0])
        rows = np.flatnonzero(~simple)
        timed = blocks[rows]
        caplen = np.zeros(n, dtype=np.int64)
        orig = np.zeros(n, dtype=np.int64)
        iface = np.zeros(n, dtype=np.int64)
        ticks = np.zeros(n, dtype=np.uint64)
        data_off = blocks + EPB_HEADER
        word2 = u32[timed + 8].astype(np.int64)
        obsolete = btype[rows] == BT_OPB
        if obsolete.any():  # the Packet Block has a 16-bit interface id, then a 16-bit drop count
            word2[obsolete] = (word2[obsolete] & 0xFFFF) if self._order == "<" else (word2[obsolete] >> 16)
        iface[rows] = word2
        ticks[rows] = (u32[timed + 12].astype(np.uint64) << np.uint64(32)) | u32[timed + 16]
        caplen[rows] = u32[timed + 20]
        orig[rows] = u32[timed + 24]
        bad[rows] |= caplen[rows] > blen[rows] - (EPB_HEADER + 4)
        srows = np.flatnonzero(simple)
        sblocks = blocks[srows]
        orig[srows] = u32[sblocks + 8]
        # SPB §4.4: captured length = min(original length, snaplen of interface 0, what the block holds)
        limit = blen[srows] - (SPB_HEADER + 4)
        snaplens = tables[1]
        if snaplens.size and snaplens[0] > 0:
            limit = np.minimum(limit, snaplens[0])
        caplen[srows] = np.minimum(orig[srows], limit)
        data_off[srows] = sblocks + SPB_HEADER
        return iface, ticks, caplen, orig, data_off, simple, bad

    def _queue_columns(
        self,
        simple: NDArray[np.bool_] | None,
        iface: Int64s,
        ticks: U64,
        caplen: Int64s,
        orig: Int64s,
        data_off: Int64s,
        tables: tuple[NDArray[np.uint16], Int64s, Int64s, list[tuple[int, int]]],
    ) -> None:
        """Drop packets of undescribed interfaces, convert timestamps, and queue the columns."""
        linktypes, _snaplens, group_of, groups = tables
        known = iface < linktypes.shape[0]
        if not known.all():
            unknown = int(known.shape[0] - np.count_nonzero(known))
            self.stats.skipped["unknown-interface"] = self.stats.skipped.get("unknown-interface", 0) + unknown
            iface, ticks, caplen, orig = iface[known], ticks[known], caplen[known], orig[known]
            data_off = data_off[known]
            simple = simple[known] if simple is not None else None
            if iface.size == 0:
                return
        group = group_of[iface]
        if len(groups) == 1:
            ts_ns = self._to_ns(ticks, *groups[0])
        else:
            ts_ns = np.empty(iface.shape, dtype=np.int64)
            for g in np.unique(group):
                sel = group == g
                ts_ns[sel] = self._to_ns(ticks[sel], *groups[int(g)])
        if simple is not None and simple.any():
            ts_ns[simple] = 0  # an SPB has no timestamp (Wireshark shows it as the epoch too)
        cap32 = caplen.astype(np.uint32)
        self._pending.append((ts_ns, cap32, np.maximum(orig, caplen).astype(np.uint32), data_off, linktypes[iface]))

    @staticmethod
    def _to_ns(ticks: U64, tsresol: int, tsoffset_s: int) -> Int64s:
        ts_ns = ticks_to_ns(ticks, tsresol)
        if tsoffset_s:
            ts_ns += tsoffset_s * 1_000_000_000
        return ts_ns

    def _describe(self, data: Bytes, pos: int) -> _Corrupt:
        """Return the _Corrupt for the packet block at pos, naming what is wrong with it."""
        view = memoryview(data)  # type: ignore[arg-type]
        _btype, blen = self._header.unpack_from(view, pos)
        (trailer,) = self._u32.unpack_from(view, pos + blen - 4)
        if blen % 4:
            return _Corrupt(pos, f"bad block length {blen}")
        if trailer != blen:
            return _Corrupt(pos, f"block length {blen} but trailing length {trailer}")
        (caplen,) = self._u32.unpack_from(view, pos + 20)
        return _Corrupt(pos, f"captured length {caplen} does not fit a {blen}-byte block")

    def _drain(self, data: Bytes, max_frames: int) -> Iterator[Batch]:
        """Yield the queued columns of this chunk as Batches."""
        if not self._pending:
            return
        if len(self._pending) == 1:
            ts_ns, caplen, wirelen, offset, linktype = self._pending[0]
        else:
            ts_ns, caplen, wirelen, offset, linktype = (np.concatenate(col) for col in zip(*self._pending, strict=True))
        self._pending = []
        for batch in split_batches(data, ts_ns, caplen, wirelen, offset, linktype, self.stats.frames + 1, max_frames):
            self.stats.frames += len(batch)
            yield batch

    def _warn(self, what: str) -> None:
        early = self._chunks.early_end
        tail = f"; {early}" if early else ""
        line = f"{self.name}: {what}{tail}; read {self.stats.frames} frames"
        logger.info("%s", line)
        self.stats.warnings.append(line)
