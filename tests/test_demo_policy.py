"""End to end on the demo site: the exact alerts under the shipped default and under rules/examples.

pcaps/README.md describes the capture; rules/examples/site.yaml lists the findings it should give.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from auditor.cli import app

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pcaps" / "demo-site.pcap"
EXAMPLES = ROOT / "rules" / "examples"

NUCTECH, DAHUA, EZVIZ = "C0-9B-F4-B1-02-15", "3C-EF-8C-30-10-30", "58-8F-CF-40-10-40"
# (device MAC, device IP, destination, services, flows, packets and bytes each way, first and last seen)
UPLOAD = (NUCTECH, "192.168.20.15", "203.0.113.80", ("tcp/8080",), 1, 8, 4591, 4, 333,
          "2026-11-02T09:00:41.000000Z", "2026-11-02T09:00:41.287600Z")
EASY4IP = (DAHUA, "192.168.10.30", "203.0.113.50", ("tcp/443",), 1, 7, 837, 4, 1393,
           "2026-11-02T09:00:10.100000Z", "2026-11-02T09:00:11.320200Z")
EZVIZ_CLOUD = (EZVIZ, "192.168.10.40", "198.51.100.77", ("udp/31007",), 1, 3, 486, 3, 393,
               "2026-11-02T09:00:12.000000Z", "2026-11-02T09:00:42.062000Z")
LABELS = {NUCTECH: ["entity-list"], DAHUA: ["ndaa-889", "fcc-covered"], EZVIZ: ["ndaa-889", "fcc-covered"]}
MAKERS = {NUCTECH: "Nuctech Company Limited", DAHUA: "Zhejiang Dahua Technology Co., Ltd.",
          EZVIZ: "Hangzhou Ezviz Software Co., Ltd."}


def _summary(doc: dict) -> tuple[object, ...]:  # type: ignore[type-arg]
    a = doc["auditor"]
    return (
        a["severity"], doc["rule"]["id"],
        doc["source"]["mac"], doc["source"]["ip"], doc["destination"]["ip"], tuple(a["services"]), a["flows"],
        doc["source"]["packets"], doc["source"]["bytes"], doc["destination"]["packets"], doc["destination"]["bytes"],
        doc["event"]["start"], doc["event"]["end"],
    )


def _run(tmp_path: Path, *args: str) -> tuple[list[dict], dict, str]:  # type: ignore[type-arg]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]
    return alerts, json.loads((out / "summary.json").read_text()), result.output


def test_demo_under_the_example_site_policy_gives_exactly_the_documented_alerts(tmp_path: Path) -> None:
    alerts, summary, output = _run(tmp_path, "--rules", str(EXAMPLES))
    assert [_summary(a) for a in alerts] == [
        ("critical", "scanner-lane", *UPLOAD),
        ("high", "cameras-to-vms", *EASY4IP),
        ("high", "cameras-to-vms", *EZVIZ_CLOUD),
    ]
    for a in alerts:
        mac = a["source"]["mac"]
        assert a["event"]["kind"] == "alert"
        assert a["rule"]["ruleset"] == "demo-site"
        assert a["device"] == {"id": mac, "manufacturer": MAKERS[mac]}
        assert list(a["labels"]) == LABELS[mac]
        assert a["network"]["direction"] == "outbound"
    assert alerts[0]["network"]["vlan"] == {"id": "20"}
    assert summary["alerts_by_severity"] == {"low": 0, "medium": 0, "high": 2, "critical": 1}
    # the 8 flows cameras and the scanner start, and the VMS's 4 (RTSP x2, HTTP, mDNS): all approved but 3
    assert (summary["flows_judged"], summary["findings"]) == (12, 3)
    # the console lists the covered devices with their lists, and the findings
    for text in ("3 alerts (1 critical, 2 high)", "dahua", "ezviz", "nuctech", "ndaa-889", "fcc-covered",
                 "entity-list", "203.0.113.80", "scanner-lane", "cameras-to-vms"):
        assert text in output


def test_demo_under_the_shipped_default_flags_every_listed_device_going_off_site(tmp_path: Path) -> None:
    alerts, summary, _ = _run(tmp_path)
    assert [_summary(a) for a in alerts] == [
        ("high", "listed-vendor-local-only", *EASY4IP),
        ("high", "listed-vendor-local-only", *EZVIZ_CLOUD),
        ("high", "listed-vendor-local-only", *UPLOAD),
    ]
    # the Hikvision and Axis cameras talk only to local hosts: judged, never alerted
    assert (summary["flows_judged"], summary["findings"], summary["alerts"]) == (8, 3, 3)


@pytest.mark.parametrize(("level", "code"), [("critical", 1), ("high", 1)])
def test_demo_fail_on(tmp_path: Path, level: str, code: int) -> None:
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "o"), "-q",
                                      "--rules", str(EXAMPLES), "--fail-on", level])
    assert result.exit_code == code
    default = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "d"), "-q",
                                       "--fail-on", "critical"])
    assert default.exit_code == 0  # the default policy has nothing above high
