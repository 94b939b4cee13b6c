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


EZVIZ_NTP = (EZVIZ, "192.168.10.40", "203.0.113.123", ("udp/123",), 1, 1, 90, 1, 90,
             "2026-11-02T09:00:09.020000Z", "2026-11-02T09:00:09.310000Z")
# destination -> (name, where it came from, country, AS) under the demo's made-up GeoIP databases
NAMED = {
    "203.0.113.80": (None, "none", "CN", 64498),  # the upload's HTTP Host is an address literal
    "198.51.100.41": ("litedev.ezvizlife.com", "sni", "IE", 64497),
    "203.0.113.123": ("time.ys7.com", "dns", "CN", 64498),  # NTP carries no name: the camera's DNS answer
    "203.0.113.50": ("www.easy4ipcloud.com", "sni", "CN", 64498),
    "198.51.100.77": (None, "none", "CN", 64498),  # never looked up
    "203.0.113.61": ("litedev.hik-connect.com", "sni", "CN", 64498),
    "239.255.255.250": (None, "none", None, None),
}


@pytest.fixture(scope="module")
def demo_geoip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The demo's GeoIP databases, built as `make demo` builds them (pcaps/make_demo_geoip.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_demo_geoip", ROOT / "pcaps" / "make_demo_geoip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    country, asn = module.build(tmp_path_factory.mktemp("geoip"))
    return ("--geoip-country", str(country), "--geoip-asn", str(asn))


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


def test_demo_under_the_example_site_policy_gives_exactly_the_documented_alerts(
        tmp_path: Path, demo_geoip: tuple[str, ...]) -> None:
    alerts, summary, output = _run(tmp_path, "--rules", str(EXAMPLES), *demo_geoip)
    # exactly the alerts the header of rules/examples/site.yaml lists: six open, then the waived one
    assert [(a["auditor"]["status"], *_summary(a)) for a in alerts] == [
        ("open", "critical", "scanner-lane", *UPLOAD),
        ("open", "high", "cameras-to-vms/deny-0", *EZVIZ_LITEDEV),  # a vendor cloud, though not in CN
        ("open", "high", "high-risk-countries/deny-0", *EZVIZ_NTP),
        ("open", "high", "high-risk-countries/deny-0", *EASY4IP),
        ("open", "high", "high-risk-countries/deny-0", *EZVIZ_CLOUD),
        ("open", "high", "high-risk-countries/deny-0", *HIK_CONNECT),
        ("waived", "high", "cameras-to-vms", *EZVIZ_IGD_SEARCH),
    ]
    for a in alerts:
        mac, destination = a["source"]["mac"], a["destination"]
        assert a["event"]["kind"] == "alert"
        assert a["rule"]["ruleset"] == "demo-site"
        assert a["device"] == {"id": mac, "manufacturer": MAKERS[mac]}
        assert list(a["labels"]) == LABELS[mac]
        multicast = destination["ip"].startswith("239.")
        assert a["network"]["direction"] == ("internal" if multicast else "outbound")
        name, source, country, asn = NAMED[destination["ip"]]
        assert (destination.get("domain"), a["auditor"]["name_source"]) == (name, source)
        assert (destination.get("geo", {}).get("country_iso_code"), destination.get("as", {}).get("number")) == (
            country, asn)
    assert alerts[0]["network"]["vlan"] == {"id": "20"}
    # the Wi-Fi camera is judged only because its SADP Hello and Hik-Connect SNI name Hikvision
    wifi = next(a for a in alerts if a["source"]["mac"] == WIFI_HIK)
    assert [e["source"] for e in wifi["auditor"]["evidence"]] == ["protocol", "policy-group", "policy-deny"]
    waived = alerts[-1]["auditor"]
    assert waived["waiver"] == "ezviz-upnp-search"
    assert [e["source"] for e in waived["evidence"]][-1] == "waiver"
    assert summary["alerts_by_severity"] == {"low": 0, "medium": 0, "high": 5, "critical": 1}
    assert (summary["alerts_waived"], summary["findings_waived"]) == (1, 1)
    # every flow a site device starts (the guard selects them all); 7 findings, one waived
    assert (summary["flows_judged"], summary["findings"]) == (29, 7)
    assert summary["oem_relabels"] == 2
    assert [(g["database_type"], g["layout"]) for g in summary["geoip"]] == [
        ("GeoLite2-Country", "maxmind-country"), ("GeoLite2-ASN", "maxmind-asn")]
    # the console lists the covered devices with their lists, the OEM relabels, and the findings with names
    for text in ("6 alerts (1 critical, 5 high)", "1 waived", "dahua", "ezviz", "hikvision", "nuctech", "ndaa-889",
                 "fcc-covered", "entity-list", "203.0.113.80", "scanner-lane", "cameras-to-vms", "OEM relabels",
                 "Lorex", "Espressif", "time.ys7.com", "(never named)"):
        assert text in output


def test_every_outbound_demo_flow_carries_its_name_source_country_and_asn(
        tmp_path: Path, demo_geoip: tuple[str, ...]) -> None:
    _run(tmp_path, "--rules", str(EXAMPLES), *demo_geoip)
    flows = [orjson.loads(line) for line in (tmp_path / "out" / "flows.jsonl").read_bytes().splitlines()]
    outbound = [f for f in flows if f["network"]["direction"] == "outbound"]
    seen = {}
    for f in outbound:
        d = f["destination"]
        seen[d["ip"]] = (d.get("domain"), f["auditor"]["name_source"], d["geo"]["country_iso_code"], d["as"]["number"])
    assert seen == {ip: v for ip, v in NAMED.items() if not ip.startswith("239.")} | {
        "198.51.100.10": ("www.example.com", "sni", "US", 64496)}  # the reception PC's web visit
    # local flows have no GeoIP fields; local hosts are named from DHCP and mDNS where they said a name
    internal = [f for f in flows if f["network"]["direction"] == "internal"]
    assert all("geo" not in f["destination"] and "as" not in f["destination"] for f in internal)
    assert {f["destination"].get("domain") for f in internal if f["auditor"]["name_source"] == "mdns"} == {
        "axis-accc8e4a1b2c.local"}


def test_demo_under_the_shipped_default_flags_every_listed_device_going_off_site(tmp_path: Path) -> None:
    alerts, summary, _ = _run(tmp_path)
    # Without a GeoIP database the high-risk-countries guard cannot match (a warning says so), so every
    # flow a listed vendor's device sends off site is a listed-vendor-local-only finding.
    assert [_summary(a) for a in alerts] == [
        ("high", "listed-vendor-local-only", *EZVIZ_LITEDEV),
        ("high", "listed-vendor-local-only", *EZVIZ_NTP),
        ("high", "listed-vendor-local-only", *EASY4IP),
        ("high", "listed-vendor-local-only", *EZVIZ_CLOUD),
        ("high", "listed-vendor-local-only", *HIK_CONNECT),
        ("high", "listed-vendor-local-only", *UPLOAD),
    ]
    assert any("no GeoIP country database was given" in w for w in summary["warnings"])
    # the Hikvision camera at .21, the Axis camera and the Lorex-OUI Dahua talk only to local hosts: judged,
    # never alerted; every device is judged, since the guard selects them all
    assert (summary["flows_judged"], summary["findings"], summary["alerts"]) == (29, 6, 6)


def test_demo_under_the_shipped_default_with_geoip_names_the_high_risk_country(
        tmp_path: Path, demo_geoip: tuple[str, ...]) -> None:
    alerts, summary, _ = _run(tmp_path, *demo_geoip)
    assert [(a["rule"]["id"], a["destination"]["ip"]) for a in alerts] == [
        ("listed-vendor-local-only", "198.51.100.41"),  # IE: not a high-risk country, still a listed vendor
        ("high-risk-countries/deny-0", "203.0.113.123"),
        ("high-risk-countries/deny-0", "203.0.113.50"),
        ("high-risk-countries/deny-0", "198.51.100.77"),
        ("high-risk-countries/deny-0", "203.0.113.61"),
        ("high-risk-countries/deny-0", "203.0.113.80"),
    ]
    assert not any("GeoIP" in w for w in summary["warnings"])


@pytest.mark.parametrize(("level", "code"), [("critical", 1), ("high", 1)])
def test_demo_fail_on(tmp_path: Path, level: str, code: int) -> None:
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "o"), "-q",
                                      "--rules", str(EXAMPLES), "--fail-on", level])
    # a waived finding does not fail the run: the waived SSDP search is high, and --fail-on high
    # still exits 1 only because of the open high alerts
    assert result.exit_code == code
    default = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(tmp_path / "d"), "-q",
                                       "--fail-on", "critical"])
    assert default.exit_code == 0  # the default policy has nothing above high
