"""End to end: the `auditor rules ...` commands (check, import-mud, rejudge, explain, learn) through the CLI.

rules/README.md ("Policies", "Rules tooling") is the documented behaviour; the demo capture
(pcaps/demo-site.pcap) and its example site policy (rules/examples/site.yaml) are the fixture, as in
tests/test_demo_policy.py, and small captures are built here with scapy where the demo has nothing.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import PcapWriter, wrpcap
from typer.testing import CliRunner, Result

from auditor.cli import app
from tests.protocols.test_tls import client_hello, sni

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "pcaps" / "demo-site.pcap"
EXAMPLES = ROOT / "rules" / "examples"
SITE = EXAMPLES / "site.yaml"
POLICIES = ROOT / "rules" / "policies"
LIGHTBULB = ROOT / "tests" / "policy" / "data" / "lightbulb2000.json"
MUD_URL = "https://lighting.example.com/lightbulb2000"

NUCTECH, DAHUA, EZVIZ, WIFI_HIK = "C0-9B-F4-B1-02-15", "3C-EF-8C-30-10-30", "58-8F-CF-40-10-40", "24-0A-C4-60-10-60"
# the demo's alerts under rules/examples (the header of site.yaml): (status, severity, rule id, device, destination)
SCANNER_UPLOAD = ("open", "critical", "scanner-lane", NUCTECH, "203.0.113.80")
EZVIZ_LITEDEV = ("open", "high", "cameras-to-vms/deny-0", EZVIZ, "198.51.100.41")
SSDP_WAIVED = ("waived", "high", "cameras-to-vms", EZVIZ, "239.255.255.250")
HIGH_RISK = [
    ("open", "high", "high-risk-countries/deny-0", EZVIZ, "203.0.113.123"),
    ("open", "high", "high-risk-countries/deny-0", DAHUA, "203.0.113.50"),
    ("open", "high", "high-risk-countries/deny-0", EZVIZ, "198.51.100.77"),
    ("open", "high", "high-risk-countries/deny-0", WIFI_HIK, "203.0.113.61"),
]
DEMO_ALERTS = sorted([SCANNER_UPLOAD, EZVIZ_LITEDEV, *HIGH_RISK, SSDP_WAIVED])

# "error: file:line: field: problem", one line (rules/README.md)
ERROR_LINE = re.compile(r"^error: (?P<file>.+?):(?P<line>\d+): (?P<field>[A-Za-z0-9_.\[\]-]+): (?P<problem>.+)$")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def brief(doc: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (doc["auditor"]["status"], doc["auditor"]["severity"], doc["rule"]["id"], doc["source"]["mac"],
            doc["destination"]["ip"])


def briefs(path: Path) -> list[tuple[str, str, str, str, str]]:
    return sorted(brief(d) for d in read_jsonl(path))


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


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_geoip: tuple[str, ...]) -> Path:
    """`auditor analyze` of the demo under rules/examples with the demo GeoIP databases. Shared: tests
    that rejudge write elsewhere (-o) or into a copy."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = invoke("analyze", DEMO, "--out", out, "-q", "--rules", EXAMPLES, *demo_geoip)
    assert result.exit_code == 0, result.output
    assert briefs(out / "alerts.jsonl") == DEMO_ALERTS
    return out


# --- a small capture, packet by packet (as tests/names/test_stage.py builds them) ------------------------

T0 = 1_800_000_000.0
CLIENT, CLIENT_MAC, GATEWAY_MAC = "192.168.1.10", "02:00:00:00:00:10", "02:00:00:00:00:01"
MACS = {CLIENT: CLIENT_MAC}


def tls_hello(name: str) -> bytes:
    return client_hello([0x1301, 0x1302, 0xC02F], [sni(name.encode("latin-1"))])


class Capture:
    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self._sport = 40000

    def add(self, t: float, pkt: Packet) -> None:
        pkt.time = T0 + t
        self.packets.append(pkt)

    def ip(self, src: str, dst: str) -> Packet:
        return Ether(src=MACS.get(src, GATEWAY_MAC), dst=MACS.get(dst, GATEWAY_MAC)) / IP(src=src, dst=dst)

    def dhcp_request(self, t: float, mac: str, options: list[Any]) -> None:
        chaddr = bytes.fromhex(mac.replace(":", ""))
        self.add(t, Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67) / BOOTP(op=1, chaddr=chaddr, xid=0x4D554400)
                 / DHCP(options=[("message-type", "request"), *options, "end"]))

    def dns_answer(self, t: float, client: str, name: str, address: str) -> None:
        message = DNS(id=0x4242, qr=1, rd=1, ra=1, qd=DNSQR(qname=name),
                      an=[DNSRR(rrname=name, type="A", ttl=300, rdata=address)])
        self.add(t, self.ip("9.9.9.9", client) / UDP(sport=53, dport=53000) / bytes(message))

    def tcp(self, t: float, client: str, server: str, dport: int, payload: bytes) -> None:
        self._sport += 1
        sport = self._sport
        self.add(t, self.ip(client, server) / TCP(sport=sport, dport=dport, flags="S", seq=1000))
        self.add(t + 0.01, self.ip(server, client) / TCP(sport=dport, dport=sport, flags="SA", seq=5000, ack=1001))
        self.add(t + 0.02, self.ip(client, server) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=5001))
        self.add(t + 0.03, self.ip(client, server) / TCP(sport=sport, dport=dport, flags="PA", seq=1001,
                                                          ack=5001) / payload)
        self.add(t + 0.04, self.ip(server, client) / TCP(sport=dport, dport=sport, flags="A", seq=5001,
                                                          ack=1001 + len(payload)))

    def write(self, path: Path) -> Path:
        with PcapWriter(str(path), linktype=1, sync=True) as writer:
            for pkt in sorted(self.packets, key=lambda p: float(p.time)):
                writer.write(pkt)
        return path


def lightbulb_capture(path: Path, announce: bool = True) -> Path:
    """The light bulb (192.168.1.10) asks DHCP for its address, announcing its MUD URL (option 161)
    when `announce`; looks up test.example.com; calls it on tcp/443; then calls another name."""
    cap = Capture()
    cap.dhcp_request(0.0, CLIENT_MAC, [("requested_addr", CLIENT)]
                     + ([("mud-url", MUD_URL.encode())] if announce else []))
    cap.dns_answer(1.0, CLIENT, "test.example.com", "198.51.100.7")
    cap.tcp(2.0, CLIENT, "198.51.100.7", 443, tls_hello("test.example.com"))
    cap.tcp(3.0, CLIENT, "203.0.113.9", 443, tls_hello("other.example.net"))
    return cap.write(path)


# --- rules check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "ids", "counts"), [
    (POLICIES, ["high-risk-countries", "listed-vendor-local-only", "surveillance-local-only"],
     "ok: 1 file(s), 3 policies, 1 destination sets, 0 waivers, 0 pins"),
    (EXAMPLES, ["scanner-lane", "high-risk-countries", "cameras-to-vms", "vms-stays-local",
                "listed-vendor-local-only"],
     "ok: 1 file(s), 5 policies, 4 destination sets, 1 waivers, 1 pins"),
])
def test_check_passes_the_shipped_rules_and_lists_what_they_hold(path: Path, ids: list[str], counts: str) -> None:
    result = invoke("rules", "check", path, "--today", "2026-11-02")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == counts
    # the policies, in file order, each with the file:line of its entry
    listed = [m.group(1) for line in lines if (m := re.match(r"^  \S+\.yaml:\d+: ([a-z0-9-]+): ", line))]
    assert listed == ids
    assert any(line.startswith("  needs a GeoIP country database: ") and "high-risk-countries" in line
               for line in lines)
    assert result.stderr == ""  # no warning: nothing has expired on the demo's day


def test_check_refuses_a_set_defined_in_two_files() -> None:
    # the shipped default and the example both define high-risk-countries: they are alternatives
    result = invoke("rules", "check", POLICIES, EXAMPLES)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "set 'high-risk-countries' is already defined at" in line and "default.yaml:" in line


def _policy(allow: str, waivers: str = "") -> str:
    return ("version: 1\n"  # 1
            "policies:\n"  # 2
            "  - id: p1\n"  # 3
            "    name: P one\n"  # 4
            "    devices:\n"  # 5
            "      - all: true\n"  # 6
            "    allow:\n"  # 7
            f"{allow}"  # 8...
            "    severity: high\n" + waivers)


UNKNOWN_VENDOR = _policy("      - local: true\n").replace("      - all: true\n", "      - vendors: nosuchvendor\n")
BAD_FILES = {
    "domain": (_policy('      - domains: ["exa mple.com"]\n'), 8, "policies[0].allow[0].domains[0]",
               "'exa mple.com' is not a domain name"),
    "unknown set": (_policy("      - set: nosuchset\n"), 8, "policies[0].allow[0].set",
                    "no destination set named 'nosuchset'"),
    "unknown vendor": (UNKNOWN_VENDOR, 6, "policies[0].devices[0].vendors[0]", "no vendor with id 'nosuchvendor'"),
    "network with host bits": (_policy("      - networks: 192.168.10.5/24\n"), 8, "policies[0].allow[0].networks[0]",
                               "192.168.10.5/24"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_check_names_file_line_and_field_of_a_bad_rule_file(tmp_path: Path, case: str) -> None:
    text, line, field, problem = BAD_FILES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = invoke("rules", "check", bad)
    assert result.exit_code == 2
    assert result.stdout == ""
    (only,) = result.stderr.splitlines()  # one line
    m = ERROR_LINE.match(only)
    assert m is not None, only
    assert (m["file"], int(m["line"]), m["field"]) == (str(bad), line, field)
    assert problem in m["problem"]


SEVERITY_IN_ALLOW = _policy("      - local: true\n        severity: high\n")  # severity on line 9
SEVERITY_IN_WAIVER = _policy("      - local: true\n", waivers=(
    "waivers:\n"  # 10
    "  - id: w1\n"  # 11
    "    devices:\n"  # 12
    "      - all: true\n"  # 13
    "    destinations:\n"  # 14
    "      - local: true\n"  # 15
    "        severity: low\n"  # 16
    "    expires: 2030-01-01\n"
    "    reason: test\n"))


@pytest.mark.parametrize("text", [SEVERITY_IN_ALLOW, SEVERITY_IN_WAIVER], ids=["allow", "waiver"])
def test_check_refuses_a_severity_where_none_belongs(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = invoke("rules", "check", bad)
    assert result.exit_code == 2
    (only,) = result.stderr.splitlines()
    assert only.startswith(f"error: {bad}:")
    assert "severity" in only


@pytest.mark.parametrize(("text", "line", "field"), [
    (SEVERITY_IN_ALLOW, 9, "policies[0].allow[0].severity"),
    (SEVERITY_IN_WAIVER, 16, "waivers[0].destinations[0].severity"),
], ids=["allow", "waiver"])
def test_check_locates_a_severity_where_none_belongs(tmp_path: Path, text: str, line: int, field: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = invoke("rules", "check", bad)
    m = ERROR_LINE.match(result.stderr.strip())
    assert m is not None, result.stderr
    assert (int(m["line"]), m["field"]) == (line, field)


@pytest.mark.parametrize(("today", "expired"), [("2027-01-01", True), ("2026-12-31", False)])
def test_check_warns_of_a_waiver_expired_by_today(today: str, expired: bool) -> None:
    result = invoke("rules", "check", EXAMPLES, "--today", today)
    assert result.exit_code == 0, result.output  # a warning, not an error
    warning = "waiver 'ezviz-upnp-search' expired on 2026-12-31"
    assert (warning in result.stderr) is expired  # expires is the last day it covers
    if expired:
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"warning: {SITE}:")


@pytest.mark.parametrize("today", ["2027-13-01", "tomorrow", "01/01/2027"])
def test_check_refuses_a_bad_today(today: str) -> None:
    result = invoke("rules", "check", EXAMPLES, "--today", today)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: --today {today}: not a date (YYYY-MM-DD)"


def test_check_accepts_a_mud_file_as_a_rule_file() -> None:
    result = invoke("rules", "check", LIGHTBULB)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "ok: 1 file(s), 1 policies, 0 destination sets, 0 waivers, 0 pins"
    assert ": mud-lighting-example-com-lightbulb2000: 0 deny, 1 allow, severity medium" in result.stdout


# --- rules import-mud ------------------------------------------------------------------------------------


def test_import_mud_to_stdout_lists_what_it_skipped_in_the_header() -> None:
    result = invoke("rules", "import-mud", LIGHTBULB)
    assert result.exit_code == 0, result.output
    text = result.stdout
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert f"# MUD URL: {MUD_URL}" in header
    assert "# Review before use: 1 warning:" in header
    (skipped,) = [line for line in header if "cl0-todev" in line]  # the to-device ACE
    assert "to-device ace cl0-todev (acl mud-76100-v6to): skipped" in skipped
    assert "mud_urls" in text and "test.example.com" in text
    doc = yaml.safe_load(text)
    (policy,) = doc["policies"]
    assert policy["id"] == "mud-lighting-example-com-lightbulb2000"
    assert policy["devices"] == [{"mud_urls": [MUD_URL]}]
    assert [{k: v for k, v in e.items() if k != "comment"} for e in policy["allow"]] == [
        {"domains": ["test.example.com"], "protocols": ["tcp"], "ports": [443]}]
    assert policy["severity"] == "medium"
    assert "cl0-todev" in result.stderr  # and the same warning on stderr


def test_import_mud_to_a_file_that_rules_check_loads(tmp_path: Path) -> None:
    out = tmp_path / "lightbulb.yaml"
    result = invoke("rules", "import-mud", LIGHTBULB, "-o", out, "--severity", "high")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote {out}: 1 ACE warning(s)" in result.stderr
    checked = invoke("rules", "check", out)
    assert checked.exit_code == 0, checked.output
    assert ": mud-lighting-example-com-lightbulb2000: 0 deny, 1 allow, severity high" in checked.stdout


def test_import_mud_adds_mac_and_vendor_selectors(tmp_path: Path) -> None:
    out = tmp_path / "lightbulb.yaml"
    result = invoke("rules", "import-mud", LIGHTBULB, "-o", out, "--mac", "AA:BB:CC:DD:EE:FF",
                    "--vendor", "hikvision")
    assert result.exit_code == 0, result.output
    (policy,) = yaml.safe_load(out.read_text())["policies"]
    assert policy["devices"] == [{"mud_urls": [MUD_URL]}, {"macs": ["AA:BB:CC:DD:EE:FF"]},
                                 {"vendors": ["hikvision"]}]
    assert invoke("rules", "check", out).exit_code == 0


def test_import_mud_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "notjson.json"
    bad.write_text("this is not JSON\n")
    result = invoke("rules", "import-mud", bad)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {bad}:1:1: not JSON")


def test_import_mud_refuses_json_that_is_not_a_mud_file(tmp_path: Path) -> None:
    bad = tmp_path / "other.json"
    bad.write_text('{"hello": "world"}\n')
    result = invoke("rules", "import-mud", bad)
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "not a MUD file" in result.stderr


@pytest.mark.parametrize(("flag", "value"), [("--mac", "not-a-mac"), ("--severity", "urgent"),
                                              ("--vendor", "Not An Id")])
def test_import_mud_refuses_bad_flag_values(flag: str, value: str) -> None:
    result = invoke("rules", "import-mud", LIGHTBULB, flag, value)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert repr(value) in result.stderr


def test_import_mud_to_a_file_refuses_an_unknown_vendor(tmp_path: Path) -> None:
    out = tmp_path / "lightbulb.yaml"
    result = invoke("rules", "import-mud", LIGHTBULB, "-o", out, "--vendor", "nosuchvendor")
    assert result.exit_code == 2
    assert "no vendor with id 'nosuchvendor'" in result.stderr


def test_import_mud_to_stdout_refuses_an_unknown_vendor() -> None:
    result = invoke("rules", "import-mud", LIGHTBULB, "--vendor", "nosuchvendor")
    assert result.exit_code == 2
    assert "nosuchvendor" in result.stderr


# --- a MUD file used as a policy, on a capture where the device announces its MUD URL -----------------------


@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
def test_mud_file_as_policy_judges_the_device_that_announced_its_url(tmp_path: Path, as_folder: bool) -> None:
    pcap = lightbulb_capture(tmp_path / "bulb.pcap")
    rules = LIGHTBULB
    if as_folder:  # a MUD *.json in a rules folder is a rule file too
        rules = tmp_path / "rules"
        rules.mkdir()
        shutil.copy(LIGHTBULB, rules / LIGHTBULB.name)
    out = tmp_path / "out"
    result = invoke("analyze", pcap, "--out", out, "-q", "--rules", rules)
    assert result.exit_code == 0, result.output
    flows = read_jsonl(out / "flows.jsonl")
    named = {f["destination"]["ip"]: (f["destination"].get("domain"), f["auditor"]["name_source"]) for f in flows}
    assert named["198.51.100.7"] == ("test.example.com", "sni")
    assert named["203.0.113.9"] == ("other.example.net", "sni")
    alerts = read_jsonl(out / "alerts.jsonl")
    by_destination = {a["destination"]["ip"]: a for a in alerts}
    assert "198.51.100.7" not in by_destination  # test.example.com tcp/443: the MUD file allows it
    other = by_destination["203.0.113.9"]  # any other name is not allowed
    assert (other["rule"]["id"], other["auditor"]["severity"], other["source"]["mac"]) == (
        "mud-lighting-example-com-lightbulb2000", "medium", "02-00-00-00-00-10")
    assert other["destination"]["domain"] == "other.example.net"
    assert {a["rule"]["id"] for a in alerts} == {"mud-lighting-example-com-lightbulb2000"}
    group = next(e for e in other["auditor"]["evidence"] if e["source"] == "policy-group")
    assert group["value"] == f"mud_urls: {MUD_URL}"


def test_mud_file_as_policy_selects_nobody_who_did_not_announce_its_url(tmp_path: Path) -> None:
    pcap = lightbulb_capture(tmp_path / "bulb.pcap", announce=False)
    out = tmp_path / "out"
    result = invoke("analyze", pcap, "--out", out, "-q", "--rules", LIGHTBULB)
    assert result.exit_code == 0, result.output
    assert read_jsonl(out / "alerts.jsonl") == []
    assert len(read_jsonl(out / "flows.jsonl")) >= 3  # the same flows, judged by no policy


def test_rejudge_and_explain_use_the_mud_url_recorded_in_devices_json(tmp_path: Path) -> None:
    pcap = lightbulb_capture(tmp_path / "bulb.pcap")
    out = tmp_path / "out"
    assert invoke("analyze", pcap, "--out", out, "-q").exit_code == 0  # the shipped default: no alert
    assert read_jsonl(out / "alerts.jsonl") == []
    result = invoke("rules", "rejudge", out, "--rules", LIGHTBULB)
    assert result.exit_code == 0, result.output
    alerts = read_jsonl(out / "alerts.jsonl")
    assert "203.0.113.9" in {a["destination"]["ip"] for a in alerts}
    assert "198.51.100.7" not in {a["destination"]["ip"] for a in alerts}
    flow = next(f for f in read_jsonl(out / "flows.jsonl") if f["destination"]["ip"] == "203.0.113.9")
    explained = invoke("rules", "explain", out, flow["network"]["community_id"], "--rules", LIGHTBULB)
    assert explained.exit_code == 0, explained.output
    policy = "policy 'mud-lighting-example-com-lightbulb2000'"
    assert f"{policy}: selects it by devices[0] (mud_urls: {MUD_URL})" in explained.stdout
    assert "=> finding, severity medium (no allow entry matches)" in explained.stdout


def test_mud_policy_reference_names_no_line_none(tmp_path: Path) -> None:
    checked = invoke("rules", "check", LIGHTBULB)
    assert ":None" not in checked.stdout
    pcap = lightbulb_capture(tmp_path / "bulb.pcap")
    out = tmp_path / "out"
    assert invoke("analyze", pcap, "--out", out, "-q", "--rules", LIGHTBULB).exit_code == 0
    for alert in read_jsonl(out / "alerts.jsonl"):
        assert not alert["rule"]["reference"].endswith(":None")


# --- rules rejudge -----------------------------------------------------------------------------------------


def _without_verdict_source(doc: dict[str, Any]) -> dict[str, Any]:
    """The alert, less the value of its device-verdict evidence: a rejudge has only devices.json, and says so."""
    doc = json.loads(json.dumps(doc))
    for e in doc["auditor"]["evidence"]:
        if e["field"] == "source.mac":
            e.pop("value")
    return doc


def test_rejudge_with_the_same_rules_gives_the_same_alerts(
        tmp_path: Path, demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    target = tmp_path / "again"
    result = invoke("rules", "rejudge", demo_run, "--rules", EXAMPLES, "-o", target, *demo_geoip)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("6 alerts (1 critical, 5 high), 1 waived, from 29 judged of 29 flows; wrote ")
    first, again = read_jsonl(demo_run / "alerts.jsonl"), read_jsonl(target / "alerts.jsonl")
    keys = [(d["event"]["id"], *brief(d), d.get("auditor", {}).get("waiver")) for d in first]
    assert [(d["event"]["id"], *brief(d), d.get("auditor", {}).get("waiver")) for d in again] == keys
    # and everything else too: names, GeoIP, counters, evidence of the decision
    assert [_without_verdict_source(d) for d in again] == [_without_verdict_source(d) for d in first]
    # rejudge.json says what judged this alerts.jsonl, beside the run's own summary
    record = json.loads((target / "rejudge.json").read_text())
    summary = json.loads((demo_run / "summary.json").read_text())
    assert [r["sha256"] for r in record["rules"]] == [r["sha256"] for r in summary["rules"]]
    assert (record["flows_read"], record["flows_judged"], record["alerts"], record["alerts_waived"]) == (29, 29, 6, 1)
    assert record["alerts_by_severity"] == summary["alerts_by_severity"]


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _no_waiver(text: str) -> str:
    return text[: text.index("\nwaivers:")] + "\n"


def _waiver_expired(text: str) -> str:
    return _edit(text, "expires: 2026-12-31", "expires: 2026-11-01")  # the day before the capture


def _ezvizlife_allowed(text: str) -> str:
    text = _edit(text, ".hikvision.com, .ezvizlife.com, ", ".hikvision.com, ")
    return _edit(text, "      - set: camera-housekeeping\n",
                 "      - set: camera-housekeeping\n      - domains: .ezvizlife.com\n")


def _scanner_lane_low(text: str) -> str:
    return _edit(text, "    severity: critical\n", "    severity: low\n")


SSDP_OPEN = ("open", "high", "cameras-to-vms", EZVIZ, "239.255.255.250")
EDITS = {
    "waiver removed": (_no_waiver, sorted([SCANNER_UPLOAD, EZVIZ_LITEDEV, *HIGH_RISK, SSDP_OPEN])),
    "waiver expired": (_waiver_expired, sorted([SCANNER_UPLOAD, EZVIZ_LITEDEV, *HIGH_RISK, SSDP_OPEN])),
    "ezvizlife allowed": (_ezvizlife_allowed, sorted([SCANNER_UPLOAD, *HIGH_RISK, SSDP_WAIVED])),
    "scanner-lane low": (_scanner_lane_low, sorted([("open", "low", "scanner-lane", NUCTECH, "203.0.113.80"),
                                                    EZVIZ_LITEDEV, *HIGH_RISK, SSDP_WAIVED])),
}


@pytest.mark.parametrize("edit", EDITS)
def test_rejudge_follows_the_rules_as_they_are_now(
        tmp_path: Path, demo_run: Path, demo_geoip: tuple[str, ...], edit: str) -> None:
    change, expected = EDITS[edit]
    site = tmp_path / "site.yaml"
    site.write_text(change(SITE.read_text()))
    target = tmp_path / "again"
    result = invoke("rules", "rejudge", demo_run, "--rules", site, "-o", target, *demo_geoip)
    assert result.exit_code == 0, result.output
    assert briefs(target / "alerts.jsonl") == expected
    assert briefs(demo_run / "alerts.jsonl") == DEMO_ALERTS  # -o: the run's own file is left alone
    ssdp = [d for d in read_jsonl(target / "alerts.jsonl") if d["destination"]["ip"] == "239.255.255.250"]
    if edit == "waiver removed":
        assert "waiver" not in ssdp[0]["auditor"]
    elif edit == "waiver expired":
        # judged by the flow's time: the waiver ended the day before, so the alert is open again
        assert "waiver-expired" in [e["source"] for e in ssdp[0]["auditor"]["evidence"]]
        assert "waiver 'ezviz-upnp-search' expired on 2026-11-01" in result.stderr
    waived = sum(1 for d in expected if d[0] == "waived")
    assert f", {waived} waived, from 29 judged of 29 flows" in result.stdout


def test_rejudge_without_out_rewrites_the_runs_alerts(
        tmp_path: Path, demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    flows_before = (run / "flows.jsonl").read_bytes()
    site = tmp_path / "site.yaml"
    site.write_text(_no_waiver(SITE.read_text()))
    result = invoke("rules", "rejudge", run, "--rules", site, *demo_geoip)
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith(f"wrote {run / 'alerts.jsonl'}")
    assert briefs(run / "alerts.jsonl") == EDITS["waiver removed"][1]
    assert (run / "flows.jsonl").read_bytes() == flows_before
    assert not list(run.glob(".*.tmp"))  # replaced whole


def test_rejudge_without_geoip_warns_that_countries_matched_nothing(tmp_path: Path, demo_run: Path) -> None:
    target = tmp_path / "again"
    result = invoke("rules", "rejudge", demo_run, "--rules", EXAMPLES, "-o", target)
    assert result.exit_code == 0, result.output
    assert "no GeoIP country database was given" in result.stderr
    # the high-risk-countries guard cannot deny: the cameras' CN flows fall to cameras-to-vms instead
    rules = {d["rule"]["id"] for d in read_jsonl(target / "alerts.jsonl")}
    assert "high-risk-countries/deny-0" not in rules
    assert "cameras-to-vms" in rules


@pytest.mark.parametrize("missing", ["flows.jsonl", "devices.json"])
def test_rejudge_needs_an_analyze_output_folder(tmp_path: Path, demo_run: Path, missing: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("flows.jsonl", "devices.json"):
        if name != missing:
            shutil.copy(demo_run / name, run / name)
    result = invoke("rules", "rejudge", run, "--rules", EXAMPLES)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (f"error: {run / missing}: missing: give the output folder of an "
                                     "`auditor analyze` run")
    assert not (run / "alerts.jsonl").exists()


def test_rejudge_with_a_pin_keeps_the_makers_protocol_evidence(tmp_path: Path) -> None:
    pins = tmp_path / "pins.yaml"
    pins.write_text('version: 1\npins:\n  - mac: "24:0a:c4:60:10:60"\n    class: camera\n    note: Wi-Fi camera\n')
    out = tmp_path / "out"
    assert invoke("analyze", DEMO, "--out", out, "-q", "-r", POLICIES, "-r", pins).exit_code == 0
    first = briefs(out / "alerts.jsonl")
    assert ("open", "high", "listed-vendor-local-only", WIFI_HIK, "203.0.113.61") in first
    target = tmp_path / "again"
    assert invoke("rules", "rejudge", out, "-r", POLICIES, "-r", pins, "-o", target).exit_code == 0
    assert briefs(target / "alerts.jsonl") == first


def test_rejudge_forgets_a_pin_removed_from_the_rules(
        tmp_path: Path, demo_geoip: tuple[str, ...]) -> None:
    pins = tmp_path / "pins.yaml"
    pins.write_text('version: 1\npins:\n  - mac: "58:8f:cf:40:10:40"\n    class: computer\n    note: not a camera\n')
    out = tmp_path / "out"
    assert invoke("analyze", DEMO, "--out", out, "-q", "-r", EXAMPLES, "-r", pins, *demo_geoip).exit_code == 0
    assert EZVIZ_LITEDEV not in briefs(out / "alerts.jsonl")  # pinned a computer: cameras-to-vms skips it
    target = tmp_path / "again"
    assert invoke("rules", "rejudge", out, "-r", EXAMPLES, "-o", target, *demo_geoip).exit_code == 0
    assert briefs(target / "alerts.jsonl") == DEMO_ALERTS  # as analyze gives without the pin


# --- rules explain -----------------------------------------------------------------------------------------


def _alert_id(run: Path, rule_id: str, destination: str) -> str:
    (doc,) = [d for d in read_jsonl(run / "alerts.jsonl")
              if d["rule"]["id"] == rule_id and d["destination"]["ip"] == destination]
    return str(doc["event"]["id"])


def _flow(run: Path, src: str, dst: str, port: int) -> dict[str, Any]:
    (doc,) = [f for f in read_jsonl(run / "flows.jsonl")
              if (f["source"]["ip"], f["destination"]["ip"], f["destination"].get("port")) == (src, dst, port)]
    return doc


def _explain(run: Path, what: str, geoip: tuple[str, ...]) -> list[str]:
    result = invoke("rules", "explain", run, what, "--rules", EXAMPLES, *geoip)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _index(lines: list[str], text: str) -> int:
    (found,) = [i for i, line in enumerate(lines) if text in line]
    return found


def test_explain_the_scanner_upload_alert(demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    lines = _explain(demo_run, _alert_id(demo_run, "scanner-lane", "203.0.113.80"), demo_geoip)
    assert lines[0].startswith("flow ") and "1:Nk01Qcb+WwlAucWqHe0otv6F/F8=" in lines[0]
    assert "192.168.20.15 -> 203.0.113.80 tcp/8080; destination name: (never named)" in lines[1]
    assert f"device {NUCTECH.replace('-', '')}: nuctech screening-scanner" in lines[2]
    selected = _index(lines, "policy 'scanner-lane': selects it by devices[0] (classes: screening-scanner)")
    assert lines[selected + 1:] == ["    allow[0] 192.168.20.2/32 udp port 514: no match",
                                    "    => finding, severity critical (no allow entry matches)"]
    assert not any("high-risk-countries" in line for line in lines)  # the first policy decided: the last tried


def test_explain_a_high_risk_country_alert_tries_the_policies_in_order(
        demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    lines = _explain(demo_run, _alert_id(demo_run, "high-risk-countries/deny-0", "203.0.113.50"), demo_geoip)
    assert "destination country CN, AS 64498" in lines[3]
    tried = [_index(lines, "policy 'scanner-lane': does not select this device"),
             _index(lines, "policy 'high-risk-countries': selects it by devices[0] (all devices)"),
             _index(lines, "deny[0] set high-risk-countries: MATCHES"),
             _index(lines, "=> finding, severity high (deny[0])")]
    assert tried == sorted(tried)
    assert tried[-1] == len(lines) - 1
    assert not any("cameras-to-vms" in line for line in lines)  # decided by the guard's deny


def test_explain_an_approved_flow_by_community_id_and_by_flow_id(
        demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    flow = _flow(demo_run, "192.168.10.60", "192.168.10.1", 53)  # the Wi-Fi camera's DNS to the gateway
    by_cid = _explain(demo_run, flow["network"]["community_id"], demo_geoip)
    assert _index(by_cid, "policy 'high-risk-countries': selects it") < _index(
        by_cid, "no entry decides, and the policy has no severity (a guard): on to the next policy") < _index(
        by_cid, "policy 'cameras-to-vms': selects it by devices[0] (classes: camera, nvr)")
    assert by_cid[-2:] == ["    allow[0] set site-services: MATCHES", "    => approved: not a finding"]
    assert not any("=> finding" in line for line in by_cid)
    by_flow_id = _explain(demo_run, str(flow["auditor"]["flow_id"]), demo_geoip)
    assert by_flow_id == by_cid


def test_explain_the_waived_ssdp_search_names_the_waiver(demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    lines = _explain(demo_run, _alert_id(demo_run, "cameras-to-vms", "239.255.255.250"), demo_geoip)
    assert "    => finding, severity high (no allow entry matches)" in lines
    assert "waiver 'ezviz-upnp-search' covers it: waived until 2026-12-31 (SEC-142" in lines[-1]


def test_explain_an_unknown_id_exits_2(demo_run: Path, demo_geoip: tuple[str, ...]) -> None:
    result = invoke("rules", "explain", demo_run, "0123456789abcdef", "--rules", EXAMPLES, *demo_geoip)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: no flow or alert 0123456789abcdef in {demo_run}"


def test_explain_shows_control_characters_of_a_wire_name_escaped(tmp_path: Path) -> None:
    cap = Capture()
    cap.tcp(1.0, CLIENT, "203.0.113.9", 443, tls_hello("evil\x1b[31m.example.com"))
    pcap = cap.write(tmp_path / "escape.pcap")
    out = tmp_path / "out"
    assert invoke("analyze", pcap, "--out", out, "-q").exit_code == 0
    (flow,) = read_jsonl(out / "flows.jsonl")
    # a name with control characters is no host name: the names stage leaves the flow unnamed
    assert "domain" not in flow["destination"] and flow["auditor"]["name_source"] == "none"
    # a flows.jsonl edited (or written by an older version) with such a name is still shown inert
    flow["destination"]["domain"] = "evil\x1b[31m.example.com\n  => approved: not a finding"
    flow["auditor"]["name_source"] = "sni"
    (out / "flows.jsonl").write_text(json.dumps(flow) + "\n", encoding="utf-8")
    result = invoke("rules", "explain", out, flow["network"]["community_id"])
    assert result.exit_code == 0, result.output
    assert "destination name: evil\\x1b[31m.example.com\\x0a  => approved: not a finding (from sni)" in result.stdout
    assert "\x1b" not in result.stdout
    assert not any(line.startswith("  => approved") for line in result.stdout.splitlines())


# --- rules learn -------------------------------------------------------------------------------------------


def test_learn_proposes_rules_under_which_the_demo_gives_no_alert(tmp_path: Path) -> None:
    learned = tmp_path / "learned.yaml"
    result = invoke("rules", "learn", DEMO, "-o", learned)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {learned}: ") and "from 29 flows of 10 devices" in result.stdout
    checked = invoke("rules", "check", learned)
    assert checked.exit_code == 0, checked.output
    assert re.search(r"^  \S+learned\.yaml:\d+: learned-nuctech-screening-scanner: 0 deny, 2 allow, severity medium$",
                     checked.stdout, re.MULTILINE)
    out = tmp_path / "out"
    result = invoke("analyze", DEMO, "--out", out, "-q", "--rules", learned)
    assert result.exit_code == 0, result.output
    assert read_jsonl(out / "alerts.jsonl") == []
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["flows_judged"], summary["findings"], summary["alerts"]) == (29, 0, 0)
    # what was seen is what is approved, never-named destinations included (flagged for review)
    text = learned.read_text()
    assert "203.0.113.80/32" in text and "never named" in text


def _external_only(path: Path) -> Path:
    cap = Capture()
    cap.tcp(1.0, "198.51.100.20", "203.0.113.9", 443, tls_hello("example.net"))  # neither end local
    return cap.write(path)


@pytest.mark.parametrize("capture", ["empty", "external only"])
def test_learn_with_no_local_device_flow_has_nothing_to_learn(tmp_path: Path, capture: str) -> None:
    pcap = tmp_path / "capture.pcap"
    if capture == "empty":
        wrpcap(str(pcap), [])
    else:
        _external_only(pcap)
    learned = tmp_path / "learned.yaml"
    result = invoke("rules", "learn", pcap, "-o", learned)
    assert result.exit_code == 2
    assert "error: nothing to learn: no flow was started by a local device" in result.stderr
    assert not learned.exists()
