"""Shared helpers of the capture tests."""

from __future__ import annotations

import numpy as np

from auditor.capture.types import Batch, PacketSource


def frames(src: PacketSource, max_frames: int = 65536) -> list[tuple[int, int, int, int, bytes]]:
    """Return (ts_ns, caplen, wirelen, linktype, bytes) of every frame, checking batch invariants."""
    out = []
    expected_first = 1
    for batch in src.batches(max_frames):
        assert isinstance(batch, Batch)
        assert 0 < len(batch) <= max_frames
        assert batch.first_frame == expected_first
        expected_first += len(batch)
        assert batch.ts_ns.dtype == np.int64 and batch.caplen.dtype == np.uint32
        assert batch.wirelen.dtype == np.uint32 and batch.offset.dtype == np.int64
        assert batch.linktype.dtype == np.uint16 and batch.data.dtype == np.uint8
        for i in range(len(batch)):
            out.append(
                (
                    int(batch.ts_ns[i]),
                    int(batch.caplen[i]),
                    int(batch.wirelen[i]),
                    int(batch.linktype[i]),
                    batch.frame(i),
                )
            )
    assert src.stats.frames == len(out)
    return out


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 for i in range(n))
