"""MemorySource: the in-memory PacketSource used as a test double."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.capture import MemorySource, PacketSource
from auditor.capture.types import LINKTYPE_RAW

FRAMES = [bytes([i]) * (i + 1) for i in range(10)]


def test_memory_source_yields_frames_in_batches_of_max_frames() -> None:
    src = MemorySource(FRAMES)
    batches = list(src.batches(max_frames=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [b.first_frame for b in batches] == [1, 5, 9]
    assert [b.frame(i) for b in batches for i in range(len(b))] == FRAMES
    assert src.stats.frames == 10 and src.stats.bytes_read == sum(map(len, FRAMES))


def test_memory_source_numbers_timestamps_across_batches() -> None:
    batches = list(MemorySource(FRAMES).batches(max_frames=3))
    assert np.concatenate([b.ts_ns for b in batches]).tolist() == list(range(10))


def test_memory_source_keeps_given_columns() -> None:
    ts = [10**18 + i for i in range(10)]
    wire = [len(f) + 100 for f in FRAMES]
    [batch] = MemorySource(FRAMES, ts_ns=ts, linktype=LINKTYPE_RAW, wirelen=wire).batches()
    assert batch.ts_ns.tolist() == ts
    assert batch.wirelen.tolist() == wire
    assert batch.caplen.tolist() == [len(f) for f in FRAMES]
    assert set(batch.linktype.tolist()) == {LINKTYPE_RAW}


def test_memory_source_rejects_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="ts_ns has 2 values for 10 frames"):
        MemorySource(FRAMES, ts_ns=[1, 2])
    with pytest.raises(ValueError, match="wirelen has 1 values for 10 frames"):
        MemorySource(FRAMES, wirelen=[1])


def test_memory_source_empty_yields_nothing() -> None:
    assert list(MemorySource([]).batches()) == []


def test_memory_source_is_a_packet_source_and_context_manager() -> None:
    with MemorySource(FRAMES[:2], name="fixture") as src:
        typed: PacketSource = src
        assert typed.name == "fixture"
        assert sum(len(b) for b in typed.batches()) == 2
