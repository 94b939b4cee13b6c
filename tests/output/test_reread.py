"""Reading a run's outputs back (rules rejudge / explain): faithful for our own files, and a damaged
line or file is skipped or refused with a message, never a crash."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auditor.cli import app
from auditor.errors import ConfigError
from auditor.output import reread
from auditor.output.reread import ReadStats, read_devices, read_flows, to_ns

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo-site.pcap"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "-o", str(out), "-q",
                                      "--rules", str(ROOT / "rules/examples")])
    assert result.exit_code == 0, result.output
    return out


def test_flows_read_back_are_the_flows_written(demo_run: Path) -> None:
    docs = [orjson.loads(line) for line in (demo_run / "flows.jsonl").read_bytes().splitlines()]
    stats = ReadStats()
    batches = list(read_flows(demo_run / "flows.jsonl", stats, batch=10))
    assert [len(b) for b in batches] == [10, 10, 9] and stats.flows == 29 and stats.skipped_lines == 0
    flows = [(int(b.flow_id[i]), int(b.src_port[i]), int(b.dst_port[i]), int(b.src_bytes[i]), b.domain[i])
             for b in batches for i in range(len(b))]  # type: ignore[index]
    assert flows == [(d["auditor"]["flow_id"], d["source"].get("port", 0), d["destination"].get("port", 0),
                      d["source"]["bytes"], d["destination"].get("domain")) for d in docs]
    assert [c for b in batches for c in (b.community_id or [])] == [d["network"]["community_id"] for d in docs]


@pytest.mark.parametrize("edit", [
    lambda d: d["destination"].__setitem__("port", 70000),
    lambda d: d["source"].__setitem__("packets", -1),
    lambda d: d["source"].__setitem__("packets", 2**63),
    lambda d: d["network"].__setitem__("iana_number", "999"),
    lambda d: d["event"].__setitem__("start", "9999-99-99"),
    lambda d: d["source"].__setitem__("ip", "not an address"),
    lambda d: d.pop("network"),
])
def test_a_damaged_flow_line_is_skipped_with_a_message(demo_run: Path, tmp_path: Path, edit: object) -> None:
    lines = (demo_run / "flows.jsonl").read_bytes().splitlines()
    bad = orjson.loads(lines[0])
    edit(bad)  # type: ignore[operator]
    path = tmp_path / "flows.jsonl"
    path.write_bytes(b"\n".join([orjson.dumps(bad), b"[]", b"{not json", *lines[1:]]) + b"\n")
    stats = ReadStats()
    flows = sum(len(b) for b in read_flows(path, stats))
    assert (flows, stats.skipped_lines) == (28, 3)
    assert stats.problems[0].startswith(f"{path}:1: not a flow document")


def test_a_damaged_devices_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text('{"devices": [', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not a readable devices\.json"):
        read_devices(path)


def test_odd_device_entries_are_skipped(demo_run: Path, tmp_path: Path) -> None:
    data = json.loads((demo_run / "devices.json").read_text())
    data["devices"] += [None, 5, {"mac": "zz"}, {"mac": "00-11-22-33-44-55", "vendor": {"lists": [1]}}]
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    stored = read_devices(path)
    assert len(stored.verdicts) == len(read_devices(demo_run / "devices.json").verdicts)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31)))
def test_to_ns_fast_path_equals_the_full_parse(when: datetime.datetime) -> None:
    text = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the outputs' own form takes the per-second cache
    assert to_ns(text) == reread._parse_ns(text)
    assert to_ns(text) == to_ns(text)  # again, from the cache
