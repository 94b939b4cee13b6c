"""The committed demo capture is exactly what pcaps/make_demo.py builds, and scapy reads it back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("scapy")

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
DEMO = PCAPS / "demo-site.pcap"
DEMO_PACKETS = 217  # update together with pcaps/README.md when devices are added to make_demo.py
START_S = 1_793_610_000  # 2026-11-02T09:00:00Z


def _load_make_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo", PCAPS / "make_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_make_demo_rebuilds_committed_pcap_byte_for_byte(tmp_path: Path) -> None:
    assert DEMO.is_file(), f"{DEMO} is missing: run python pcaps/make_demo.py"
    out = tmp_path / "demo-site.pcap"
    _load_make_demo().main([str(out)])
    assert out.read_bytes() == DEMO.read_bytes(), "pcaps/demo-site.pcap drifted: rerun pcaps/make_demo.py"


def test_demo_pcap_reads_back_with_expected_packets_in_time_order() -> None:
    from scapy.utils import PcapReader

    with PcapReader(str(DEMO)) as reader:
        times = [float(pkt.time) for pkt in reader]
    assert len(times) == DEMO_PACKETS
    assert times[0] == START_S
    assert times == sorted(times)
