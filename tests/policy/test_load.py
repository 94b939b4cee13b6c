"""Rule files: what loads, in which order, and the one-line file:line: field errors for what does not."""

from __future__ import annotations

import datetime
from pathlib import Path
from textwrap import dedent

import pytest

from auditor.errors import ConfigError, RuleFileError
from auditor.policy.load import Vocabulary, load_rules, rule_files

RULES = Path(__file__).resolve().parents[2] / "rules"
VOCABULARY = Vocabulary(vendors=frozenset({"hikvision", "dahua", "ezviz"}), lists=frozenset({"ndaa-889"}))

GOOD = """\
version: 1
ruleset: site
policies:
  - id: cameras
    name: Cameras reach the VMS only
    devices:
      - classes: [camera, nvr]
      - vendors: hikvision
        ips: 10.1.0.0/16
    allow:
      - networks: 10.0.0.5/32
      - networks: [10.0.0.1/32]
        protocols: udp
        ports: [53, "123", "8000-8100"]
    severity: high
  - id: listed
    name: Listed vendors stay local
    devices:
      - lists: ndaa-889
      - macs: ["4C:BD:8F:00:00:01", "4c-bd-8f-00-00-02", "4cbd8f000003"]
      - all: true
    allow:
      - local: true
    severity: low
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def error_of(path: Path, vocabulary: Vocabulary = VOCABULARY) -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        load_rules([path], vocabulary)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return info.value


def test_load_rules_reads_policies_with_scalars_as_lists_and_ports_as_ranges(tmp_path: Path) -> None:
    rules = load_rules([write(tmp_path, "site.yaml", GOOD)], VOCABULARY)
    assert [p.policy.id for p in rules.policies] == ["cameras", "listed"]
    cameras = rules.policies[0]
    assert cameras.ruleset == "site"
    assert cameras.reference == f"{tmp_path / 'site.yaml'}:4"
    assert cameras.policy.devices[1].vendors == ("hikvision",)
    assert cameras.policy.devices[1].ips == ("10.1.0.0/16",)
    assert cameras.policy.allow[1].protocols == (17,)
    assert cameras.policy.allow[1].ports == ((53, 53), (123, 123), (8000, 8100))
    assert rules.policies[1].policy.devices[0].lists == ("ndaa-889",)
    assert rules.policies[1].policy.severity == "low"
    assert len(rules.sources) == 1 and len(rules.sources[0].sha256) == 64


def test_load_rules_ruleset_defaults_to_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "lobby.yaml", GOOD.replace("ruleset: site\n", ""))
    assert {p.ruleset for p in load_rules([path], VOCABULARY).policies} == {"lobby"}


def test_rule_files_of_a_folder_are_the_yaml_files_in_name_order(tmp_path: Path) -> None:
    for name in ("20-b.yml", "10-a.yaml", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in rule_files(tmp_path)] == ["10-a.yaml", "20-b.yml"]


def test_policies_of_several_files_keep_file_name_order(tmp_path: Path) -> None:
    write(tmp_path, "20-later.yaml", GOOD.replace("id: cameras", "id: cams2").replace("id: listed", "id: listed2"))
    write(tmp_path, "10-first.yaml", GOOD)
    rules = load_rules([tmp_path], VOCABULARY)
    assert [p.policy.id for p in rules.policies] == ["cameras", "listed", "cams2", "listed2"]
    assert [Path(s.path).name for s in rules.sources] == ["10-first.yaml", "20-later.yaml"]


def test_a_policy_id_defined_in_two_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD.replace("id: listed", "id: other"))
    with pytest.raises(RuleFileError) as info:
        load_rules([tmp_path], VOCABULARY)
    assert str(info.value) == (
        f"{second}:4: policies[0].id: policy id 'cameras' is already defined at {tmp_path / 'a.yaml'}:4"
    )


def test_missing_path_and_empty_folder_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such rule file or folder"):
        load_rules([tmp_path / "nope.yaml"], VOCABULARY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no rule files \(\*\.yaml, \*\.yml, MUD \*\.json\)"):
        load_rules([tmp_path / "empty"], VOCABULARY)


# Each bad file: (text, line, field, message part). Every error names file:line: field.
BAD = {
    "bad-yaml": ("version: 1\npolicies:\n  - id: a\n   name: [\n", 4, None, "not valid YAML"),
    "unknown-top": ("version: 1\npolicy: []\n", 2, "policy", "unknown field"),
    "unknown-selector": (GOOD.replace("- classes: [camera, nvr]", "- clases: [camera, nvr]"), 7,
                         "policies[0].devices[0].clases", "unknown field"),
    "bad-cidr": (GOOD.replace("10.0.0.5/32", "10.0.0.300/32"), 11, "policies[0].allow[0].networks[0]",
                 "'10.0.0.300/32' is not a network"),
    "bad-source-cidr": (GOOD.replace("ips: 10.1.0.0/16", "ips: 10.1.0.0/33"), 9, "policies[0].devices[1].ips[0]",
                        "is not a network"),
    "bad-port": (GOOD.replace('"8000-8100"', '"8100-8000"'), 14, "policies[0].allow[1].ports[2]",
                 "not a port range"),
    "big-port": (GOOD.replace('"123"', "70000"), 14, "policies[0].allow[1].ports[1]", "70000 is not a port (0-65535)"),
    "bad-protocol": (GOOD.replace("protocols: udp", "protocols: udpp"), 13, "policies[0].allow[1].protocols[0]",
                     "'udpp' is not a protocol"),
    "ports-without-ports": (GOOD.replace("protocols: udp", "protocols: icmp"), 12, "policies[0].allow[1]",
                            "protocol 1, which has no ports"),
    "bad-class": (GOOD.replace("[camera, nvr]", "[camera, dvr]"), 7, "policies[0].devices[0].classes[1]",
                  "Input should be"),
    "bad-severity": (GOOD.replace("severity: high", "severity: urgent"), 15, "policies[0].severity",
                     "Input should be 'low', 'medium', 'high' or 'critical'"),
    "bad-mac": (GOOD.replace('"4c-bd-8f-00-00-02"', '"4c-bd-8f-00-00"'), 20, "policies[1].devices[1].macs[1]",
                "is not a MAC address"),
    "empty-selector": (GOOD.replace("      - all: true\n", "      - {}\n"), 21, "policies[1].devices[2]",
                       "a device selector needs at least one of"),
    "empty-allow": (GOOD.replace("      - local: true\n", "      - comment: anything\n"), 23,
                    "policies[1].allow[0]", "a destination entry needs at least one of"),
    "no-devices": (GOOD.replace("      - lists: ndaa-889\n      - macs", "      - macs").replace(
        "    devices:\n      - classes: [camera, nvr]\n      - vendors: hikvision\n        ips: 10.1.0.0/16\n",
        "    devices: []\n"), 6, "policies[0].devices", "at least 1 item"),
    "missing-severity": (GOOD.replace("    severity: low\n", "").replace("    allow:\n      - local: true\n", ""), 16,
                         "policies[1]", "a policy needs a severity, or allow or deny entries"),
    "bad-version": (GOOD.replace("version: 1", "version: 2"), 1, "version", "Input should be 1"),
    "duplicate-id": (GOOD.replace("id: listed", "id: cameras"), 16, "policies[1].id",
                     "policy id 'cameras' is used twice"),
    "duplicate-key": (GOOD.replace("    severity: low\n", "    severity: low\n    severity: high\n"), 25,
                      "policies[1].severity", "given twice"),
    "host-bits": (GOOD.replace("10.0.0.5/32", "10.0.0.5/24"), 11, "policies[0].allow[0].networks[0]",
                  "'10.0.0.5/24' has host bits set: write '10.0.0.0/24' for the network or '10.0.0.5/32' for the host"),
    "base-60-port": (GOOD.replace('"123"', "1:30"), 14, "policies[0].allow[1].ports[1]",
                     "'1:30' is ambiguous in YAML (read as a base-60 or octal number): quote it"),
    "octal-port": (GOOD.replace('"123"', "010"), 14, "policies[0].allow[1].ports[1]", "'010' is ambiguous"),
    "unquoted-mac": (GOOD.replace('"4C:BD:8F:00:00:01"', "10:20:30:40:50:59"), 20,
                     "policies[1].devices[1].macs[0]", "'10:20:30:40:50:59' is ambiguous"),
    "surrogate": (GOOD.replace("name: Listed vendors stay local", 'name: "bad \\ud800"'), 17,
                  "policies[1].name", "not valid Unicode"),
    "too-deep": ("version: 1\npolicies: " + "[" * 40 + "]" * 40 + "\n", 2, "policies[0][0]",
                 "nested more than 32 levels deep"),
    "unknown-vendor": (GOOD.replace("vendors: hikvision", "vendors: hikvison"), 8,
                       "policies[0].devices[1].vendors[0]", "no vendor with id 'hikvison'"),
    "unknown-list": (GOOD.replace("lists: ndaa-889", "lists: [ndaa-889, entity]"), 19,
                     "policies[1].devices[0].lists[1]", "no list with id 'entity'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rule_file_is_one_line_naming_file_line_and_field(tmp_path: Path, case: str) -> None:
    text, line, field, message = BAD[case]
    path = write(tmp_path, f"{case}.yaml", text)
    err = error_of(path)
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert message in str(err)
    assert str(err).startswith(f"{path}:{line}: " + (f"{field}: " if field else ""))


def test_a_file_nested_beyond_the_parser_stack_is_a_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.yaml", "version: 1\npolicies: " + "[" * 5000 + "]" * 5000 + "\n")
    err = error_of(path)
    assert "nested" in str(err) and str(err).startswith(str(path))


def test_vendor_and_list_names_need_a_catalog(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "site.yaml", GOOD), Vocabulary(vendors=None, lists=None))
    assert err.field == "policies[0].devices[1].vendors[0]"
    assert "no vendor catalog" in str(err)


def test_shipped_policies_and_the_example_load_against_the_shipped_catalog() -> None:
    from auditor.devices.vendors import load_vendors

    catalog = load_vendors(RULES / "vendors.yaml")
    vocabulary = Vocabulary(frozenset(v.id for v in catalog.vendors), frozenset(catalog.lists))
    shipped = load_rules([RULES / "policies"], vocabulary)
    assert [p.policy.id for p in shipped.policies] == [
        "high-risk-countries", "listed-vendor-local-only", "surveillance-local-only"]
    assert shipped.policies[0].policy.severity is None  # a guard
    assert shipped.set_entries("high-risk-countries")[0].countries == ("CN", "RU", "IR", "KP")
    assert shipped.policies[1].policy.devices[0].lists == ("ndaa-889", "fcc-covered", "entity-list")
    example = load_rules([RULES / "examples"], vocabulary, today=datetime.date(2026, 11, 22))
    assert [p.policy.id for p in example.policies] == [
        "scanner-lane", "high-risk-countries", "cameras-to-vms", "vms-stays-local", "listed-vendor-local-only"
    ]
    assert sorted(example.sets or {}) == ["camera-housekeeping", "camera-vendor-clouds", "high-risk-countries",
                                          "site-services"]
    assert [w.waiver.id for w in example.waivers] == ["ezviz-upnp-search"]
    assert example.warnings == ()
    later = load_rules([RULES / "examples"], vocabulary, today=datetime.date(2027, 1, 1))
    assert len(later.warnings) == 1 and "waiver 'ezviz-upnp-search' expired on 2026-12-31" in later.warnings[0]


def test_rule_folders_skip_hidden_files_and_subfolders_and_read_a_file_given_twice_once(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    (folder / "inner").mkdir(parents=True)
    write(folder, "site.YAML", GOOD)
    (folder / "._site.yaml").write_bytes(b"\x00\x05junk")  # a macOS resource fork
    write(folder / "inner", "x.yaml", "not: valid")
    rules = load_rules([folder, folder / "site.YAML", folder], VOCABULARY)
    assert [p.policy.id for p in rules.policies] == ["cameras", "listed"]
    assert len(rules.sources) == 1


def test_a_broken_link_in_a_rule_folder_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    (tmp_path / "b.yaml").symlink_to(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match="broken or looping link"):
        load_rules([tmp_path], VOCABULARY)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="broken or looping link"):
        load_rules([loop], VOCABULARY)


def test_the_vendor_catalog_given_as_rules_says_what_it_is() -> None:
    with pytest.raises(RuleFileError, match="this is a vendor catalog, not a rule file"):
        load_rules([RULES], VOCABULARY)


PINS = """\
version: 1
pins:
  - mac: "00:1b:21:3a:4b:5c"
    class: computer
    note: reception PC, asset 4411
  - mac: "00-1F-54-50-10-50"
    maker: dahua
    brand: Lorex
    model: IPC-HDW2431T
"""


def test_pins_load_with_their_reference_and_a_file_may_hold_only_pins(tmp_path: Path) -> None:
    path = write(tmp_path, "pins.yaml", PINS)
    rules = load_rules([path], VOCABULARY)
    assert rules.policies == ()
    first, second = rules.pins
    assert (first.mac, first.maker, first.device_class, first.note, first.reference) == (
        0x001B213A4B5C, None, "computer", "reception PC, asset 4411", f"{path}:3")
    assert (second.mac, second.maker, second.brand, second.model) == (0x001F54501050, "dahua", "Lorex", "IPC-HDW2431T")


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    (PINS.replace("maker: dahua", "maker: dahau"), 7, "pins[1].maker", "no vendor with id 'dahau'"),
    (PINS.replace('"00-1F-54-50-10-50"', '"00:1b:21:3a:4b:5c"'), 6, "pins[1].mac", "is pinned twice"),
    (PINS.replace("    class: computer\n", ""), 3, "pins[0]", "a pin needs at least one of maker, class"),
    (PINS.replace("class: computer", "class: laptop"), 4, "pins[0].class", "Input should be"),
    ("version: 1\n", 1, None, "a rule file needs policies, pins, sets or waivers"),
])
def test_bad_pins_are_one_line_errors(tmp_path: Path, text: str, line: int, field: str | None, message: str) -> None:
    path = write(tmp_path, "pins.yaml", text)
    err = error_of(path)
    assert (err.line, err.field) == (line, field), str(err)
    assert message in str(err)


def test_a_mac_pinned_in_two_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", PINS)
    second = write(tmp_path, "b.yaml", "version: 1\npins:\n  - mac: '00:1B:21:3A:4B:5C'\n    class: phone\n")
    with pytest.raises(RuleFileError) as info:
        load_rules([tmp_path], VOCABULARY)
    assert str(info.value) == f"{second}:3: pins[0].mac: 00:1B:21:3A:4B:5C is already pinned at {tmp_path / 'a.yaml'}:3"
