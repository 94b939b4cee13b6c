"""Rule files with the extended language: what loads (canonical forms, warnings), and the one-line
file:line: field errors for domains, countries, ASNs, sets, deny severities, waivers and guards."""

from __future__ import annotations

import datetime
from pathlib import Path
from textwrap import dedent

import pytest

from auditor.errors import RuleFileError
from auditor.policy.load import Vocabulary, load_rules

VOCABULARY = Vocabulary(vendors=frozenset({"hikvision", "dahua"}), lists=frozenset({"ndaa-889"}))
TODAY = datetime.date(2026, 9, 1)

GOOD = """\
version: 1
ruleset: site
sets:
  vendor-cloud:
    - domains: ["*.hik-connect.com", .EzvizLife.com.]
    - networks: 198.51.100.0/24
      ports: 443
policies:
  - id: high-risk
    name: No device reaches high-risk countries
    devices:
      - all: true
    deny:
      - countries: [CN, ru]
        severity: critical
      - asns: [AS37963, 45090, as4200000001]
  - id: cameras
    name: Cameras reach the VMS and their cloud
    devices:
      - classes: camera
      - mud_urls: https://lighting.example.com/bulb.json
    allow:
      - local: true
      - set: vendor-cloud
        protocols: tcp
      - domains: XN--Bcher-KVA.Example.
    severity: medium
waivers:
  - id: hik-cloud
    devices:
      - vendors: hikvision
    destinations:
      - set: vendor-cloud
    policies: cameras
    expires: 2026-11-02
    reason: cloud until the VMS upgrade (OPS-42)
pins:
  - mac: "4C:BD:8F:11:22:33"
    class: camera
    expires: 2026-10-01
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def error_of(*paths: Path) -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        load_rules(list(paths), VOCABULARY, today=TODAY)
    assert "\n" not in str(info.value), "errors are one line"
    return info.value


# --- what loads ---------------------------------------------------------------------------------------

def test_the_extended_language_loads_in_canonical_form(tmp_path: Path) -> None:
    path = write(tmp_path, "site.yaml", GOOD)
    rules = load_rules([path], VOCABULARY, today=TODAY)
    assert rules.warnings == ()
    assert list(rules.sets or {}) == ["vendor-cloud"]
    cloud = rules.set_entries("vendor-cloud")
    assert cloud[0].domains == ("*.hik-connect.com", ".ezvizlife.com")
    assert (cloud[1].networks, cloud[1].ports) == (("198.51.100.0/24",), ((443, 443),))
    guard, cameras = (p.policy for p in rules.policies)
    assert guard.severity is None and guard.allow == ()
    assert guard.deny[0].countries == ("CN", "RU")
    assert guard.deny[0].severity == "critical"
    assert guard.deny[1].asns == (37963, 45090, 4200000001)
    assert guard.deny[1].severity is None
    assert cameras.devices[1].mud_urls == ("https://lighting.example.com/bulb.json",)
    assert (cameras.allow[1].set, cameras.allow[1].protocols) == ("vendor-cloud", (6,))
    assert cameras.allow[2].domains == ("xn--bcher-kva.example",)
    (waiver,) = rules.waivers
    assert (waiver.waiver.id, waiver.waiver.policies, waiver.waiver.expires, waiver.reference) == (
        "hik-cloud", ("cameras",), datetime.date(2026, 11, 2), f"{path}:29")
    assert waiver.waiver.destinations[0].set == "vendor-cloud"
    assert [p.mac for p in rules.pins] == [0x4CBD8F112233]


def test_an_expired_pin_is_left_out_with_a_warning_and_an_expired_waiver_is_kept_with_one(tmp_path: Path) -> None:
    path = write(tmp_path, "site.yaml", GOOD)
    assert load_rules([path], VOCABULARY, today=datetime.date(2026, 10, 1)).warnings == ()  # last day: valid
    rules = load_rules([path], VOCABULARY, today=datetime.date(2026, 11, 3))
    assert rules.pins == ()
    assert [w.waiver.id for w in rules.waivers] == ["hik-cloud"]
    waiver, pin = rules.warnings
    assert waiver.startswith(f"{path}:29: waiver 'hik-cloud' expired on 2026-11-02")
    assert pin.startswith(f"{path}:38: the pin of 4C:BD:8F:11:22:33 expired on 2026-10-01")
    only_pin = load_rules([path], VOCABULARY, today=datetime.date(2026, 10, 2))
    assert only_pin.pins == () and len(only_pin.warnings) == 1 and "the pin of" in only_pin.warnings[0]


def test_a_set_may_be_defined_in_a_later_file_than_its_use(tmp_path: Path) -> None:
    uses = write(tmp_path, "10-policies.yaml", GOOD.split("pins:")[0].replace(
        GOOD[GOOD.index("sets:"):GOOD.index("policies:")], ""))
    sets = write(tmp_path, "20-sets.yaml", "version: 1\n" + GOOD[GOOD.index("sets:"):GOOD.index("policies:")])
    rules = load_rules([tmp_path], VOCABULARY, today=TODAY)
    assert [s.path for s in rules.sources] == [str(uses), str(sets)]
    assert list(rules.sets or {}) == ["vendor-cloud"]


def test_files_with_only_sets_or_only_waivers_load(tmp_path: Path) -> None:
    sets = write(tmp_path, "sets.yaml", "version: 1\nsets:\n  lan: [{local: true}]\n")
    waivers = write(tmp_path, "waivers.yaml", dedent("""\
        version: 1
        waivers:
          - id: w
            devices: [{all: true}]
            destinations: [{set: lan}]
            expires: 2030-01-01
            reason: x
        """))
    rules = load_rules([sets, waivers], VOCABULARY, today=TODAY)
    assert (rules.policies, len(rules.waivers), list(rules.sets or {})) == ((), 1, ["lan"])


def test_a_guard_needs_no_severity_and_old_files_stay_valid(tmp_path: Path) -> None:
    guard = write(tmp_path, "guard.yaml", dedent("""\
        version: 1
        policies:
          - id: ntp
            name: Anyone may ask for the time
            devices: [{all: true}]
            allow: [{protocols: udp, ports: 123}]
        """))
    (policy,) = load_rules([guard], VOCABULARY, today=TODAY).policies
    assert policy.policy.severity is None
    old = write(tmp_path, "old.yaml", dedent("""\
        version: 1
        policies:
          - id: listed
            name: Listed vendors stay local
            devices: [{lists: ndaa-889}]
            allow: [{local: true}]
            severity: high
        """))
    rules = load_rules([old], VOCABULARY, today=TODAY)
    assert (rules.policies[0].policy.severity, rules.policies[0].policy.deny, rules.waivers, rules.sets) == (
        "high", (), (), {})


# --- errors: one line naming file:line: field ---------------------------------------------------------

# Each bad file: (text, line, field, message part).
BAD = {
    "domain-space": (GOOD.replace(".EzvizLife.com.", '"exa mple.com"'), 5, "sets.vendor-cloud[0].domains[1]",
                     "'exa mple.com' is not a domain name"),
    "domain-inner-wildcard": (GOOD.replace("XN--Bcher-KVA.Example.", '"a.*.com"'), 26,
                              "policies[1].allow[2].domains[0]",
                              "a wildcard is allowed only as the whole first label"),
    "domain-not-ascii": (GOOD.replace("XN--Bcher-KVA.Example.", "straße.de"), 26,
                         "policies[1].allow[2].domains[0]", "write an international name in its ASCII form"),
    "domain-star": (GOOD.replace("XN--Bcher-KVA.Example.", '"*"'), 26, "policies[1].allow[2].domains[0]",
                    "'*' is not a domain name"),
    "domain-empty-label": (GOOD.replace("XN--Bcher-KVA.Example.", "a..com"), 26, "policies[1].allow[2].domains[0]",
                           "'a..com' is not a domain name"),
    "country-name": (GOOD.replace("[CN, ru]", "[China]"), 14, "policies[0].deny[0].countries[0]",
                     "'China' is not a country"),
    "country-digit": (GOOD.replace("[CN, ru]", "[CN, C1]"), 14, "policies[0].deny[0].countries[1]",
                      "'C1' is not a country"),
    "asn-negative": (GOOD.replace("AS37963", "AS-1"), 16, "policies[0].deny[1].asns[0]",
                     "'AS-1' is not an AS number"),
    "asn-zero": (GOOD.replace("45090", "0"), 16, "policies[0].deny[1].asns[1]",
                 "0 is not an AS number (1 to 4294967295)"),
    "asn-too-big": (GOOD.replace("as4200000001", "AS4294967296"), 16, "policies[0].deny[1].asns[2]",
                    "is not an AS number (1 to 4294967295)"),
    "set-in-set": (GOOD.replace("      ports: 443\n", "      ports: 443\n      set: other\n"), 8,
                   "sets.vendor-cloud[1].set", "a set's entries cannot use set"),
    "severity-in-set": (GOOD.replace("      ports: 443\n", "      ports: 443\n      severity: low\n"), 8,
                        "sets.vendor-cloud[1].severity", "a set's entries cannot use severity"),
    "unknown-set-in-allow": (GOOD.replace("- set: vendor-cloud\n        protocols",
                                          "- set: vendor-clowd\n        protocols"),
                             24, "policies[1].allow[1].set", "no destination set named 'vendor-clowd' (vendor-cloud)"),
    "unknown-set-in-deny": (GOOD.replace("        severity: critical\n",
                                         "        severity: critical\n      - set: nowhere\n"), 16,
                            "policies[0].deny[1].set", "no destination set named 'nowhere'"),
    "unknown-set-in-waiver": (GOOD.replace("      - set: vendor-cloud\n    policies",
                                           "      - set: cloud\n    policies"),
                              33, "waivers[0].destinations[0].set", "no destination set named 'cloud'"),
    "empty-set": (GOOD.replace("sets:\n  vendor-cloud:\n", "sets:\n  empty: []\n  vendor-cloud:\n"), 4,
                  "sets.empty", "at least 1 item"),
    "waiver-without-expires": (GOOD.replace("    expires: 2026-11-02\n", ""), 29, "waivers[0].expires",
                               "Field required"),
    "waiver-without-reason": (GOOD.replace("    reason: cloud until the VMS upgrade (OPS-42)\n", ""), 29,
                              "waivers[0].reason", "Field required"),
    "waiver-bad-date": (GOOD.replace("expires: 2026-11-02", "expires: next spring"), 35, "waivers[0].expires",
                        "Input should be a valid date"),
    "waiver-empty-reason": (GOOD.replace("reason: cloud until the VMS upgrade (OPS-42)", 'reason: ""'), 36,
                            "waivers[0].reason", "at least 1 character"),
    "waiver-without-destinations": (GOOD.replace("    destinations:\n      - set: vendor-cloud\n", ""), 29,
                                    "waivers[0].destinations", "Field required"),
    "duplicate-waiver-id": (GOOD.replace("pins:\n", "  - id: hik-cloud\n    devices: [{all: true}]\n"
                                         "    destinations: [{local: true}]\n    expires: 2027-01-01\n"
                                         "    reason: again\npins:\n"), 37, "waivers[1].id",
                            "waiver id 'hik-cloud' is used twice"),
    "guard-without-entries": (GOOD.replace("    deny:\n      - countries: [CN, ru]\n        severity: critical\n"
                                           "      - asns: [AS37963, 45090, as4200000001]\n", ""), 9, "policies[0]",
                              "a policy needs a severity, or allow or deny entries"),
    "mud-url-empty": (GOOD.replace("mud_urls: https://lighting.example.com/bulb.json", 'mud_urls: ""'), 21,
                      "policies[1].devices[1].mud_urls[0]", "at least 1 character"),
    "unknown-entry-field": (GOOD.replace("- domains: XN--Bcher-KVA.Example.", "- domain: XN--Bcher-KVA.Example."), 26,
                            "policies[1].allow[2].domain", "unknown field"),
    "deny-bad-severity": (GOOD.replace("severity: critical", "severity: severe"), 15,
                          "policies[0].deny[0].severity", "Input should be 'low', 'medium', 'high' or 'critical'"),
    "unknown-waiver-field": (GOOD.replace("    reason: cloud", "    owner: ops\n    reason: cloud"), 36,
                             "waivers[0].owner", "unknown field"),
    "unknown-vendor-in-waiver": (GOOD.replace("      - vendors: hikvision", "      - vendors: hikvison"), 31,
                                 "waivers[0].devices[0].vendors[0]", "no vendor with id 'hikvison'"),
    "pin-bad-expiry": (GOOD.replace("expires: 2026-10-01", "expires: soon"), 40, "pins[0].expires",
                       "Input should be a valid date"),
    "severity-in-allow": (GOOD.replace("      - local: true\n", "      - local: true\n        severity: low\n"), 24,
                          "policies[1].allow[0].severity", "severity belongs to deny entries"),
    "severity-in-waiver-destination": (GOOD.replace("      - set: vendor-cloud\n    policies",
                                                    "      - set: vendor-cloud\n        severity: low\n    policies"),
                                       34, "waivers[0].destinations[0].severity",
                                       "a waiver's destinations have no severity"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_language_is_one_line_naming_file_line_and_field(tmp_path: Path, case: str) -> None:
    text, line, field, message = BAD[case]
    path = write(tmp_path, f"{case}.yaml", text)
    err = error_of(path)
    assert message in str(err), str(err)
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert str(err).startswith(f"{path}:{line}: {field}: ")


def test_a_bad_set_name_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "site.yaml", GOOD.replace("vendor-cloud", "Vendor_Cloud"))
    err = error_of(path)
    assert (err.line, "String should match pattern" in str(err)) == (4, True), str(err)
    assert (err.field or "").startswith("sets.Vendor_Cloud")


def test_a_set_defined_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", "version: 1\nsets:\n  lan: [{local: true}]\n  vendor-cloud:\n"
                                       "    - local: true\n")
    err = error_of(tmp_path)
    assert str(err) == f"{second}:4: sets.vendor-cloud: set 'vendor-cloud' is already defined at {first}:4"


def test_a_waiver_id_used_in_two_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", dedent("""\
        version: 1
        waivers:
          - id: other
            devices: [{all: true}]
            destinations: [{local: true}]
            expires: 2030-01-01
            reason: x
          - id: hik-cloud
            devices: [{all: true}]
            destinations: [{local: true}]
            expires: 2030-01-01
            reason: x
        """))
    err = error_of(tmp_path)
    assert str(err) == f"{second}:8: waivers[1].id: waiver id 'hik-cloud' is already defined at {first}:29"


def test_an_unknown_set_names_the_line_of_its_set_field_in_a_later_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", dedent("""\
        version: 1
        policies:
          - id: other
            name: Other
            devices: [{all: true}]
            deny:
              - ports: 23
              - protocols: tcp
                set: vendor-clod
        """))
    err = error_of(tmp_path)
    assert str(err) == (f"{second}:9: policies[0].deny[1].set: no destination set named 'vendor-clod' "
                        "(vendor-cloud)")
