"""Protocol facts per sender MAC (auditor/devices/evidence.py): kept once per (protocol, field, value)
with first/last/count, matched against the signatures once, versioned by matching facts, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.devices.evidence import MAX_FACTS_PER_DEVICE, MAX_UNMATCHED_FACTS, MAX_UNMATCHED_NAMES, EvidenceTable
from auditor.devices.oui import parse_mac
from auditor.devices.signatures import Match, SignatureSet, load_signatures
from auditor.devices.types import Observation
from auditor.devices.vendors import load_vendors

REPO = Path(__file__).resolve().parents[2]
CAM = parse_mac("4C:BD:8F:21:10:21")
NVR = parse_mac("3C:EF:8C:00:00:07")
PHONE = parse_mac("02:1B:21:3A:4B:5C")

HELLO = [("message", "hello"), ("model", "DS-2CD2143G2-I"), ("serial", "DS-2CD2143G2-I20190101AAWRD12345678")]


@pytest.fixture(scope="module")
def signatures() -> SignatureSet:
    vendors = frozenset(v.id for v in load_vendors(REPO / "rules" / "vendors.yaml").vendors)
    return load_signatures(REPO / "rules" / "fingerprints", vendors)


class CountingSignatures(SignatureSet):
    """The shipped signatures, counting how often each fact is looked up."""

    def __init__(self, inner: SignatureSet) -> None:
        super().__init__(inner.signatures, inner.sources)
        self.calls: list[tuple[str, str, str]] = []

    def match(self, protocol: str, field: str, value: str) -> list[Match]:
        self.calls.append((protocol, field, value))
        return super().match(protocol, field, value)


def test_observe_keeps_facts_under_the_sender(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 1_000, "sadp", HELLO)
    table.observe(NVR, 2_000, "dhip", [("method", "client.notifyDevInfo")])
    cam, nvr = table.get(CAM), table.get(NVR)
    assert cam is not None and nvr is not None
    assert cam.observations() == [
        Observation("sadp", "message", "hello", 1_000, 1_000, 1, ("hikvision-sadp",)),
        Observation("sadp", "model", "DS-2CD2143G2-I", 1_000, 1_000, 1, ("hikvision-sadp-model",)),
        Observation("sadp", "serial", "DS-2CD2143G2-I20190101AAWRD12345678", 1_000, 1_000, 1, ()),
    ]
    assert nvr.observations() == [
        Observation("dhip", "method", "client.notifyDevInfo", 2_000, 2_000, 1, ("dahua-dhip",)),
    ]
    assert table.get(PHONE) is None
    assert sorted(table.devices) == sorted([CAM, NVR])
    assert table.records == {"sadp": 1, "dhip": 1}


def test_observe_counts_a_repeated_fact_with_first_and_last(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 5_000, "sadp", [("message", "hello")])
    table.observe(CAM, 9_000, "sadp", [("message", "hello")])
    table.observe(CAM, 3_000, "sadp", [("message", "hello")])  # out of order: first moves back
    table.observe(CAM, 7_000, "sadp", [("message", "hello")])
    facts = table.get(CAM)
    assert facts is not None
    assert facts.observations() == [Observation("sadp", "message", "hello", 3_000, 9_000, 4, ("hikvision-sadp",))]
    assert table.records == {"sadp": 4}


def test_observe_tells_facts_apart_by_protocol_field_and_value(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 1, "tls", [("sni", "litedev.hik-connect.com")])
    table.observe(CAM, 2, "dns", [("query", "litedev.hik-connect.com")])
    table.observe(CAM, 3, "http", [("host", "litedev.hik-connect.com")])
    table.observe(CAM, 4, "tls", [("sni", "LITEDEV.hik-connect.com")])
    facts = table.get(CAM)
    assert facts is not None
    assert [(o.protocol, o.field, o.value, o.count, o.signatures) for o in facts.observations()] == [
        ("tls", "sni", "litedev.hik-connect.com", 1, ("hik-connect-cloud",)),
        ("dns", "query", "litedev.hik-connect.com", 1, ("hik-connect-dns",)),
        ("http", "host", "litedev.hik-connect.com", 1, ("hik-connect-cloud-http",)),
        ("tls", "sni", "LITEDEV.hik-connect.com", 1, ("hik-connect-cloud",)),
    ]


def test_observe_matches_each_fact_once(signatures: SignatureSet) -> None:
    counting = CountingSignatures(signatures)
    table = EvidenceTable(counting)
    for ts in range(5):
        table.observe(CAM, ts, "sadp", HELLO)
    assert counting.calls == [("sadp", f, v) for f, v in HELLO]
    facts = table.get(CAM)
    assert facts is not None
    assert [o.count for o in facts.observations()] == [5, 5, 5]


def test_matches_pairs_each_observation_with_its_signatures(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(NVR, 10, "dhip", [("method", "client.notifyDevInfo"), ("device_type", "DHI-NVR4104HS-P-4KS2"),
                                    ("serial", "6J0123PAZ00042")])
    table.observe(NVR, 20, "dhip", [("method", "client.notifyDevInfo")])
    facts = table.get(NVR)
    assert facts is not None
    assert [(o.field, o.count, m.signature.id, m.model) for o, m in facts.matches()] == [
        ("method", 2, "dahua-dhip", None),
        ("device_type", 1, "dahua-dhip-model", "DHI-NVR4104HS-P-4KS2"),
        ("device_type", 1, "dahua-dhip-nvr", "DHI-NVR4104HS-P-4KS2"),
    ]
    method_obs = facts.matches()[0][0]
    assert method_obs == Observation("dhip", "method", "client.notifyDevInfo", 10, 20, 2, ("dahua-dhip",))


def test_version_bumps_only_on_a_new_matching_fact(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 1, "sadp", [("serial", "X1")])  # new, matches nothing
    facts = table.get(CAM)
    assert facts is not None
    assert facts.version == 0
    table.observe(CAM, 2, "sadp", [("message", "hello")])  # new, matches
    assert facts.version == 1
    table.observe(CAM, 3, "sadp", [("message", "hello")])  # seen before
    assert facts.version == 1
    table.observe(CAM, 4, "sadp", [("serial", "X2"), ("ipv4", "192.168.1.64")])  # new, match nothing
    assert facts.version == 1
    table.observe(CAM, 5, "sadp", [("model", "DS-7608NI-K2/8P")])  # new, matches two signatures: one bump
    assert facts.version == 2
    table.observe(CAM, 6, "sadp", [("message", "probematch"), ("firmware", "V4.1.0 build 200101")])
    assert facts.version == 4
    assert [o.signatures for o in facts.observations()] == [
        (), ("hikvision-sadp",), (), (), ("hikvision-sadp-model", "hikvision-sadp-nvr-model"),
        ("hikvision-sadp",), ("hikvision-sadp-firmware",),
    ]


def test_observe_caps_the_facts_of_one_device(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 1, "sadp", [("message", "hello")])
    table.observe(CAM, 2, "ssdp", [("usn", f"uuid:{i}") for i in range(MAX_UNMATCHED_FACTS + 3)])
    facts = table.get(CAM)
    assert facts is not None
    # unmatched facts are capped at MAX_UNMATCHED_FACTS; the three over it are dropped and counted
    assert (len(facts.facts), facts.matched, facts.dropped, facts.version) == (1 + MAX_UNMATCHED_FACTS, 1, 3, 1)
    # a fact that matches a signature still gets in after the flood: the noise cannot hide the device
    table.observe(CAM, 3, "dns", [("query", "overflow.example.com"), ("query", "litedev.hik-connect.com")])
    assert ("dns", "query", "litedev.hik-connect.com") in facts.facts
    assert ("dns", "query", "overflow.example.com") not in facts.facts
    assert (facts.matched, facts.dropped, facts.version) == (2, 4, 2)
    # facts already kept are still counted
    table.observe(CAM, 4, "sadp", [("message", "hello")])
    assert facts.observations()[0] == Observation("sadp", "message", "hello", 1, 4, 2, ("hikvision-sadp",))
    # matched facts have their own cap
    table.observe(CAM, 5, "sadp", [("model", f"DS-{i}") for i in range(MAX_FACTS_PER_DEVICE)])
    assert (facts.matched, facts.dropped) == (MAX_FACTS_PER_DEVICE, 4 + 2)
    # another device has its own room
    table.observe(NVR, 6, "dns", [("query", "overflow.example.com")])
    nvr = table.get(NVR)
    assert nvr is not None
    assert (len(nvr.facts), nvr.dropped) == (1, 0)


def test_observe_keeps_only_a_few_names_that_match_nothing(signatures: SignatureSet) -> None:
    """A busy host looks up hundreds of names: a few are kept for analysts, those a signature knows always."""
    table = EvidenceTable(signatures)
    table.observe(CAM, 1, "dns", [("query", f"n{i}.example.com") for i in range(MAX_UNMATCHED_NAMES + 5)])
    table.observe(CAM, 2, "tls", [("sni", "www.example.org"), ("sni", "litedev.hik-connect.com")])
    table.observe(CAM, 3, "sadp", [("serial", "X1"), ("model", "DS-2CD2143G2-I")])
    facts = table.get(CAM)
    assert facts is not None
    kept = {(p, f, v) for p, f, v in facts.facts}
    assert {v for p, f, v in kept if f == "query"} == {f"n{i}.example.com" for i in range(MAX_UNMATCHED_NAMES)}
    assert ("tls", "sni", "www.example.org") not in kept  # the name quota is shared by DNS, SNI and Host
    assert {("tls", "sni", "litedev.hik-connect.com"), ("sadp", "serial", "X1")} <= kept  # matched; not a name
    assert (facts.unmatched_names, facts.dropped) == (MAX_UNMATCHED_NAMES, 6)


def test_observe_caps_the_number_of_devices(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures, max_devices=2)
    table.observe(CAM, 1, "sadp", [("message", "hello")])
    table.observe(NVR, 2, "dhip", [("method", "client.notifyDevInfo")])
    table.observe(PHONE, 3, "dns", [("query", "litedev.hik-connect.com")])
    assert table.get(PHONE) is None
    assert sorted(table.devices) == sorted([CAM, NVR])
    assert table.dropped_devices == 1
    # the counter counts refused payloads (as DeviceTable does), not distinct devices
    table.observe(PHONE, 4, "dns", [("query", "time.ys7.com")])
    assert table.dropped_devices == 2
    # devices already kept still gain facts
    table.observe(CAM, 5, "sadp", [("model", "DS-2CD2143G2-I")])
    cam = table.get(CAM)
    assert cam is not None
    assert (len(cam.facts), cam.version) == (2, 2)
    assert table.records == {"sadp": 2, "dhip": 1, "dns": 2}


def test_observe_ignores_mac_zero_but_counts_the_record(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures, max_devices=1)
    table.observe(0, 1, "sadp", [("message", "hello")])
    table.observe(0, 2, "sadp", [("message", "hello")])
    assert table.devices == {}
    assert table.get(0) is None
    assert table.records == {"sadp": 2}
    assert table.dropped_devices == 0
    table.observe(CAM, 3, "sadp", [("message", "hello")])  # mac 0 took no slot
    assert list(table.devices) == [CAM]


def test_observe_reads_facts_from_a_generator(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures)
    table.observe(CAM, 1, "sadp", (pair for pair in HELLO))
    facts = table.get(CAM)
    assert facts is not None
    assert [o.field for o in facts.observations()] == ["message", "model", "serial"]


def test_get_is_none_for_a_device_that_stated_nothing(signatures: SignatureSet) -> None:
    table = EvidenceTable(signatures, max_devices=1)
    table.observe(PHONE, 1, "dhip", [])
    assert table.get(PHONE) is None
