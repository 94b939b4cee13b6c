"""Packet sources: capture files (pcap, pcapng, gzip) and, later, live interfaces, yielding Batches."""

from __future__ import annotations

from auditor.capture.files import open_capture
from auditor.capture.memory import MemorySource
from auditor.capture.pcap import PcapSource
from auditor.capture.pcapng import Interface, PcapngSource
from auditor.capture.prefetch import PrefetchSource
from auditor.capture.types import Batch, PacketSource, SourceStats, batch_from_frames

__all__ = [
    "Batch",
    "Interface",
    "MemorySource",
    "PacketSource",
    "PcapSource",
    "PcapngSource",
    "PrefetchSource",
    "SourceStats",
    "batch_from_frames",
    "open_capture",
]
