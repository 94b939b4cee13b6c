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
HIKVISION, OEM_DAHUA, WIFI_HIK = "4C-BD-8F-21-10-21", "00-1F-54-50-10-50", "24-0A-C4-60-10-60"
# (device MAC, device IP, destination, services, flows, packets and bytes each way, first and last seen)
UPLOAD = (NUCTECH, "192.168.20.15", "203.0.113.80", ("tcp/8080",), 1, 8, 4591, 4, 333,
          "2026-11-02T09:00:41.000000Z", "2026-11-02T09:00:41.287600Z")
EASY4IP = (DAHUA, "192.168.10.30", "203.0.113.50", ("tcp/443",), 1, 7, 837, 4, 1393,
           "2026-11-02T09:00:10.100000Z", "2026-11-02T09:00:11.320200Z")
EZVIZ_CLOUD = (EZVIZ, "192.168.10.40", "198.51.100.77", ("udp/31007",), 1, 3, 486, 3, 393,
               "2026-11-02T09:00:12.000000Z", "2026-11-02T09:00:42.062000Z")
# cloud calls with a DNS look-up first (fingerprints.md B7); the Wi-Fi camera's is judged only because its
# SADP Hello and Hik-Connect SNI name Hikvision: its OUI is Espressif's
EZVIZ_LITEDEV = (EZVIZ, "192.168.10.40", "198.51.100.41", ("tcp/443",), 1, 7, 838, 4, 1393,
                 "2026-11-02T09:00:08.050000Z", "2026-11-02T09:00:09.390200Z")
HIK_CONNECT = (WIFI_HIK, "192.168.10.60", "203.0.113.61", ("tcp/443",), 1, 7, 840, 4, 1393,
               "2026-11-02T09:00:32.050000Z", "2026-11-02T09:00:33.310200Z")
# the EZVIZ camera's SSDP M-SEARCH for an internet gateway (UPnP port mapping, fingerprints.md B7, B9): local
# multicast, but rules/examples/site.yaml allows cameras the discovery groups only for ONVIF, SADP and DHIP
EZVIZ_IGD_SEARCH = (EZVIZ, "192.168.10.40", "239.255.255.250", ("udp/1900",), 1, 1, 179, 0, 0,
                    "2026-11-02T09:00:10.000000Z", "2026-11-02T09:00:10.000000Z")
COVERED = ["ndaa-889", "fcc-covered"]
LABELS = {NUCTECH: ["entity-list"], DAHUA: COVERED, EZVIZ: COVERED, HIKVISION: COVERED, OEM_DAHUA: COVERED,
          WIFI_HIK: COVERED}
MAKERS = {NUCTECH: "Nuctech Company Limited", DAHUA: "Zhejiang Dahua Technology Co., Ltd.",
          EZVIZ: "Hangzhou Ezviz Software Co., Ltd.", HIKVISION: "Hangzhou Hikvision Digital Technology Co., Ltd.",
          OEM_DAHUA: "Zhejiang Dahua Technology Co., Ltd.", WIFI_HIK: "Hangzhou Hikvision Digital Technology Co., Ltd."}


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
    # exactly the six alerts the header of rules/examples/site.yaml lists
    assert [_summary(a) for a in alerts] == [
        ("critical", "scanner-lane", *UPLOAD),
        ("high", "cameras-to-vms", *EZVIZ_LITEDEV),
        ("high", "cameras-to-vms", *EZVIZ_IGD_SEARCH),
        ("high", "cameras-to-vms", *EASY4IP),
        ("high", "cameras-to-vms", *EZVIZ_CLOUD),
        ("high", "cameras-to-vms", *HIK_CONNECT),
    ]
    for a in alerts:
        mac = a["source"]["mac"]
        assert a["event"]["kind"] == "alert"
        assert a["rule"]["ruleset"] == "demo-site"
        assert a["device"] == {"id": mac, "manufacturer": MAKERS[mac]}
        assert list(a["labels"]) == LABELS[mac]
        multicast = a["destination"]["ip"].startswith("239.")
        assert a["network"]["direction"] == ("internal" if multicast else "outbound")
    assert alerts[0]["network"]["vlan"] == {"id": "20"}
    # the Wi-Fi camera is judged only because its SADP Hello and Hik-Connect SNI name Hikvision
    wifi = next(a for a in alerts if a["source"]["mac"] == WIFI_HIK)
    assert [e["source"] for e in wifi["auditor"]["evidence"]] == ["protocol", "policy-group", "policy-allow"]
    assert summary["alerts_by_severity"] == {"low": 0, "medium": 0, "high": 5, "critical": 1}
    # the 18 flows cameras and the scanner start, and the VMS's 5 (RTSP x3, HTTP, mDNS)
    assert (summary["flows_judged"], summary["findings"]) == (23, 6)
    assert summary["oem_relabels"] == 2
    # the console lists the covered devices with their lists, the OEM relabels, and the findings
    for text in ("6 alerts (1 critical, 5 high)", "dahua", "ezviz", "hikvision", "nuctech", "ndaa-889",
                 "fcc-covered", "entity-list", "203.0.113.80", "scanner-lane", "cameras-to-vms", "OEM relabels",
                 "Lorex", "Espressif"):
        assert text in output


def test_demo_under_the_shipped_default_flags_every_listed_device_going_off_site(tmp_path: Path) -> None:
    alerts, summary, _ = _run(tmp_path)
    # What the code gives today: the 3 documented alerts, and the cloud calls of the EZVIZ camera (to its
    # bootstrap server) and of the Hikvision Wi-Fi camera (to Hik-Connect), the latter judged only because
    # issue 4's classifier names it Hikvision from SADP and its SNI, whatever its Espressif OUI says.
    assert [_summary(a) for a in alerts] == [
        ("high", "listed-vendor-local-only", *EZVIZ_LITEDEV),
        ("high", "listed-vendor-local-only", *EASY4IP),
        ("high", "listed-vendor-local-only", *EZVIZ_CLOUD),
        ("high", "listed-vendor-local-only", *HIK_CONNECT),
        ("high", "listed-vendor-local-only", *UPLOAD),
    ]
    # the Hikvision camera at .21, the Axis camera and the Lorex-OUI Dahua talk only to local hosts (multicast
    # discovery is local): judged, never alerted
    assert (summary["flows_judged"], summary["findings"], summary["alerts"]) == (18, 5, 5)


@pytest.mark.parametrize(("level", "code"), [("critical", 1), ("high", 1)])
def test_demo_fail_on(tmp_path: Path, level: str, code: int) -> None:
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "o"), "-q",
                                      "--rules", str(EXAMPLES), "--fail-on", level])
    assert result.exit_code == code
    default = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "d"), "-q",
                                       "--fail-on", "critical"])
    assert default.exit_code == 0  # the default policy has nothing above high
