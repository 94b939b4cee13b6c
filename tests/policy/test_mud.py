"""MUD files (RFC 8520) to rule files: the RFC example, each ACE mapping, the warnings, hostile input."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.errors import ConfigError
from auditor.policy.load import Vocabulary, load_rules
from auditor.policy.mud import (
    ID_LENGTH,
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
    "ruleset": "mud-lighting-example-com-lightbulb2000",
    "description": f"Imported from MUD {URL} (The BMS Example Light Bulb), last-update 2019-01-28T11:20:51+01:00",
    "policies": [
        {
            "id": "mud-lighting-example-com-lightbulb2000",
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


def with_acls(*acls: tuple[str, str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A MUD document whose from-device policy lists the ACLs (name, type, aces) in that order."""
    document = mud_with()
    document["ietf-mud:mud"]["from-device-policy"]["access-lists"]["access-list"] = [{"name": n} for n, _, _ in acls]
    document[ACLS]["acl"] = [{"name": n, "type": t, "aces": {"ace": a}} for n, t, a in acls]
    return document


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
        {"networks": ["0.0.0.0/0"], "protocols": ["udp"], "ports": [32100], "comment": "ace no-p2p (acl fr)",
         "severity": "high"},
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
    assert entries(conversion) == [
        {"networks": ["0.0.0.0/0"], "protocols": ["tcp"], "ports": ports, "comment": "ace p (acl fr)"}]


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


# --- address family ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("acl_type", "matches", "expected"),
    [
        # the ACL type says the family: the entry keeps to it
        ("ipv4-acl-type", {"tcp": {"destination-port": {"port": 443}}},
         {"networks": ["0.0.0.0/0"], "protocols": ["tcp"], "ports": [443]}),
        ("ietf-access-control-list:ipv6-acl-type", {"udp": {"destination-port": {"port": 123}}},
         {"networks": ["::/0"], "protocols": ["udp"], "ports": [123]}),
        ("ipv6-acl-type", {"ipv6": {"protocol": 50}}, {"networks": ["::/0"], "protocols": [50]}),
        # so do the matches, in a mixed ACL
        ("mixed-eth-ipv4-ipv6-acl-type", {"ipv4": {"protocol": 6}, "tcp": {"destination-port": {"port": 443}}},
         {"networks": ["0.0.0.0/0"], "protocols": ["tcp"], "ports": [443]}),
        ("mixed-eth-ipv4-ipv6-acl-type", {"ipv6": {}, "icmp": {}}, {"networks": ["::/0"], "protocols": ["icmpv6"]}),
        ("ipv4-acl-type", {"l3": {"ipv4": {"protocol": 17}}}, {"networks": ["0.0.0.0/0"], "protocols": ["udp"]}),
        # no family known: both
        ("mixed-eth-ipv4-ipv6-acl-type", {"tcp": {"destination-port": {"port": 443}}},
         {"protocols": ["tcp"], "ports": [443]}),
        ("mixed-eth-ipv4-ipv6-acl-type", {"icmp": {}}, {"protocols": ["icmp", "icmpv6"]}),
        # names resolve per family, a network is of one already, local means the site's networks of both
        ("ipv4-acl-type", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com", "protocol": 6}},
         {"domains": ["a.example.com"], "protocols": ["tcp"]}),
        ("ipv6-acl-type", {"ipv6": {"destination-ipv6-network": "2001:db8::/32"}}, {"networks": ["2001:db8::/32"]}),
        ("ipv4-acl-type", {"ietf-mud:mud": {"local-networks": [None]}, "tcp": {"destination-port": {"port": 80}}},
         {"local": True, "protocols": ["tcp"], "ports": [80]}),
    ],
)
def test_convert_mud_entries_keep_to_the_address_family(
    acl_type: str, matches: dict[str, Any], expected: dict[str, Any]
) -> None:
    for forwarding in ("accept", "drop"):
        conversion = convert_mud(mud_with(ace("f", matches, forwarding), acl_type=acl_type), "cam7.json")
        (entry,) = entries(conversion, "allow" if forwarding == "accept" else "deny")
        assert {k: v for k, v in entry.items() if k not in ("comment", "severity")} == expected


def test_convert_mud_family_alone_does_not_make_an_ace_convertible() -> None:
    # an ipv4 match holding only what we ignore still matches nothing we can judge: not "all of IPv4"
    conversion = convert(ace("s", {"ipv4": {"source-ipv4-network": "10.0.0.0/8", "ttl": 3}}))
    assert entries(conversion) == []
    assert warned(conversion, "ace s (acl fr)", "would match every flow", "skipped")


# --- ACE order -----------------------------------------------------------------------------------

ORDER_WARNING = ("ace d (acl fr): drop comes after ace a (acl fr), an accept that may match the same flows; a rule "
                 "file cannot keep ACE order, so the deny is applied first (the stricter reading: flows both match "
                 "are findings, though the MUD file accepts them)")


def test_convert_mud_drop_after_an_overlapping_accept_is_applied_first_with_a_warning() -> None:
    conversion = convert(
        ace("a", {"ipv4": {"destination-ipv4-network": "198.51.100.0/24"}}),
        ace("d", {"ipv4": {"protocol": 6}}, "drop"),
    )
    # never more permissive than the MUD file: the deny stays, and is tried first
    assert entries(conversion) == [{"networks": ["198.51.100.0/24"], "comment": "ace a (acl fr)"}]
    assert entries(conversion, "deny") == [
        {"networks": ["0.0.0.0/0"], "protocols": ["tcp"], "comment": "ace d (acl fr)", "severity": "high"}]
    assert conversion.warnings == (ORDER_WARNING,)


def test_convert_mud_order_warning_counts_every_earlier_overlapping_accept() -> None:
    conversion = convert(
        ace("a", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}}),
        ace("b", {"udp": {"destination-port": {"port": 53}}}),
        ace("c", {"ietf-mud:mud": {"local-networks": [None]}}),
        ace("d", {"tcp": {"destination-port": {"port": 23}}}, "drop"),
    )
    # b is udp, d tcp: they cannot both match a flow; a and c may
    assert warned(conversion, "ace d (acl fr): drop comes after ace a (acl fr) and 1 more accept (ace c (acl fr))")
    assert not warned(conversion, "ace b (acl fr)")
    assert len(entries(conversion, "deny")) == 1


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        # the accept comes after the drop: deny-first is the MUD's order
        (ace("d", {"ipv4": {"protocol": 6}}, "drop"), ace("a", {"ipv4": {"destination-ipv4-network": "10.0.0.0/8"}})),
        # disjoint protocols, ports, networks
        (ace("a", {"udp": {}}), ace("d", {"tcp": {}}, "drop")),
        (ace("a", {"tcp": {"destination-port": {"port": 443}}}),
         ace("d", {"tcp": {"destination-port": {"lower-port": 1, "upper-port": 442}}}, "drop")),
        (ace("a", {"tcp": {"destination-port": {"operator": "neq", "port": 23}}}),
         ace("d", {"tcp": {"destination-port": {"port": 23}}}, "drop")),
        (ace("a", {"ipv4": {"destination-ipv4-network": "10.0.0.0/8"}}),
         ace("d", {"ipv4": {"destination-ipv4-network": "192.168.0.0/16"}}, "drop")),
        (ace("a", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com", "protocol": 17}}),
         ace("d", {"ipv4": {"ietf-acldns:dst-dnsname": "b.example.com", "protocol": 6}}, "drop")),
        # an accept that was skipped approves nothing here
        (ace("a", {"ietf-mud:mud": {"same-manufacturer": [None]}}), ace("d", {"ipv4": {"protocol": 6}}, "drop")),
    ],
)
def test_convert_mud_drop_that_no_earlier_accept_overlaps_needs_no_warning(
    earlier: dict[str, Any], later: dict[str, Any]
) -> None:
    conversion = convert(earlier, later)
    assert len(entries(conversion, "deny")) == 1
    assert not warned(conversion, "comes after")
    assert not warned(conversion, "could not be converted")


def test_convert_mud_order_spans_the_acls_of_the_policy_but_not_the_families() -> None:
    document = with_acls(
        ("v6", "ipv6-acl-type", [ace("a6", {"ipv6": {"ietf-acldns:dst-dnsname": "a.example.com"}})]),
        ("v4a", "ipv4-acl-type", [ace("a4", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}})]),
        ("v4d", "ipv4-acl-type", [ace("d4", {"tcp": {}}, "drop")]),
    )
    conversion = convert_mud(document, "cam7.json")
    # a4 (an earlier ACL) may overlap d4; a6 is IPv6, so it cannot
    assert warned(conversion, "ace d4 (acl v4d): drop comes after ace a4 (acl v4a), an accept")
    assert not warned(conversion, "a6")


def test_convert_mud_drop_of_every_flow_makes_the_later_aces_unreachable() -> None:
    # the MUD file accepts a, then drops everything: b is never reached, and must not be approved here
    conversion = convert(
        ace("a", {"ipv4": {"ietf-acldns:dst-dnsname": "a.example.com"}}),
        ace("all", None, "drop"),
        ace("b", {"ipv4": {"ietf-acldns:dst-dnsname": "b.example.com"}}),
        ace("c", {"tcp": {}}, "drop"),
    )
    assert [e["comment"] for e in entries(conversion)] == ["ace a (acl fr)"]
    assert entries(conversion, "deny") == []
    assert warned(conversion, "ace all (acl fr)", "drops every flow", "2 later ACEs (ace b (acl fr), ace c (acl fr))",
                  "never reached", "skipped")
    assert not warned(conversion, "ace c (acl fr): drop comes after")
    one = convert(ace("all", None, "drop"), ace("b", {"udp": {}}))
    assert entries(one) == []
    assert warned(one, "ace all (acl fr)", "the later ACE (ace b (acl fr)) is never reached and is skipped")


def test_convert_mud_unreachable_aces_are_still_checked() -> None:
    with pytest.raises(MudError, match=r"^cam7\.json: .*ace\[1\]\.actions: expected an object$"):
        convert(ace("all", {}, "drop"), {"name": "b", "matches": {}, "actions": []})


def test_convert_mud_skipped_drop_before_an_accept_is_warned() -> None:
    # the MUD file drops flows to the maker's other devices before accepting the local networks: we cannot
    # tell which local addresses those are, so the accept approves flows the MUD file drops
    conversion = convert(
        ace("no-peers", {"ietf-mud:mud": {"same-manufacturer": [None]}}, "drop"),
        ace("loc", {"ietf-mud:mud": {"local-networks": [None]}}),
        ace("web", {"tcp": {"destination-port": {"port": 443}}}),
    )
    assert len(entries(conversion)) == 2
    assert warned(conversion, "ace no-peers (acl fr)", "skipped")
    assert warned(conversion, "ace no-peers (acl fr): this drop could not be converted", "ace loc (acl fr) and 1 more",
                  "approved here though the MUD file drops them")


def test_convert_mud_skipped_drop_of_inbound_connections_is_not_an_order_problem() -> None:
    conversion = convert(
        ace("in", {"tcp": {"ietf-mud:direction-initiated": "to-device"}}, "drop"),
        ace("web", {"tcp": {"destination-port": {"port": 443}}}),
    )
    assert len(entries(conversion)) == 1
    assert not warned(conversion, "could not be converted")


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
        ("https://maker.example.com/cam-7", {}, "mud-maker-example-com-cam-7"),
        ("https://maker.example.com/mud/Cam_7%20Pro.json", {}, "mud-maker-example-com-mud-cam-7-20pro"),
        ("https://a.example.com/mud/device.json", {}, "mud-a-example-com-mud-device"),
        ("https://b.example.com/mud/device.json", {}, "mud-b-example-com-mud-device"),
        ("https://Maker.Example.com:8443/x/", {"model-name": "Model X"}, "mud-maker-example-com-8443-x"),
        ("https://maker.example.com/", {"model-name": "Model X"}, "mud-maker-example-com"),
        ("https://user@maker.example.com/mud?model=7", {}, "mud-maker-example-com-mud-model-7"),
    ],
)
def test_convert_mud_derives_ids(url: str, extra: dict[str, Any], expected: str) -> None:
    conversion = convert_mud(mud_with(**{"mud-url": url, **extra}), "x.json")
    assert conversion.rule_file["ruleset"] == expected
    assert conversion.rule_file["policies"][0]["id"] == expected


def test_convert_mud_trims_long_ids_with_a_hash_of_the_url() -> None:
    ids = set()
    for tail in ("a" * 100, "a" * 100 + "b", "a" * 99 + "-"):
        url = "https://maker.example.com/" + tail
        conversion = convert_mud(mud_with(**{"mud-url": url}), "x.json")
        policy_id = conversion.rule_file["policies"][0]["id"]
        assert conversion.rule_file["ruleset"] == policy_id
        assert len(policy_id) <= ID_LENGTH
        assert re.fullmatch(r"mud-maker-example-com-a+-[0-9a-f]{8}", policy_id), policy_id
        ids.add(policy_id)
    assert len(ids) == 3  # what the cut took off still tells them apart
    short = convert_mud(mud_with(**{"mud-url": "https://m.example/" + "a" * 40}), "x.json").rule_file
    assert short["ruleset"] == "mud-m-example-" + "a" * 40  # 54 characters: not trimmed


@pytest.mark.parametrize("url", ["https://maker.example.com/", "https://m.example/" + "-" * 80,
                                 "https://[2001:db8::1]/mud/x", "https://\u00e9.example/\u00e9.json"])
def test_convert_mud_ids_are_always_valid(url: str) -> None:
    policy_id = convert_mud(mud_with(**{"mud-url": url}), "x.json").rule_file["policies"][0]["id"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", policy_id) and len(policy_id) <= ID_LENGTH, policy_id


def test_mud_files_of_two_makers_with_the_same_file_name_load_together(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for host in ("a", "b"):
        document = rfc_example()
        document["ietf-mud:mud"]["mud-url"] = f"https://{host}.example.com/mud/device.json"
        (rules / f"{host}-device.json").write_text(json.dumps(document), encoding="utf-8")
    shutil.copy(data("lightbulb2000.json"), rules / "lightbulb2000.json")
    ruleset = load_rules([rules], Vocabulary(vendors=None, lists=None))
    assert sorted(p.policy.id for p in ruleset.policies) == [
        "mud-a-example-com-mud-device", "mud-b-example-com-mud-device", "mud-lighting-example-com-lightbulb2000"]


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
    assert policy["id"] == "mud-maker-example-com-cam-7"


@pytest.mark.parametrize(
    "kwargs",
    [{"severity": "urgent"}, {"macs": ["not-a-mac"]}, {"vendors": ["Hik Vision"]}, {"ruleset": "Bad Id"}],
)
def test_convert_mud_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(MudError) as caught:
        convert(**kwargs)
    # an argument is not in the file, so there is no JSON path; the message still names the file
    assert str(caught.value).startswith("cam7.json: ")
    assert "argument" in str(caught.value)


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
        (_set((*FR_ACE, "matches", "tcp", "destination-port"), {"operator": "eq"}), "destination-port: no port"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port"), {"lower-port": 1}), "destination-port: no upper-port"),
        (_set((*FR_ACE, "matches", "tcp", "destination-port"), {"upper-port": 1}), "destination-port: no lower-port"),
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


def test_every_mud_error_names_the_file_and_where() -> None:
    # the source as given, cleaned like every other message: one line
    with pytest.raises(MudError) as caught:
        convert_mud([], "bad\nname.json")
    assert str(caught.value) == ("bad\ufffdname.json: expected a JSON object holding 'ietf-mud:mud'")


def test_load_mud_errors_clean_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bad\nname.json"
    path.write_bytes(b"{,}")
    with pytest.raises(MudError) as caught:
        load_mud(path)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(path).replace("\n", "\ufffd") + ":1:2: not JSON")


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
