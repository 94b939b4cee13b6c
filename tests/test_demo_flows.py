"""End to end on the shipped demo capture: `auditor analyze` finds exactly the flows pcaps/README.md lists."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from auditor.cli import app

DEMO = Path(__file__).resolve().parents[1] / "pcaps" / "demo-site.pcap"

# (transport, source ip, port, destination ip, port, packets each way, direction, vlan, source MAC, end)
EXPECTED = {
    ("tcp", "192.168.10.5", 50554, "192.168.10.21", 554, 21, 20, "internal", None, "00-14-22-0A-00-05", "tcp-close"),
    ("tcp", "192.168.10.30", 41234, "203.0.113.50", 443, 7, 4, "outbound", None, "3C-EF-8C-30-10-30", "tcp-close"),
    ("tcp", "192.168.10.100", 51001, "198.51.100.10", 443, 7, 4, "outbound", None, "00-1B-21-3A-4B-5C", "tcp-close"),
    ("tcp", "192.168.10.5", 50880, "192.168.10.22", 80, 4, 4, "internal", None, "00-14-22-0A-00-05", "tcp-close"),
    ("tcp", "192.168.10.5", 50562, "192.168.10.30", 554, 19, 16, "internal", None, "00-14-22-0A-00-05", "tcp-close"),
    # FIN both ways at 41.29 s, but the capture ends (42.06 s) inside the 5 s close linger
    (
        "tcp",
        "192.168.20.15",
        49810,
        "203.0.113.80",
        8080,
        8,
        4,
        "outbound",
        "20",
        "C0-9B-F4-B1-02-15",
        "end-of-capture",
    ),
    ("udp", "192.168.10.21", 123, "192.168.10.1", 123, 1, 1, "internal", None, "4C-BD-8F-21-10-21", "end-of-capture"),
    ("udp", "192.168.10.100", 51000, "192.168.10.1", 53, 1, 1, "internal", None, "00-1B-21-3A-4B-5C", "end-of-capture"),
    ("udp", "192.168.10.1", 67, "192.168.10.22", 68, 2, 0, "internal", None, "00-0C-42-1A-2B-01", "end-of-capture"),
    ("udp", "0.0.0.0", 68, "255.255.255.255", 67, 2, 0, "internal", None, "AC-CC-8E-4A-1B-2C", "end-of-capture"),
    (
        "udp",
        "fe80::aecc:8eff:fe4a:1b2c",
        5353,
        "ff02::fb",
        5353,
        1,
        0,
        "internal",
        None,
        "AC-CC-8E-4A-1B-2C",
        "end-of-capture",
    ),
    (
        "udp",
        "192.168.10.40",
        49320,
        "198.51.100.77",
        31007,
        3,
        3,
        "outbound",
        None,
        "58-8F-CF-40-10-40",
        "end-of-capture",
    ),
    ("udp", "192.168.10.30", 40123, "192.168.10.1", 53, 1, 1, "internal", None, "3C-EF-8C-30-10-30", "end-of-capture"),
    (
        "udp",
        "fe80::214:22ff:fe0a:5",
        5353,
        "ff02::fb",
        5353,
        1,
        0,
        "internal",
        None,
        "00-14-22-0A-00-05",
        "end-of-capture",
    ),
    ("udp", "192.168.20.15", 40514, "192.168.20.2", 514, 3, 0, "internal", "20", "C0-9B-F4-B1-02-15", "end-of-capture"),
    # what the cameras say on the wire (fingerprints.md B1, B4, B7, B8, B9): multicast announcements, cloud look-ups
    (
        "udp",
        "192.168.10.21",
        37020,
        "239.255.255.250",
        37020,
        1,
        0,
        "internal",
        None,
        "4C-BD-8F-21-10-21",
        "end-of-capture",
    ),
    (
        "udp",
        "192.168.10.21",
        3702,
        "239.255.255.250",
        3702,
        1,
        0,
        "internal",
        None,
        "4C-BD-8F-21-10-21",
        "end-of-capture",
    ),
    (
        "udp",
        "192.168.10.30",
        37810,
        "239.255.255.251",
        37810,
        1,
        0,
        "internal",
        None,
        "3C-EF-8C-30-10-30",
        "end-of-capture",
    ),
    ("udp", "192.168.10.40", 49300, "192.168.10.1", 53, 1, 1, "internal", None, "58-8F-CF-40-10-40", "end-of-capture"),
    ("tcp", "192.168.10.40", 49301, "198.51.100.41", 443, 7, 4, "outbound", None, "58-8F-CF-40-10-40", "tcp-close"),
    # its vendor's NTP server, looked up first (time.ys7.com)
    ("udp", "192.168.10.40", 49303, "192.168.10.1", 53, 1, 1, "internal", None, "58-8F-CF-40-10-40", "end-of-capture"),
    ("udp", "192.168.10.40", 123, "203.0.113.123", 123, 1, 1, "outbound", None, "58-8F-CF-40-10-40", "end-of-capture"),
    (
        "udp",
        "192.168.10.40",
        49302,
        "239.255.255.250",
        1900,
        1,
        0,
        "internal",
        None,
        "58-8F-CF-40-10-40",
        "end-of-capture",
    ),
    # the Dahua-made camera under Lorex's OUI: DHIP announcement, RTSP to the VMS
    (
        "udp",
        "192.168.10.50",
        37810,
        "239.255.255.251",
        37810,
        1,
        0,
        "internal",
        None,
        "00-1F-54-50-10-50",
        "end-of-capture",
    ),
    ("tcp", "192.168.10.5", 50566, "192.168.10.50", 554, 17, 12, "internal", None, "00-14-22-0A-00-05", "tcp-close"),
    # the Hikvision Wi-Fi camera under Espressif's OUI: SADP announcement, DNS, TLS to Hik-Connect
    (
        "udp",
        "192.168.10.60",
        37020,
        "239.255.255.250",
        37020,
        1,
        0,
        "internal",
        None,
        "24-0A-C4-60-10-60",
        "end-of-capture",
    ),
    ("udp", "192.168.10.60", 50060, "192.168.10.1", 53, 1, 1, "internal", None, "24-0A-C4-60-10-60", "end-of-capture"),
    ("tcp", "192.168.10.60", 50061, "203.0.113.61", 443, 7, 4, "outbound", None, "24-0A-C4-60-10-60", "tcp-close"),
    (
        "ipv6-icmp",
        "fd00:10::100",
        None,
        "fd00:10::1",
        None,
        2,
        2,
        "internal",
        None,
        "00-1B-21-3A-4B-5C",
        "end-of-capture",
    ),
}


def test_demo_capture_gives_the_documented_flows(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    got = set()
    for line in (out / "flows.jsonl").read_bytes().splitlines():
        doc = orjson.loads(line)
        src, dst, net = doc["source"], doc["destination"], doc["network"]
        got.add(
            (
                net["transport"],
                src["ip"],
                src.get("port"),
                dst["ip"],
                dst.get("port"),
                src["packets"],
                dst["packets"],
                net["direction"],
                net.get("vlan", {}).get("id"),
                src.get("mac"),
                doc["auditor"]["end_reason"],
            )
        )
        assert net["packets"] == src["packets"] + dst["packets"]
        assert net["community_id"].startswith("1:")
    assert got == EXPECTED
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["packets"], summary["ip_packets"], summary["arp_frames"], summary["flows"]) == (217, 208, 9, 29)
    assert summary["skipped"] == {}


def test_demo_capture_gives_the_documented_devices(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    devices = {d["mac"]: d for d in orjson.loads((out / "devices.json").read_bytes())["devices"]}
    got = {
        mac: (
            d["role"],
            d["vendor"]["id"] if d["vendor"] else None,
            d["vendor"]["class"] if d["vendor"] else None,
            sorted(m["id"] for m in d["vendor"]["lists"]) if d["vendor"] else [],
            [a["ip"] for a in d["ips"]],
        )
        for mac, d in devices.items()
    }
    assert got == {
        "00-0C-42-1A-2B-01": ("gateway", None, None, [], ["192.168.10.1", "fd00:10::1"]),
        "00-14-22-0A-00-05": ("host", None, None, [], ["192.168.10.5", "fe80::214:22ff:fe0a:5"]),
        "00-1B-21-3A-4B-5C": ("host", None, None, [], ["192.168.10.100", "fd00:10::100"]),
        "3C-EF-8C-30-10-30": ("host", "dahua", "nvr", ["fcc-covered", "ndaa-889"], ["192.168.10.30"]),
        "4C-BD-8F-21-10-21": ("host", "hikvision", "camera", ["fcc-covered", "ndaa-889"], ["192.168.10.21"]),
        "58-8F-CF-40-10-40": ("host", "ezviz", "camera", ["fcc-covered", "ndaa-889"], ["192.168.10.40"]),
        "AC-CC-8E-4A-1B-2C": ("host", "axis", "camera", [], ["192.168.10.22", "fe80::aecc:8eff:fe4a:1b2c"]),
        "C0-9B-F4-B1-02-15": ("host", "nuctech", "screening-scanner", ["entity-list"], ["192.168.20.15"]),
        # OUI Lorex, but DHIP and the RTSP banner say Dahua; OUI Espressif, but SADP and Hik-Connect say Hikvision
        "00-1F-54-50-10-50": ("host", "dahua", "camera", ["fcc-covered", "ndaa-889"], ["192.168.10.50"]),
        "24-0A-C4-60-10-60": ("host", "hikvision", "camera", ["fcc-covered", "ndaa-889"], ["192.168.10.60"]),
    }
    assert devices["00-1F-54-50-10-50"]["oui"]["organization"] == "Lorex Technology Inc."
    assert devices["24-0A-C4-60-10-60"]["oui"]["organization"] == "Espressif Inc."
    assert devices["C0-9B-F4-B1-02-15"]["vlans"] == [20]
    assert devices["00-0C-42-1A-2B-01"]["vlans"] == [20]  # it routes the scanner's upload, tagged VLAN 20
    assert devices["58-8F-CF-40-10-40"]["vendor"]["parents"] == ["hikvision"]
    assert (out / "devices.csv").read_text().count("\n") == 11
