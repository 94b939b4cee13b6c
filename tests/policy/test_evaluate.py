"""PolicyJudge: which flows are judged, which policy governs them, what is approved, how findings sum."""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.devices.types import ListEntry, VendorVerdict
from auditor.flows.community_id import with_community_ids
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import (
    DIRECTION_EXTERNAL,
    DIRECTION_INBOUND,
    DIRECTION_INTERNAL,
    DIRECTION_OUTBOUND,
    END_TCP_CLOSE,
    FlowRecords,
)
from auditor.output._text import ip_texts
from auditor.policy.evaluate import PolicyJudge
from auditor.policy.load import RuleSet, Vocabulary, load_rules
from auditor.policy.types import Alert, Evidence

NO_VLAN = 0xFFFF
T0 = 1_793_610_000_000_000_000  # 2026-11-02T09:00:00Z
SECOND = 1_000_000_000
VOCABULARY = Vocabulary(
    vendors=frozenset({"hikvision", "ezviz", "dahua", "axis", "huawei"}),
    lists=frozenset({"ndaa-889", "fcc-covered"}),
)
LOCAL = LocalNetworks(["192.168.0.0/16", "10.0.0.0/8", "fd00::/8", "fe80::/10"])

NDAA = ListEntry("ndaa-889", "NDAA section 889", "889(f)(3)(A)", "2019-08-13")
FCC = ListEntry("fcc-covered", "FCC Covered List", "47 CFR 1.50002", "2021-03-12")

HIK = 0x4CBD8F112233
EZVIZ = 0x0CF5A4000001
HIK_NVR = 0x4CBD8F000009
DAHUA = 0x3CEF8C000001
AXIS = 0xACCC8E000001
UNKNOWN = 0x020000000001
ROUTER = 0x00E0FC000001
VERDICTS: dict[int, VendorVerdict] = {
    HIK: VendorVerdict("hikvision", "Hikvision", "camera", "oui-pin", "4C-BD-8F/24", 0.95, (NDAA, FCC)),
    EZVIZ: VendorVerdict("ezviz", "EZVIZ", "camera", "org-pattern", "Hangzhou EZVIZ Software", 0.8, (NDAA,),
                         ("hikvision",)),
    HIK_NVR: VendorVerdict("hikvision", "Hikvision", "nvr", "oui-pin", "4C-BD-8F/24", 0.95, (NDAA, FCC)),
    DAHUA: VendorVerdict("dahua", "Dahua", "nvr", "oui-pin", "3C-EF-8C/24", 0.95, (FCC,)),
    AXIS: VendorVerdict("axis", "Axis", "camera", "oui-pin", "AC-CC-8E/24", 0.95),
    ROUTER: VendorVerdict("huawei", "Huawei", "network", "oui-pin", "00-E0-FC/24", 0.95, (NDAA, FCC)),
}
# Each device and the address it usually sends from (the no-MAC host is its address).
DEVICES: dict[str, tuple[int, str]] = {
    "hik": (HIK, "192.168.10.21"),
    "ezviz": (EZVIZ, "192.168.10.22"),
    "hik-nvr": (HIK_NVR, "192.168.10.9"),
    "dahua": (DAHUA, "192.168.20.30"),
    "axis": (AXIS, "192.168.20.40"),
    "unknown": (UNKNOWN, "192.168.30.50"),
    "no-mac": (0, "10.1.2.3"),
}


# --- helpers -------------------------------------------------------------------------------------

def _address(text: str) -> tuple[int, int, int]:
    """Return (version, hi, lo) in the engine's layout: IPv4 in the low 32 bits of lo."""
    a = ipaddress.ip_address(text)
    value = int(a)
    return a.version, value >> 64, value & ((1 << 64) - 1)


def _is_local(text: str) -> bool:
    return bool(LOCAL.contains(*(np.array([x]) for x in _address(text)))[0])


def _flow(
    src: str = "192.168.10.21",
    dst: str = "203.0.113.50",
    *,
    mac: int = HIK,
    proto: int = 6,
    sport: int = 40001,
    dport: int = 443,
    vlan: int = NO_VLAN,
    sp: int = 3,
    sb: int = 300,
    dp: int = 2,
    db: int = 200,
    first: int = T0,
    last: int = T0 + SECOND,
    direction: int | None = None,
    syn: bool = True,
    dst_mac: int = 0,
) -> dict[str, Any]:
    """One finished flow; direction defaults to what the local networks say (2 * src local + dst local).
    A TCP flow's initiator sent a SYN unless `syn` is False (the capture missed the connection's start)."""
    if direction is None:
        direction = 2 * _is_local(src) + _is_local(dst)
    return dict(src=src, dst=dst, mac=mac, proto=proto, sport=sport, dport=dport, vlan=vlan, sp=sp, sb=sb,
                dp=dp, db=db, first=first, last=last, direction=direction,
                flags=0x02 if syn and proto == 6 else 0, dst_mac=dst_mac)


ROW_DEFAULTS: dict[str, int] = {"sport": 40001, "vlan": NO_VLAN, "sp": 1, "dp": 1, "sb": 100, "db": 100, "dst_mac": 0}
"""What a flow row of _records may leave out (the policy tests' builders differ only in what they set)."""


def _records(flows: Iterable[dict[str, Any]], first_id: int = 1, names: bool | None = None) -> FlowRecords:
    """FlowRecords of flow rows (dicts as _flow makes them; ROW_DEFAULTS fill what a row leaves out, and a
    TCP initiator sent a SYN unless the row gives flags). The name columns are filled from rows' "name",
    "source" and "dns_name" when they carry them (or as `names` says)."""
    rows = list(flows)
    src = [_address(f["src"]) for f in rows]
    dst = [_address(f["dst"]) for f in rows]
    n = len(rows)

    def col(name: str, dtype: type) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([f.get(name, ROW_DEFAULTS.get(name)) for f in rows], dtype=dtype)

    named = any("name" in f for f in rows) if names is None else names
    return FlowRecords(
        flow_id=np.arange(first_id, first_id + n, dtype=np.uint64),
        ip_version=np.array([s[0] for s in src], dtype=np.uint8),
        ip_proto=col("proto", np.uint8),
        src_hi=np.array([s[1] for s in src], dtype=np.uint64),
        src_lo=np.array([s[2] for s in src], dtype=np.uint64),
        dst_hi=np.array([d[1] for d in dst], dtype=np.uint64),
        dst_lo=np.array([d[2] for d in dst], dtype=np.uint64),
        src_port=col("sport", np.uint16),
        dst_port=col("dport", np.uint16),
        vlan_outer=col("vlan", np.uint16),
        vlan_inner=np.full(n, NO_VLAN, dtype=np.uint16),
        src_mac=col("mac", np.uint64),
        dst_mac=col("dst_mac", np.uint64),
        src_packets=col("sp", np.uint64),
        dst_packets=col("dp", np.uint64),
        src_bytes=col("sb", np.uint64),
        dst_bytes=col("db", np.uint64),
        src_tcp_flags=np.array([f.get("flags", 0x02 if f["proto"] == 6 else 0) for f in rows], dtype=np.uint8),
        dst_tcp_flags=np.zeros(n, dtype=np.uint8),
        first_ns=col("first", np.int64),
        last_ns=col("last", np.int64),
        end_reason=np.full(n, END_TCP_CLOSE, dtype=np.uint8),
        direction=col("direction", np.uint8),
        domain=[f.get("name") for f in rows] if named else None,
        name_source=col("source", np.uint8) if named else None,
        name_mismatch=[f.get("dns_name") for f in rows] if named and any("dns_name" in f for f in rows) else None,
    )


def _write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def _rules(tmp_path: Path, text: str, name: str = "site.yaml") -> RuleSet:
    return load_rules([_write(tmp_path, text, name)], VOCABULARY)


def _one_policy(tmp_path: Path, devices: str, allow: str = "[]", severity: str = "high") -> RuleSet:
    """A rule file with one policy; devices and allow in YAML flow style."""
    return _rules(tmp_path, f"""\
        version: 1
        ruleset: site
        policies:
          - id: only
            name: The only policy
            devices: {devices}
            allow: {allow}
            severity: {severity}
        """)


def _judge(rules: RuleSet, *batches: Iterable[dict[str, Any]], max_alerts: int | None = None) -> PolicyJudge:
    judge = PolicyJudge(rules, VERDICTS.get,
                        **({} if max_alerts is None else {"max_alerts": max_alerts}))
    first_id = 1
    for batch in batches:
        records = _records(batch, first_id)
        first_id += len(records)
        judge.judge(records)
    return judge


def _device_of(alert: Alert) -> str:
    """The DEVICES name of an alert's device."""
    for name, (mac, ip) in DEVICES.items():
        if (mac, ip) == (alert.device_mac, alert.source_ips[0]):
            return name
    raise AssertionError(f"unknown device {alert.device_mac:012X} {alert.source_ips}")


LISTED_LOCAL_ONLY = """\
    version: 1
    ruleset: site
    policies:
      - id: listed-local-only
        name: Listed vendors reach only local networks
        description: No data off site.
        devices:
          - lists: [ndaa-889]
        allow:
          - local: true
        severity: high
    """


# --- which flows make an alert ---------------------------------------------------------------------

def test_judge_alerts_once_on_a_listed_vendor_flow_off_site_and_approves_local(tmp_path: Path) -> None:
    rules = _rules(tmp_path, LISTED_LOCAL_ONLY)
    judge = _judge(rules, [
        _flow(dst="203.0.113.50", dport=443, vlan=10, sp=6, sb=740, dp=5, db=5120,
              first=T0, last=T0 + 3 * SECOND // 2),
        _flow(dst="192.168.10.5", dport=554),  # the VMS: local, approved
    ])
    (alert,) = judge.alerts()
    assert (judge.flows_judged, judge.findings, judge.dropped_findings) == (2, 1, 0)
    assert (alert.rule_id, alert.rule_name, alert.ruleset, alert.rule_description, alert.severity) == (
        "listed-local-only", "Listed vendors reach only local networks", "site", "No data off site.", "high")
    assert alert.rule_reference == f"{tmp_path / 'site.yaml'}:4"
    assert alert.device_mac == HIK
    assert alert.vendor == VERDICTS[HIK]
    assert alert.source_ips == ("192.168.10.21",)
    assert (alert.destination_ip, alert.destination_local) == ("203.0.113.50", False)
    assert alert.services == ((6, 443),)
    assert alert.vlans == (10,)
    assert (alert.flows, alert.source_packets, alert.source_bytes, alert.destination_packets,
            alert.destination_bytes) == (1, 6, 740, 5, 5120)
    assert (alert.first_ns, alert.last_ns) == (T0, T0 + 3 * SECOND // 2)
    assert len(alert.alert_id) == 32
    int(alert.alert_id, 16)


def test_judge_does_nothing_without_flows_or_policies(tmp_path: Path) -> None:
    rules = _rules(tmp_path, LISTED_LOCAL_ONLY)
    judge = _judge(rules, [])
    assert (judge.alerts(), judge.flows_judged, judge.findings) == ([], 0, 0)
    empty = PolicyJudge(RuleSet((), ()), VERDICTS.get)
    empty.judge(_records([_flow()]))
    assert (empty.alerts(), empty.flows_judged, empty.findings) == ([], 0, 0)


FIRST_THEN_SECOND = """\
    version: 1
    ruleset: site
    policies:
      - id: {first}
      - id: {second}
    """
HIK_LOCAL = """\
    id: hik-local
    name: Hikvision stays local
    devices:
      - vendors: hikvision
    allow:
      - local: true
    severity: high
"""
CAMERAS_TO_CLOUD = """\
    id: cameras-to-cloud
    name: Cameras may reach their cloud
    devices:
      - classes: camera
    allow:
      - networks: 203.0.113.0/24
    severity: low
"""


def _two_policies(tmp_path: Path, first: str, second: str) -> RuleSet:
    def item(body: str) -> str:
        lines = dedent(body).splitlines()
        return "\n".join(["  - " + lines[0], *("    " + line for line in lines[1:])])

    text = "version: 1\nruleset: site\npolicies:\n" + item(first) + "\n" + item(second) + "\n"
    return _rules(tmp_path, text)


def test_judge_lets_only_the_first_matching_policy_govern(tmp_path: Path) -> None:
    flows = [_flow(mac=HIK, dst="203.0.113.50"), _flow("192.168.20.40", mac=AXIS, dst="198.51.100.77")]
    hik_first = _judge(_two_policies(tmp_path, HIK_LOCAL, CAMERAS_TO_CLOUD), flows)
    assert [(a.rule_id, a.device_mac, a.destination_ip) for a in hik_first.alerts()] == [
        ("hik-local", HIK, "203.0.113.50"),  # cameras-to-cloud would approve it, but is not consulted
        ("cameras-to-cloud", AXIS, "198.51.100.77"),
    ]
    cloud_first = _judge(_two_policies(tmp_path, CAMERAS_TO_CLOUD, HIK_LOCAL), flows)
    assert [(a.rule_id, a.device_mac, a.destination_ip) for a in cloud_first.alerts()] == [
        ("cameras-to-cloud", AXIS, "198.51.100.77"),
    ]
    assert (hik_first.flows_judged, cloud_first.flows_judged) == (2, 2)


def test_judge_orders_policies_by_file_name_then_file_order(tmp_path: Path) -> None:
    _write(tmp_path, "version: 1\npolicies:\n  - " + dedent(HIK_LOCAL).replace("\n", "\n    "), "b.yaml")
    _write(tmp_path, "version: 1\npolicies:\n  - " + dedent(CAMERAS_TO_CLOUD).replace("\n", "\n    "), "a.yaml")
    rules = load_rules([tmp_path], VOCABULARY)
    judge = _judge(rules, [_flow(mac=HIK, dst="203.0.113.50"), _flow(mac=HIK, dst="198.51.100.77")])
    assert [(a.rule_id, a.ruleset, a.destination_ip) for a in judge.alerts()] == [
        ("cameras-to-cloud", "a", "198.51.100.77"),
    ]


# --- device selectors ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("devices", "selected"),
    [
        ("[{vendors: hikvision}]", {"hik", "ezviz", "hik-nvr"}),  # a vendor selects its subsidiaries
        ("[{vendors: ezviz}]", {"ezviz"}),  # not its parent
        ("[{vendors: [dahua, axis]}]", {"dahua", "axis"}),
        ("[{classes: nvr}]", {"hik-nvr", "dahua"}),
        ("[{lists: fcc-covered}]", {"hik", "hik-nvr", "dahua"}),
        ("[{lists: [ndaa-889]}]", {"hik", "ezviz", "hik-nvr"}),
        ('[{macs: "4c:bd:8f:11:22:33"}]', {"hik"}),
        ('[{macs: ["4C-BD-8F-11-22-33", "ac-cc-8e-00-00-01"]}]', {"hik", "axis"}),
        ('[{macs: "4CBD8F000009"}]', {"hik-nvr"}),
        ("[{ips: 192.168.20.0/24}]", {"dahua", "axis"}),
        ("[{ips: [10.0.0.0/8, 192.168.30.50/32]}]", {"no-mac", "unknown"}),
        ("[{all: true}]", set(DEVICES)),
        # AND within one selector
        ("[{vendors: hikvision, classes: nvr}]", {"hik-nvr"}),
        ("[{lists: ndaa-889, ips: 192.168.10.0/28}]", {"hik-nvr"}),
        ("[{classes: camera, lists: fcc-covered}]", {"hik"}),
        ('[{macs: "4C:BD:8F:11:22:33", classes: nvr}]', set()),
        ("[{all: true, ips: 192.168.20.0/24}]", {"dahua", "axis"}),
        # OR across selectors
        ("[{vendors: axis}, {classes: nvr}]", {"axis", "hik-nvr", "dahua"}),
        ('[{macs: "02:00:00:00:00:01"}, {ips: 10.1.2.3/32}, {vendors: ezviz}]', {"unknown", "no-mac", "ezviz"}),
    ],
)
def test_judge_selects_devices_by_and_within_and_or_across_selectors(
    tmp_path: Path, devices: str, selected: set[str]
) -> None:
    rules = _one_policy(tmp_path, devices)
    judge = _judge(rules, [_flow(ip, mac=mac) for mac, ip in DEVICES.values()])
    assert {_device_of(a) for a in judge.alerts()} == selected
    assert judge.flows_judged == judge.findings == len(selected)


def test_judge_selectors_without_a_verdict_select_no_unattributed_device(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{vendors: hikvision}, {classes: camera}, {lists: ndaa-889}]")
    judge = _judge(rules, [_flow("192.168.30.50", mac=UNKNOWN), _flow("10.1.2.3", mac=0)])
    assert (judge.alerts(), judge.flows_judged) == ([], 0)


def test_judge_ignores_devices_that_no_policy_selects(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), [_flow("192.168.20.40", mac=AXIS, dst="198.51.100.77")])
    assert (judge.alerts(), judge.flows_judged, judge.findings) == ([], 0, 0)


def test_judge_never_judges_flows_started_from_outside(tmp_path: Path) -> None:
    """The router's MAC (a listed vendor) sends the remote initiator's packets: no evidence about it."""
    rules = _one_policy(tmp_path, "[{lists: ndaa-889}, {all: true}]")
    judge = _judge(rules, [
        _flow("198.51.100.9", "192.168.10.21", mac=ROUTER, dport=22),  # inbound
        _flow("198.51.100.9", "203.0.113.50", mac=ROUTER, dport=25),  # external
        _flow("192.168.10.21", "203.0.113.50", mac=ROUTER, direction=DIRECTION_INBOUND),
        _flow("192.168.10.21", "203.0.113.50", mac=ROUTER, direction=DIRECTION_EXTERNAL),
        _flow("192.168.10.1", "203.0.113.53", mac=ROUTER, proto=17, dport=53),  # outbound: judged
    ])
    (alert,) = judge.alerts()
    assert (alert.device_mac, alert.destination_ip, alert.services, alert.flows) == (
        ROUTER, "203.0.113.53", ((17, 53),), 1)
    assert (judge.flows_judged, judge.findings) == (1, 1)


def test_judge_judges_internal_flows(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{all: true}]", "[{networks: 192.168.10.5/32}]")
    judge = _judge(rules, [_flow(dst="192.168.10.5"), _flow(dst="192.168.20.2", dport=514, proto=17)])
    (alert,) = judge.alerts()
    assert (alert.destination_ip, alert.destination_local, alert.services) == ("192.168.20.2", True, ((17, 514),))
    assert judge.flows_judged == 2


# --- allow entries ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("allow", "flow", "approved"),
    [
        ("[{local: true}]", _flow(dst="192.168.99.1"), True),
        ("[{local: true}]", _flow(dst="8.8.8.8"), False),
        ("[{local: true}]", _flow(dst="fe80::1", src="fe80::2"), True),
        ("[{networks: 203.0.113.0/24}]", _flow(dst="203.0.113.50"), True),
        ("[{networks: 203.0.113.0/24}]", _flow(dst="203.0.114.1"), False),
        ("[{networks: [198.51.100.7/32, 203.0.113.0/24]}]", _flow(dst="198.51.100.7"), True),
        ("[{networks: 198.51.100.7/32}]", _flow(dst="198.51.100.8"), False),
        ("[{networks: 2001:db8::/32}]", _flow(src="fd00::5", dst="2001:db8::1", mac=0), True),
        ("[{networks: 2001:db8::/32}]", _flow(src="fd00::5", dst="2001:db9::1", mac=0), False),
        ("[{networks: '::/0'}]", _flow(dst="203.0.113.50"), False),  # an IPv6 network never holds IPv4
        ("[{protocols: udp}]", _flow(proto=17, dport=5000), True),
        ("[{protocols: udp}]", _flow(proto=6, dport=5000), False),
        ("[{protocols: [icmp, 47]}]", _flow(proto=47, dport=0), True),
        ("[{protocols: [icmp, 47]}]", _flow(proto=1, sport=8, dport=0), True),
        ("[{ports: 443}]", _flow(dport=443), True),
        ("[{ports: 443}]", _flow(dport=444), False),
        ("[{ports: [53, 123]}]", _flow(proto=17, dport=123), True),
        ("[{ports: [53, 123]}]", _flow(proto=17, dport=124), False),
        ("[{ports: 8000-8100}]", _flow(dport=7999), False),
        ("[{ports: 8000-8100}]", _flow(dport=8000), True),
        ("[{ports: 8000-8100}]", _flow(dport=8050), True),
        ("[{ports: 8000-8100}]", _flow(dport=8100), True),
        ("[{ports: 8000-8100}]", _flow(dport=8101), False),
        ("[{ports: '0-65535'}]", _flow(proto=132, dport=65535), True),
        ("[{ports: '0-65535'}]", _flow(proto=17, dport=0), True),
        ("[{ports: '0-65535'}]", _flow(proto=1, sport=8, dport=0), False),  # ICMP has no ports
        ("[{ports: '0-65535'}]", _flow(proto=58, sport=128, dport=0, src="fe80::2", dst="2001:db8::1"), False),
        ("[{ports: '0-65535'}]", _flow(proto=47, dport=0), False),
        # several fields: all of them
        ("[{networks: 203.0.113.0/24, protocols: tcp, ports: 443}]", _flow(dst="203.0.113.9"), True),
        ("[{networks: 203.0.113.0/24, protocols: tcp, ports: 443}]", _flow(dst="203.0.113.9", proto=17), False),
        ("[{networks: 203.0.113.0/24, protocols: tcp, ports: 443}]", _flow(dst="203.0.113.9", dport=80), False),
        ("[{networks: 203.0.113.0/24, protocols: tcp, ports: 443}]", _flow(dst="198.51.100.9"), False),
        ("[{local: true, protocols: udp}]", _flow(dst="192.168.10.1", proto=17, dport=53), True),
        ("[{local: true, protocols: udp}]", _flow(dst="192.168.10.1", proto=6, dport=53), False),
        ("[{local: true, protocols: udp}]", _flow(dst="9.9.9.9", proto=17, dport=53), False),
        # several entries: any of them
        ("[{networks: 203.0.113.0/24}, {protocols: udp, ports: 123}]", _flow(dst="198.51.100.1", proto=17,
                                                                             dport=123), True),
        ("[{networks: 203.0.113.0/24}, {protocols: udp, ports: 123}]", _flow(dst="198.51.100.1", dport=123), False),
        ("[]", _flow(dst="192.168.10.5"), False),  # no allow entry: everything is a finding
    ],
)
def test_judge_approves_flows_matching_every_field_of_an_allow_entry(
    tmp_path: Path, allow: str, flow: dict[str, Any], approved: bool
) -> None:
    judge = _judge(_one_policy(tmp_path, "[{all: true}]", allow), [flow])
    assert judge.flows_judged == 1
    assert (judge.findings, len(judge.alerts())) == ((0, 0) if approved else (1, 1))


def test_judge_applies_only_the_governing_policys_allow_entries(tmp_path: Path) -> None:
    rules = _rules(tmp_path, """\
        version: 1
        policies:
          - id: scanners
            name: Scanners report to the workstation
            devices: [{ips: 192.168.20.0/24}]
            allow: [{networks: 192.168.20.2/32, protocols: udp, ports: 514}]
            severity: critical
          - id: rest
            name: Everything else may reach the proxy
            devices: [{all: true}]
            allow: [{networks: 203.0.113.8/32}]
            severity: low
        """)
    judge = _judge(rules, [
        _flow("192.168.20.30", "203.0.113.8", mac=DAHUA),  # rest would approve it
        _flow("192.168.20.30", "192.168.20.2", mac=DAHUA, proto=17, dport=514),
        _flow("192.168.10.21", "192.168.20.2", mac=HIK, proto=17, dport=514),  # scanners would approve it
        _flow("192.168.10.21", "203.0.113.8", mac=HIK),
    ])
    assert [(a.rule_id, a.device_mac, a.destination_ip) for a in judge.alerts()] == [
        ("scanners", DAHUA, "203.0.113.8"), ("rest", HIK, "192.168.20.2")]
    assert (judge.flows_judged, judge.findings) == (4, 2)


# --- summing findings into alerts --------------------------------------------------------------------

def test_judge_sums_one_devices_flows_to_one_destination_into_one_alert(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), [
        _flow(dport=8443, sport=40002, vlan=20, sp=10, sb=1000, dp=8, db=9000, first=T0 + 5 * SECOND,
              last=T0 + 6 * SECOND),
        _flow(dport=443, sport=40001, vlan=20, sp=3, sb=300, dp=2, db=200, first=T0 + 2 * SECOND,
              last=T0 + 9 * SECOND),
        _flow(dport=443, sport=40003, vlan=NO_VLAN, sp=1, sb=60, dp=0, db=0, first=T0 + 4 * SECOND,
              last=T0 + 4 * SECOND),
    ])
    (alert,) = judge.alerts()
    assert (alert.flows, alert.source_packets, alert.source_bytes, alert.destination_packets,
            alert.destination_bytes) == (3, 14, 1360, 10, 9200)
    assert (alert.first_ns, alert.last_ns) == (T0 + 2 * SECOND, T0 + 9 * SECOND)
    assert alert.services == ((6, 443), (6, 8443))
    assert alert.vlans == (20,)
    assert alert.source_ips == ("192.168.10.21",)
    assert (judge.flows_judged, judge.findings) == (3, 3)


def test_judge_keeps_every_protocol_and_vlan_and_source_address_of_an_alert(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), [
        _flow("192.168.10.21", proto=17, dport=123, vlan=30),
        _flow("192.168.10.99", proto=1, sport=3, dport=1, vlan=10),  # the same MAC after a new lease
        _flow("192.168.10.21", proto=1, sport=8, dport=0, vlan=30),  # ICMP code is no port: one service
        _flow("192.168.10.21", proto=6, dport=80, vlan=30),
    ])
    (alert,) = judge.alerts()
    assert alert.services == ((1, 0), (6, 80), (17, 123))
    assert alert.vlans == (10, 30)
    assert alert.source_ips == ("192.168.10.21", "192.168.10.99")


def test_judge_caps_the_services_it_keeps_but_counts_every_flow(tmp_path: Path) -> None:
    flows = [_flow(dport=1000 + i, sp=1, sb=10) for i in range(40)]
    (alert,) = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), flows[:25], flows[25:]).alerts()
    assert alert.services == tuple((6, 1000 + i) for i in range(32))
    assert (alert.flows, alert.source_packets, alert.source_bytes, len(alert.community_ids)) == (40, 40, 400, 5)


def test_judge_treats_a_mac_sending_from_many_local_addresses_as_a_router(tmp_path: Path) -> None:
    """Behind a router every host shows the router's MAC: its vendor must not judge them."""
    rules = _one_policy(tmp_path, "[{lists: ndaa-889}, {ips: 10.50.0.0/16}]")
    host = [_flow("10.50.0.7", mac=ROUTER, first=T0), _flow("10.50.0.7", "198.51.100.1", mac=ROUTER, first=T0 + 1)]
    judge = _judge(rules, host)  # one source so far: judged as the (listed) router's own traffic
    assert {(a.device_mac, a.source_ips) for a in judge.alerts()} == {(ROUTER, ("10.50.0.7",))}
    more = [_flow(f"10.50.0.{i}", "203.0.113.9", mac=ROUTER, first=T0 + 10 + i) for i in (8, 9, 10)]
    judge.judge(_records(more, first_id=10))
    routed = [a for a in judge.alerts() if a.destination_ip == "203.0.113.9"]
    # the fourth local source made it a router: those flows are judged and summed per source address
    assert sorted((a.device_mac, a.source_ips, a.vendor) for a in routed) == [
        (0, (f"10.50.0.{i}",), None) for i in (10, 8, 9)]  # sorted as text: "10.50.0.10" < "10.50.0.8"
    assert all(a.evidence[0].field == "devices[1]" for a in routed)  # selected by address, not by vendor


def test_judge_does_not_count_autoconfigured_sources_towards_a_router(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{lists: ndaa-889}]")
    flows = [_flow(src, mac=HIK, first=T0 + i)
             for i, src in enumerate(["0.0.0.0", "169.254.3.4", "192.168.1.64", "192.168.10.21", "fe80::1"])]
    flows += [_flow("192.168.10.21", "198.51.100.1", mac=HIK, first=T0 + 9)]
    judge = _judge(rules, flows)
    assert {a.device_mac for a in judge.alerts()} == {HIK}


def test_judge_judges_a_tcp_connection_whose_start_was_not_captured_from_the_local_side(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{lists: ndaa-889}]")
    # the capture began mid-connection and the server's packet came first: the table calls it inbound
    midstream = _flow("203.0.113.9", "192.168.10.21", mac=ROUTER, dst_mac=HIK, sport=443, dport=40001, sp=5,
                      sb=900, dp=20, db=30_000, syn=False)
    started_outside = _flow("203.0.113.9", "192.168.10.21", mac=ROUTER, dst_mac=HIK, sport=5555, dport=22)
    judge = _judge(rules, [midstream, started_outside])
    (alert,) = judge.alerts()
    assert (alert.device_mac, alert.source_ips, alert.destination_ip, alert.services) == (
        HIK, ("192.168.10.21",), "203.0.113.9", ((6, 443),))
    assert (alert.source_packets, alert.source_bytes, alert.destination_bytes) == (20, 30_000, 900)
    assert judge.flows_judged == 1


def test_judge_makes_one_alert_per_device_and_destination(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), [
        _flow(mac=HIK, dst="203.0.113.50", first=T0),
        _flow(mac=HIK, dst="198.51.100.77", first=T0 + 1),
        _flow("192.168.10.22", mac=EZVIZ, dst="203.0.113.50", first=T0 + 2),
        _flow(mac=HIK, dst="203.0.113.50", first=T0 + 3),
    ])
    assert [(a.device_mac, a.destination_ip, a.flows) for a in judge.alerts()] == [
        (HIK, "203.0.113.50", 2), (HIK, "198.51.100.77", 1), (EZVIZ, "203.0.113.50", 1)]
    assert len({a.alert_id for a in judge.alerts()}) == 3


def test_judge_accumulates_alerts_across_batches(tmp_path: Path) -> None:
    rules = _rules(tmp_path, LISTED_LOCAL_ONLY)
    flows = [
        _flow(dport=443, first=T0 + 7 * SECOND, last=T0 + 8 * SECOND, sp=1, sb=100),
        _flow(dport=80, first=T0 + SECOND, last=T0 + 2 * SECOND, sp=2, sb=200, vlan=5),
        _flow(dst="192.168.10.5"),
        _flow(dport=443, first=T0 + 3 * SECOND, last=T0 + 12 * SECOND, sp=4, sb=400),
        _flow(dst="198.51.100.77", dport=443, first=T0 + 20 * SECOND, last=T0 + 21 * SECOND),
    ]
    whole = _judge(rules, flows)
    split = _judge(rules, flows[:1], flows[1:3], [], flows[3:])
    assert split.alerts() == whole.alerts()
    (first, second) = split.alerts()
    assert (first.destination_ip, first.flows, first.source_packets, first.source_bytes) == (
        "203.0.113.50", 3, 7, 700)
    assert (first.first_ns, first.last_ns, first.services, first.vlans) == (
        T0 + SECOND, T0 + 12 * SECOND, ((6, 80), (6, 443)), (5,))
    assert (second.destination_ip, second.flows) == ("198.51.100.77", 1)
    assert (split.flows_judged, split.findings) == (whole.flows_judged, whole.findings) == (5, 4)


def test_judge_keys_a_device_without_mac_by_its_source_address(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{ips: 10.1.0.0/16}]", "[{local: true}]")
    judge = _judge(rules, [
        _flow("10.1.2.3", mac=0, first=T0),
        _flow("10.1.2.4", mac=0, first=T0 + 1),
        _flow("10.1.2.3", mac=0, first=T0 + 2, dport=8443),
        _flow("10.2.0.1", mac=0, first=T0 + 3),  # not selected
        _flow("fd00::5", "2001:db8::1", mac=0, first=T0 + 4),  # not selected: IPv6
    ])
    first, second = judge.alerts()
    assert (first.device_mac, first.vendor, first.source_ips, first.flows, first.services) == (
        0, None, ("10.1.2.3",), 2, ((6, 443), (6, 8443)))
    assert (second.device_mac, second.vendor, second.source_ips, second.flows) == (0, None, ("10.1.2.4",), 1)
    assert first.alert_id != second.alert_id
    assert [e.source for e in first.evidence] == ["policy-group", "policy-allow"]
    assert judge.flows_judged == 3


def test_judge_keys_an_ipv6_device_without_mac_by_its_source_address(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{ips: 'fd00::/8'}]", "[{local: true}]")
    judge = _judge(rules, [_flow("fd00::5", "2001:db8::1", mac=0), _flow("fd00::6", "2001:db8::1", mac=0),
                           _flow("fd00::5", "fd00::1", mac=0)])
    assert [(a.source_ips, a.destination_ip, a.destination_local) for a in judge.alerts()] == [
        (("fd00::5",), "2001:db8::1", False), (("fd00::6",), "2001:db8::1", False)]


def test_judge_stops_making_alerts_at_max_alerts_and_counts_what_it_dropped(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), [
        _flow(dst="203.0.113.1", first=T0),
        _flow(dst="203.0.113.2", first=T0 + 1),
        _flow(dst="203.0.113.3", first=T0 + 2),
        _flow(dst="203.0.113.3", first=T0 + 3),
    ], [
        _flow(dst="203.0.113.1", first=T0 + 4),  # an existing alert still sums
        _flow(dst="203.0.113.4", first=T0 + 5),
    ], max_alerts=2)
    assert [(a.destination_ip, a.flows) for a in judge.alerts()] == [("203.0.113.1", 2), ("203.0.113.2", 1)]
    assert (judge.flows_judged, judge.findings, judge.dropped_findings) == (6, 6, 3)


def test_judge_keeps_room_for_severe_alerts_and_remembers_the_worst_dropped_finding(tmp_path: Path) -> None:
    rules = _rules(tmp_path, """\
        version: 1
        policies:
          - id: dahua-critical
            name: Dahua
            devices: [{vendors: dahua}]
            severity: critical
          - id: hik-low
            name: Hikvision
            devices: [{vendors: hikvision}]
            severity: low
        """)
    flood = [_flow(dst=f"203.0.113.{i}", first=T0 + i) for i in range(1, 10)]
    judge = _judge(rules, flood, [_flow(dst="198.51.100.1", mac=DAHUA, first=T0 + 20)], max_alerts=4)
    # low alerts may take 3 of the 4 places (75 %); the critical one still gets the last
    assert [(a.rule_id, a.destination_ip) for a in judge.alerts()] == [
        ("dahua-critical", "198.51.100.1"), ("hik-low", "203.0.113.1"), ("hik-low", "203.0.113.2"),
        ("hik-low", "203.0.113.3")]
    assert (judge.dropped_findings, judge.worst_rank) == (6, 3)
    full = _judge(rules, flood[:4], [_flow(dst=f"198.51.100.{i}", mac=DAHUA, first=T0 + 20 + i) for i in range(3)],
                  max_alerts=4)
    assert (len(full.alerts()), full.dropped_findings, full.worst_rank) == (4, 3, 3)  # dropped, still counted


def test_judge_returns_alerts_most_severe_first_then_by_first_seen(tmp_path: Path) -> None:
    rules = _rules(tmp_path, """\
        version: 1
        policies:
          - id: dahua-critical
            name: Dahua
            devices: [{vendors: dahua}]
            severity: critical
          - id: hik-high
            name: Hikvision
            devices: [{vendors: hikvision}]
            severity: high
          - id: axis-medium
            name: Axis
            devices: [{vendors: axis}]
            severity: medium
          - id: rest-low
            name: The rest
            devices: [{all: true}]
            severity: low
        """)
    judge = _judge(rules, [
        _flow("192.168.30.50", mac=UNKNOWN, first=T0),
        _flow("192.168.20.40", mac=AXIS, first=T0 + 1),
        _flow(mac=HIK, dst="203.0.113.9", first=T0 + 7),
        _flow(mac=HIK, dst="203.0.113.8", first=T0 + 2),
        _flow("192.168.20.30", mac=DAHUA, first=T0 + 9),
    ])
    assert [(a.severity, a.rule_id, a.destination_ip) for a in judge.alerts()] == [
        ("critical", "dahua-critical", "203.0.113.50"),
        ("high", "hik-high", "203.0.113.8"),
        ("high", "hik-high", "203.0.113.9"),
        ("medium", "axis-medium", "203.0.113.50"),
        ("low", "rest-low", "203.0.113.50"),
    ]


def test_judge_gives_alerts_stable_ids_of_rule_device_and_destination(tmp_path: Path) -> None:
    rules = _rules(tmp_path, LISTED_LOCAL_ONLY)
    a = _judge(rules, [_flow(dst="203.0.113.50"), _flow(dst="203.0.113.51")]).alerts()
    b = _judge(rules, [_flow(dst="203.0.113.51", dport=80, first=T0 + 5), _flow(dst="203.0.113.50", sb=1)]).alerts()
    assert {x.destination_ip: x.alert_id for x in a} == {x.destination_ip: x.alert_id for x in b}
    assert a[0].alert_id != a[1].alert_id
    other_device = _judge(rules, [_flow("192.168.10.22", mac=EZVIZ, dst="203.0.113.50")]).alerts()
    assert other_device[0].alert_id not in {x.alert_id for x in a}
    (tmp_path / "other").mkdir()
    renamed = _rules(tmp_path / "other", LISTED_LOCAL_ONLY.replace("listed-local-only", "listed-stay-home"))
    other_rule = _judge(renamed, [_flow(dst="203.0.113.50")]).alerts()
    assert other_rule[0].alert_id not in {x.alert_id for x in a}


def test_judge_gives_the_community_ids_of_the_alerts_first_flows(tmp_path: Path) -> None:
    flows = [
        _flow(proto=6, sport=40000 + i, dport=443, first=T0 + i) for i in range(4)
    ] + [
        _flow(proto=17, sport=5000, dport=53),
        _flow(proto=1, sport=8, dport=0),  # ICMP echo: type and code in the port columns
        _flow(proto=6, sport=40010, dport=443),
    ]
    expected = with_community_ids(_records(flows)).community_id
    assert expected is not None
    (alert,) = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), flows[:5], flows[5:]).alerts()
    assert alert.community_ids == tuple(expected[:5])
    (small,) = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), flows[4:6]).alerts()
    assert small.community_ids == tuple(expected[4:6])


def test_judge_gives_the_community_ids_of_finding_flows_only(tmp_path: Path) -> None:
    flows = [_flow(dst="192.168.10.5", sport=1), _flow(sport=2), _flow(dst="192.168.10.6", sport=3), _flow(sport=4)]
    expected = with_community_ids(_records(flows)).community_id
    assert expected is not None
    (alert,) = _judge(_rules(tmp_path, LISTED_LOCAL_ONLY), flows).alerts()
    assert alert.community_ids == (expected[1], expected[3])


def test_judge_explains_an_alert_with_vendor_group_and_allow_evidence(tmp_path: Path) -> None:
    rules = _rules(tmp_path, """\
        version: 1
        ruleset: site
        policies:
          - id: axis-cloud
            name: Axis may reach its cloud
            devices: [{vendors: axis}]
            allow: [{networks: 198.51.100.0/24}]
            severity: low
          - id: cameras
            name: Cameras reach the VMS only
            devices:
              - macs: "02:00:00:00:00:01"
              - lists: ndaa-889
                classes: [camera, nvr]
            allow:
              - local: true
              - networks: [203.0.113.0/28, 2001:db8::/32]
                protocols: udp
                ports: [123, 8000-8100]
            severity: high
        """)
    judge = _judge(rules, [_flow(dst="203.0.113.50", dport=443), _flow(dst="203.0.113.50", proto=17, dport=53)])
    (alert,) = judge.alerts()
    assert alert.evidence == (
        Evidence("oui-pin", "source.mac", "4C-BD-8F/24", "Hikvision", 0.95),
        Evidence("policy-group", "devices[1]", "classes: camera, nvr; lists: ndaa-889",
                 f"{tmp_path / 'site.yaml'}:9: policy 'cameras' governs this device"),
        Evidence("policy-allow", "allow", "203.0.113.50 tcp/443 udp/53",
                 "not local; approved: local; 203.0.113.0/28,2001:db8::/32 udp port 123,8000-8100"),
    )
    assert alert.rule_reference == f"{tmp_path / 'site.yaml'}:9"


def test_judge_evidence_names_an_org_pattern_verdict_and_an_empty_allow_list(tmp_path: Path) -> None:
    judge = _judge(_one_policy(tmp_path, "[{all: true}]"), [
        _flow("192.168.10.22", "192.168.10.5", mac=EZVIZ, proto=1, sport=8, dport=0)])
    (alert,) = judge.alerts()
    assert alert.evidence == (
        Evidence("org-pattern", "source.mac", "Hangzhou EZVIZ Software", "EZVIZ", 0.8),
        Evidence("policy-group", "devices[0]", "all devices",
                 f"{tmp_path / 'site.yaml'}:4: policy 'only' governs this device"),
        Evidence("policy-allow", "allow", "192.168.10.5 icmp", "local; approved: nothing"),
    )


def test_judge_names_the_first_selector_that_picks_the_device(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{macs: '02:00:00:00:00:01'}, {vendors: hikvision}, {classes: camera}]")
    judge = _judge(rules, [_flow(mac=HIK), _flow("192.168.20.40", mac=AXIS)])
    assert [(a.device_mac, a.evidence[1].field, a.evidence[1].value) for a in judge.alerts()] == [
        (HIK, "devices[1]", "vendors: hikvision"), (AXIS, "devices[2]", "classes: camera")]


def test_judge_writes_addresses_as_flows_jsonl_does(tmp_path: Path) -> None:
    rules = _one_policy(tmp_path, "[{all: true}]")
    (alert,) = _judge(rules, [_flow("fd00::5", "::ffff:203.0.113.50", mac=HIK)]).alerts()
    v, hi, lo = _address("::ffff:203.0.113.50")
    assert alert.destination_ip == ip_texts(np.array([v], np.uint8), np.array([hi], np.uint64),
                                            np.array([lo], np.uint64))[0] == "::ffff:203.0.113.50"


# --- property: the judge equals a slow per-flow reference ------------------------------------------------

PROPERTY_RULES = """\
    version: 1
    ruleset: prop
    policies:
      - id: hik-local
        name: Hikvision devices stay local, but for DNS and NTP in the cloud
        devices:
          - vendors: hikvision
        allow:
          - local: true
          - networks: 203.0.113.0/24
            protocols: udp
            ports: [53, 123]
        severity: high
      - id: lan-b
        name: LAN B and listed NVRs reach the proxy ports and the v6 cloud
        devices:
          - ips: [10.0.0.0/8, "fd00::/8"]
          - lists: fcc-covered
            classes: nvr
        allow:
          - ports: 8000-8100
          - networks: 2001:db8::/32
        severity: low
    """


def _reference_policy(mac: int, src: str) -> str | None:
    v = VERDICTS.get(mac) if mac else None
    address = ipaddress.ip_address(src)
    if v is not None and "hikvision" in (v.vendor_id, *v.parents):
        return "hik-local"
    if any(address in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "fd00::/8")):
        return "lan-b"
    if v is not None and v.device_class == "nvr" and any(e.list_id == "fcc-covered" for e in v.lists):
        return "lan-b"
    return None


def _reference_approved(policy: str, dst: str, proto: int, port: int) -> bool:
    address = ipaddress.ip_address(dst)
    if policy == "hik-local":
        return _is_local(dst) or (address in ipaddress.ip_network("203.0.113.0/24") and proto == 17
                                  and port in (53, 123))
    return (proto in (6, 17, 132) and 8000 <= port <= 8100) or address in ipaddress.ip_network("2001:db8::/32")


@pytest.fixture(scope="module")
def property_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return _rules(tmp_path_factory.mktemp("rules"), PROPERTY_RULES)


SOURCES = {4: ["192.168.10.21", "10.1.2.3", "10.9.9.9", "198.51.100.9"], 6: ["fd00::5", "fe80::7", "2001:db8::9"]}
DESTINATIONS = {4: ["192.168.10.5", "203.0.113.50", "203.0.113.7", "198.51.100.77"],
                6: ["fe80::1", "2001:db8::1", "2606:4700::1"]}


@st.composite
def _flows(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([1, 6, 17, 47, 132]))
    first = T0 + draw(st.integers(0, 10**6))
    return _flow(
        draw(st.sampled_from(SOURCES[version])),
        draw(st.sampled_from(DESTINATIONS[version])),
        mac=draw(st.sampled_from([HIK, EZVIZ, DAHUA, AXIS, UNKNOWN, ROUTER, 0])),
        proto=proto,
        sport=draw(st.sampled_from([8, 1024, 40001])),
        dport=draw(st.sampled_from([0, 53, 123, 443, 7999, 8000, 8100, 8101])),
        vlan=draw(st.sampled_from([NO_VLAN, 10, 20])),
        sp=draw(st.integers(0, 50)), sb=draw(st.integers(0, 5000)),
        dp=draw(st.integers(0, 50)), db=draw(st.integers(0, 5000)),
        first=first, last=first + draw(st.integers(0, 10**6)),
    )


@given(flows=st.lists(_flows(), max_size=14), cuts=st.lists(st.integers(0, 14), max_size=3))
def test_judge_equals_a_per_flow_reference(property_rules: RuleSet, flows: list[dict[str, Any]],
                                           cuts: list[int]) -> None:
    bounds = [0, *sorted(min(c, len(flows)) for c in cuts), len(flows)]
    judge = _judge(property_rules, *(flows[a:b] for a, b in itertools.pairwise(bounds)))
    ids = with_community_ids(_records(flows)).community_id if flows else []
    assert ids is not None

    judged = approved = 0
    expected: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for f, cid in zip(flows, ids, strict=True):
        if f["direction"] < DIRECTION_OUTBOUND:
            continue
        policy = _reference_policy(f["mac"], f["src"])
        if policy is None:
            continue
        judged += 1
        port = f["dport"] if f["proto"] in (6, 17, 132) else 0
        if _reference_approved(policy, f["dst"], f["proto"], port):
            approved += 1
            continue
        key = (policy, f["mac"], "" if f["mac"] else f["src"], f["dst"])
        e = expected.setdefault(key, dict(flows=0, sp=0, sb=0, dp=0, db=0, first=f["first"], last=f["last"],
                                          services=set(), vlans=set(), sources={}, cids=[],
                                          local=_is_local(f["dst"])))
        e["flows"] += 1
        for name in ("sp", "sb", "dp", "db"):
            e[name] += f[name]
        e["first"], e["last"] = min(e["first"], f["first"]), max(e["last"], f["last"])
        e["services"].add((f["proto"], port))
        if f["vlan"] != NO_VLAN:
            e["vlans"].add(f["vlan"])
        e["sources"][f["src"]] = None
        if len(e["cids"]) < 5:
            e["cids"].append(cid)

    alerts = judge.alerts()
    assert (judge.flows_judged, judge.findings, judge.dropped_findings) == (
        judged, judged - approved, 0)
    assert sum(a.flows for a in alerts) + approved == judge.flows_judged
    got = {
        (a.rule_id, a.device_mac, "" if a.device_mac else a.source_ips[0], a.destination_ip): dict(
            flows=a.flows, sp=a.source_packets, sb=a.source_bytes, dp=a.destination_packets,
            db=a.destination_bytes, first=a.first_ns, last=a.last_ns, services=set(a.services),
            vlans=set(a.vlans), sources=dict.fromkeys(a.source_ips), cids=list(a.community_ids),
            local=a.destination_local)
        for a in alerts
    }
    assert len(got) == len(alerts)
    assert got == expected
    assert all(list(a.services) == sorted(a.services) and list(a.vlans) == sorted(a.vlans) for a in alerts)
    assert all(list(a.source_ips) == list(expected[k]["sources"]) for k, a in zip(got, alerts, strict=True))
    ranks = [(-a.severity_rank, a.first_ns) for a in alerts]
    assert ranks == sorted(ranks)


def test_direction_codes_of_the_helper_follow_the_local_networks() -> None:
    assert [_flow(s, d)["direction"] for s, d in (("198.51.100.9", "203.0.113.50"), ("198.51.100.9", "10.0.0.1"),
                                                  ("10.0.0.1", "203.0.113.50"), ("10.0.0.1", "192.168.1.1"))] == [
        DIRECTION_EXTERNAL, DIRECTION_INBOUND, DIRECTION_OUTBOUND, DIRECTION_INTERNAL]


def test_judge_matches_long_port_lists_and_overlapping_ranges_exactly(tmp_path: Path) -> None:
    ports = [*range(1000, 7000, 2), "6990-7010", "7005-7020", "9000-9000", "65535"]
    allowed = {p for p in range(1000, 7000, 2)} | set(range(6990, 7021)) | {9000, 65535}
    rules = _one_policy(tmp_path, "[{all: true}]", "[{ports: " + json.dumps(ports) + "}]")
    probes = [0, 999, 1000, 1001, 6998, 6999, 7000, 7020, 7021, 8999, 9000, 9001, 65534, 65535]
    judge = _judge(rules, [_flow(dst=f"203.0.113.{i + 1}", dport=p) for i, p in enumerate(probes)])
    flagged = {int(a.services[0][1]) for a in judge.alerts()}
    assert flagged == {p for p in probes if p not in allowed}
