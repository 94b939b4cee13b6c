"""The extended policy language, evaluated: domains, countries, ASNs, named sets, deny entries, guard
policies, waivers, MUD URL selectors; and a property test against a per-flow reference of the
documented evaluation order (policy/evaluate.py)."""

from __future__ import annotations

import datetime
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from auditor.devices.types import ListEntry, VendorVerdict
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import DIRECTION_INTERNAL, DIRECTION_OUTBOUND
from auditor.geo import GeoInfo, GeoReader
from auditor.names.types import NAME_SOURCES, SOURCE_DNS, SOURCE_NONE, SOURCE_SNI
from auditor.policy.evaluate import DomainMatcher, PolicyJudge, geo_needs
from auditor.policy.load import LoadedPolicy, LoadedWaiver, RuleSet, Vocabulary, load_rules
from auditor.policy.schema import Destination, DeviceSelector, Policy, Severity, Waiver
from auditor.policy.types import SEVERITIES
from tests.policy.test_evaluate import _address, _records

UTC = datetime.UTC
T0 = int(datetime.datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()) * 10**9
SECOND = 10**9
VOCABULARY = Vocabulary(vendors=frozenset({"hikvision", "axis"}), lists=frozenset({"ndaa-889"}))
LOCAL = LocalNetworks(["192.168.0.0/16", "10.0.0.0/8", "fd00::/8"])
NDAA = ListEntry("ndaa-889", "NDAA section 889", "889(f)(3)(A)", "2019-08-13")

HIK = 0x4CBD8F112233
AXIS = 0xACCC8E000001
LAPTOP = 0x020000000001
BULB = 0x020000000077
VERDICTS: dict[int, VendorVerdict] = {
    HIK: VendorVerdict("hikvision", "Hikvision", "camera", "oui-pin", "4C-BD-8F/24", 0.95, (NDAA,)),
    AXIS: VendorVerdict("axis", "Axis", "camera", "oui-pin", "AC-CC-8E/24", 0.95),
}
SOURCE_OF = {HIK: "192.168.10.21", AXIS: "192.168.20.40", LAPTOP: "192.168.30.50", BULB: "192.168.40.7", 0: "10.1.2.3"}


# --- helpers -------------------------------------------------------------------------------------

def _is_local(text: str) -> bool:
    return bool(LOCAL.contains(*(np.array([x]) for x in _address(text)))[0])


def _flow(dst: str = "203.0.113.50", *, mac: int = HIK, src: str | None = None, name: str | None = None,
          source: int | None = None, proto: int = 6, dport: int = 443, first: int = T0,
          dns_name: str | None = None) -> dict[str, Any]:
    """One finished flow a local device started; `name` is the destination's name (names stage) and
    `dns_name` the client's own DNS name for the address when it disagrees with `name`."""
    src = SOURCE_OF[mac] if src is None else src
    return dict(src=src, dst=dst, mac=mac, proto=proto, dport=dport, first=first, last=first + SECOND,
                direction=2 * _is_local(src) + _is_local(dst), name=name, dns_name=dns_name,
                source=(SOURCE_NONE if name is None else SOURCE_SNI) if source is None else source)


def _write(folder: Path, text: str, name: str = "site.yaml") -> Path:
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def _rules(folder: Path, text: str, today: datetime.date | None = None) -> RuleSet:
    return load_rules([_write(folder, text)], VOCABULARY, today=today)


def _judge(rules: RuleSet, *batches: Iterable[dict[str, Any]], geo: Any = None,
           verdict_of: Callable[[int], VendorVerdict | None] = VERDICTS.get,
           mud_url_of: Callable[[int], str | None] | None = None, names: bool = True) -> PolicyJudge:
    judge = PolicyJudge(rules, verdict_of, geo=geo, mud_url_of=mud_url_of)
    first_id = 1
    for batch in batches:
        records = _records(batch, first_id, names)
        first_id += len(records)
        judge.judge(records)
    return judge


def _by_destination(judge: PolicyJudge) -> dict[str, tuple[str, str]]:
    """Per destination address: (rule id, severity) of its one alert."""
    alerts = judge.alerts()
    out = {a.destination_ip: (a.rule_id, a.severity) for a in alerts}
    assert len(out) == len(alerts), "one alert per destination in these tests"
    return out


def _ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 10**9


class FakeGeo:
    """A GeoLookup over a fixed table; records which addresses it was asked about."""

    def __init__(self, table: dict[str, GeoInfo]) -> None:
        self.table = table
        self.asked: list[str] = []

    def lookup(self, ip: str) -> GeoInfo:
        self.asked.append(ip)
        return self.table.get(ip, GeoInfo(None, None, None))


# --- 1. domain patterns ----------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "name", "hit"), [
    ("example.com", "example.com", True),
    ("example.com", "EXAMPLE.com.", True),
    ("example.com", "www.example.com", False),
    ("example.com", "badexample.com", False),
    ("*.example.com", "example.com", False),
    ("*.example.com", "www.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "WWW.Example.COM.", True),
    ("*.example.com", "badexample.com", False),
    ("*.example.com", "www.badexample.com", False),
    (".example.com", "example.com", True),
    (".example.com", "Example.Com.", True),
    (".example.com", "a.b.example.com", True),
    (".example.com", "badexample.com", False),
    (".example.com", "example.com.evil.net", False),
    (".example.com", "example.co", False),
    (".example.com", "com", False),
    (".example.com", None, False),
    (".example.com", "", False),
    ("*.example.com", None, False),
    ("example.com", None, False),
    ("xn--bcher-kva.example", "XN--BCHER-KVA.example.", True),
])
def test_domain_matcher_wildcard_semantics(pattern: str, name: str | None, hit: bool) -> None:
    matcher = DomainMatcher([pattern])
    assert matcher(name) is hit
    assert matcher(name) is hit  # the remembered answer is the same


def test_domain_matcher_with_several_patterns_matches_any_of_them() -> None:
    matcher = DomainMatcher(["a.test", "*.b.test", ".c.test"])
    assert [matcher(n) for n in ("a.test", "x.a.test", "b.test", "x.b.test", "c.test", "y.x.c.test", "d.test")] == [
        True, False, False, True, True, True, False]


WILDCARDS = """\
    version: 1
    ruleset: site
    policies:
      - id: named
        name: Devices reach only their vendors' names
        devices: [{all: true}]
        allow:
          - domains: ["Example.COM.", "*.cdn.example.net", ".Vendor.Example", "XN--BCHER-KVA.example"]
        severity: high
    """
# destination, its name, whether an allow entry approves it
NAMED_FLOWS = [
    ("203.0.113.1", "example.com", True),
    ("203.0.113.2", "www.example.com", False),
    ("203.0.113.3", "cdn.example.net", False),
    ("203.0.113.4", "EU.CDN.example.NET.", True),
    ("203.0.113.5", "vendor.example", True),
    ("203.0.113.6", "a.b.vendor.example", True),
    ("203.0.113.7", "badvendor.example", False),
    ("203.0.113.8", None, False),
    ("203.0.113.9", "xn--bcher-kva.example", True),
    ("203.0.113.10", "evil.net", False),
]


def test_allowed_domains_through_the_judge(tmp_path: Path) -> None:
    rules = _rules(tmp_path, WILDCARDS)
    judge = _judge(rules, [_flow(dst, name=name) for dst, name, _ in NAMED_FLOWS])
    assert set(_by_destination(judge)) == {dst for dst, _, ok in NAMED_FLOWS if not ok}
    assert judge.flows_judged == len(NAMED_FLOWS)
    unnamed = next(a for a in judge.alerts() if a.destination_ip == "203.0.113.8")
    assert (unnamed.destination_domain, unnamed.name_source) == (None, None)
    named = next(a for a in judge.alerts() if a.destination_ip == "203.0.113.2")
    assert (named.destination_domain, named.name_source) == ("www.example.com", "sni")


def test_denied_domains_through_the_judge_and_unnamed_flows_never_match(tmp_path: Path) -> None:
    rules = _rules(tmp_path, WILDCARDS.replace("allow:", "deny:").replace("severity: high\n", ""))
    judge = _judge(rules, [_flow(dst, name=name) for dst, name, _ in NAMED_FLOWS])
    assert _by_destination(judge) == {dst: ("named/deny-0", "high") for dst, _, ok in NAMED_FLOWS if ok}


def test_without_a_names_stage_domain_allows_approve_nothing_and_domain_denies_fire_never(tmp_path: Path) -> None:
    flows = [_flow(dst, name=name) for dst, name, _ in NAMED_FLOWS]
    allow = _judge(_rules(tmp_path, WILDCARDS), flows, names=False)
    assert set(_by_destination(allow)) == {dst for dst, _, _ in NAMED_FLOWS}
    deny = _judge(_rules(tmp_path, WILDCARDS.replace("allow:", "deny:").replace("severity: high\n", "")), flows,
                  names=False)
    assert (deny.alerts(), deny.findings, deny.flows_judged) == ([], 0, len(NAMED_FLOWS))


def test_an_alert_takes_the_first_name_its_flows_were_known_by(tmp_path: Path) -> None:
    rules = _rules(tmp_path, WILDCARDS)
    judge = _judge(rules, [_flow("203.0.113.77", first=T0)],
                   [_flow("203.0.113.77", name="evil.net", source=SOURCE_DNS, first=T0 + SECOND),
                    _flow("203.0.113.77", name="other.net", first=T0 + 2 * SECOND)])
    (alert,) = judge.alerts()
    assert (alert.flows, alert.destination_domain, alert.name_source) == (3, "evil.net", NAME_SOURCES[SOURCE_DNS])


# --- 2. countries and ASNs ------------------------------------------------------------------------------

GEO_RULES = """\
    version: 1
    ruleset: site
    policies:
      - id: geo
        name: Where devices may send data
        devices: [{all: true}]
        deny:
          - countries: cn
            severity: critical
          - asns: [AS64500, 4200000001]
        allow:
          - countries: [US, DE]
          - local: true
        severity: medium
    """
GEO_TABLE = {
    "203.0.113.5": GeoInfo("CN", 37963, "Alibaba"),
    "198.51.100.7": GeoInfo("US", 64500, "Test cloud"),
    "192.0.2.9": GeoInfo("DE", None, None),
    "198.51.100.99": GeoInfo(None, 4200000001, "32-bit AS"),
    "198.51.100.100": GeoInfo("FR", None, None),
}


def test_countries_and_asns_with_a_geo_lookup(tmp_path: Path) -> None:
    geo = FakeGeo(GEO_TABLE)
    flows = [_flow(dst) for dst in ("203.0.113.5", "198.51.100.7", "192.0.2.9", "198.51.100.99",
                                    "198.51.100.100", "203.0.113.200", "192.168.10.5")]
    judge = _judge(_rules(tmp_path, GEO_RULES), flows, flows, geo=geo)
    assert _by_destination(judge) == {
        "203.0.113.5": ("geo/deny-0", "critical"),
        "198.51.100.7": ("geo/deny-1", "medium"),  # an ASN deny beats a country allow
        "198.51.100.99": ("geo/deny-1", "medium"),
        "198.51.100.100": ("geo", "medium"),
        "203.0.113.200": ("geo", "medium"),  # no answer: neither denied nor allowed
    }
    assert judge.worst_rank == SEVERITIES.index("critical")
    assert len(geo.asked) == len(set(geo.asked)), "one lookup per address"


def test_without_geo_answers_country_and_asn_entries_never_match(tmp_path: Path) -> None:
    flows = [_flow(dst) for dst in ("203.0.113.5", "198.51.100.7", "192.0.2.9")]
    judge = _judge(_rules(tmp_path, GEO_RULES), flows)
    assert _by_destination(judge) == {dst: ("geo", "medium") for dst in ("203.0.113.5", "198.51.100.7", "192.0.2.9")}


def _build_mmdb(path: Path, database_type: str, networks: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def test_countries_and_asns_with_real_mmdb_files(tmp_path: Path) -> None:
    country = _build_mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", {
        "203.0.113.0/24": {"country": {"iso_code": "CN"}},
        "198.51.100.0/24": {"country": {"iso_code": "US"}},
        "2001:db8::/32": {"country": {"iso_code": "RU"}},
    })
    asn = _build_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {
        "203.0.113.0/24": {"autonomous_system_number": MmdbU32(37963),
                           "autonomous_system_organization": "Hangzhou Alibaba"},
        "192.0.2.0/24": {"autonomous_system_number": MmdbU32(45090), "autonomous_system_organization": "Tencent"},
    })
    rules = _rules(tmp_path, """\
        version: 1
        ruleset: site
        policies:
          - id: high-risk
            name: High-risk destinations
            devices: [{all: true}]
            deny:
              - countries: [CN, RU]
                severity: critical
              - asns: [AS45090]
        """)
    with GeoReader(country, asn) as reader:
        assert reader.lookup("203.0.113.5") == GeoInfo("CN", 37963, "Hangzhou Alibaba")
        judge = _judge(rules, [_flow(dst, src="fd00::21" if ":" in dst else None)
                                for dst in ("203.0.113.5", "2001:db8::5", "192.0.2.8", "198.51.100.7", "100.64.0.1")],
                       geo=reader)
        assert _by_destination(judge) == {
            "203.0.113.5": ("high-risk/deny-0", "critical"),
            "2001:db8::5": ("high-risk/deny-0", "critical"),
            "192.0.2.8": ("high-risk/deny-1", "high"),  # no country answer, its AS is denied
        }
    # the same rule by AS number only
    rules = _rules(tmp_path, """\
        version: 1
        policies:
          - id: alibaba
            name: No Alibaba cloud
            devices: [{all: true}]
            deny: [{asns: 37963}]
        """)
    with GeoReader(country, asn) as reader:
        judge = _judge(rules, [_flow(dst) for dst in ("203.0.113.5", "198.51.100.7")], geo=reader)
        assert _by_destination(judge) == {"203.0.113.5": ("alibaba/deny-0", "high")}


def test_geo_needs_names_the_databases_and_where_they_are_first_used(tmp_path: Path) -> None:
    rules = _rules(tmp_path, GEO_RULES)
    needs = geo_needs(rules)
    assert set(needs) == {"country", "asn"}
    assert needs["country"] == f"{tmp_path / 'site.yaml'}:4: policy 'geo'"
    assert geo_needs(_rules(tmp_path, WILDCARDS)) == {}
    only_sets = _rules(tmp_path, """\
        version: 1
        sets:
          risky: [{countries: CN}]
          unused: [{asns: 1}]
        policies:
          - id: p
            name: P
            devices: [{all: true}]
            deny: [{set: risky}]
        """)
    needs = geo_needs(only_sets)
    assert list(needs) == ["country"]
    assert "set 'risky'" in needs["country"] and "policy 'p'" in needs["country"]
    in_waiver = _rules(tmp_path, """\
        version: 1
        policies:
          - id: p
            name: P
            devices: [{all: true}]
            severity: low
        waivers:
          - id: w
            devices: [{all: true}]
            destinations: [{asns: 64500}]
            expires: 2030-01-01
            reason: test
        """)
    assert list(geo_needs(in_waiver)) == ["asn"]
    assert "waiver 'w'" in geo_needs(in_waiver)["asn"]


# --- 3. named sets ----------------------------------------------------------------------------------

SETS = """\
    version: 1
    ruleset: shared
    sets:
      vendor-cloud:
        - domains: .hik-connect.com
        - networks: 198.51.100.0/24
    """
SET_POLICIES = """\
    version: 1
    ruleset: site
    policies:
      - id: hik-cloud
        name: Hikvision reaches its cloud over HTTPS
        devices: [{vendors: hikvision}]
        allow:
          - set: vendor-cloud
            ports: 443
          - local: true
        severity: high
      - id: others-no-hik-cloud
        name: Nothing else reaches the Hikvision cloud
        devices: [{all: true}]
        deny:
          - set: vendor-cloud
            severity: medium
    """


def test_a_named_set_from_another_file_used_by_two_policies_and_anded_with_ports(tmp_path: Path) -> None:
    rules = load_rules([_write(tmp_path, SETS, "10-sets.yaml"), _write(tmp_path, SET_POLICIES, "20-site.yaml")],
                       VOCABULARY)
    hik = [
        _flow("198.51.100.7", dport=443),  # network member + port: approved
        _flow("198.51.100.8", dport=80),  # network member, wrong port
        _flow("203.0.113.9", name="eu.hik-connect.com", dport=443),  # domain member + port: approved
        _flow("203.0.113.10", name="hik-connect.com", dport=8443),  # domain member, wrong port
        _flow("203.0.113.11", name="hik-connect.com.evil.net", dport=443),  # no member
        _flow("192.168.10.5", dport=554),  # local
    ]
    others = [
        _flow("198.51.100.7", mac=AXIS, dport=443),  # network member: denied
        _flow("203.0.113.9", mac=AXIS, name="hik-connect.com", dport=80),  # domain member: denied
        _flow("203.0.113.11", mac=AXIS, name="example.com", dport=443),  # no member: no policy decides
    ]
    judge = _judge(rules, hik + others)
    got = {(a.device_mac, a.destination_ip): (a.rule_id, a.severity, a.ruleset) for a in judge.alerts()}
    assert got == {
        (HIK, "198.51.100.8"): ("hik-cloud", "high", "site"),
        (HIK, "203.0.113.10"): ("hik-cloud", "high", "site"),
        (HIK, "203.0.113.11"): ("hik-cloud", "high", "site"),
        (AXIS, "198.51.100.7"): ("others-no-hik-cloud/deny-0", "medium", "site"),
        (AXIS, "203.0.113.9"): ("others-no-hik-cloud/deny-0", "medium", "site"),
    }
    deny = next(a for a in judge.alerts() if a.device_mac == AXIS and a.destination_ip == "203.0.113.9")
    assert ("policy-deny", "deny[0]") in {(e.source, e.field) for e in deny.evidence}
    assert any("set vendor-cloud" in (e.detail or "") for e in deny.evidence)


def test_a_named_set_in_a_waiver(tmp_path: Path) -> None:
    waiver = """\
        waivers:
          - id: hik-cloud-for-now
            devices: [{vendors: hikvision}]
            destinations: [{set: vendor-cloud}]
            expires: 2026-12-31
            reason: cloud until the VMS upgrade (OPS-42)
        """
    rules = load_rules([_write(tmp_path, SETS, "10-sets.yaml"),
                        _write(tmp_path, dedent(SET_POLICIES) + dedent(waiver), "20-site.yaml")], VOCABULARY,
                       today=datetime.date(2026, 11, 2))
    judge = _judge(rules, [_flow("198.51.100.8", dport=80), _flow("203.0.113.10", name="x.hik-connect.com", dport=1),
                           _flow("203.0.113.11", name="example.com")])
    got = {a.destination_ip: (a.status, a.waiver_id) for a in judge.alerts()}
    assert got == {"198.51.100.8": ("waived", "hik-cloud-for-now"), "203.0.113.10": ("waived", "hik-cloud-for-now"),
                   "203.0.113.11": ("open", None)}
    assert (judge.findings, judge.waived_findings, judge.worst_rank) == (3, 2, SEVERITIES.index("high"))


# --- 4. deny entries --------------------------------------------------------------------------------

DENY_RULES = """\
    version: 1
    ruleset: site
    policies:
      - id: cams
        name: Cameras
        devices: [{classes: camera}]
        deny:
          - networks: 203.0.113.66/32
            severity: critical
          - networks: 203.0.113.64/28
            severity: low
          - ports: 23
        allow:
          - local: true
          - networks: 203.0.113.0/24
        severity: medium
    """


def test_deny_beats_allow_first_deny_wins_and_severity_defaults_to_the_policy(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, DENY_RULES), [
        _flow("203.0.113.66"),  # allowed by network, denied by deny-0 and deny-1: deny-0
        _flow("203.0.113.70"),  # allowed, denied by deny-1 only
        _flow("203.0.113.5", dport=23),  # allowed, denied by deny-2 (no severity: the policy's)
        _flow("192.168.10.5", dport=23),  # local, still denied
        _flow("203.0.113.5", dport=443),  # allowed
        _flow("198.51.100.1", dport=443),  # nothing: the policy's severity
    ])
    assert _by_destination(judge) == {
        "203.0.113.66": ("cams/deny-0", "critical"),
        "203.0.113.70": ("cams/deny-1", "low"),
        "203.0.113.5": ("cams/deny-2", "medium"),
        "192.168.10.5": ("cams/deny-2", "medium"),
        "198.51.100.1": ("cams", "medium"),
    }
    alerts = judge.alerts()
    assert [a.severity for a in alerts] == ["critical", "medium", "medium", "medium", "low"]
    first = alerts[0]
    assert first.rule_name == "Cameras: denied destination"
    assert [(e.source, e.field) for e in first.evidence][-1] == ("policy-deny", "deny[0]")
    catch_all = next(a for a in alerts if a.rule_id == "cams")
    assert (catch_all.rule_name, catch_all.evidence[-1].source) == ("Cameras", "policy-allow")
    assert judge.worst_rank == SEVERITIES.index("critical")
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_a_deny_in_a_policy_without_severity_defaults_to_high(tmp_path: Path) -> None:
    rules = _rules(tmp_path, DENY_RULES.replace("    severity: medium\n", ""))
    assert rules.policies[0].policy.severity is None
    judge = _judge(rules, [_flow("203.0.113.5", dport=23), _flow("198.51.100.1")])
    assert _by_destination(judge) == {"203.0.113.5": ("cams/deny-2", "high")}


def test_deny_findings_and_catch_all_findings_of_one_destination_are_separate_alerts(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, DENY_RULES.replace("          - networks: 203.0.113.0/24\n", "")), [
        _flow("203.0.113.5", dport=23), _flow("203.0.113.5", dport=443), _flow("203.0.113.5", dport=23)])
    got = sorted((a.rule_id, a.flows, a.services) for a in judge.alerts())
    assert got == [("cams", 1, ((6, 443),)), ("cams/deny-2", 2, ((6, 23),))]


# --- 5. guard policies -------------------------------------------------------------------------------

GUARD = """\
    version: 1
    ruleset: site
    policies:
      - id: high-risk-countries
        name: No device reaches high-risk countries
        devices: [{all: true}]
        deny:
          - countries: [CN, RU]
      - id: cameras-local
        name: Cameras stay local
        devices: [{classes: camera}]
        allow: [{local: true}]
        severity: medium
    """


def test_a_guard_deny_flags_any_device_and_leaves_the_rest_to_later_policies(tmp_path: Path) -> None:
    geo = FakeGeo({"203.0.113.5": GeoInfo("CN", 37963, None), "198.51.100.7": GeoInfo("US", None, None)})
    judge = _judge(_rules(tmp_path, GUARD), [
        _flow("203.0.113.5", mac=HIK),
        _flow("198.51.100.7", mac=HIK),
        _flow("192.168.10.5", mac=HIK),
        _flow("203.0.113.5", mac=LAPTOP),
        _flow("198.51.100.7", mac=LAPTOP),
    ], geo=geo)
    got = {(a.device_mac, a.destination_ip): (a.rule_id, a.severity) for a in judge.alerts()}
    assert got == {
        (HIK, "203.0.113.5"): ("high-risk-countries/deny-0", "high"),
        (HIK, "198.51.100.7"): ("cameras-local", "medium"),
        (LAPTOP, "203.0.113.5"): ("high-risk-countries/deny-0", "high"),
    }
    assert (judge.flows_judged, judge.findings) == (5, 3)


def test_a_guard_allow_approves_and_stops(tmp_path: Path) -> None:
    rules = _rules(tmp_path, """\
        version: 1
        policies:
          - id: time-ok
            name: Anyone may ask for the time
            devices: [{all: true}]
            deny: [{networks: 198.51.100.66/32}]
            allow: [{protocols: udp, ports: 123}]
          - id: cameras-local
            name: Cameras stay local
            devices: [{classes: camera}]
            allow: [{local: true}]
            severity: medium
          - id: everything
            name: Everything else is a finding
            devices: [{all: true}]
            severity: low
        """)
    judge = _judge(rules, [
        _flow("198.51.100.7", proto=17, dport=123),  # approved by the guard: stops there
        _flow("198.51.100.66", proto=17, dport=123),  # allowed and denied: denied
        _flow("198.51.100.8", proto=6, dport=443),  # camera policy
        _flow("198.51.100.9", mac=LAPTOP, proto=17, dport=123),  # approved
        _flow("198.51.100.10", mac=LAPTOP, proto=6, dport=443),  # the last policy
    ])
    got = {(a.device_mac, a.destination_ip): (a.rule_id, a.severity) for a in judge.alerts()}
    assert got == {
        (HIK, "198.51.100.66"): ("time-ok/deny-0", "high"),
        (HIK, "198.51.100.8"): ("cameras-local", "medium"),
        (LAPTOP, "198.51.100.10"): ("everything", "low"),
    }


def test_a_guard_that_decides_nothing_leaves_the_flow_unjudged_but_counted(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, GUARD), [_flow("198.51.100.7", mac=LAPTOP)])
    assert (judge.alerts(), judge.flows_judged, judge.findings, judge.worst_rank) == ([], 1, 0, -1)


# --- 6. waivers ----------------------------------------------------------------------------------------

WAIVED = """\
    version: 1
    ruleset: site
    policies:
      - id: cameras-local
        name: Cameras stay local
        devices: [{classes: camera}]
        deny:
          - networks: 203.0.113.66/32
            severity: critical
        allow: [{local: true}]
        severity: medium
    waivers:
      - id: hik-cloud
        devices: [{macs: "4C:BD:8F:11:22:33"}]
        destinations: [{networks: 198.51.100.0/24}]
        expires: 2026-11-02
        reason: vendor cloud until the VMS upgrade (OPS-42)
    """
LAST_SECOND = _ns(2026, 11, 2, 23, 59, 59)
NEXT_DAY = _ns(2026, 11, 3)


def test_a_waived_finding_is_an_alert_with_status_waived_not_counted_in_worst_rank(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, WAIVED), [_flow("198.51.100.7"), _flow("198.51.100.7", first=LAST_SECOND)])
    (alert,) = judge.alerts()
    assert (alert.status, alert.waiver_id, alert.severity, alert.rule_id, alert.flows) == (
        "waived", "hik-cloud", "medium", "cameras-local", 2)
    assert alert.evidence[-1].source == "waiver"
    assert alert.evidence[-1].value == "vendor cloud until the VMS upgrade (OPS-42)"
    assert (judge.findings, judge.waived_findings, judge.expired_waiver_findings, judge.worst_rank) == (2, 2, 0, -1)


def test_a_waiver_covers_its_last_day_utc_and_not_the_next(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, WAIVED), [
        _flow("198.51.100.7", first=LAST_SECOND),
        _flow("198.51.100.8", first=NEXT_DAY - 1),  # the last nanosecond of the last day
        _flow("198.51.100.9", first=NEXT_DAY),
        _flow("198.51.100.7", mac=AXIS),  # a camera the waiver does not name
        _flow("203.0.113.66"),  # a destination it does not name
    ])
    got = {(a.device_mac, a.destination_ip): (a.status, a.waiver_id, a.severity) for a in judge.alerts()}
    assert got == {
        (HIK, "198.51.100.7"): ("waived", "hik-cloud", "medium"),
        (HIK, "198.51.100.8"): ("waived", "hik-cloud", "medium"),
        (HIK, "198.51.100.9"): ("open", "hik-cloud", "medium"),
        (AXIS, "198.51.100.7"): ("open", None, "medium"),
        (HIK, "203.0.113.66"): ("open", None, "critical"),
    }
    expired = next(a for a in judge.alerts() if a.destination_ip == "198.51.100.9")
    assert [e.source for e in expired.evidence].count("waiver-expired") == 1
    assert "waiver" not in [e.source for e in expired.evidence]
    assert "expired on 2026-11-02" in (expired.evidence[-1].detail or "")
    assert (judge.findings, judge.waived_findings, judge.expired_waiver_findings) == (5, 2, 1)
    assert judge.worst_rank == SEVERITIES.index("critical")
    # waived alerts come last
    assert [a.status for a in judge.alerts()][-2:] == ["waived", "waived"]


def test_the_same_flows_before_and_after_expiry_make_an_open_and_a_waived_alert(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, WAIVED), [_flow("198.51.100.7", first=LAST_SECOND)],
                   [_flow("198.51.100.7", first=NEXT_DAY), _flow("198.51.100.7", first=NEXT_DAY + SECOND)])
    got = sorted((a.status, a.flows) for a in judge.alerts())
    assert got == [("open", 2), ("waived", 1)]
    assert judge.worst_rank == SEVERITIES.index("medium")


def test_alert_ids_stay_unique_when_a_waiver_expires_mid_run(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, WAIVED), [_flow("198.51.100.7", first=LAST_SECOND),
                                              _flow("198.51.100.7", first=NEXT_DAY)])
    alerts = judge.alerts()
    assert sorted(a.status for a in alerts) == ["open", "waived"]
    assert len({a.alert_id for a in alerts}) == 2, "a waived and an expired part of one finding: two event ids"


def test_an_expired_waiver_leaves_the_finding_to_a_later_waiver(tmp_path: Path) -> None:
    later = dedent(WAIVED) + (
        "  - id: renewed\n"
        "    devices: [{classes: camera}]\n"
        "    destinations: [{networks: 198.51.100.0/24}]\n"
        "    expires: 2026-12-31\n"
        "    reason: renewed (OPS-43)\n"
    )
    for text in (later, later.replace("id: hik-cloud", "id: first").replace("id: renewed", "id: hik-cloud")
                 .replace("id: first", "id: renewed")):
        judge = _judge(_rules(tmp_path, text), [_flow("198.51.100.9", first=NEXT_DAY)])
        (alert,) = judge.alerts()
        assert (alert.status, alert.waiver_id) == ("waived", "renewed" if text is later else "hik-cloud")
        assert judge.expired_waiver_findings == 0


POLICY_WAIVER = """\
    version: 1
    ruleset: site
    policies:
      - id: guard
        name: Nobody reaches 203.0.113.0/24
        devices: [{all: true}]
        deny: [{networks: 203.0.113.0/24}]
      - id: cameras-local
        name: Cameras stay local
        devices: [{classes: camera}]
        allow: [{local: true}]
        severity: medium
    waivers:
      - id: cams
        devices: [{classes: camera}]
        destinations: [{networks: 0.0.0.0/0}]
        policies: cameras-local
        expires: 2027-01-01
        reason: pilot
    """


def test_a_waiver_naming_policies_waives_only_their_findings(tmp_path: Path) -> None:
    flows = [_flow("203.0.113.5"), _flow("198.51.100.7")]
    judge = _judge(_rules(tmp_path, POLICY_WAIVER), flows)
    got = {a.destination_ip: (a.rule_id, a.status) for a in judge.alerts()}
    assert got == {"203.0.113.5": ("guard/deny-0", "open"), "198.51.100.7": ("cameras-local", "waived")}
    assert judge.worst_rank == SEVERITIES.index("high")
    # without `policies:` the guard's finding is waived too
    judge = _judge(_rules(tmp_path, POLICY_WAIVER.replace("        policies: cameras-local\n", "")), flows)
    assert {a.status for a in judge.alerts()} == {"waived"}
    assert judge.worst_rank == -1
    # naming the guard waives its finding only
    judge = _judge(_rules(tmp_path, POLICY_WAIVER.replace("policies: cameras-local", "policies: [guard]")), flows)
    got = {a.destination_ip: (a.rule_id, a.status) for a in judge.alerts()}
    assert got == {"203.0.113.5": ("guard/deny-0", "waived"), "198.51.100.7": ("cameras-local", "open")}
    assert judge.worst_rank == SEVERITIES.index("medium")  # the waived high finding does not count


def test_a_waiver_selecting_devices_by_address_covers_devices_without_a_mac(tmp_path: Path) -> None:
    text = POLICY_WAIVER.replace("devices: [{classes: camera}]\n        destinations",
                                 "devices: [{ips: 10.1.2.3/32}]\n        destinations").replace(
        "        policies: cameras-local\n", "")
    judge = _judge(_rules(tmp_path, text), [_flow("203.0.113.5", mac=0), _flow("203.0.113.5", mac=0, src="10.1.2.4"),
                                            _flow("203.0.113.5", mac=HIK)])
    got = {(a.device_mac, a.source_ips[0]): a.status for a in judge.alerts()}
    assert got == {(0, "10.1.2.3"): "waived", (0, "10.1.2.4"): "open", (HIK, "192.168.10.21"): "open"}


def test_loading_warns_of_an_expired_waiver_but_keeps_it(tmp_path: Path) -> None:
    path = _write(tmp_path, WAIVED)
    assert load_rules([path], VOCABULARY, today=datetime.date(2026, 11, 2)).warnings == ()
    rules = load_rules([path], VOCABULARY, today=datetime.date(2026, 11, 3))
    (warning,) = rules.warnings
    assert warning.startswith(f"{path}:13: waiver 'hik-cloud' expired on 2026-11-02")
    assert [w.waiver.id for w in rules.waivers] == ["hik-cloud"]
    assert rules.waivers[0].reference == f"{path}:13"


# --- 7. MUD URL selectors -------------------------------------------------------------------------

BULB_URL = "https://lighting.example.com/lightbulb2000.json"
MUD_RULES = f"""\
    version: 1
    ruleset: site
    policies:
      - id: bulbs
        name: Lightbulbs reach their maker only
        devices: [{{mud_urls: "{BULB_URL}"}}]
        allow: [{{domains: .lighting.example.com}}]
        severity: medium
      - id: cameras
        name: Cameras stay local
        devices: [{{classes: camera}}]
        allow: [{{local: true}}]
        severity: high
    """


def test_mud_url_selectors_use_the_devices_announced_url(tmp_path: Path) -> None:
    urls = {BULB: BULB_URL, LAPTOP: "https://other.example/x.json"}
    judge = _judge(_rules(tmp_path, MUD_RULES), [
        _flow("203.0.113.1", mac=BULB, name="api.lighting.example.com"),
        _flow("203.0.113.2", mac=BULB, name="tracker.example.net"),
        _flow("203.0.113.3", mac=LAPTOP, name="tracker.example.net"),
        _flow("203.0.113.4", mac=0, name="tracker.example.net"),
    ], mud_url_of=urls.get)
    got = {(a.device_mac, a.destination_ip): a.rule_id for a in judge.alerts()}
    assert got == {(BULB, "203.0.113.2"): "bulbs"}
    assert judge.flows_judged == 2
    (alert,) = judge.alerts()
    assert any(e.source == "policy-group" and BULB_URL in e.value for e in alert.evidence)
    # without a MUD URL lookup nothing is selected by a URL
    assert _judge(_rules(tmp_path, MUD_RULES), [_flow("203.0.113.2", mac=BULB)]).flows_judged == 0


def test_a_mud_url_or_verdict_learnt_mid_run_changes_the_devices_policy(tmp_path: Path) -> None:
    rules = _rules(tmp_path, MUD_RULES)
    urls: dict[int, str] = {}
    verdicts: dict[int, VendorVerdict] = {}
    judge = PolicyJudge(rules, verdicts.get, mud_url_of=urls.get)
    judge.judge(_records([_flow("203.0.113.1", mac=BULB), _flow("203.0.113.2", mac=LAPTOP)]))
    assert (judge.flows_judged, len(judge.alerts())) == (0, 0)
    urls[BULB] = BULB_URL
    verdicts[LAPTOP] = VendorVerdict("axis", "Axis", "camera", "protocol", "ONVIF", 0.7)
    judge.judge(_records([_flow("203.0.113.1", mac=BULB), _flow("203.0.113.2", mac=LAPTOP)], first_id=10))
    got = {(a.device_mac, a.destination_ip): a.rule_id for a in judge.alerts()}
    assert got == {(BULB, "203.0.113.1"): "bulbs", (LAPTOP, "203.0.113.2"): "cameras"}
    urls[BULB] = "https://lighting.example.com/lightbulb3000.json"  # a firmware update: no longer a 2000
    judge.judge(_records([_flow("203.0.113.1", mac=BULB)], first_id=20))
    assert judge.flows_judged == 2
    (bulb,) = [a for a in judge.alerts() if a.device_mac == BULB]
    assert bulb.flows == 1
    # each change of the policies that select a device after it had flows judged is counted (the CLI warns)
    assert judge.regrouped_devices == 3  # the bulb twice (URL learnt, then changed), the laptop once


# --- 8. property: the vectorised judge equals a per-flow reference -------------------------------------

P_SELECTORS: dict[str, tuple[DeviceSelector, Callable[[int, str], bool]]] = {
    "all": (DeviceSelector(all=True), lambda mac, src: True),
    "cameras": (DeviceSelector(classes=("camera",)),
                lambda mac, src: mac in VERDICTS and VERDICTS[mac].device_class == "camera"),
    "hik": (DeviceSelector(macs=("4C:BD:8F:11:22:33",)), lambda mac, src: mac == HIK),
    "net10": (DeviceSelector(ips=("10.0.0.0/8",)), lambda mac, src: ipaddress.ip_address(src)
              in ipaddress.ip_network("10.0.0.0/8")),
}
P_SETS: dict[str, tuple[Destination, ...]] = {
    "cloud": (Destination(networks=("198.51.100.0/25",)), Destination(domains=(".example.net",))),
}
P_GEO = {
    "203.0.113.5": GeoInfo("CN", 37963, None),
    "203.0.113.200": GeoInfo("US", 64500, None),
    "198.51.100.7": GeoInfo("DE", None, None),
    "198.51.100.200": GeoInfo(None, 64501, None),
}
P_DESTINATIONS = [*P_GEO, "192.168.10.5", "10.0.0.9"]
P_NAMES = [None, "example.com", "www.example.com", "EXAMPLE.NET.", "cdn.example.net", "badexample.com"]
P_DEVICES = [HIK, AXIS, LAPTOP, 0]
P_FIELDS: dict[str, list[Any]] = {
    "local": [True],
    "networks": [("203.0.113.0/24",), ("198.51.100.0/25", "192.168.0.0/16")],
    "domains": [("example.com",), ("*.example.com",), (".example.net", "example.com")],
    "countries": [("CN",), ("US", "DE")],
    "asns": [(37963,), (64500, 64501)],
    "protocols": [("tcp",), ("udp",), ("tcp", "udp")],
    "ports": [(443,), (80, "8000-8100")],
    "set": ["cloud"],
}


@st.composite
def _entries(draw: st.DrawFn, deny: bool, min_size: int, max_size: int, wide: bool = False) -> list[Destination]:
    """Destination entries; `wide` ones (waivers) may also cover every address."""
    out = []
    for _ in range(draw(st.integers(min_size, max_size))):
        names = draw(st.sets(st.sampled_from(sorted(P_FIELDS)), min_size=1, max_size=1 if wide else 3))
        fields = {name: draw(st.sampled_from(P_FIELDS[name] + ([("0.0.0.0/0",)] if wide and name == "networks"
                                                                 else []))) for name in names}
        if deny:
            fields["severity"] = draw(st.sampled_from([None, *SEVERITIES]))
        out.append(Destination(**fields))
    return out


@st.composite
def _rulesets(draw: st.DrawFn) -> RuleSet:
    policies = []
    for i in range(draw(st.integers(1, 3))):
        selectors = draw(st.lists(st.sampled_from(sorted(P_SELECTORS)), min_size=1, max_size=2, unique=True))
        deny = draw(_entries(True, 0, 2))
        allow = draw(_entries(False, 0, 2))
        severity: Severity | None = draw(st.sampled_from([None, "low", "medium", "high", "critical"]))
        if severity is None and not deny and not allow:
            severity = "low"
        policy = Policy(id=f"p{i}", name=f"P{i}", devices=tuple(P_SELECTORS[s][0] for s in selectors),
                        deny=tuple(deny), allow=tuple(allow), severity=severity)
        policies.append(LoadedPolicy(policy, "site", f"site.yaml:{i + 1}"))
    waivers = []
    if draw(st.sampled_from([True, True, True, False])):  # mostly with a waiver
        selectors = draw(st.lists(st.sampled_from(sorted(P_SELECTORS)), min_size=1, max_size=2, unique=True))
        ids = draw(st.none() | st.lists(st.sampled_from([p.policy.id for p in policies]), min_size=1, unique=True))
        waiver = Waiver(id="w", devices=tuple(P_SELECTORS[s][0] for s in selectors),
                        destinations=tuple(draw(_entries(False, 1, 2, wide=True))),
                        policies=tuple(ids) if ids else None,
                        expires=draw(st.sampled_from([datetime.date(2026, 11, 1), datetime.date(2026, 11, 2)])),
                        reason="property")
        waivers.append(LoadedWaiver(waiver, "site", "site.yaml:99"))
    return RuleSet(tuple(policies), (), sets=P_SETS, waivers=tuple(waivers))


@st.composite
def _property_flows(draw: st.DrawFn) -> dict[str, Any]:
    proto = draw(st.sampled_from([1, 6, 17]))
    return _flow(draw(st.sampled_from(P_DESTINATIONS)), mac=draw(st.sampled_from(P_DEVICES)),
                 name=draw(st.sampled_from(P_NAMES)), proto=proto,
                 dport=0 if proto == 1 else draw(st.sampled_from([80, 443, 8080, 9000])),
                 # 09:00 on 11-02 to 05:00 on 11-03, and the last and first nanosecond around midnight
                 first=draw(st.sampled_from([NEXT_DAY - 1, NEXT_DAY]) | st.integers(0, 20 * 3600).map(
                     lambda s: T0 + s * SECOND)))


def _ref_domain(pattern: str, name: str | None) -> bool:
    if not name:
        return False
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith("." + pattern[2:])
    if pattern.startswith("."):
        return name == pattern[1:] or name.endswith(pattern)
    return name == pattern


def _ref_entry(e: Destination, f: dict[str, Any]) -> bool:
    dst = ipaddress.ip_address(f["dst"])
    geo = P_GEO.get(f["dst"], GeoInfo(None, None, None))
    checks = [
        not e.local or f["direction"] == DIRECTION_INTERNAL,
        not e.networks or any(dst in ipaddress.ip_network(n) for n in e.networks),
        not e.domains or any(_ref_domain(p, f["name"]) for p in e.domains),
        not e.countries or geo.country in e.countries,
        not e.asns or geo.asn in e.asns,
        not e.protocols or f["proto"] in e.protocols,
        not e.ports or (f["proto"] in (6, 17, 132) and any(a <= f["dport"] <= b for a, b in e.ports)),
        e.set is None or any(_ref_entry(m, f) for m in P_SETS[e.set]),
    ]
    return all(checks)


def _ref_selects(selectors: tuple[DeviceSelector, ...], f: dict[str, Any]) -> bool:
    by_model = {model: test for model, test in P_SELECTORS.values()}
    return any(by_model[s](f["mac"], f["src"]) for s in selectors)


def _reference(rules: RuleSet, f: dict[str, Any]) -> tuple[str, str, str, str | None] | None:
    """(rule id, severity, status, waiver id) of one flow's finding, None when it is none."""
    finding = None
    for loaded in rules.policies:
        p = loaded.policy
        if not _ref_selects(p.devices, f):
            continue
        deny = next((i for i, e in enumerate(p.deny) if _ref_entry(e, f)), None)
        if deny is not None:
            finding = (p.id, f"{p.id}/deny-{deny}", p.deny[deny].severity or p.severity or "high")
            break
        if any(_ref_entry(e, f) for e in p.allow):
            break
        if p.severity is not None:
            finding = (p.id, p.id, p.severity)
            break
    if finding is None:
        return None
    policy, rule_id, severity = finding
    for lw in rules.waivers:
        w = lw.waiver
        if (_ref_selects(w.devices, f) and any(_ref_entry(e, f) for e in w.destinations)
                and (w.policies is None or policy in w.policies)):
            end = int(datetime.datetime.combine(w.expires + datetime.timedelta(days=1), datetime.time(),
                                                UTC).timestamp()) * 10**9
            return (rule_id, severity, "waived", w.id) if f["first"] < end else (rule_id, severity, "open", w.id)
    return rule_id, severity, "open", None


@given(rules=_rulesets(), flows=st.lists(_property_flows(), min_size=3, max_size=16), cut=st.integers(0, 16))
def test_judge_equals_a_per_flow_reference_of_the_evaluation_order(rules: RuleSet, flows: list[dict[str, Any]],
                                                                   cut: int) -> None:
    judge = _judge(rules, flows[:cut], flows[cut:], geo=FakeGeo(P_GEO))
    expected: Counter[tuple[Any, ...]] = Counter()
    for f in flows:
        assert f["direction"] in (DIRECTION_OUTBOUND, DIRECTION_INTERNAL)
        found = _reference(rules, f)
        if found is not None:
            expected[(*found, f["mac"], "" if f["mac"] else f["src"], f["dst"])] += 1
    got: Counter[tuple[Any, ...]] = Counter()
    for a in judge.alerts():
        got[(a.rule_id, a.severity, a.status, a.waiver_id, a.device_mac, "" if a.device_mac else a.source_ips[0],
             a.destination_ip)] += a.flows
    assert got == expected
    assert judge.findings == sum(expected.values())
    assert judge.waived_findings == sum(n for k, n in expected.items() if k[2] == "waived")
    open_ranks = [SEVERITIES.index(k[1]) for k in expected if k[2] == "open"]
    assert judge.worst_rank == max(open_ranks, default=-1)
    selected = sum(1 for f in flows if any(_ref_selects(p.policy.devices, f) for p in rules.policies))
    assert judge.flows_judged == selected


def test_the_property_reference_domain_helper_agrees_with_the_table() -> None:
    """The reference is written independently of DomainMatcher; check it on the same table."""
    for pattern, name, hit in [("*.example.com", "example.com", False), (".example.com", "badexample.com", False),
                               (".example.com", "example.com", True), ("example.com", "EXAMPLE.COM.", True)]:
        assert _ref_domain(pattern, name) is hit


# found by review: a device could dodge a domain deny, or earn a domain allow, with the SNI it sends
SPOOF = """\
    version: 1
    ruleset: site
    policies:
      - id: cams
        name: Cameras
        devices: [{all: true}]
        deny:
          - domains: [.ezvizlife.com]
            severity: critical
        allow:
          - domains: ["*.example.org"]
        severity: high
    """


def test_a_deny_by_domain_also_matches_the_name_the_client_resolved(tmp_path: Path) -> None:
    # resolved litedev.ezvizlife.com, then connected with SNI www.example.org: the deny still fires
    judge = _judge(_rules(tmp_path, SPOOF), [_flow("198.51.100.41", name="www.example.org",
                                                   dns_name="litedev.ezvizlife.com")])
    assert _by_destination(judge) == {"198.51.100.41": ("cams/deny-0", "critical")}


def test_an_allow_by_domain_does_not_approve_a_name_its_own_dns_answer_contradicts(tmp_path: Path) -> None:
    judge = _judge(_rules(tmp_path, SPOOF), [
        _flow("198.51.100.42", name="www.example.org", dns_name="tracker.evil.net"),  # contradicted: finding
        _flow("198.51.100.43", name="www.example.org", dns_name="cdn.example.org"),  # both allowed: fine
        _flow("198.51.100.44", name="www.example.org"),  # no contradiction: fine
    ])
    assert _by_destination(judge) == {"198.51.100.42": ("cams", "high")}
