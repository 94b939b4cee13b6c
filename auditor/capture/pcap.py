"""Classic libpcap capture files (pcap-savefile(5)), read in chunks into columnar Batches.

The only per-record Python work is walking the record chain (one struct read of incl_len per
record); timestamps and lengths of all records of a chunk are then gathered with numpy.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator, Sequence
from types import TracebackType

import numpy as np

from auditor.capture._chunks import (
    DEFAULT_CHUNK_BYTES,
    MAX_RECORD_BYTES,
    Bytes,
    ChunkStream,
    Int64s,
    _Closable,
    split_batches,
)
from auditor.capture.types import (
    DEFAULT_BATCH_FRAMES,
    LINKTYPE_RAW,
    LINKTYPE_RAW_ALIASES,
    Batch,
    SourceStats,
)
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

PCAP_MAGIC_US = 0xA1B2C3D4  # pcap-savefile(5): timestamps in seconds + microseconds
PCAP_MAGIC_NS = 0xA1B23C4D  # same layout, seconds + nanoseconds
GLOBAL_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
SNAPLEN_FLOOR = 262_144  # libpcap MAXIMUM_SNAPLEN: records up to this are plausible whatever the snaplen
LINKTYPE_MASK = 0xFFFF  # the bits above carry the FCS length (pcap-savefile(5) "LinkType and additional information")

_GLOBAL_LE = struct.Struct("<IHHiIII")
_GLOBAL_BE = struct.Struct(">IHHiIII")
_EMPTY: Bytes = np.empty(0, dtype=np.uint8)


def is_pcap_magic(head: bytes) -> bool:
    """Return True if `head` starts with a pcap magic number in either byte order."""
    if len(head) < 4:
        return False
    return int.from_bytes(head[:4], "little") in _MAGICS or int.from_bytes(head[:4], "big") in _MAGICS


_MAGICS = (PCAP_MAGIC_US, PCAP_MAGIC_NS)


def map_linktype(linktype: int) -> int:
    """Return the link type to report: the raw-IP aliases 12 and 14 become LINKTYPE_RAW."""
    return LINKTYPE_RAW if linktype in LINKTYPE_RAW_ALIASES else linktype


def walk_records(view: memoryview, unpack_incl: struct.Struct, starts: list[int]) -> None:
    """Extend `starts` (record start offsets) along the record chain, resuming at starts[-1].

    Stops when a record header no longer fits in `view`; the last offset is then where the walk
    stopped, inside or past the end of `view`.
    """
    unpack = unpack_incl.unpack_from
    pos = starts[-1]
    append = starts.append
    # Hot loop: no bounds test per record; unpack_from raises once the header runs off the end.
    try:
        while True:
            (incl,) = unpack(view, pos)
            pos += RECORD_HEADER_BYTES + incl
            append(pos)
    except struct.error:
        pass


class PcapSource:
    """Frames of one classic pcap stream, in Batches that share the chunk they were read into."""

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
            header = self._chunks.read_exact(GLOBAL_HEADER_BYTES)
            self._parse_global_header(header)
        except CaptureError:
            self.close()
            raise
        self.stats.bytes_read = self._chunks.file_offset
        self._walked = False

    def _parse_global_header(self, header: bytes) -> None:
        if len(header) < GLOBAL_HEADER_BYTES:
            raise CaptureError(
                f"{self.name}: too short for a pcap global header ({len(header)} of {GLOBAL_HEADER_BYTES} bytes)"
            )
        if int.from_bytes(header[:4], "little") in _MAGICS:
            order, fields = "<", _GLOBAL_LE.unpack(header)
        elif int.from_bytes(header[:4], "big") in _MAGICS:
            order, fields = ">", _GLOBAL_BE.unpack(header)
        else:
            raise CaptureError(f"{self.name}: not a pcap file (magic 0x{header[:4].hex()})")
        magic, self.version_major, self.version_minor, _thiszone, _sigfigs, snaplen, network = fields
        self.byteorder = order
        self.nanosecond = magic == PCAP_MAGIC_NS
        self.snaplen: int = snaplen
        self.linktype: int = map_linktype(network & LINKTYPE_MASK)
        self._frac_ns = 1 if self.nanosecond else 1000
        self._max_caplen = min(max(snaplen, SNAPLEN_FLOOR), MAX_RECORD_BYTES)
        self._incl = struct.Struct(f"{order}8xI")
        self._u32 = np.dtype(f"{order}u4")

    def __enter__(self) -> PcapSource:
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

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]:
        """Yield the file's frames in order, max_frames at most per Batch; one pass only.

        A truncated or corrupt tail ends the iteration with one line in stats.warnings.
        """
        if self._walked or self._chunks.closed:
            return
        self._walked = True
        chunks = self._chunks
        carry = _EMPTY
        need = RECORD_HEADER_BYTES
        while not chunks.eof:
            buf = chunks.start(carry, need)
            filled = int(carry.shape[0])
            view = memoryview(buf)  # type: ignore[arg-type]
            starts = [0]
            while True:  # walk each piece right after reading it, while it is in cache
                walk_records(view[:filled], self._incl, starts)
                if len(starts) > 1 and starts[-1] - starts[-2] > self._max_caplen + RECORD_HEADER_BYTES:
                    break  # an absurd incl_len: reading on cannot help, _settle reports it
                more = chunks.read_piece(buf, filled)
                if more == filled:
                    break
                filled = more
            data = buf[:filled]
            self.stats.bytes_read = chunks.file_offset
            base = chunks.offset - filled
            bounds = np.fromiter(starts, dtype=np.int64, count=len(starts))
            done, rest, incl, corrupt = self._settle(starts, bounds, filled)
            if done:
                yield from self._emit(data, bounds[: done + 1], max_frames)
            if corrupt:
                self._warn(
                    f"corrupt record at byte {base + rest} (incl_len {incl} exceeds the {self._max_caplen}-byte limit)"
                )
                return
            carry = data[rest:]
            need = RECORD_HEADER_BYTES if incl < 0 else RECORD_HEADER_BYTES + incl
        left = int(carry.shape[0])
        if chunks.closed:  # closed by the consumer mid-iteration: not a truncated file
            return
        if left:
            self.stats.skipped["truncated-record"] = self.stats.skipped.get("truncated-record", 0) + 1
            what = "record header" if left < RECORD_HEADER_BYTES else "record"
            self._warn(f"truncated {what} at byte {chunks.offset - left} (needs {need} bytes, {left} left)")
        elif chunks.early_end:
            self._warn(f"stream ends at byte {chunks.offset}")

    def _settle(self, starts: list[int], bounds: Int64s, size: int) -> tuple[int, int, int, bool]:
        """Return (complete records, offset of the first unread byte, its incl_len or -1, corrupt?)."""
        walked = len(starts) - 1  # records whose incl_len was read
        done = walked if starts[-1] <= size else walked - 1
        if done > 0:
            # Vectorised sanity check: the first absurd incl_len ends the file (later "records"
            # were walked through garbage).
            caplen = bounds[1 : done + 1] - bounds[:done] - RECORD_HEADER_BYTES
            bad = np.flatnonzero(caplen > self._max_caplen)
            if bad.size:
                first = int(bad[0])
                return first, starts[first], int(caplen[first]), True
        rest = starts[done]
        if done < walked:  # the record at `rest` has a header but not all of its bytes
            incl = starts[done + 1] - rest - RECORD_HEADER_BYTES
            return done, rest, incl, incl > self._max_caplen
        return done, rest, -1, False

    def _emit(self, data: Bytes, bounds: Int64s, max_frames: int) -> Iterator[Batch]:
        """Gather the columns of the records starting at bounds[:-1] and yield them as Batches."""
        rec = bounds[:-1]
        done = int(rec.shape[0])
        caplen = (np.diff(bounds) - RECORD_HEADER_BYTES).astype(np.uint32)
        # One gather of every 16-byte record header, then columns: ts_sec, ts_frac, incl_len, orig_len.
        rows = np.lib.stride_tricks.as_strided(
            data, shape=(int(data.shape[0]) - RECORD_HEADER_BYTES + 1, RECORD_HEADER_BYTES), strides=(1, 1)
        )
        header = rows[rec].view(self._u32)
        ts_ns = header[:, 0].astype(np.int64)
        ts_ns *= 1_000_000_000
        frac = header[:, 1].astype(np.int64)
        if self._frac_ns != 1:
            frac *= self._frac_ns
        ts_ns += frac
        wirelen = np.maximum(header[:, 3], caplen).astype(np.uint32, copy=False)
        linktype = np.full(done, self.linktype, dtype=np.uint16)
        first = self.stats.frames + 1
        for batch in split_batches(
            data, ts_ns, caplen, wirelen, rec + RECORD_HEADER_BYTES, linktype, first, max_frames
        ):
            self.stats.frames += len(batch)
            yield batch

    def _warn(self, what: str) -> None:
        early = self._chunks.early_end
        tail = f"; {early}" if early else ""
        line = f"{self.name}: {what}{tail}; read {self.stats.frames} frames"
        logger.info("%s", line)
        self.stats.warnings.append(line)
