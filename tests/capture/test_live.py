"""LiveSource's batch building and polling, without a capture handle: the (data, meta) parts are built
here as pcapy-ng's next_batch returns them (one buffer, and a packed table of sec, usec, offset,
caplen native-endian uint32 records)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from auditor.capture.live import _META, CaptureCounters, LiveSource
from auditor.capture.types import LINKTYPE_ETHERNET, LINKTYPE_RAW, SourceStats
from auditor.decode import decode
from auditor.decode.types import IPPROTO_TCP, IPPROTO_UDP, KIND_ARP, KIND_IP, TCP_SYN
from auditor.errors import CaptureError

META = np.dtype([("sec", "=u4"), ("usec", "=u4"), ("offset", "=u4"), ("caplen", "=u4")])
SRC, DST = "00:11:22:33:44:55", "66:77:88:99:aa:bb"


def part(frames: list[tuple[int, int, bytes]], gap: int = 0, lead: int = 0) -> tuple[bytes, np.ndarray[Any, Any]]:
    """(data, meta) of frames given as (sec, usec, bytes): `lead` bytes before the first frame and
    `gap` bytes of padding after each (a ring block is not always packed; offsets must be honoured)."""
    data = bytearray(b"\xee" * lead)
    meta = np.zeros(len(frames), dtype=META)
    for i, (sec, usec, frame) in enumerate(frames):
        meta[i] = (sec, usec, len(data), len(frame))
        data += frame + b"\xee" * gap
    return bytes(data), meta


def source(linktype: int = LINKTYPE_ETHERNET) -> LiveSource:
    """A LiveSource with only what _batch needs (no pcapy handle)."""
    src = object.__new__(LiveSource)
    src.name = "test0"
    src.linktype = linktype
    src.stats = SourceStats()
    src._first_frame = 1
    return src


def frames_of(batch: Any) -> list[bytes]:
    return [batch.frame(i) for i in range(len(batch))]


def ipv4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_meta_dtype_matches_pcapy_ng() -> None:
    assert _META == META
    assert META.itemsize == 16


def test_two_parts_make_one_batch() -> None:
    a = [(1_700_000_000, 1, b"\x01" * 60), (1_700_000_000, 999_999, b"\x02" * 61)]
    b = [(1_700_000_001, 0, b"\x03" * 62), (1_700_000_001, 500_000, b"\x04" * 1514), (1_700_000_002, 7, b"\x05")]
    src = source()
    batch = src._batch([part(a, gap=3), part(b, gap=5, lead=2)])
    inputs = a + b
    assert len(batch) == 5
    assert frames_of(batch) == [f for _, _, f in inputs]
    assert batch.ts_ns.tolist() == [s * 1_000_000_000 + u * 1_000 for s, u, _ in inputs]
    assert batch.caplen.tolist() == [len(f) for _, _, f in inputs]
    assert batch.wirelen.tolist() == batch.caplen.tolist()  # next_batch gives no wire length
    assert batch.linktype.tolist() == [LINKTYPE_ETHERNET] * 5
    assert batch.first_frame == 1
    assert batch.ts_ns.dtype == np.int64 and batch.caplen.dtype == np.uint32
    assert batch.wirelen.dtype == np.uint32 and batch.offset.dtype == np.int64
    assert batch.linktype.dtype == np.uint16 and batch.data.dtype == np.uint8
    assert src.stats.frames == 5
    assert src.stats.bytes_read == sum(len(f) for _, _, f in inputs)


def test_timestamps_past_2038_do_not_overflow() -> None:
    sec = 0xFFFF_FFF0  # an unsigned 32-bit second count, far past int32
    batch = source()._batch([part([(sec, 123_456, b"x" * 20)])])
    assert batch.ts_ns.tolist() == [sec * 1_000_000_000 + 123_456_000]


def test_the_wirelen_is_not_shared_with_caplen() -> None:
    batch = source()._batch([part([(1, 0, b"x" * 20)])])
    assert not np.shares_memory(batch.wirelen, batch.caplen)


def test_one_part_alone() -> None:
    frames = [(5, 6, b"\xaa" * 14), (5, 7, b"\xbb" * 30)]
    batch = source()._batch([part(frames, gap=2, lead=4)])
    assert frames_of(batch) == [f for _, _, f in frames]
    assert batch.ts_ns.tolist() == [5_000_006_000, 5_000_007_000]


def test_first_frame_numbering_continues_across_calls() -> None:
    src = source()
    one = src._batch([part([(1, 0, b"a" * 10)] * 3)])
    empty = src._batch([])
    two = src._batch([part([(2, 0, b"b" * 10)] * 2), part([(3, 0, b"c" * 10)] * 4)])
    three = src._batch([part([(4, 0, b"d" * 10)])])
    assert (one.first_frame, two.first_frame, three.first_frame) == (1, 4, 10)
    assert len(empty) == 0
    assert src.stats.frames == 10
    assert src.stats.bytes_read == 100


def test_an_empty_poll_gives_an_empty_batch() -> None:
    src = source(LINKTYPE_RAW)
    batch = src._batch([])
    assert len(batch) == 0
    assert batch.ts_ns.dtype == np.int64 and batch.caplen.dtype == np.uint32
    assert batch.wirelen.dtype == np.uint32 and batch.offset.dtype == np.int64
    assert batch.linktype.dtype == np.uint16 and batch.data.dtype == np.uint8
    assert src.stats.frames == 0 and src.stats.bytes_read == 0
    assert src._first_frame == 1
    assert len(decode(batch)) == 0


def test_the_linktype_column_is_the_handles() -> None:
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    batch = source(LINKTYPE_RAW)._batch([part([(1, 0, raw)]), part([(1, 1, raw)])])
    assert batch.linktype.tolist() == [LINKTYPE_RAW, LINKTYPE_RAW]
    h = decode(batch)
    assert h.kind.tolist() == [KIND_IP, KIND_IP]
    assert h.src_lo.tolist() == [ipv4("10.0.0.1")] * 2


def test_the_batch_decodes_to_the_packets() -> None:
    eth = Ether(src=SRC, dst=DST)
    tcp = bytes(eth / IP(src="192.168.1.10", dst="192.168.1.20") / TCP(sport=40000, dport=554, flags="S"))
    udp = bytes(eth / IP(src="192.168.1.20", dst="203.0.113.5") / UDP(sport=5353, dport=53) / (b"q" * 30))
    v6 = bytes(eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1000, dport=2000) / b"hi")
    arp = bytes(eth / ARP(op=1, psrc="192.168.1.10", pdst="192.168.1.1"))
    src = source()
    batch = src._batch([part([(10, 0, tcp), (10, 1, udp)], gap=2), part([(11, 0, v6), (11, 5, arp)], gap=6)])
    assert frames_of(batch) == [tcp, udp, v6, arp]
    h = decode(batch)
    assert h.kind.tolist() == [KIND_IP, KIND_IP, KIND_IP, KIND_ARP]
    assert h.ip_version.tolist()[:3] == [4, 4, 6]
    assert h.ip_proto.tolist()[:3] == [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDP]
    assert h.src_lo.tolist()[:2] == [ipv4("192.168.1.10"), ipv4("192.168.1.20")]
    assert h.dst_lo.tolist()[:2] == [ipv4("192.168.1.20"), ipv4("203.0.113.5")]
    v6_src = int(ipaddress.IPv6Address("2001:db8::1"))
    assert (int(h.src_hi[2]), int(h.src_lo[2])) == (v6_src >> 64, v6_src & (2**64 - 1))
    assert h.sport.tolist()[:3] == [40000, 5353, 1000]
    assert h.dport.tolist()[:3] == [554, 53, 2000]
    assert int(h.tcp_flags[0]) == TCP_SYN
    assert h.payload_len.tolist()[1:3] == [30, 2]
    assert int(h.src_mac[0]) == int(SRC.replace(":", ""), 16)
    assert h.arp_op.tolist()[3] == 1
    assert h.skip_counts() == {}


# -- poll(), with a fake handle --------------------------------------------------------------------


class FakePcapError(Exception):
    pass


class FakePcapy:
    PcapError = FakePcapError


class FakeHandle:
    """next_batch as pcapy-ng has it: (data, packed meta bytes); empty meta when the ring is empty."""

    def __init__(self, parts: list[tuple[bytes, np.ndarray[Any, Any]]]) -> None:
        self.parts = list(parts)
        self.asked: list[int] = []

    def next_batch(self, max_n: int) -> tuple[bytes, bytes]:
        self.asked.append(max_n)
        if not self.parts:
            return b"", b""
        data, meta = self.parts.pop(0)
        return data, meta.tobytes()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


def polling_source(handle: FakeHandle, fd: int) -> LiveSource:
    src = source()
    src._handle = handle
    src._fd = fd
    src._pcapy = FakePcapy
    src._raw, src._totals = [0, 0, 0], [0, 0, 0]
    return src


def test_poll_when_idle_gives_an_empty_batch(pipe: tuple[int, int]) -> None:
    handle = FakeHandle([part([(1, 0, b"x" * 20)])])
    src = polling_source(handle, pipe[0])  # nothing written: select times out
    batch = src.poll(timeout_s=0.01)
    assert len(batch) == 0
    assert handle.asked == []


def test_poll_joins_what_the_ring_holds(pipe: tuple[int, int]) -> None:
    a = [(1, 0, b"a" * 20), (1, 1, b"b" * 21)]
    b = [(2, 0, b"c" * 22)]
    handle = FakeHandle([part(a, gap=1), part(b, gap=1)])
    src = polling_source(handle, pipe[0])
    os.write(pipe[1], b"!")  # the fd is readable
    batch = src.poll(max_frames=100, timeout_s=1)
    assert frames_of(batch) == [b"a" * 20, b"b" * 21, b"c" * 22]
    assert handle.asked == [100, 98, 97, 97]  # the next read finds the ring empty: the poll hands over
    assert batch.first_frame == 1


def test_poll_stops_at_max_frames(pipe: tuple[int, int]) -> None:
    handle = FakeHandle([part([(1, i, bytes([i]) * 10) for i in range(3)]) for _ in range(4)])
    src = polling_source(handle, pipe[0])
    os.write(pipe[1], b"!")
    batch = src.poll(max_frames=6, timeout_s=1)
    assert len(batch) == 6
    assert handle.asked == [6, 3]
    assert len(handle.parts) == 2  # left for the next poll
    assert src.poll(max_frames=6, timeout_s=1).first_frame == 7


class FailingHandle(FakeHandle):
    def next_batch(self, max_n: int) -> tuple[bytes, bytes]:
        raise FakePcapError("read error:\n  the interface went down")

    def stats(self) -> tuple[int, int, int]:
        raise FakePcapError("no stats")


def test_poll_turns_a_pcap_error_into_a_one_line_capture_error(pipe: tuple[int, int]) -> None:
    src = polling_source(FailingHandle([]), pipe[0])
    os.write(pipe[1], b"!")
    with pytest.raises(CaptureError, match=r"^test0: capture failed: read error: the interface went down$"):
        src.poll(timeout_s=1)


def test_counters_keep_the_last_totals_when_stats_fail(pipe: tuple[int, int]) -> None:
    src = polling_source(FailingHandle([]), pipe[0])
    src._batch([part([(1, 0, b"x" * 10)] * 4)])
    src._raw, src._totals = [0, 0, 0], [5, 1, 0]
    # libpcap cannot tell: the totals so far stand (never a made-up 0 that would hide drops)
    assert src.counters() == CaptureCounters(received=5, dropped=1, interface_dropped=0)


def test_counters_survive_the_32_bit_wrap_of_pcap_stat() -> None:
    readings = iter([(4_294_967_000, 10, 0), (200, 20, 0), (500, 4_294_967_295, 1)])

    class Wrapping:
        def stats(self) -> tuple[int, int, int]:
            return next(readings)

    src = source()
    src._handle, src._pcapy = Wrapping(), FakePcapy
    src._raw, src._totals = [0, 0, 0], [0, 0, 0]
    assert src.counters() == CaptureCounters(4_294_967_000, 10, 0)
    assert src.counters() == CaptureCounters(4_294_967_496, 20, 0)  # received wrapped past 2**32
    assert src.counters() == CaptureCounters(4_294_967_796, 4_294_967_295, 1)


def test_counters_from_the_handle() -> None:
    class Stats:
        def stats(self) -> tuple[int, int, int]:
            return (1000, 7, 2)

    src = source()
    src._handle = Stats()
    src._pcapy = FakePcapy
    src._raw, src._totals = [0, 0, 0], [0, 0, 0]
    assert src.counters() == CaptureCounters(received=1000, dropped=7, interface_dropped=2)
