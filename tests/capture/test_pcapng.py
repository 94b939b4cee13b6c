"""pcapng reader: sections, interfaces, packet block kinds, chunking, truncation and corruption."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.pcapng import (
    BT_EPB,
    BT_IDB,
    BT_OPB,
    BT_SHB,
    BT_SPB,
    BYTE_ORDER_MAGIC,
    MAX_INTERFACES,
    PcapngSource,
    ticks_to_ns,
)
from auditor.capture.types import LINKTYPE_RAW
from auditor.errors import CaptureError
from tests.capture._helpers import frames, payload


def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    """Return a block: type, total length, body padded to 32 bits, total length again."""
    body = pad4(body)
    n = len(body) + 12
    return struct.pack(f"{order}II", btype, n) + body + struct.pack(f"{order}I", n)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(f"{order}HH", code, len(value)) + pad4(value)


def shb(order: str = "<", options: bytes = b"") -> bytes:
    return block(BT_SHB, struct.pack(f"{order}IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options, order)


def idb(
    linktype: int = 1,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    order: str = "<",
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(f"{order}q", tsoffset), order)
    if opts:
        opts += option(0, b"", order)
    return block(BT_IDB, struct.pack(f"{order}HHI", linktype, 0, snaplen) + opts, order)


def epb(iface: int, ticks: int, data: bytes, orig: int | None = None, order: str = "<", options: bytes = b"") -> bytes:
    fields = struct.pack(
        f"{order}IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data) if orig is None else orig
    )
    return block(BT_EPB, fields + pad4(data) + options, order)


def opb(iface: int, ticks: int, data: bytes, order: str = "<") -> bytes:
    fields = struct.pack(f"{order}HHIIII", iface, 3, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return block(BT_OPB, fields + data, order)


def spb(data: bytes, orig: int | None = None, order: str = "<") -> bytes:
    return block(BT_SPB, struct.pack(f"{order}I", len(data) if orig is None else orig) + data, order)


def source(blob: bytes, chunk_bytes: int = 8 << 20, name: str = "t.pcapng") -> PcapngSource:
    return PcapngSource(io.BufferedReader(io.BytesIO(blob)), name, chunk_bytes)


def test_pcapng_reads_epb_with_default_microsecond_resolution() -> None:
    blob = shb() + idb() + epb(0, 1_700_000_000_123_456, payload(60)) + epb(0, 5, payload(61), orig=1500)
    got = frames(source(blob))
    assert got == [
        (1_700_000_000_123_456_000, 60, 60, 1, payload(60)),
        (5000, 61, 1500, 1, payload(61)),
    ]


def test_pcapng_two_interfaces_differ_in_link_type_and_resolution() -> None:
    ns_ticks = 1_700_000_000_987_654_321
    bin_ticks = (1_700_000_000 << 20) | (1 << 19)  # 2^-20 s units: .5 s
    blob = (
        shb()
        + idb(linktype=1, tsresol=9)
        + idb(linktype=101, tsresol=0x80 | 20, tsoffset=100)
        + epb(0, ns_ticks, payload(20))
        + epb(1, bin_ticks, b"\x45" + payload(19))
        + epb(0, ns_ticks + 1, payload(21))
    )
    src = source(blob)
    got = frames(src)
    assert [(f[0], f[3]) for f in got] == [
        (1_700_000_000_987_654_321, 1),
        ((1_700_000_000 + 100) * 10**9 + 500_000_000, 101),
        (1_700_000_000_987_654_322, 1),
    ]
    assert [i.linktype for i in src.interfaces] == [1, 101]


def test_pcapng_sections_reset_interfaces_and_may_change_byte_order() -> None:
    blob = (
        shb("<")
        + idb(1, order="<")
        + idb(113, order="<")
        + epb(1, 1, b"first", order="<")
        + shb(">")
        + idb(276, tsresol=3, order=">")
        + epb(0, 7, b"second", order=">")
        + epb(1, 8, b"no such interface here", order=">")
        + shb("<")
        + idb(101, order="<")
        + epb(0, 9, b"third", order="<")
    )
    src = source(blob)
    got = frames(src)
    assert [(f[4], f[3], f[0]) for f in got] == [
        (b"first", 113, 1000),
        (b"second", 276, 7_000_000),
        (b"third", 101, 9000),
    ]
    assert src.stats.skipped == {"unknown-interface": 1}
    assert src.stats.warnings == []


def test_pcapng_reads_a_big_endian_file() -> None:
    blob = shb(">") + idb(1, tsresol=9, order=">") + epb(0, 123, payload(33), order=">")
    assert frames(source(blob)) == [(123, 33, 33, 1, payload(33))]


def test_pcapng_simple_packet_block_is_cut_to_snaplen_and_body() -> None:
    blob = (
        shb()
        + idb(1, snaplen=50)
        + spb(payload(40))  # whole packet
        + spb(payload(50), orig=1514)  # snapped by snaplen
        + spb(payload(30), orig=20)  # orig smaller than body: orig wins
    )
    got = frames(source(blob))
    assert [(f[1], f[2], f[4]) for f in got] == [
        (40, 40, payload(40)),
        (50, 1514, payload(50)),
        (20, 20, payload(20)),
    ]
    assert {f[0] for f in got} == {0}  # an SPB has no timestamp


def test_pcapng_simple_packet_block_needs_interface_zero() -> None:
    src = source(shb() + spb(b"orphan"))
    assert frames(src) == []
    assert src.stats.skipped == {"unknown-interface": 1}


def test_pcapng_reads_obsolete_packet_block() -> None:
    for order in "<>":
        blob = shb(order) + idb(1, order=order) + idb(113, order=order) + opb(1, 42, payload(17), order=order)
        got = frames(source(blob))
        assert got == [(42_000, 17, 17, 113, payload(17))]


def test_pcapng_mixes_packet_block_kinds_in_order() -> None:
    blob = shb() + idb(1) + epb(0, 1, b"e1") + spb(b"s1") + opb(0, 2, b"o1") + epb(0, 3, b"e2")
    assert [f[4] for f in frames(source(blob))] == [b"e1", b"s1", b"o1", b"e2"]


def test_pcapng_skips_other_blocks_by_length() -> None:
    nrb = block(4, struct.pack("<HH", 1, 8) + bytes([10, 0, 0, 1]) + b"host" + struct.pack("<HH", 0, 0))
    isb = block(5, struct.pack("<IIII", 0, 0, 0, 0))
    dsb = block(0x0A, b"TLSK" + struct.pack("<I", 4) + b"keys")
    custom = block(0x00000BAD, struct.pack("<I", 32473) + b"vendor stuff")
    unknown = block(0x12345678, payload(99))
    blob = shb() + nrb + idb(1) + isb + epb(0, 1, b"a") + dsb + custom + unknown + epb(0, 2, b"b") + isb
    src = source(blob)
    assert [f[4] for f in frames(src)] == [b"a", b"b"]
    assert src.stats.warnings == [] and src.stats.skipped == {}


def test_pcapng_counts_packets_of_undescribed_interfaces() -> None:
    blob = shb() + idb(1) + epb(0, 1, b"ok") + epb(3, 2, b"gone") + epb(7, 3, b"gone") + epb(0, 4, b"ok2")
    src = source(blob)
    assert [f[4] for f in frames(src)] == [b"ok", b"ok2"]
    assert src.stats.skipped == {"unknown-interface": 2}


def test_pcapng_caps_the_interface_table() -> None:
    blob = (
        shb() + idb(1) * MAX_INTERFACES + idb(113) + epb(MAX_INTERFACES - 1, 1, b"last") + epb(MAX_INTERFACES, 2, b"x")
    )
    src = source(blob)
    assert [(f[3], f[4]) for f in frames(src)] == [(1, b"last")]
    assert src.stats.skipped == {"unknown-interface": 1}
    assert src.stats.warnings == [
        f"t.pcapng: more than {MAX_INTERFACES} interfaces in one section; skipping their packets"
    ]


def test_pcapng_maps_raw_ip_alias() -> None:
    assert frames(source(shb() + idb(14) + epb(0, 1, b"\x45")))[0][3] == LINKTYPE_RAW


def test_pcapng_epb_options_do_not_change_the_frame() -> None:
    opts = option(1, b"a comment") + option(0, b"")
    blob = shb() + idb(1) + epb(0, 1, payload(13), options=opts)
    assert frames(source(blob))[0][4] == payload(13)


def mixed_file(rng: np.random.Generator, n: int, order: str = "<") -> bytes:
    parts = [shb(order), idb(1, order=order), idb(113, tsresol=9, order=order)]
    for i in range(n):
        data = payload(int(rng.integers(0, 300)), i)
        kind = rng.integers(0, 10)
        if kind == 0:
            parts.append(block(5, payload(int(rng.integers(0, 40))), order))
        elif kind == 1:
            parts.append(spb(data, order=order))
        else:
            parts.append(epb(int(kind % 2), i * 1000, data, order=order))
    return b"".join(parts)


@pytest.mark.parametrize("chunk_bytes", [64, 100, 1000])
def test_pcapng_blocks_span_chunk_boundaries(chunk_bytes: int) -> None:
    blob = mixed_file(np.random.default_rng(chunk_bytes), 200)
    want = frames(source(blob))
    assert len(want) > 150
    src = source(blob, chunk_bytes=chunk_bytes)
    assert frames(src, max_frames=9) == want
    assert src.stats.warnings == [] and src.stats.bytes_read == len(blob)


def test_pcapng_reads_a_block_larger_than_the_chunk() -> None:
    blob = shb() + idb(1) + epb(0, 1, b"a") + epb(0, 2, payload(5000)) + epb(0, 3, b"c")
    assert [f[4] for f in frames(source(blob, chunk_bytes=64))] == [b"a", payload(5000), b"c"]


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
def test_pcapng_truncated_tail_keeps_earlier_frames_and_warns(chunk_bytes: int) -> None:
    head = shb() + idb(1) + epb(0, 1, b"kept")
    last = epb(0, 2, payload(100))
    for cut, what in [(5, "block header"), (60, "block")]:
        src = source(head + last[:cut], chunk_bytes=chunk_bytes)
        assert [f[4] for f in frames(src)] == [b"kept"]
        assert src.stats.warnings == [
            f"t.pcapng: truncated {what} at byte {len(head)} (needs {12 if cut < 12 else len(last)} bytes, "
            f"{cut} left); read 1 frames"
        ]


def corrupt_cases() -> list[tuple[str, bytes, str]]:
    good = epb(0, 9, payload(40))
    wrong_trailer = good[:-4] + struct.pack("<I", len(good) + 4)
    odd_length = struct.pack("<II", BT_EPB, len(good) - 2) + good[8:]
    caplen_too_big = good[:20] + struct.pack("<I", 400) + good[24:]
    zero_length = struct.pack("<II", 0x12345678, 0) + b"\0" * 40
    short_idb = struct.pack("<III", BT_IDB, 16, 1) + struct.pack("<I", 16)
    bad_bom = struct.pack("<III", BT_SHB, 28, 0xDEADBEEF) + b"\0" * 16
    return [
        ("wrong-trailer", wrong_trailer, f"block length {len(good)} but trailing length {len(good) + 4}"),
        ("odd-length", odd_length, f"bad block length {len(good) - 2}"),
        ("caplen-too-big", caplen_too_big, f"captured length 400 does not fit a {len(good)}-byte block"),
        ("zero-length", zero_length, "bad block length 0"),
        ("idb-too-short", short_idb, "block type 1 too short (16 bytes)"),
        ("bad-byte-order-magic", bad_bom, "bad byte-order magic 0xefbeadde"),
    ]


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 20])
@pytest.mark.parametrize(("label", "bad", "reason"), corrupt_cases(), ids=[c[0] for c in corrupt_cases()])
def test_pcapng_corrupt_block_stops_with_one_warning(label: str, bad: bytes, reason: str, chunk_bytes: int) -> None:
    head = shb() + idb(1) + epb(0, 1, b"a") + epb(0, 2, b"b")
    src = source(head + bad + epb(0, 3, b"never"), chunk_bytes=chunk_bytes)
    assert [f[4] for f in frames(src)] == [b"a", b"b"]
    assert src.stats.warnings == [f"t.pcapng: corrupt block at byte {len(head)} ({reason}); read 2 frames"]


def test_pcapng_idb_with_short_length_is_corruption() -> None:
    bad_idb = struct.pack("<II", BT_IDB, 12) + struct.pack("<I", 12)
    src = source(shb() + bad_idb + epb(0, 1, b"x"))
    assert frames(src) == []
    assert "block type 1 too short (12 bytes)" in src.stats.warnings[0]


def test_pcapng_rejects_a_bad_first_section() -> None:
    with pytest.raises(CaptureError, match="too short for a pcapng section header"):
        source(shb()[:20])
    with pytest.raises(CaptureError, match="bad pcapng byte-order magic"):
        source(struct.pack("<III", BT_SHB, 28, 1) + b"\0" * 16)
    with pytest.raises(CaptureError, match=r"unsupported pcapng version 2\.0"):
        source(struct.pack("<IIIHHq", BT_SHB, 28, BYTE_ORDER_MAGIC, 2, 0, -1) + struct.pack("<I", 28))


def test_pcapng_section_header_only_yields_nothing() -> None:
    src = source(shb())
    assert frames(src) == []
    assert src.stats.warnings == []


@pytest.mark.parametrize(
    ("tsresol", "ticks", "want_ns"),
    [
        (6, 1_700_000_000_123_456, 1_700_000_000_123_456_000),
        (9, 1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
        (3, 1_700_000_000_123, 1_700_000_000_123_000_000),
        (0, 1_700_000_000, 1_700_000_000_000_000_000),
        (12, 1_700_000_000_123_456_789, 1_700_000_000_123_456),  # picoseconds: divide
        (0x80 | 10, (5 << 10) | 512, 5_500_000_000),  # 2^-10
        (0x80 | 32, (1_700_000_000 << 32) | (1 << 30), 1_700_000_000_250_000_000),  # 2^-32
        (0x80 | 40, 3 << 39, 1_500_000_000),  # 2^-40: more bits than u64 arithmetic allows at once
        (0x80, 7, 7_000_000_000),  # 2^0
    ],
)
def test_ticks_to_ns_converts_decimal_and_binary_resolutions(tsresol: int, ticks: int, want_ns: int) -> None:
    assert int(ticks_to_ns(np.array([ticks], dtype=np.uint64), tsresol)[0]) == want_ns


def test_ticks_to_ns_absurd_resolutions_give_zero_not_an_error() -> None:
    ticks = np.array([123], dtype=np.uint64)
    assert int(ticks_to_ns(ticks, 100)[0]) == 0
    assert int(ticks_to_ns(ticks, 0xFF)[0]) == 0


def test_pcapng_agrees_with_scapy_writer(tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    pkts = [Ether(dst="ff:ff:ff:ff:ff:ff") / (b"b" * n) for n in (10, 100, 1000)]
    for i, p in enumerate(pkts):
        p.time = 1_600_000_000 + i
    writer = PcapNgWriter(str(tmp_path / "s.pcapng"))
    for p in pkts:
        writer.write(p)
    writer.close()
    with open(tmp_path / "s.pcapng", "rb") as f:
        got = frames(PcapngSource(f, "s.pcapng"))
    assert [f[4] for f in got] == [bytes(p) for p in pkts]
    assert [f[0] // 10**9 for f in got] == [1_600_000_000 + i for i in range(3)]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(0, 40),
    chunk_bytes=st.integers(64, 700),
    max_frames=st.integers(1, 30),
    order=st.sampled_from(["<", ">"]),
    cut=st.integers(0, 40),
)
def test_pcapng_chunked_reading_equals_whole_reading(
    seed: int, n: int, chunk_bytes: int, max_frames: int, order: str, cut: int
) -> None:
    blob = mixed_file(np.random.default_rng(seed), n, order)
    blob = blob[: max(28, len(blob) - cut)]
    whole = source(blob)
    chunked = source(blob, chunk_bytes=chunk_bytes)
    assert frames(chunked, max_frames) == frames(whole)
    assert chunked.stats.warnings == whole.stats.warnings
