"""Read a capture in a forked child process, so reading and walking records overlap packet work.

On a 2-core sensor, reading the file (copying it out of the page cache, walking the record chain,
inflating gzip) costs about a third of the per-packet time. A child process does it here and
hands each Batch over through a ring of shared-memory slots: it copies the batch's frames and
columns into a free slot and sends the slot number down a pipe; the parent wraps the slot in
numpy arrays without copying. A slot goes back to the child when the parent asks for the next
batch, so a batch stays valid until then (the pipeline never keeps one longer).

The source is opened (and so validated) in the parent before the fork: a file that is not a
capture is still a CaptureError raised by open_capture, before any child exists.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing
import os
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from auditor.capture.types import DEFAULT_BATCH_FRAMES, Batch, PacketSource, SourceStats
from auditor.errors import CaptureError
from auditor.runtime import yield_cpu

logger = logging.getLogger(__name__)

SLOTS = 3
"""Batches in flight: one being processed, one ready, one being filled."""
SLOT_DATA_BYTES = 20 << 20
"""Frame bytes per slot: a 16 MiB chunk plus room for records that straddle it."""
_COLUMN_BYTES_PER_FRAME = 8 + 4 + 4 + 8 + 2  # ts_ns, caplen, wirelen, offset, linktype

_ScalarT = TypeVar("_ScalarT", bound=np.generic)


class PrefetchSource:
    """A PacketSource whose batches are read by a forked child from an already opened source."""

    def __init__(self, source: PacketSource, max_frames: int = DEFAULT_BATCH_FRAMES) -> None:
        self.name = source.name
        self.stats = SourceStats()
        max_frames = max(int(max_frames), 1)  # as the readers do
        self._max_frames = max_frames
        self._data_bytes = SLOT_DATA_BYTES  # fixed now: parent and child must agree on the layout
        self._slot_bytes = self._data_bytes + _COLUMN_BYTES_PER_FRAME * max_frames
        self._ring = mmap.mmap(-1, SLOTS * self._slot_bytes)  # anonymous MAP_SHARED: seen by both sides
        ctx = multiprocessing.get_context("fork")
        self._from_child, child_send = ctx.Pipe(duplex=False)
        child_recv, self._to_child = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=_child_main,
            args=(source, self._ring, self._slot_bytes, self._data_bytes, max_frames, child_send, child_recv,
                  (self._from_child, self._to_child)),
            daemon=True,
        )
        self._child.start()
        child_send.close()
        child_recv.close()
        source.close()  # the parent's copy: the child reads through its own inherited descriptor
        self._started = False
        self._ended = False

    def __enter__(self) -> PrefetchSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def batches(self, max_frames: int = DEFAULT_BATCH_FRAMES) -> Iterator[Batch]:
        """Yield the batches the child reads (at most the max_frames given at construction)."""
        if self._started:
            return
        self._started = True
        pending: int | None = None
        while True:
            if pending is not None:
                # the child may already have sent "end" and gone: then nobody needs the slot
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._to_child.send(pending)
                pending = None
            try:
                msg = self._from_child.recv()
            except EOFError:
                raise CaptureError(f"{self.name}: reader process ended unexpectedly") from None
            kind = msg[0]
            if kind == "batch":
                _, slot, n, data_len, first_frame, stats = msg
                self._update(stats)
                yield self._batch(slot, n, data_len, first_frame)
                pending = slot
            elif kind == "large":  # a batch too big for a slot came pickled
                _, batch, stats = msg
                self._update(stats)
                yield batch
            elif kind == "end":
                self._update(msg[1])
                self._ended = True
                return
            else:
                _, message, is_capture_error = msg
                if is_capture_error:
                    raise CaptureError(message)
                raise RuntimeError(f"capture reader process failed:\n{message}")

    def _batch(self, slot: int, n: int, data_len: int, first_frame: int) -> Batch:
        buf = np.frombuffer(self._ring, dtype=np.uint8, count=self._slot_bytes, offset=slot * self._slot_bytes)
        columns = buf[self._data_bytes :]
        pos = 0

        def column(dtype: type[_ScalarT], size: int) -> NDArray[_ScalarT]:
            nonlocal pos
            arr = columns[pos : pos + size * n].view(dtype)
            pos += size * self._max_frames
            return arr

        ts_ns = column(np.int64, 8)
        offset = column(np.int64, 8)
        caplen = column(np.uint32, 4)
        wirelen = column(np.uint32, 4)
        linktype = column(np.uint16, 2)
        return Batch(ts_ns=ts_ns, caplen=caplen, wirelen=wirelen, offset=offset, linktype=linktype,
                     data=buf[:data_len], first_frame=first_frame)

    def _update(self, stats: dict[str, Any]) -> None:
        s = self.stats
        s.frames = stats["frames"]
        s.bytes_read = stats["bytes_read"]
        s.warnings = list(stats["warnings"])
        s.skipped = dict(stats["skipped"])

    def close(self) -> None:
        """Stop the child (if the batches were not all read) and release the shared slots."""
        if self._ended:
            self._child.join(timeout=1.0)  # it sent "end" and is exiting by itself
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()
        for conn in (self._from_child, self._to_child):
            conn.close()
        # a caller may still hold a batch: then the mapping goes when that batch is freed
        with contextlib.suppress(BufferError):
            self._ring.close()


def _child_main(
    source: PacketSource,
    ring: mmap.mmap,
    slot_bytes: int,
    data_bytes: int,
    max_frames: int,
    send: Any,
    recv: Any,
    parents: tuple[Any, ...],
) -> None:
    # Close the parent's pipe ends inherited through fork: otherwise, if the parent dies, this
    # child never sees end-of-file and waits forever.
    for conn in parents:
        conn.close()
    yield_cpu()
    reuse = getattr(source, "reuse_buffers", None)
    if reuse is not None:  # every batch is copied into a slot before the next is read
        reuse()
    try:
        free = list(range(SLOTS))
        buf = np.frombuffer(ring, dtype=np.uint8)
        for batch in source.batches(max_frames):
            n = len(batch)
            start = int(batch.offset.min()) if n else 0
            end = int((batch.offset + batch.caplen).max()) if n else 0
            if end - start > data_bytes or n > max_frames:  # does not fit a slot: send it pickled
                frames = batch.data[start:end].copy()
                moved = Batch(batch.ts_ns, batch.caplen, batch.wirelen, batch.offset - start, batch.linktype,
                              frames, batch.first_frame)
                send.send(("large", moved, _snapshot(source.stats)))
                continue
            if not free:
                free.append(recv.recv())
            slot = free.pop()
            base = slot * slot_bytes
            dst = buf[base : base + slot_bytes]
            dst[: end - start] = batch.data[start:end]
            cols = dst[data_bytes:]
            pos = 0
            for values, dtype, size in (
                (batch.ts_ns, np.int64, 8),
                (batch.offset - start, np.int64, 8),
                (batch.caplen, np.uint32, 4),
                (batch.wirelen, np.uint32, 4),
                (batch.linktype, np.uint16, 2),
            ):
                cols[pos : pos + size * n].view(dtype)[:] = values
                pos += size * max_frames
            send.send(("batch", slot, n, end - start, batch.first_frame, _snapshot(source.stats)))
        send.send(("end", _snapshot(source.stats)))
    except CaptureError as exc:
        send.send(("error", str(exc), True))
    except BaseException:  # a bug: hand the traceback to the parent, which raises it
        send.send(("error", traceback.format_exc(limit=8), False))
        os._exit(1)
    finally:
        source.close()
    os._exit(0)  # skip the parent's atexit handlers and buffers inherited through fork


def _snapshot(stats: SourceStats) -> dict[str, Any]:
    return {
        "frames": stats.frames,
        "bytes_read": stats.bytes_read,
        "warnings": list(stats.warnings),
        "skipped": dict(stats.skipped),
    }
