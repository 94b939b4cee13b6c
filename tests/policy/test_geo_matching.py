"""Country and AS matching in rule files against MaxMind's own test databases (../shared/geoip-test),
read by auditor/geo exactly as a run reads user databases. Skipped when the shared data is absent."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from auditor.geo.reader import GeoReader
from auditor.policy.evaluate import PolicyJudge
from tests.policy.test_evaluate import HIK, VERDICTS, _flow, _records, _rules

GEOIP_TEST = Path(__file__).resolve().parents[3] / "shared" / "geoip-test"

RULES = """\
    version: 1
    ruleset: site
    sets:
      watched:
        - countries: [GB, BT]
    policies:
      - id: guard
        name: Watched countries
        devices: [{all: true}]
        deny:
          - set: watched
            severity: critical
      - id: cameras
        name: Cameras reach Bredband2 and AT&T only
        devices: [{vendors: hikvision}]
        allow:
          - asns: [AS29518, 7018]
        severity: medium
    """


@pytest.fixture
def geo() -> GeoReader:
    country, asn = GEOIP_TEST / "GeoLite2-Country-Test.mmdb", GEOIP_TEST / "GeoLite2-ASN-Test.mmdb"
    if not (country.is_file() and asn.is_file()):
        pytest.skip(f"shared GeoIP test databases absent: {GEOIP_TEST}")
    return GeoReader(country, asn, datetime.date(2026, 11, 22))


@pytest.mark.parametrize(("destination", "expected"), [
    ("81.2.69.160", ("guard/deny-0", "critical")),  # GB: the guard's deny
    ("67.43.156.1", ("guard/deny-0", "critical")),  # BT (and AS35908): denied before any allow
    ("89.160.20.129", None),  # SE, AS29518 Bredband2: allowed by AS number
    ("12.81.92.1", None),  # AS7018 AT&T (no country record): allowed by AS number
    ("1.128.0.1", ("cameras", "medium")),  # AS1221 Telstra: not allowed
    ("8.8.8.8", ("cameras", "medium")),  # no record at all: no country, no AS: nothing matches
])
def test_countries_and_asns_match_through_the_maxmind_test_databases(
        tmp_path: Path, geo: GeoReader, destination: str, expected: tuple[str, str] | None) -> None:
    judge = PolicyJudge(_rules(tmp_path, RULES), VERDICTS.get, geo=geo)
    judge.judge(_records([_flow("192.168.10.21", destination, mac=HIK)]))
    got = [(a.rule_id, a.severity) for a in judge.alerts()]
    assert got == ([expected] if expected else [])


def test_without_databases_country_and_asn_entries_match_nothing(tmp_path: Path) -> None:
    judge = PolicyJudge(_rules(tmp_path, RULES), VERDICTS.get)  # no geo: the CLI warns of it
    judge.judge(_records([_flow("192.168.10.21", "81.2.69.160", mac=HIK),
                          _flow("192.168.10.21", "89.160.20.129", mac=HIK, sport=40002)]))
    # the deny by country cannot fire; the allow by AS approves nothing: both are camera findings
    assert sorted((a.rule_id, a.destination_ip) for a in judge.alerts()) == [
        ("cameras", "81.2.69.160"), ("cameras", "89.160.20.129")]
