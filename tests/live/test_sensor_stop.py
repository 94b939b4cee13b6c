"""The sensor's stop path: open flows are ended in parts, some formatted by the sensor itself, and every
flow reaches flows.jsonl exactly once, as `auditor analyze` writes it (no interface, no root needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter
from typer.testing import CliRunner

from auditor.capture import open_capture
from auditor.capture.live import CaptureCounters
from auditor.cli import _rule_set, _signatures, _vendor_catalog, app
from auditor.config import Settings
from auditor.devices.oui import OuiRegistry
from auditor.live import sensor as sensor_module
from auditor.live.sensor import Sensor, SensorInputs

FLOWS = 37


class FileSource:
    """A capture file served through the interface the sensor polls (poll, counters, close)."""

    def __init__(self, path: Path) -> None:
        self._source = open_capture(str(path))
        self._batches: Iterator[Any] = self._source.batches(16)
        self.received = 0

    def poll(self) -> Any:
        batch = next(self._batches)
        self.received += len(batch)
        return batch

    def counters(self) -> CaptureCounters:
        return CaptureCounters(self.received, 0, 0)

    def close(self) -> None:
        self._source.close()


def _capture(path: Path) -> Path:
    with PcapWriter(str(path), linktype=1) as writer:
        for i in range(FLOWS):
            t = 1_700_000_000 + i * 0.01
            layer4 = TCP(sport=40000 + i, dport=443, flags="S") if i % 3 else UDP(sport=40000 + i, dport=123)
            pkt = Ether(src="02:00:00:00:00:10", dst="02:00:00:00:00:01") / IP(src="192.168.1.10",
                                                                             dst=f"198.51.100.{i % 7 + 1}") / layer4
            pkt.time = t
            writer.write(pkt)
    return path


def _flow_keys(folder: Path) -> list[tuple[object, ...]]:
    keys = []
    for path in sorted(folder.glob("flows*.jsonl")):
        for line in path.read_bytes().splitlines():
            doc = orjson.loads(line)
            keys.append((doc["network"]["community_id"], doc["source"]["port"], doc["destination"]["ip"],
                         doc["network"]["packets"], doc["network"]["bytes"], doc["auditor"]["end_reason"]))
    return sorted(keys)


@pytest.mark.parametrize(("behind", "formatted_here"), [(10**6, 0), (0, 8), (1, None)],
                         ids=["writer-formats-all", "sensor-formats-all", "balanced"])
def test_open_flows_end_in_parts_and_each_is_written_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          behind: int, formatted_here: int | None) -> None:
    capture = _capture(tmp_path / "open.pcap")
    monkeypatch.setattr(sensor_module, "STOP_PART_FLOWS", 5)
    monkeypatch.setattr(sensor_module, "STOP_WRITER_BEHIND", behind)
    catalog = _vendor_catalog(None)
    inputs = SensorInputs(
        interface="test", settings=Settings(), out_dir=tmp_path / "sensor", catalog=catalog,
        signatures=_signatures(None, catalog), registry=OuiRegistry.default(tmp_path / "state"),
        load_rules=lambda: _rule_set(None, catalog), geo=None, geo_databases=(),
    )
    source = FileSource(capture)
    sensor = Sensor(inputs, source=source)
    parts: list[int] = []
    write = sensor._write_flows
    sensor._write_flows = lambda item: (parts.append(isinstance(item, bytes)), write(item))  # type: ignore[method-assign]
    try:
        while True:
            sensor.engine.process(source.poll())
    except StopIteration:
        pass
    assert sensor.engine.table.active == FLOWS
    sensor.shutdown()

    assert len(parts) == 8  # 37 open flows in parts of 5
    if formatted_here is not None:  # the parts the sensor formatted itself, handed over as lines
        assert sum(parts) == formatted_here
    result = CliRunner().invoke(app, ["analyze", str(capture), "--out", str(tmp_path / "analyze")])
    assert result.exit_code == 0, result.output
    got = _flow_keys(tmp_path / "sensor")
    assert len(got) == FLOWS
    assert got == _flow_keys(tmp_path / "analyze")
