"""Learner: an allow-list proposed per device group from observed flows, and the learn -> check round trip."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.devices.types import VendorVerdict
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import DIRECTION_INBOUND
from auditor.names.types import NAME_SOURCES
from auditor.policy.evaluate import PolicyJudge
from auditor.policy.learn import NEVER_NAMED, Learner
from auditor.policy.load import RuleSet, Vocabulary, load_rules
from tests.policy.test_evaluate import _address, _records

T0 = 1_793_610_000_000_000_000  # 2026-11-02T09:00:00Z
SECOND = 1_000_000_000
GENERATED = datetime.datetime(2026, 11, 3, 12, 0, tzinfo=datetime.UTC)
LOCAL = LocalNetworks(["192.168.0.0/16", "10.0.0.0/8", "fd00::/8", "fe80::/10", "224.0.0.0/4", "ff00::/8"])
VOCABULARY = Vocabulary(vendors=frozenset({"hikvision", "ezviz", "dahua"}), lists=frozenset())

HIK = 0x4CBD8F112233
HIK2 = 0x4CBD8F112244
HIK_NVR = 0x4CBD8F000009
EZVIZ = 0x0CF5A4000001
DAHUA_ODD = 0x3CEF8C000001
CAMERA = 0x001122334455
STRANGER = 0x020000000001
ROUTER = 0x00E0FC000001
VERDICTS: dict[int, VendorVerdict] = {
    HIK: VendorVerdict("hikvision", "Hikvision", "camera", "oui-pin", "4C-BD-8F/24", 0.95),
    HIK2: VendorVerdict("hikvision", "Hikvision", "camera", "oui-pin", "4C-BD-8F/24", 0.95),
    HIK_NVR: VendorVerdict("hikvision", "Hikvision", "nvr", "oui-pin", "4C-BD-8F/24", 0.95),
    EZVIZ: VendorVerdict("ezviz", "EZVIZ", "camera", "org-pattern", "Hangzhou EZVIZ", 0.8, (), ("hikvision",)),
    DAHUA_ODD: VendorVerdict("dahua", "Dahua", "unknown", "oui-pin", "3C-EF-8C/24", 0.95),
    CAMERA: VendorVerdict(None, None, "camera", "protocol", "ONVIF NetworkVideoTransmitter", 0.6),
}
NAMED = {name: code for code, name in enumerate(NAME_SOURCES)}


# --- helpers -------------------------------------------------------------------------------------

def _is_local(text: str) -> bool:
    return bool(LOCAL.contains(*(np.array([x]) for x in _address(text)))[0])


def _flow(src: str = "192.168.10.21", dst: str = "203.0.113.50", *, mac: int = HIK, proto: int = 6,
          dport: int = 443, sb: int = 300, db: int = 200, at: int = 0, name: str | None = None,
          source: str = "sni", direction: int | None = None, syn: bool = True, dst_mac: int = 0) -> dict[str, Any]:
    """One finished flow starting `at` seconds after T0, lasting a second; named `name` by `source`."""
    if direction is None:
        direction = 2 * _is_local(src) + _is_local(dst)
    return dict(src=src, dst=dst, mac=mac, proto=proto, dport=dport, sb=sb, db=db, first=T0 + at * SECOND,
                last=T0 + (at + 1) * SECOND, direction=direction, flags=0x02 if syn and proto == 6 else 0,
                dst_mac=dst_mac, name=name, source=NAMED[source] if name is not None else 0, sp=3, dp=2)


def _learn(*batches: Iterable[dict[str, Any]], **limits: int) -> Learner:
    learner = Learner(**limits)
    for batch in batches:
        learner(_records(batch))
    return learner


def _propose(learner: Learner, **options: Any) -> str:
    return learner.proposal(VERDICTS.get, sources=options.pop("sources", ["site.pcap"]), generated=GENERATED,
                            **options)


def _policies(text: str) -> dict[str, dict[str, Any]]:
    """The proposal's policies by id, as YAML reads them."""
    return {p["id"]: p for p in yaml.safe_load(text)["policies"]}


def _load(text: str, directory: Path) -> RuleSet:
    path = directory / "learned.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules([path], VOCABULARY)


def _judge(rules: RuleSet, *batches: Iterable[dict[str, Any]]) -> PolicyJudge:
    judge = PolicyJudge(rules, VERDICTS.get)
    for batch in batches:
        judge.judge(_records(batch))
    return judge


# --- grouping ------------------------------------------------------------------------------------

def test_learn_groups_devices_by_vendor_and_class() -> None:
    learner = _learn([
        _flow(mac=HIK, name="a.example.com"),
        _flow(src="192.168.10.22", mac=HIK2, name="a.example.com"),
        _flow(src="192.168.10.9", mac=HIK_NVR, name="b.example.com"),
    ])
    policies = _policies(_propose(learner))
    assert set(policies) == {"learned-hikvision-camera", "learned-hikvision-nvr"}
    camera = policies["learned-hikvision-camera"]
    assert camera["devices"] == [{"vendors": ["hikvision"], "classes": ["camera"]}]
    assert camera["allow"] == [{"domains": ["a.example.com"], "protocols": ["tcp"], "ports": [443]}]
    assert camera["severity"] == "medium"
    assert camera["description"] == "Proposed from 2 flows of 2 devices in site.pcap; review before use"
    assert policies["learned-hikvision-nvr"]["devices"] == [{"vendors": ["hikvision"], "classes": ["nvr"]}]


def test_learn_selects_unknown_devices_by_mac_and_macless_ones_by_address() -> None:
    learner = _learn([
        _flow(src="192.168.30.50", mac=STRANGER, dst="192.168.30.1", proto=17, dport=53),
        _flow(src="192.168.30.51", mac=DAHUA_ODD, dst="192.168.30.1", proto=17, dport=53),
        _flow(src="10.1.2.3", mac=0, dst="203.0.113.9", proto=17, dport=123),
        _flow(src="fd00::7", mac=0, dst="2001:db8::9", proto=17, dport=123),
    ])
    policies = _policies(_propose(learner))
    assert [p["devices"] for p in policies.values()] == [
        [{"macs": ["02:00:00:00:00:01"]}],          # no verdict
        [{"macs": ["3C:EF:8C:00:00:01"]}],          # a maker, but class 'unknown'
        [{"ips": ["10.1.2.3/32", "fd00::7/128"]}],  # no MAC at all: last, since ips select any device there
    ]
    assert list(policies) == ["learned-devices-1", "learned-devices-2", "learned-devices-3"]
    macless = policies["learned-devices-3"]["allow"]
    assert [e["networks"] for e in macless] == [["203.0.113.9/32", "2001:db8::9/128"]]  # IPv4 first, by number


def test_learn_puts_subsidiaries_before_parents_and_class_alone_last() -> None:
    learner = _learn([
        _flow(mac=HIK, name="hik.example.com"),
        _flow(src="192.168.10.23", mac=CAMERA, name="cam.example.com"),
        _flow(src="192.168.10.22", mac=EZVIZ, name="ezviz.example.com"),
    ])
    # `vendors: [hikvision]` also selects EZVIZ and `classes: [camera]` every camera: the first policy
    # that selects a device governs it, so the narrower ones must come first
    assert list(_policies(_propose(learner))) == [
        "learned-ezviz-camera", "learned-hikvision-camera", "learned-camera"]


# --- entries -------------------------------------------------------------------------------------

def test_learn_merges_destinations_of_one_kind_and_port_with_counts() -> None:
    learner = _learn([
        _flow(mac=HIK, name="b.example.com", at=0),
        _flow(mac=HIK, name="a.example.com", at=3, sb=40_000, db=8_000),
        _flow(src="192.168.10.22", mac=HIK2, name="A.Example.COM.", at=9, source="dns"),
        _flow(mac=HIK, name="a.example.com", dport=8443, at=1),
    ])
    text = _propose(learner)
    allow = _policies(text)["learned-hikvision-camera"]["allow"]
    assert allow == [
        {"domains": ["a.example.com", "b.example.com"], "protocols": ["tcp"], "ports": [443]},
        {"domains": ["a.example.com"], "protocols": ["tcp"], "ports": [8443]},
    ]
    assert ("      # 3 flows, 2 devices, 49.0 kB, first 2026-11-02T09:00:00Z, last 2026-11-02T09:00:10Z\n"
            "      - domains: [\"a.example.com\", \"b.example.com\"]\n") in text


def test_learn_marks_remote_destinations_never_named() -> None:
    learner = _learn([
        _flow(dst="203.0.113.50", dport=443),
        _flow(dst="198.51.100.7", dport=443),
        _flow(dst="192.168.10.5", dport=554),                                   # local: no remark
        _flow(dst="192.168.10.1", proto=17, dport=53, name="gw.lan", source="dhcp"),  # a local host's name
    ])
    allow = _policies(_propose(learner))["learned-hikvision-camera"]["allow"]
    assert allow == [
        {"networks": ["192.168.10.5/32"], "protocols": ["tcp"], "ports": [554]},
        {"networks": ["192.168.10.1/32"], "protocols": ["udp"], "ports": [53]},
        {"networks": ["198.51.100.7/32", "203.0.113.50/32"], "protocols": ["tcp"], "ports": [443],
         "comment": NEVER_NAMED},
    ]
    assert "never named (no DNS answer, SNI or Host)" in NEVER_NAMED


def test_learn_writes_icmp_without_ports() -> None:
    learner = _learn([_flow(proto=1, dport=0x0800, dst="192.168.10.1"), _flow(proto=58, dport=0, src="fd00::21",
                                                                              dst="ff02::2")])
    allow = _policies(_propose(learner))["learned-hikvision-camera"]["allow"]
    assert allow == [{"networks": ["192.168.10.1/32"], "protocols": ["icmp"]},
                     {"networks": ["ff02::2/128"], "protocols": ["ipv6-icmp"]}]


def test_learn_ignores_flows_started_outside_but_turns_midstream_inbound_around() -> None:
    learner = _learn([
        _flow(src="203.0.113.7", dst="192.168.10.21", mac=ROUTER, dport=22),               # inbound, SYN seen
        _flow(src="198.51.100.1", dst="203.0.113.2", mac=ROUTER, dport=80),                # external
        _flow(src="203.0.113.8", dst="192.168.10.21", mac=ROUTER, dport=50123, syn=False, dst_mac=HIK,
              direction=DIRECTION_INBOUND),                                                 # SYN missed
    ])
    assert learner.flows == 1
    policies = _policies(_propose(learner))
    assert list(policies) == ["learned-hikvision-camera"]
    assert policies["learned-hikvision-camera"]["allow"] == [
        {"networks": ["203.0.113.8/32"], "protocols": ["tcp"], "ports": [40001], "comment": NEVER_NAMED}]


# --- limits --------------------------------------------------------------------------------------

def test_learn_caps_destinations_per_device_and_says_so() -> None:
    learner = _learn([_flow(name=f"h{i}.example.com", dport=443 + i) for i in range(5)]
                     + [_flow(name="h0.example.com")], max_destinations_per_device=2)
    assert learner.dropped_destination_flows == 3
    text = _propose(learner)
    assert len(_policies(text)["learned-hikvision-camera"]["allow"]) == 2
    assert "# 3 flows to further destinations were left out (more than 2 per device)" in text
    assert "# Left out: 3 flows to destinations beyond a device's first 2" in text


def test_learn_counts_a_name_once_whatever_its_addresses() -> None:
    learner = _learn([_flow(dst=f"203.0.113.{i}", name="cdn.example.com") for i in range(1, 6)],
                     max_destinations_per_device=1)
    assert (learner.flows, learner.dropped_destination_flows) == (5, 0)
    (entry,) = _policies(_propose(learner))["learned-hikvision-camera"]["allow"]
    assert entry == {"domains": ["cdn.example.com"], "protocols": ["tcp"], "ports": [443]}


def test_learn_caps_devices_and_counts_the_rest() -> None:
    learner = _learn([_flow(mac=HIK)], [_flow(mac=HIK2, src="192.168.10.22"), _flow(mac=HIK2, src="192.168.10.22")],
                     [_flow(mac=HIK_NVR, src="192.168.10.9"), _flow(mac=HIK, dport=80)], max_devices=1)
    assert (learner.devices, learner.flows, learner.dropped_device_flows) == (1, 2, 3)
    text = _propose(learner)
    assert list(_policies(text)) == ["learned-hikvision-camera"]
    assert "# Left out: 3 flows of devices beyond the first 1 (max_devices)." in text


def test_learn_caps_entries_per_policy_keeping_the_busiest() -> None:
    learner = _learn([_flow(dport=1000 + i) for i in range(4)] + [_flow(dport=1003)] * 2)
    text = _propose(learner, max_entries_per_policy=2)
    allow = _policies(text)["learned-hikvision-camera"]["allow"]
    assert [e["ports"] for e in allow] == [[1000], [1003]]  # 1003 is the busiest; then the first in order
    assert "# 2 more entries (2 flows) were left out (more than 2 per policy)" in text


def test_learner_rejects_bad_limits_and_options() -> None:
    with pytest.raises(ValueError):
        Learner(max_devices=0)
    with pytest.raises(ValueError):
        _propose(Learner(), severity="urgent")
    with pytest.raises(ValueError):
        _propose(Learner(), ruleset="Not An Id")


def test_learn_proposes_nothing_from_nothing() -> None:
    text = _propose(_learn([]))
    assert yaml.safe_load(text)["policies"] == []


# --- hostile names -------------------------------------------------------------------------------

HOSTILE = [
    "evil.example\n- all: true",
    "x.example # allow: everything",
    "q\"uo'te.example",
    "line\u2028break\x85.example",
    "nul\x00bell\x07esc\x1b.example",
    "bücher.example",        # rules spell it xn--bcher-kva.example, which would not match this name
    ".com",                  # in a rule: com and everything under it
    "*.example.com",         # in a rule: everything under example.com
    "}]{: [&a *a !!python/object:os.system",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_learn_keeps_hostile_names_out_of_the_structure(name: str, tmp_path: Path) -> None:
    learner = _learn([_flow(name=name), _flow(name="ok.example.com")])
    text = _propose(learner, sources=["evil\nversion: 2\r\u2028.pcap"])
    assert text.splitlines() == text.split("\n")[:-1]  # no line breaks but the file's own
    document = yaml.safe_load(text)
    assert document["version"] == 1
    (policy,) = document["policies"]
    assert policy["devices"] == [{"vendors": ["hikvision"], "classes": ["camera"]}]
    domains, by_address = policy["allow"]
    assert domains == {"domains": ["ok.example.com"], "protocols": ["tcp"], "ports": [443]}
    assert by_address["networks"] == ["203.0.113.50/32"]
    assert f"'{name}'" in by_address["comment"]
    rules = _load(text, tmp_path)
    assert _judge(rules, [_flow(name=name), _flow(name="ok.example.com")]).findings == 0


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=40))
def test_learn_gives_any_wire_name_back_exactly(name: str) -> None:
    text = _propose(_learn([_flow(name=name)]))
    (entry,) = _policies(text)["learned-hikvision-camera"]["allow"]
    if "domains" in entry:
        assert entry["domains"] == [name.lower().rstrip(".")]
    else:
        assert entry["networks"] == ["203.0.113.50/32"]
        assert not name or f"'{name}'" in entry["comment"]
    with tempfile.TemporaryDirectory() as directory:
        _load(text, Path(directory))


# --- learn -> check round trip -------------------------------------------------------------------

SITE = [
    _flow(mac=HIK, name="api.hik-connect.example", at=0),
    _flow(mac=HIK, name="API.hik-connect.example.", at=1, source="dns"),
    _flow(mac=HIK, dst="203.0.113.60", name="ntp.example", proto=17, dport=123, source="dns"),
    _flow(mac=HIK, dst="192.168.10.5", dport=554),
    _flow(mac=HIK, dst="192.168.10.1", proto=1, dport=0x0800),
    _flow(mac=HIK, dst="239.255.255.250", proto=17, dport=1900),
    _flow(mac=HIK, src="fd00::21", dst="2001:db8::50", dport=443),
    _flow(src="192.168.10.22", mac=EZVIZ, name="litedev.ezvizlife.example"),
    _flow(src="192.168.10.22", mac=EZVIZ, dst="198.51.100.77", proto=17, dport=31007),
    _flow(src="192.168.10.22", mac=EZVIZ, name="evil\n- all: true"),
    _flow(src="192.168.10.23", mac=CAMERA, dst="192.168.10.5", dport=80),
    _flow(src="192.168.10.9", mac=HIK_NVR, name="nvr.example", dport=8443),
    _flow(src="192.168.30.50", mac=STRANGER, dst="203.0.113.99", proto=17, dport=9999),
    _flow(src="192.168.30.51", mac=DAHUA_ODD, name="easy4ip.example"),
    _flow(src="10.1.2.3", mac=0, dst="203.0.113.9", proto=17, dport=123),
    _flow(src="203.0.113.8", dst="192.168.10.21", mac=ROUTER, dport=50123, syn=False, dst_mac=HIK,
          direction=DIRECTION_INBOUND),
    _flow(src="203.0.113.7", dst="192.168.10.21", mac=ROUTER, dport=22),  # inbound: neither learnt nor judged
]


def test_learned_rules_judge_the_same_traffic_without_findings(tmp_path: Path) -> None:
    learner = _learn(SITE[:8], SITE[8:])
    rules = _load(_propose(learner, severity="high", ruleset="site-learned"), tmp_path)
    assert {p.ruleset for p in rules.policies} == {"site-learned"}
    judge = _judge(rules, SITE)
    assert judge.flows_judged == learner.flows == len(SITE) - 1
    assert judge.findings == 0


@pytest.mark.parametrize(("flow", "policy"), [
    (_flow(mac=HIK, name="new.example.com"), "learned-hikvision-camera"),                  # new name
    (_flow(mac=HIK, name="api.hik-connect.example", dport=8443), "learned-hikvision-camera"),  # new port
    (_flow(mac=HIK, dst="203.0.113.61"), "learned-hikvision-camera"),                       # new address
    (_flow(src="192.168.10.22", mac=EZVIZ, dst="203.0.113.52", name="api.hik-connect.example"),
     "learned-ezviz-camera"),
    (_flow(src="192.168.10.23", mac=CAMERA, dst="192.168.10.6", dport=80), "learned-camera"),
    (_flow(src="192.168.30.50", mac=STRANGER, dst="203.0.113.99", proto=6, dport=9999), "learned-devices-1"),
    (_flow(src="10.1.2.3", mac=0, dst="203.0.113.10", proto=17, dport=123), "learned-devices-3"),
])
def test_learned_rules_find_a_new_destination(flow: dict[str, Any], policy: str, tmp_path: Path) -> None:
    rules = _load(_propose(_learn(SITE)), tmp_path)
    judge = _judge(rules, SITE, [flow])
    assert judge.findings == 1
    (alert,) = judge.alerts()
    assert (alert.rule_id, alert.severity, alert.ruleset) == (policy, "medium", "learned")


def test_learned_rules_keep_a_hostile_name_by_address(tmp_path: Path) -> None:
    text = _propose(_learn(SITE))
    assert "- all: true" not in text.replace("\\n- all: true", "")
    rules = _load(text, tmp_path)
    assert all(not s.all for p in rules.policies for s in p.policy.devices)
    # the same name at another address is a finding: it was approved by address, not by name
    judge = _judge(rules, [_flow(src="192.168.10.22", mac=EZVIZ, dst="203.0.113.51", name="evil\n- all: true")])
    assert judge.findings == 1
