"""Classic pcap reader: byte orders, timestamp precisions, chunking, truncation and corruption."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.pcap import PCAP_MAGIC_NS, PCAP_MAGIC_US, PcapSource
from auditor.capture.types import LINKTYPE_RAW
from auditor.errors import CaptureError
from tests.capture._helpers import frames, payload

Record = tuple[int, int, bytes, int | None]  # ts_sec, ts_frac, captured bytes, orig_len (None: = caplen)


def pcap_bytes(
    records: list[Record],
    *,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    network: int = 1,
) -> bytes:
    """Return a pcap file holding `records`, written field by field as pcap-savefile(5) says."""
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    out = [struct.pack(f"{order}IHHiIII", magic, 2, 4, 0, 0, snaplen, network)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(f"{order}IIII", sec, frac, len(data), len(data) if orig is None else orig))
        out.append(data)
    return b"".join(out)


def source(blob: bytes, chunk_bytes: int = 8 << 20, name: str = "t.pcap") -> PcapSource:
    return PcapSource(io.BufferedReader(io.BytesIO(blob)), name, chunk_bytes)


SAMPLE: list[Record] = [
    (1_700_000_000, 123_456, payload(60, 1), None),
    (1_700_000_001, 999_999, payload(1514, 2), None),
    (1_700_000_002, 0, payload(0), None),
    (4_294_967_295, 7, payload(9, 3), None),
]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_reads_microsecond_timestamps_in_both_byte_orders(order: str) -> None:
    got = frames(source(pcap_bytes(SAMPLE, order=order)))
    assert got == [(sec * 1_000_000_000 + us * 1000, len(data), len(data), 1, data) for sec, us, data, _ in SAMPLE]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_reads_nanosecond_timestamps(order: str) -> None:
    records: list[Record] = [(1_700_000_000, 123_456_789, payload(64), None), (2, 999_999_999, b"x", None)]
    src = source(pcap_bytes(records, order=order, nano=True))
    assert src.nanosecond
    assert [f[0] for f in frames(src)] == [1_700_000_000_123_456_789, 2_999_999_999]


def test_pcap_reports_header_fields() -> None:
    src = source(pcap_bytes([], order=">", snaplen=1234, network=113))
    assert (src.byteorder, src.snaplen, src.linktype, src.version_major, src.version_minor) == (">", 1234, 113, 2, 4)


def test_pcap_snapped_frame_keeps_wire_length() -> None:
    records: list[Record] = [(1, 0, payload(96), 1514), (2, 0, payload(40), 12)]
    got = frames(source(pcap_bytes(records, snaplen=96)))
    assert [(f[1], f[2]) for f in got] == [(96, 1514), (40, 40)]  # orig_len < incl_len: wirelen = caplen


def test_pcap_masks_fcs_bits_of_link_type() -> None:
    network = (0b1011 << 28) | 1  # FCS-length bits set above the 16-bit link type
    assert source(pcap_bytes([], network=network)).linktype == 1


@pytest.mark.parametrize("alias", [12, 14])
def test_pcap_maps_raw_ip_aliases_to_linktype_raw(alias: int) -> None:
    got = frames(source(pcap_bytes([(1, 0, b"\x45" + bytes(19), None)], network=alias)))
    assert got[0][3] == LINKTYPE_RAW


def test_pcap_with_only_a_global_header_yields_nothing() -> None:
    src = source(pcap_bytes([]))
    assert frames(src) == []
    assert src.stats.warnings == [] and src.stats.bytes_read == 24


def test_pcap_rejects_a_short_global_header() -> None:
    with pytest.raises(CaptureError, match=r"t\.pcap: too short for a pcap global header \(10 of 24 bytes\)"):
        source(pcap_bytes([])[:10])


def test_pcap_rejects_an_unknown_magic() -> None:
    with pytest.raises(CaptureError, match="not a pcap file"):
        source(b"\x00" * 24)


def random_records(rng: np.random.Generator, n: int, max_len: int = 300) -> list[Record]:
    lens = rng.integers(0, max_len, n)
    return [(int(i), int(i * 7 % 1_000_000), payload(int(k), int(i)), None) for i, k in enumerate(lens)]


@pytest.mark.parametrize("chunk_bytes", [64, 100, 1000])
def test_pcap_records_span_chunk_boundaries(chunk_bytes: int) -> None:
    records = random_records(np.random.default_rng(chunk_bytes), 200)
    blob = pcap_bytes(records)
    want = frames(source(blob))
    assert len(want) == 200
    src = source(blob, chunk_bytes=chunk_bytes)
    assert frames(src, max_frames=7) == want
    assert src.stats.warnings == [] and src.stats.bytes_read == len(blob)


def test_pcap_reads_a_record_larger_than_the_chunk() -> None:
    records: list[Record] = [(1, 0, payload(10), None), (2, 0, payload(5000), None), (3, 0, payload(20), None)]
    got = frames(source(pcap_bytes(records), chunk_bytes=64))
    assert [f[4] for f in got] == [r[2] for r in records]


def test_pcap_memory_is_bounded_by_the_chunk() -> None:
    records = random_records(np.random.default_rng(5), 500, max_len=100)
    for batch in source(pcap_bytes(records), chunk_bytes=1024).batches():
        assert batch.data.nbytes <= 1024 + 16 + 100


def test_pcap_batches_of_one_chunk_share_its_buffer() -> None:
    batches = list(source(pcap_bytes(SAMPLE)).batches(max_frames=2))
    assert [len(b) for b in batches] == [2, 2]
    assert np.shares_memory(batches[0].data, batches[1].data)


def test_pcap_batches_is_one_pass() -> None:
    src = source(pcap_bytes(SAMPLE))
    assert len(frames(src)) == 4
    assert list(src.batches()) == []


@pytest.mark.parametrize("cut", [24 + 16 + 60 + 5, 24 + 16 + 60 + 16 + 100])
def test_pcap_truncated_tail_keeps_earlier_frames_and_warns(cut: int) -> None:
    blob = pcap_bytes(SAMPLE)[:cut]
    src = source(blob, chunk_bytes=64)
    got = frames(src)
    assert len(got) == 1 and got[0][4] == SAMPLE[0][2]
    rec_at = 24 + 16 + 60
    if cut - rec_at < 16:
        what = f"truncated record header at byte {rec_at} (needs 16 bytes, {cut - rec_at} left)"
    else:
        what = f"truncated record at byte {rec_at} (needs {16 + 1514} bytes, {cut - rec_at} left)"
    assert src.stats.warnings == [f"t.pcap: {what}; read 1 frames"]
    assert src.stats.skipped == {"truncated-record": 1}


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
@pytest.mark.parametrize("incl", [0x7FFF_FFFF, 300_000])
def test_pcap_corrupt_incl_len_stops_with_one_warning(chunk_bytes: int, incl: int) -> None:
    good = pcap_bytes(SAMPLE[:2])
    bad = struct.pack("<IIII", 5, 0, incl, 60) + payload(300_100)  # enough bytes to "hold" 300000
    src = source(good + bad + good[24:], chunk_bytes=chunk_bytes)
    got = frames(src)
    assert [f[4] for f in got] == [SAMPLE[0][2], SAMPLE[1][2]]
    assert src.stats.warnings == [
        f"t.pcap: corrupt record at byte {len(good)} (incl_len {incl} exceeds the 262144-byte limit); read 2 frames"
    ]


def test_pcap_large_snaplen_raises_the_record_limit() -> None:
    big = payload(300_000)
    got = frames(source(pcap_bytes([(1, 0, big, None)], snaplen=400_000)))
    assert got[0][4] == big


def test_pcap_agrees_with_scapy_writer(tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    pkts = [Ether(dst="ff:ff:ff:ff:ff:ff") / (b"a" * n) for n in (10, 100, 1000)]
    for i, p in enumerate(pkts):
        p.time = 1_600_000_000 + i + 0.25
    wrpcap(str(tmp_path / "s.pcap"), pkts)
    with open(tmp_path / "s.pcap", "rb") as f:
        got = frames(PcapSource(f, "s.pcap"))
    assert [f[4] for f in got] == [bytes(p) for p in pkts]
    assert [f[0] for f in got] == [(1_600_000_000 + i) * 10**9 + 250_000_000 for i in range(3)]


@settings(max_examples=40, deadline=None)
@given(
    lens=st.lists(st.integers(0, 200), max_size=40),
    chunk_bytes=st.integers(64, 600),
    max_frames=st.integers(1, 50),
    order=st.sampled_from(["<", ">"]),
    cut=st.integers(0, 30),
)
def test_pcap_chunked_reading_equals_whole_reading(
    lens: list[int], chunk_bytes: int, max_frames: int, order: str, cut: int
) -> None:
    records: list[Record] = [(i, i, payload(n, i), n + i) for i, n in enumerate(lens)]
    blob = pcap_bytes(records, order=order)
    blob = blob[: max(24, len(blob) - cut)]
    whole = source(blob)
    chunked = source(blob, chunk_bytes=chunk_bytes)
    assert frames(chunked, max_frames) == frames(whole)
    assert chunked.stats.warnings == whole.stats.warnings
