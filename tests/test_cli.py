"""The `auditor` command as a user runs it: files in, flows.jsonl + summary.json out, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from typer.testing import CliRunner

from auditor.cli import app

runner = CliRunner()
CAM, VMS, CLOUD = "192.168.10.21", "192.168.10.5", "203.0.113.50"


@pytest.fixture
def small_pcap(tmp_path: Path) -> Path:
    cam = Ether(src="4c:bd:8f:11:22:33", dst="00:11:22:33:44:55")
    vms = Ether(src="00:11:22:33:44:55", dst="4c:bd:8f:11:22:33")
    pkts = [
        cam / IP(src=CAM, dst=VMS) / TCP(sport=40000, dport=554, flags="S"),
        vms / IP(src=VMS, dst=CAM) / TCP(sport=554, dport=40000, flags="SA"),
        cam / IP(src=CAM, dst=VMS) / TCP(sport=40000, dport=554, flags="A"),
        cam / IP(src=CAM, dst=CLOUD) / UDP(sport=5000, dport=6000) / (b"x" * 100),
    ]
    for i, p in enumerate(pkts):
        p.time = 1_793_610_000 + i
    path = tmp_path / "small.pcap"
    wrpcap(str(path), pkts)
    return path


def test_analyze_writes_flows_and_summary(small_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(out)])
    assert result.exit_code == 0, result.output
    flows = [orjson.loads(line) for line in (out / "flows.jsonl").read_bytes().splitlines()]
    assert len(flows) == 2
    rtsp = next(f for f in flows if f["network"]["transport"] == "tcp")
    assert rtsp["source"]["ip"] == CAM
    assert rtsp["destination"]["port"] == 554
    assert (rtsp["source"]["packets"], rtsp["destination"]["packets"]) == (2, 1)
    assert rtsp["network"]["direction"] == "internal"
    udp = next(f for f in flows if f["network"]["transport"] == "udp")
    assert udp["network"]["direction"] == "outbound"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["packets"] == 4
    assert summary["flows"] == 2
    assert summary["errors"] == []
    assert "4 packets" in result.output
    assert "2 devices: 1 from listed vendors" in result.output
    assert "hikvision" in result.output
    devices = json.loads((out / "devices.json").read_text())["devices"]
    assert [d["vendor"]["id"] if d["vendor"] else None for d in devices] == [None, "hikvision"]


def test_analyze_local_net_flag_changes_direction(small_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["analyze", str(small_pcap), "--out", str(out), "--local-net", "192.168.10.0/24",
            "--local-net", "203.0.113.0/24", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    flows = [orjson.loads(line) for line in (out / "flows.jsonl").read_bytes().splitlines()]
    assert {f["network"]["direction"] for f in flows} == {"internal"}


def test_analyze_bad_local_net_is_a_one_line_error(small_pcap: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"),
                                 "--local-net", "10.0.0.300/8"])
    assert result.exit_code == 2
    assert "10.0.0.300/8" in result.output
    assert not (tmp_path / "o").exists()


def test_analyze_not_a_capture_exits_2_but_reads_the_other_files(small_pcap: Path, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not a capture\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(junk), str(small_pcap), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "notes.txt" in errors[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["packets"] == 4
    assert len(summary["errors"]) == 1


def test_analyze_json_prints_summary(small_pcap: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["flows"] == 2


def test_analyze_truncated_capture_warns_and_keeps_what_it_holds(small_pcap: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = small_pcap.read_bytes()
    cut.write_bytes(data[:-20])
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(cut), "--out", str(out), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["packets"] == 3
    # one warning for the cut file (the other: the default policy's country guard has no GeoIP database)
    about_file = [w for w in summary["warnings"] if "cut.pcap" in w]
    assert len(about_file) == 1 and "truncated" in about_file[0]
    assert all("cut.pcap" in w or "GeoIP" in w for w in summary["warnings"])


def test_every_command_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "analyze" in result.output
    for command in app.registered_commands:
        assert command.callback is not None and command.callback.__doc__, command.name


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("auditor ")


def test_oui_lookup_names_vendors_and_refuses_local_and_group_macs() -> None:
    result = runner.invoke(app, ["oui", "lookup", "4c:bd:8f:11:22:33", "02:11:22:33:44:55", "01:00:5e:00:00:01"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("4C-BD-8F-11-22-33  4C-BD-8F/24  Hangzhou Hikvision")
    assert "locally administered" in lines[1]
    assert "group (multicast)" in lines[2]


def test_oui_lookup_json_and_bad_mac() -> None:
    result = runner.invoke(app, ["oui", "lookup", "C0-9B-F4-B1-02-15", "--json"])
    assert result.exit_code == 0
    row = json.loads(result.stdout)
    assert (row["block"], row["organization"]) == ("C0-9B-F4-B/28", "Nuctech Company Limited")
    assert row["table"]["date"] >= "2024-08-25"
    bad = runner.invoke(app, ["oui", "lookup", "not-a-mac"])
    assert bad.exit_code == 2
    assert "not a MAC address" in bad.output


def test_oui_update_writes_the_state_directory_which_then_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    manuf = tmp_path / "manuf"
    manuf.write_text("#   Last-Modified: Sun, 01 Nov 2026 08:01:19 GMT\n4C:BD:8F\tTest\tA Test Renamed Org\n")
    result = runner.invoke(app, ["oui", "update", "--from", str(manuf)])
    assert result.exit_code == 0, result.output
    assert "wrote 1 assignments" in result.output and "2026-11-01" in result.output
    assert (tmp_path / "state" / "oui.tsv.gz").is_file()
    looked = runner.invoke(app, ["oui", "lookup", "4c:bd:8f:00:00:01"])
    assert "A Test Renamed Org" in looked.output


def test_oui_update_from_junk_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    junk = tmp_path / "junk"
    junk.write_text("nothing here\n")
    result = runner.invoke(app, ["oui", "update", "--from", str(junk)])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and "junk" in result.output
    assert not (tmp_path / "state" / "oui.tsv.gz").exists()


def _alerts(out: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]


def test_analyze_judges_flows_by_the_shipped_policy_without_rules(small_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (alert,) = _alerts(out)
    assert alert["rule"]["id"] == "listed-vendor-local-only"  # type: ignore[index]
    assert alert["rule"]["ruleset"] == "default"  # type: ignore[index]
    assert alert["source"] == {"ip": CAM, "mac": "4C-BD-8F-11-22-33", "packets": 1, "bytes": 142}
    assert alert["destination"] == {"ip": CLOUD, "port": 6000, "packets": 0, "bytes": 0}
    assert alert["event"]["severity"] == 73  # type: ignore[index]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["alerts"], summary["alerts_by_severity"]["high"], summary["findings"]) == (1, 1, 1)
    assert summary["flows_judged"] == 2  # the camera started both flows; the VMS is governed by no policy
    assert [Path(r["path"]).name for r in summary["rules"]] == ["default.yaml"]
    assert "1 alerts (1 high)" in result.output
    assert "203.0.113.50" in result.output


@pytest.mark.parametrize(("level", "code"), [("low", 1), ("medium", 1), ("high", 1), ("critical", 0), ("HIGH", 1)])
def test_analyze_fail_on_exits_1_at_or_above_the_level(small_pcap: Path, tmp_path: Path, level: str,
                                                       code: int) -> None:
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"), "-q", "--fail-on", level])
    assert result.exit_code == code, result.output
    assert (tmp_path / "o" / "alerts.jsonl").is_file()


def test_analyze_fail_on_unknown_level_is_a_usage_error(small_pcap: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"), "--fail-on", "urgent"])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_analyze_rules_that_approve_the_flow_give_no_alert(small_pcap: Path, tmp_path: Path) -> None:
    rules = tmp_path / "site.yaml"
    rules.write_text(
        "version: 1\npolicies:\n  - id: cams\n    name: Cameras\n    devices:\n      - vendors: hikvision\n"
        "    allow:\n      - local: true\n      - networks: 203.0.113.0/24\n        protocols: udp\n"
        "        ports: 6000-6001\n    severity: critical\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(out), "--rules", str(rules),
                                 "--fail-on", "low", "-q"])
    assert result.exit_code == 0, result.output
    assert _alerts(out) == []
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["flows_judged"], summary["findings"]) == (2, 0)


def test_analyze_bad_rule_file_is_one_line_exit_2_and_leaves_earlier_output(small_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["analyze", str(small_pcap), "--out", str(out), "-q"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "site.yaml"
    bad.write_text("version: 1\npolicies:\n  - id: cams\n    name: Cameras\n    devices:\n      - classes: camera\n"
                   "    allow:\n      - networks: 10.0.0.300/32\n    severity: high\n")
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(out), "--rules", str(bad)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {bad}:8: policies[0].allow[0].networks[0]: '10.0.0.300/32' is not a network "
        "(an address or CIDR such as 10.0.0.0/8)"
    ]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_analyze_capture_error_wins_over_fail_on(small_pcap: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture")
    result = runner.invoke(app, ["analyze", str(junk), str(small_pcap), "--out", str(tmp_path / "o"), "-q",
                                 "--fail-on", "low"])
    assert result.exit_code == 2
    assert len(_alerts(tmp_path / "o")) == 1


def test_alert_tally_counts_every_alert_and_keeps_the_most_severe_then_largest() -> None:
    from auditor.cli import TOP_ALERTS, _AlertTally
    from auditor.policy.types import Alert

    def alert(i: int, severity: str, sent: int) -> Alert:
        return Alert(f"id{i}", "r", "R", "rs", None, "f:1", severity, i + 1, None, ("10.0.0.1",), "203.0.113.1",
                     False, ((6, 443),), (), 1, 1, sent, 1, 0, 0, 1, (), ())

    alerts = [alert(i, ("low", "medium", "high", "critical")[i % 4], sent=i) for i in range(40)]
    tally = _AlertTally()
    assert list(tally.count(alerts)) == alerts  # passes every alert through, in order
    assert dict(tally.by_severity) == {"low": 10, "medium": 10, "high": 10, "critical": 10}
    expected = sorted(alerts, key=lambda a: (a.severity_rank, a.source_bytes), reverse=True)[:TOP_ALERTS]
    assert [a.alert_id for a in tally.top()] == [a.alert_id for a in expected]
    assert _AlertTally().top() == []


def test_analyze_without_any_rule_files_refuses_to_run(small_pcap: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("auditor.cli.rule_path", lambda name: None)
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"), "--fail-on", "low"])
    assert result.exit_code == 2
    assert "no rule files found" in result.output
    assert not (tmp_path / "o").exists()


def test_shown_makes_wire_text_inert_on_a_terminal() -> None:
    from auditor.cli import shown

    text = shown("IPC\x1b[31m\x1b]0;pwned\x07")
    assert text == "IPC\\x1b[31m\\x1b]0;pwned\\x07"
    assert not any(ord(c) < 32 for c in text)
    assert shown("[bold]x[/bold]") == "\\[bold]x\\[/bold]"


GEOIP = Path(__file__).resolve().parents[2] / "shared" / "geoip-test"


def test_analyze_names_the_country_and_as_of_alert_destinations(tmp_path: Path) -> None:
    if not GEOIP.is_dir():
        pytest.skip(f"shared GeoIP test databases absent: {GEOIP}")
    cam = Ether(src="4c:bd:8f:11:22:33", dst="00:11:22:33:44:55")
    pkts = [cam / IP(src=CAM, dst=dst) / UDP(sport=5000, dport=6000) / b"x" for dst in ("81.2.69.160", "89.160.20.129")]
    for i, p in enumerate(pkts):
        p.time = 1_793_610_000 + i
    capture = tmp_path / "out.pcap"
    wrpcap(str(capture), pkts)
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(capture), "--out", str(out), "-q",
                                 "--geoip-country", str(GEOIP / "GeoLite2-Country-Test.mmdb"),
                                 "--geoip-asn", str(GEOIP / "GeoLite2-ASN-Test.mmdb")])
    assert result.exit_code == 0, result.output
    got = {a["destination"]["ip"]: (a["destination"].get("geo"), a["destination"].get("as")) for a in _alerts(out)}
    assert got == {
        "81.2.69.160": ({"country_iso_code": "GB"}, None),
        "89.160.20.129": ({"country_iso_code": "SE"}, {"number": 29518, "organization": {"name": "Bredband2 AB"}}),
    }
    summary = json.loads((out / "summary.json").read_text())
    assert [(d["database_type"], d["layout"], d["build_date"]) for d in summary["geoip"]] == [
        ("GeoLite2-Country", "maxmind-country", "2026-02-04"), ("GeoLite2-ASN", "maxmind-asn", "2026-02-04")]
    # the test databases are months old: a warning says so
    assert sum("days old" in w for w in summary["warnings"]) == 2


def test_analyze_with_a_file_that_is_no_geoip_database_is_a_one_line_error(small_pcap: Path, tmp_path: Path) -> None:
    junk = tmp_path / "country.mmdb"
    junk.write_text("not a database\n")
    result = runner.invoke(app, ["analyze", str(small_pcap), "--out", str(tmp_path / "o"),
                                 "--geoip-country", str(junk)])
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith(f"error: {junk}: not a MaxMind DB file")
    assert not (tmp_path / "o").exists()
