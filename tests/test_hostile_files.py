"""Damaged capture files: the whole engine never raises; it reads what it can and counts the rest."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.utils import PcapNgWriter

from auditor.config import Settings
from auditor.decode.types import SKIP_REASONS
from auditor.pipeline import analyze_files

DEMO = Path(__file__).resolve().parents[1] / "pcaps" / "demo-site.pcap"


def _pcapng_bytes(tmp: Path) -> bytes:
    path = tmp / "seed.pcapng"
    writer = PcapNgWriter(str(path))
    for i in range(12):
        pkt = Ether() / Dot1Q(vlan=i) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000 + i, dport=80)
        writer.write(pkt)
        writer.write(Ether() / IPv6() / UDP(sport=53, dport=5000 + i) / (b"x" * i))
    writer.close()
    return path.read_bytes()


def _mutate(blob: bytes, edits: list[tuple[int, int, int]], cut: int) -> bytes:
    data = bytearray(blob)
    for pos, length, value in edits:
        start = pos % max(len(data), 1)
        data[start : start + length] = bytes([value]) * min(length, len(data) - start)
    return bytes(data[: max(len(data) - cut, 0)])


def _check_run(path: Path, prefetch: bool) -> None:
    flows: list[object] = []
    stats = analyze_files([path], Settings(), flows.append, prefetch=prefetch, batch_frames=64)
    if stats.errors:  # the damage hit the file header: one clear line, nothing read
        assert stats.frames == 0
        assert len(stats.errors) == 1 and path.name in stats.errors[0]
        return
    decoded = stats.ip_packets + stats.arp_frames + stats.other_l2_frames
    skipped_frames = sum(n for reason, n in stats.skipped.items() if reason in SKIP_REASONS)
    assert stats.frames == decoded + skipped_frames
    packets = sum(int(f.src_packets.sum() + f.dst_packets.sum()) for f in flows)  # type: ignore[attr-defined]
    assert packets == stats.ip_packets
    assert len(stats.warnings) <= 1


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 64), st.integers(0, 255)), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, cut=st.integers(0, 200))
def test_damaged_pcap_never_raises(tmp_path: Path, edits: list[tuple[int, int, int]], cut: int) -> None:
    path = tmp_path / "damaged.pcap"
    path.write_bytes(_mutate(DEMO.read_bytes(), edits, cut))
    _check_run(path, prefetch=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, cut=st.integers(0, 200))
def test_damaged_pcapng_never_raises(tmp_path: Path, edits: list[tuple[int, int, int]], cut: int) -> None:
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(_mutate(_pcapng_bytes(tmp_path), edits, cut))
    _check_run(path, prefetch=False)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, cut=st.integers(0, 200))
def test_damaged_capture_never_raises_through_the_reader_process(
    tmp_path: Path, edits: list[tuple[int, int, int]], cut: int
) -> None:
    path = tmp_path / "damaged.pcap"
    path.write_bytes(_mutate(DEMO.read_bytes(), edits, cut))
    _check_run(path, prefetch=True)
