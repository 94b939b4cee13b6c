"""MUD files (RFC 8520) to rule files: the RFC example, each ACE mapping, the warnings, hostile input."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.errors import ConfigError
from auditor.policy.mud import (
    MAX_ACES,
    MAX_FILE_BYTES,
    MudConversion,
    MudError,
    convert_mud,
    is_mud_document,
    load_mud,
    to_yaml,
)

DATA = Path(__file__).resolve().parent / "data"
URL = "https://lighting.example.com/lightbulb2000"
ACLS = "ietf-access-control-list:acls"
TO_DEVICE_WARNING = ("to-device ace cl0-todev (acl mud-76100-v6to): skipped: inbound rules are not judged "
                     "(replies to a device's own flows are part of those flows)")

# RFC 8520 §9's figure names test.example.com (erratum 7173 fixes the prose, which said service.bms.example.com)
EXPECTED_RFC_EXAMPLE: dict[str, Any] = {
    "version": 1,
    "ruleset": "mud-lightbulb2000",
    "description": f"Imported from MUD {URL} (The BMS Example Light Bulb), last-update 2019-01-28T11:20:51+01:00",
    "policies": [
        {
            "id": "mud-lightbulb2000",
            "name": "The BMS Example Light Bulb",
            "description": "Flows the device starts, as the from-device policy of its MUD file allows them.",
            "devices": [{"mud_urls": [URL]}],
            "allow": [
                {
                    "domains": ["test.example.com"],
                    "protocols": ["tcp"],
                    "ports": [443],
                    "comment": "ace cl0-frdev (acl mud-76100-v6fr)",
                },
            ],
            "severity": "medium",
        },
    ],
}


def data(name: str) -> Path:
    path = DATA / name
    assert path.is_file(), path
    return path


def rfc_example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data("lightbulb2000.json").read_text(encoding="utf-8"))
    return document


def mud_with(*aces: dict[str, Any], acl_type: str = "ipv4-acl-type", **mud: Any) -> dict[str, Any]:
    """A MUD document whose from-device policy is one ACL holding aces."""
    return {
        "ietf-mud:mud": {
            "mud-version": 1,
            "mud-url": "https://maker.example.com/cam-7",
            "systeminfo": "Cam 7",
            "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}},
            **mud,
        },
        ACLS: {"acl": [{"name": "fr", "type": acl_type, "aces": {"ace": list(aces)}}]},
    }


def ace(name: str, matches: dict[str, Any] | None, forwarding: str = "accept") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "actions": {"forwarding": forwarding}}
    if matches is not None:
        out["matches"] = matches
    return out


def entries(conversion: MudConversion, kind: str = "allow") -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = conversion.rule_file["policies"][0].get(kind, [])
    return entries


def convert(*aces: dict[str, Any], **kwargs: Any) -> MudConversion:
    return convert_mud(mud_with(*aces), "cam7.json", **kwargs)


def warned(conversion: MudConversion, *parts: str) -> bool:
    return any(all(p in w for p in parts) for w in conversion.warnings)


# --- the RFC example and the spellings ----------------------------------------------------------


def test_convert_mud_rfc8520_example_gives_the_expected_rule_file() -> None:
    conversion = load_mud(data("lightbulb2000.json"))
    assert conversion.rule_file == EXPECTED_RFC_EXAMPLE
    assert conversion.warnings == (TO_DEVICE_WARNING,)
    assert conversion.mud_url == URL


def test_convert_mud_old_access_lists_spelling_gives_the_same_rule_file() -> None:
    old = load_mud(data("old-access-lists.json"))
    assert entries(old) == EXPECTED_RFC_EXAMPLE["policies"][0]["allow"]
    assert old.rule_file == EXPECTED_RFC_EXAMPLE
    assert old.warnings == (TO_DEVICE_WARNING,)


def test_convert_mud_reads_access_lists_with_rfc_names() -> None:
    # mudgee and MUD-Visualizer output: the old container key with RFC 8519 name/type/aces inside
    document = rfc_example()
    document["ietf-access-control-list:access-lists"] = document.pop(ACLS)
    assert convert_mud(document, "x.json").rule_file == EXPECTED_RFC_EXAMPLE


def test_convert_mud_refuses_both_acl_spellings() -> None:
    document = rfc_example()
    document["ietf-access-control-list:access-lists"] = copy.deepcopy(document[ACLS])
    with pytest.raises(MudError, match="both"):
        convert_mud(document, "x.json")


def test_is_mud_document_needs_the_mud_container() -> None:
    assert is_mud_document(rfc_example())
    assert not is_mud_document({"version": 1})
    assert not is_mud_document(["ietf-mud:mud"])


# --- ACE mappings --------------------------------------------------------------------------------


def test_convert_mud_drop_and_reject_become_deny_entries() -> None:
    conversion = convert(
        ace("no-cloud", {"ipv4": {"ietf-acldns:dst-dnsname": "cloud.example.net"}}, "drop"),
        ace("no-p2p", {"udp": {"destination-port": {"port": 32100}}}, "ietf-access-control-list:reject"),
    )
    assert entries(conversion) == []
    assert entries(conversion, "deny") == [
        {"domains": ["cloud.example.net"], "comment": "ace no-cloud (acl fr)", "severity": "high"},
        {"protocols": ["udp"], "ports": [32100], "comment": "ace no-p2p (acl fr)", "severity": "high"},
    ]


def test_convert_mud_local_networks_becomes_local() -> None:
    conversion = convert(ace("loc0-frdev", {"ietf-mud:mud": {"local-networks": [None]}}))
    assert entries(conversion) == [{"local": True, "comment": "ace loc0-frdev (acl fr)"}]
    assert conversion.warnings == ()


def test_convert_mud_destination_network_and_protocol_number() -> None:
    conversion = convert(
        ace("n4", {"ipv4": {"destination-ipv4-network": "192.0.2.9/24", "protocol": 17},
                   "udp": {"destination-port": {"operator": "eq", "port": 123}}}),
        ace("n6", {"ipv6": {"destination-ipv6-network": "2001:db8::/32", "protocol": 50}}),
    )
    assert entries(conversion) == [
        # ietf-inet-types: the host bits of a prefix are ignored, so .9/24 is the /24
        {"networks": ["192.0.2.0/24"], "protocols": ["udp"], "ports": [123], "comment": "ace n4 (acl fr)"},
        {"networks": ["2001:db8::/32"], "protocols": [50], "comment": "ace n6 (acl fr)"},
    ]


@pytest.mark.parametrize(
    ("spec", "ports"),
    [
        ({"operator": "eq", "port": 443}, [443]),
        ({"port": 8883}, [8883]),  # operator defaults to eq
        ({"lower-port": 8000, "upper-port": 8100}, ["8000-8100"]),
        ({"lower-port": 53, "upper-port": 53}, [53]),
        ({"operator": "lte", "port": 1023}, ["0-1023"]),
        ({"operator": "gte", "port": 49152}, ["49152-65535"]),
        ({"operator": "lt", "port": 1024}, ["0-1023"]),
        ({"operator": "gt", "port": 1023}, ["1024-65535"]),
        ({"operator": "neq", "port": 23}, ["0-22", "24-65535"]),
        ({"operator": "neq", "port": 0}, ["1-65535"]),
        ({"operator": "eq", "port": "443"}, [443]),
    ],
)
def test_convert_mud_port_ranges_and_operators(spec: dict[str, Any], ports: list[int | str]) -> None:
    conversion = convert(ace("p", {"tcp": {"destination-port": spec}}))
    assert entries(conversion) == [{"protocols": ["tcp"], "ports": ports, "comment": "ace p (acl fr)"}]


@pytest.mark.parametrize(
    "spec", [{"lower-port": 9000, "upper-port": 8000}, {"operator": "lt", "port": 0}, {"operator": "gt", "port": 65535}]
)
def test_convert_mud_empty_port_range_skips_the_ace(spec: dict[str, Any]) -> None:
    conversion = convert(ace("p", {"tcp": {"destination-port": spec}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace p (acl fr)", "empty", "skipped")


def test_convert_mud_unknown_port_operator_skips_the_ace() -> None:
    conversion = convert(ace("p", {"udp": {"destination-port": {"operator": "near", "port": 5}}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace p (acl fr)", "operator", "skipped")


def test_convert_mud_icmp_follows_the_address_family() -> None:
    conversion = convert(
        ace("i6", {"ipv6": {}, "icmp": {"type": 128}}),
        ace("i4", {"ipv4": {"protocol": 1}, "icmp": {}}),
        ace("i?", {"icmp": {}}),  # an ipv4-acl-type ACL: ICMPv4
    )
    assert [e["protocols"] for e in entries(conversion)] == [["icmpv6"], ["icmp"], ["icmp"]]
    assert warned(conversion, "ace i6 (acl fr)", "icmp type", "ignored")


def test_convert_mud_protocol_contradicting_the_l4_match_skips_the_ace() -> None:
    conversion = convert(ace("x", {"ipv4": {"protocol": 17}, "tcp": {"destination-port": {"port": 1}}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace x (acl fr)", "contradicts", "skipped")


def test_convert_mud_dns_names_are_exact_lower_case_hosts() -> None:
    conversion = convert(
        ace("a", {"ipv4": {"ietf-acldns:dst-dnsname": "API.Example.COM."}}),
        ace("b", {"ipv4": {"ietf-acldns:dst-dnsname": "*.example.com"}}),  # would read as a wildcard here
        ace("c", {"ipv4": {"ietf-acldns:dst-dnsname": "bad name"}}),
    )
    assert entries(conversion) == [{"domains": ["api.example.com"], "comment": "ace a (acl fr)"}]
    assert warned(conversion, "ace b (acl fr)", "not a host name", "skipped")
    assert warned(conversion, "ace c (acl fr)", "not a host name", "skipped")


def test_convert_mud_wrong_family_network_skips_the_ace() -> None:
    conversion = convert(ace("w", {"ipv4": {"destination-ipv4-network": "2001:db8::/32"}}),
                         ace("v", {"ipv4": {"destination-ipv4-network": "10.0.0.300/8"}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace w (acl fr)", "IPv4", "skipped")
    assert warned(conversion, "ace v (acl fr)", "not a network", "skipped")


# --- warnings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("abstraction", "value"),
    [("same-manufacturer", [None]), ("manufacturer", "other.example.com"), ("model", "https://x.example/m"),
     ("controller", "urn:ietf:params:mud:dns"), ("my-controller", [None])],
)
def test_convert_mud_unresolvable_abstractions_are_skipped_with_a_warning(abstraction: str, value: Any) -> None:
    conversion = convert(ace("myman0-frdev", {"ietf-mud:mud": {abstraction: value}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace myman0-frdev (acl fr)", abstraction, "cannot resolve", "skipped")


def test_convert_mud_to_device_policy_is_skipped_with_a_warning() -> None:
    document = rfc_example()
    conversion = convert_mud(document, "lightbulb2000.json")
    assert TO_DEVICE_WARNING in conversion.warnings
    # nothing of cl0-todev (its src-dnsname, its source port) reached the rule file
    assert len(entries(conversion)) == 1


def test_convert_mud_source_port_is_ignored_with_a_warning() -> None:
    conversion = convert(ace("s", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com", "protocol": 6},
                                   "tcp": {"source-port": {"operator": "eq", "port": 5000},
                                           "destination-port": {"port": 443}}}))
    assert entries(conversion) == [
        {"domains": ["a.example.com"], "protocols": ["tcp"], "ports": [443], "comment": "ace s (acl fr)"}
    ]
    assert warned(conversion, "ace s (acl fr)", "source-port", "device's own port", "ignored")


def test_convert_mud_ace_matching_only_what_we_ignore_is_skipped() -> None:
    # without its source port the ACE would allow every flow
    conversion = convert(ace("s", {"ipv4": {"source-ipv4-network": "10.0.0.0/8"}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace s (acl fr)", "would match every flow", "skipped")


def test_convert_mud_ace_without_matches_is_skipped() -> None:
    conversion = convert(ace("all", None), ace("all2", {}))
    assert entries(conversion) == []
    assert warned(conversion, "ace all (acl fr)", "no matches", "skipped")
    assert warned(conversion, "ace all2 (acl fr)", "no matches", "skipped")


def test_convert_mud_direction_initiated() -> None:
    conversion = convert(
        ace("out", {"tcp": {"ietf-mud:direction-initiated": "from-device", "destination-port": {"port": 443}}}),
        ace("in", {"tcp": {"ietf-mud:direction-initiated": "to-device", "destination-port": {"port": 80}}}),
    )
    assert [e["comment"] for e in entries(conversion)] == ["ace out (acl fr)"]
    assert warned(conversion, "ace in (acl fr)", "to-device", "skipped")


def test_convert_mud_eth_and_unknown_matches_skip_the_ace() -> None:
    conversion = convert(
        ace("e", {"eth": {"ethertype": 35020}}),
        ace("u", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}, "ietf-mud-tls:tls": {}}),
    )
    assert entries(conversion) == []
    assert warned(conversion, "ace e (acl fr)", "Ethernet", "skipped")
    assert warned(conversion, "ace u (acl fr)", "unknown match 'ietf-mud-tls:tls'", "skipped")


def test_convert_mud_unknown_keys_are_ignored_with_a_warning() -> None:
    document = mud_with(
        {**ace("k", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com", "ttl": 4, "colour": "red"}}),
         "priority": 1},
        vendor_notes="x",
    )
    document["x-extra"] = {}
    conversion = convert_mud(document, "cam7.json")
    assert entries(conversion) == [{"domains": ["a.example.com"], "comment": "ace k (acl fr)"}]
    for parts in (("top-level", "x-extra"), ("vendor_notes",), ("ace k (acl fr)", "priority"),
                  ("ace k (acl fr)", "ttl"), ("ace k (acl fr)", "colour")):
        assert warned(conversion, *parts), parts


def test_convert_mud_undefined_and_unused_acls_are_warned() -> None:
    document = mud_with(ace("a", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}}))
    document["ietf-mud:mud"]["from-device-policy"]["access-lists"]["access-list"].append({"name": "ghost"})
    document[ACLS]["acl"].append({"name": "spare", "type": "ipv4-acl-type", "aces": {"ace": []}})
    conversion = convert_mud(document, "cam7.json")
    assert len(entries(conversion)) == 1
    assert warned(conversion, "'ghost'", "does not define")
    assert warned(conversion, "acl spare", "neither policy")


def test_convert_mud_without_from_device_policy_allows_nothing() -> None:
    document = rfc_example()
    del document["ietf-mud:mud"]["from-device-policy"]
    conversion = convert_mud(document, "x.json")
    assert entries(conversion) == []
    assert warned(conversion, "no from-device-policy")


# --- ids, names and selectors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "extra", "expected"),
    [
        ("https://maker.example.com/cam-7", {}, "mud-cam-7"),
        ("https://maker.example.com/mud/Cam_7%20Pro.json", {}, "mud-cam-7-20pro"),
        ("https://maker.example.com/", {"model-name": "Model X"}, "mud-model-x"),
        ("https://maker.example.com/", {}, "mud-maker-example-com"),
        ("https://maker.example.com/" + "a" * 100, {}, "mud-" + "a" * 56),
    ],
)
def test_convert_mud_derives_ids(url: str, extra: dict[str, Any], expected: str) -> None:
    conversion = convert_mud(mud_with(**{"mud-url": url, **extra}), "x.json")
    assert conversion.rule_file["ruleset"] == expected
    assert conversion.rule_file["policies"][0]["id"] == expected


def test_convert_mud_names_the_policy_after_systeminfo_else_model_else_url() -> None:
    assert convert_mud(mud_with(), "x.json").rule_file["policies"][0]["name"] == "Cam 7"
    no_info = mud_with(**{"model-name": "Cam 7 Pro", "mfg-name": "Maker", "firmware-rev": "1.2"})
    del no_info["ietf-mud:mud"]["systeminfo"]
    policy = convert_mud(no_info, "x.json").rule_file["policies"][0]
    assert policy["name"] == "Cam 7 Pro"
    assert "Manufacturer: Maker." in policy["description"] and "Firmware: 1.2." in policy["description"]
    del no_info["ietf-mud:mud"]["model-name"]
    assert convert_mud(no_info, "x.json").rule_file["policies"][0]["name"] == "https://maker.example.com/cam-7"


def test_convert_mud_arguments_add_selectors_severity_and_ruleset() -> None:
    conversion = convert(macs=["AA:BB:CC:DD:EE:FF"], vendors=["hikvision"], severity="high", ruleset="site-muds")
    policy = conversion.rule_file["policies"][0]
    assert policy["devices"] == [{"mud_urls": ["https://maker.example.com/cam-7"]},
                                 {"macs": ["AA:BB:CC:DD:EE:FF"]}, {"vendors": ["hikvision"]}]
    assert policy["severity"] == "high"
    assert conversion.rule_file["ruleset"] == "site-muds"
    assert policy["id"] == "mud-cam-7"


@pytest.mark.parametrize(
    "kwargs",
    [{"severity": "urgent"}, {"macs": ["not-a-mac"]}, {"vendors": ["Hik Vision"]}, {"ruleset": "Bad Id"}],
)
def test_convert_mud_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(MudError):
        convert(**kwargs)


# --- hostile input -------------------------------------------------------------------------------

FROM = ("ietf-mud:mud", "from-device-policy")
FR_ACE = (ACLS, "acl", 1, "aces", "ace", 0)


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


def _drop(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set(("ietf-mud:mud",), []), "ietf-mud:mud: expected an object"),
        (_set(FROM, "x"), "ietf-mud:mud.from-device-policy: expected an object"),
        (_set((*FROM, "access-lists"), []), "ietf-mud:mud.from-device-policy.access-lists: expected an object"),
        (_set((*FROM, "access-lists", "access-list"), {}), "policy.access-lists.access-list: expected a list"),
        (_set((*FROM, "access-lists", "access-list", 0), "mud-76100-v6fr"), "access-list[0]: expected an object"),
        (_set((*FROM, "access-lists", "access-list", 0, "name"), 5), "access-list[0].name: expected a string"),
        (_set((*FROM, "access-lists", "access-list", 0), {}), "access-list[0]: no name"),
        (_set(("ietf-mud:mud", "to-device-policy"), 7), "ietf-mud:mud.to-device-policy: expected an object"),
        (_set(("ietf-mud:mud", "mud-url"), 5), "ietf-mud:mud.mud-url: expected a string"),
        (_set(("ietf-mud:mud", "mud-url"), "lightbulb2000"), "ietf-mud:mud.mud-url: not a URL"),
        (_set(("ietf-mud:mud", "mud-url"), "https://[::1/x"), "ietf-mud:mud.mud-url: not a URL"),
        (_drop(("ietf-mud:mud", "mud-url")), "ietf-mud:mud: no mud-url"),
        (_set(("ietf-mud:mud", "systeminfo"), ["x"]), "ietf-mud:mud.systeminfo: expected a string"),
        (_set(("ietf-mud:mud", "extensions"), "ol"), "ietf-mud:mud.extensions: expected a list"),
        (_set((ACLS,), []), f"{ACLS}: expected an object"),
        (_set((ACLS, "acl"), {}), f"{ACLS}.acl: expected a list"),
        (_set((ACLS, "acl", 1), None), f"{ACLS}.acl[1]: expected an object"),
        (_set((ACLS, "acl", 1, "name"), "mud-76100-v6to"), f"{ACLS}.acl[1].name: acl 'mud-76100-v6to' is defined"),
        (_set((ACLS, "acl", 1, "aces"), []), f"{ACLS}.acl[1].aces: expected an object"),
        (_set((ACLS, "acl", 1, "aces", "ace"), None), f"{ACLS}.acl[1].aces.ace: expected a list"),
        (_set(FR_ACE, 1), f"{ACLS}.acl[1].aces.ace[0]: expected an object"),
        (_set((*FR_ACE, "name"), None), f"{ACLS}.acl[1].aces.ace[0].name: expected a string"),
        (_set((*FR_ACE, "matches"), "x"), "ace[0].matches: expected an object"),
        (_set((*FR_ACE, "actions"), []), "ace[0].actions: expected an object"),
        (_set((*FR_ACE, "actions", "forwarding"), 1), "ace[0].actions.forwarding: expected a string"),
        (_set((*FR_ACE, "matches", "ipv6"), []), "ace[0].matches.ipv6: expected an object"),
        (_set((*FR_ACE, "matches", "ipv6", "ietf-acldns:dst-dnsname"), 5), "ipv6.ietf-acldns:dst-dnsname: expected a"),
        (_set((*FR_ACE, "matches", "ipv6", "protocol"), "tcp"), "ipv6.protocol: expected a protocol number"),
        (_set((*FR_ACE, "matches", "ipv6", "protocol"), 300), "ipv6.protocol: expected a protocol number"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port"), 443), "tcp.destination-port: expected an object"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port", "port"), True),
         "ace[0].matches.tcp.destination-port.port: expected a port number (0-65535)"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port", "port"), 70000), "destination-port.port: expected a"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port", "port"), 4.5), "destination-port.port: expected a port"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port", "operator"), 1), "destination-port.operator: expected a"),
        (_set((*FR_ACE, "matches", "tcp", "ietf-mud:direction-initiated"), {}), "direction-initiated: expected a str"),
        (_set((*FR_ACE, "matches", "ietf-mud:mud"), [None]), "ace[0].matches.ietf-mud:mud: expected an object"),
        (_set((*FR_ACE, "matches", "l3"), "ipv6"), "ace[0].matches.l3: expected an object"),
    ],
)
def test_convert_mud_wrong_types_name_the_file_and_the_path(
    mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = rfc_example()
    mutate(document)
    with pytest.raises(MudError) as caught:
        convert_mud(document, "lightbulb2000.json")
    assert str(caught.value).startswith("lightbulb2000.json: ")
    assert message in str(caught.value)


def test_convert_mud_error_message_reads_file_path_problem() -> None:
    document = rfc_example()
    document["ietf-mud:mud"]["from-device-policy"] = "x"
    with pytest.raises(MudError, match=r"^lightbulb2000\.json: ietf-mud:mud\.from-device-policy: expected an object$"):
        convert_mud(document, "lightbulb2000.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [([], "expected a JSON object"), ("mud", "expected a JSON object"), (None, "expected a JSON object"),
     ({"version": 1}, "not a MUD file")],
)
def test_convert_mud_rejects_what_is_not_a_mud_document(document: Any, message: str) -> None:
    with pytest.raises(MudError, match=message):
        convert_mud(document, "x.json")


def test_load_mud_reports_json_syntax_errors_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "ietf-mud:mud": {\n    "mud-url": "x",,\n  }\n}\n', encoding="utf-8")
    # the second comma of line 3 is at column 20
    with pytest.raises(MudError, match=rf"^{re.escape(str(path))}:3:20: not JSON: "):
        load_mud(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"ietf-mud:mud": {"mud-version": ' + b"9" * 5000 + b"}}", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"", "not JSON"),
    ],
)
def test_load_mud_rejects_hostile_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    with pytest.raises(MudError, match=message) as caught:
        load_mud(path)
    assert str(caught.value).startswith(str(path))


def test_load_mud_refuses_files_over_4_mib(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    body = json.dumps(rfc_example())
    path.write_text(body + " " * (MAX_FILE_BYTES + 1 - len(body)), encoding="utf-8")
    with pytest.raises(MudError, match="larger than 4 MiB"):
        load_mud(path)


def test_load_mud_missing_file_is_a_mud_error(tmp_path: Path) -> None:
    with pytest.raises(MudError, match="cannot read"):
        load_mud(tmp_path / "absent.json")


def test_convert_mud_caps_the_number_of_aces() -> None:
    many = [ace(f"a{i}", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}}) for i in range(MAX_ACES + 1)]
    with pytest.raises(MudError, match=rf"acl\[0\]\.aces\.ace: {MAX_ACES + 1} entries; at most {MAX_ACES}"):
        convert_mud(mud_with(*many), "x.json")
    # the cap counts every ACL of the file
    document = mud_with(*many[: MAX_ACES // 2 + 1])
    document[ACLS]["acl"].append({"name": "to", "aces": {"ace": many[: MAX_ACES // 2 + 1]}})
    with pytest.raises(MudError, match=rf"acl\[1\]\.aces\.ace: more than {MAX_ACES} ACEs"):
        convert_mud(document, "x.json")


def test_convert_mud_survives_deep_nesting_inside_a_field() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    document = mud_with(ace("d", {"ipv4": {"protocol": deep}}), **{"mud-version": deep})
    with pytest.raises(MudError, match=r"ace\[0\]\.matches\.ipv4\.protocol: expected a protocol number"):
        convert_mud(document, "x.json")


def test_mud_error_is_a_config_error_and_a_value_error() -> None:
    # the CLI's one `except AuditorError` maps it to exit 2
    assert issubclass(MudError, ConfigError)
    assert issubclass(MudError, ValueError)


# --- YAML ----------------------------------------------------------------------------------------


def test_to_yaml_round_trips_and_lists_the_warnings_as_comments() -> None:
    conversion = load_mud(data("lightbulb2000.json"))
    text = to_yaml(conversion)
    assert yaml.safe_load(text) == conversion.rule_file
    header = text.split("\nversion: 1\n")[0].splitlines()
    assert all(line.startswith("# ") for line in header)
    assert any(str(data("lightbulb2000.json")) in line for line in header)
    assert f"#   {TO_DEVICE_WARNING}" in header


def test_to_yaml_keeps_hostile_names_on_one_comment_line() -> None:
    evil = "x\nversion: 2\npolicies: []\n# \u2028\x85"
    conversion = convert(ace(evil, None), ace(evil + "2", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}}),
                         ruleset="r")
    text = to_yaml(conversion)
    loaded = yaml.safe_load(text)
    assert loaded == conversion.rule_file
    assert loaded["version"] == 1
    header = text.split("\nversion: 1\n")[0].splitlines()
    assert all(line.startswith("# ") for line in header)


# --- property: anything under the MUD key is a conversion or a MudError ------------------------

_KEYS = st.sampled_from([
    "ietf-mud:mud", "mud-url", "mud-version", "systeminfo", "model-name", "extensions", "from-device-policy",
    "to-device-policy", "access-lists", "access-list", "name", "acl-name", "acl", "type", "aces", "ace",
    "access-list-entries", "rule-name", "matches", "actions", "forwarding", "permit", "ipv4", "ipv6", "eth", "l3",
    "l4", "tcp", "udp", "icmp", "protocol", "ietf-acldns:dst-dnsname", "destination-ipv4-network",
    "destination-ipv6-network", "destination-port", "source-port", "operator", "port", "lower-port", "upper-port",
    "ietf-mud:direction-initiated", "local-networks", "same-manufacturer", "controller",
]) | st.text(max_size=6)
_LEAVES = (
    st.none() | st.booleans() | st.integers(-3, 70_000) | st.floats() | st.text(max_size=12)
    | st.sampled_from(["eq", "neq", "lt", "gte", "accept", "drop", "from-device", "to-device", "a.example.com",
                       "*.x.com", "10.0.0.0/8", "2001:db8::/32", "ipv6-acl-type", "https://m.example/x", "fr"])
)
_JSON = st.recursive(_LEAVES, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_KEYS, kids, max_size=5),
                     max_leaves=40)


def _check(document: Any) -> None:
    try:
        conversion = convert_mud(document, "fuzz.json")
    except MudError:
        return
    assert yaml.safe_load(to_yaml(conversion)) == conversion.rule_file
    assert all("\n" not in w for w in conversion.warnings)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mud=_JSON, acls=_JSON)
def test_convert_mud_random_documents_raise_only_mud_error(mud: Any, acls: Any) -> None:
    _check({"ietf-mud:mud": mud, ACLS: acls})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(matches=st.dictionaries(_KEYS, _JSON, max_size=4), actions=_JSON, acl_type=_LEAVES)
def test_convert_mud_random_aces_raise_only_mud_error(matches: dict[str, Any], actions: Any, acl_type: Any) -> None:
    document = mud_with({"name": "r", "matches": matches, "actions": actions})
    document[ACLS]["acl"][0]["type"] = acl_type
    _check(document)


# --- the rule-file schema ------------------------------------------------------------------------


def test_converted_rfc_example_is_a_valid_rule_file() -> None:
    # needs the extended schema (domains, deny, mud_urls selectors), which lands alongside this converter
    from auditor.policy.schema import RuleFile

    for conversion in (load_mud(data("lightbulb2000.json")), convert(
            ace("d", {"ipv4": {"ietf-acldns:dst-dnsname": "x.example.com"}}, "drop"),
            ace("l", {"ietf-mud:mud": {"local-networks": [None]}}),
            ace("r", {"udp": {"destination-port": {"lower-port": 8000, "upper-port": 8100}}}),
            macs=["AA:BB:CC:DD:EE:FF"])):
        RuleFile.model_validate(conversion.rule_file)
