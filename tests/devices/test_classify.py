"""One verdict per device (auditor/devices/classify.py) from its OUI and the facts its packets stated,
with the shipped catalog (rules/vendors.yaml), signatures (rules/fingerprints) and OUI table; and the
verdict cache (auditor/devices/verdicts.py DeviceVerdicts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from auditor.devices.classify import classify
from auditor.devices.evidence import DeviceFacts, EvidenceTable
from auditor.devices.oui import OuiRegistry, parse_mac
from auditor.devices.signatures import SignatureSet, load_signatures
from auditor.devices.types import AnalystPin, Observation, OuiMatch, VendorVerdict
from auditor.devices.vendors import VendorCatalog, load_vendors
from auditor.devices.verdicts import DeviceVerdicts

REPO = Path(__file__).resolve().parents[2]

HIKVISION_MAC = "4C:BD:8F:21:10:21"
DAHUA_MAC = "3C:EF:8C:00:00:07"
EZVIZ_MAC = "58:8F:CF:12:34:56"
AXIS_MAC = "AC:CC:8E:01:02:03"
LOREX_MAC = "00:1F:54:0A:0B:0C"
ESPRESSIF_MAC = "24:0A:C4:55:66:77"
HUAWEI_MAC = "00:18:82:01:02:03"  # no pin: attributed by the registry name
RANDOM_MAC = "02:1B:21:3A:4B:5C"  # locally administered

HIKVISION = "Hangzhou Hikvision Digital Technology Co., Ltd."
DAHUA = "Zhejiang Dahua Technology Co., Ltd."
CHINA_LISTS = [("ndaa-889", "NDAA FY2019 section 889", "2019-08-13"), ("fcc-covered", "FCC Covered List", "2021-03-12")]

Fact = tuple[str, str, str]
SADP_HELLO: list[Fact] = [("sadp", "message", "hello"), ("sadp", "model", "DS-2CD2143G2-I")]
DHIP_LOREX: list[Fact] = [("dhip", "method", "client.notifyDevInfo"), ("dhip", "vendor", "Lorex")]


@pytest.fixture(scope="module")
def registry() -> OuiRegistry:
    return OuiRegistry.default(None)


@pytest.fixture(scope="module")
def catalog() -> VendorCatalog:
    return load_vendors(REPO / "rules" / "vendors.yaml")


@pytest.fixture(scope="module")
def signatures(catalog: VendorCatalog) -> SignatureSet:
    return load_signatures(REPO / "rules" / "fingerprints", frozenset(v.id for v in catalog.vendors))


Verdict = Callable[..., VendorVerdict | None]


@pytest.fixture
def verdict(registry: OuiRegistry, catalog: VendorCatalog, signatures: SignatureSet) -> Verdict:
    """verdict(mac, facts, oui=None) -> the verdict of a MAC that stated these (protocol, field, value)
    facts; its registry entry is looked up unless `oui` is given."""

    def run(mac: str, facts: Sequence[Fact] = (), oui: OuiMatch | None = None) -> VendorVerdict | None:
        table = EvidenceTable(signatures)
        m = parse_mac(mac)
        for i, (protocol, field, value) in enumerate(facts):
            table.observe(m, 1_000 + i, protocol, [(field, value)])
        return classify(m, oui if oui is not None else registry.lookup(m), catalog, table.get(m))

    return run


def lists(v: VendorVerdict) -> list[tuple[str, str, str]]:
    return [(e.list_id, e.list_name, e.since) for e in v.lists]


# -- OUI and protocol agree -----------------------------------------------------------------------


def test_classify_hikvision_oui_and_sadp_agree(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC, SADP_HELLO)
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail) == (
        "hikvision", HIKVISION, "camera", "protocol", "hikvision-sadp"
    )
    assert v.confidence == 0.98  # 1 - (1 - 0.9) * (1 - 0.8): SADP and the pinned OUI
    assert (v.relabel, v.brand, v.model, v.firmware, v.parents) == (None, None, "DS-2CD2143G2-I", None, ())
    assert lists(v) == CHINA_LISTS
    assert v.evidence == (
        Observation("sadp", "message", "hello", 1_000, 1_000, 1, ("hikvision-sadp",)),
        Observation("sadp", "model", "DS-2CD2143G2-I", 1_001, 1_001, 1, ("hikvision-sadp-model",)),
    )


def test_classify_combines_distinct_signatures_of_a_maker(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC, [*SADP_HELLO, ("sadp", "firmware", "V5.5.82build 190909")])
    assert v is not None
    assert (v.how, v.detail, v.firmware) == (
        "protocol", "hikvision-sadp, hikvision-sadp-firmware", "V5.5.82build 190909"
    )
    # protocol 1 - 0.1 * 0.7 = 0.93, with the OUI 1 - 0.07 * 0.2 = 0.986
    assert v.confidence == 0.986


def test_classify_counts_one_signature_once(verdict: Verdict) -> None:
    # hello and probematch both match hikvision-sadp: one clue, not two
    v = verdict(RANDOM_MAC, [("sadp", "message", "hello"), ("sadp", "message", "probematch")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence) == ("hikvision", "protocol", "hikvision-sadp", 0.9)
    assert len(v.evidence) == 2


def test_classify_two_signatures_combine_as_independent_clues(verdict: Verdict) -> None:
    v = verdict(RANDOM_MAC, [("sadp", "message", "hello"), ("tls", "sni", "litedev.hik-connect.com")])
    assert v is not None
    assert (v.vendor_id, v.detail, v.confidence) == ("hikvision", "hik-connect-cloud, hikvision-sadp", 0.96)


def test_classify_caps_confidence(verdict: Verdict) -> None:
    # DHIP 0.9 and RTSP 0.8 give 0.98, the Dahua OUI raises it to 0.996: capped at 0.99
    v = verdict(DAHUA_MAC, [("dhip", "method", "client.notifyDevInfo"), ("rtsp", "server", "Dahua Rtsp Server")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence) == ("dahua", "protocol", "dahua-dhip, dahua-rtsp-server", 0.99)


def test_classify_axis_dhcp_vendor_class_gives_model_and_firmware(verdict: Verdict) -> None:
    v = verdict(AXIS_MAC, [("dhcp", "vendor_class", "AXIS,Network Camera,P3245-LV,10.12.182")])
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail, v.confidence) == (
        "axis", "Axis Communications AB", "camera", "protocol", "axis-dhcp-vendor-class", 0.96
    )
    assert (v.model, v.firmware, v.relabel, v.lists, v.parents) == ("P3245-LV", "10.12.182", None, (), ())


# -- protocol overrules the OUI -------------------------------------------------------------------


def test_classify_espressif_mac_with_sadp_is_a_relabelled_hikvision(verdict: Verdict) -> None:
    v = verdict(ESPRESSIF_MAC, [("sadp", "message", "hello")])
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail, v.confidence) == (
        "hikvision", HIKVISION, "camera", "protocol", "hikvision-sadp", 0.9
    )
    assert v.relabel == f"made by {HIKVISION}; the MAC's OUI belongs to Espressif Inc. (a network module or OEM)"
    assert lists(v) == CHINA_LISTS


def test_classify_lorex_mac_with_dhip_is_a_relabelled_dahua(verdict: Verdict) -> None:
    v = verdict(LOREX_MAC, DHIP_LOREX)
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail, v.confidence) == (
        "dahua", DAHUA, "camera", "protocol", "dahua-dhip", 0.9
    )
    assert v.brand == "Lorex"
    assert v.relabel == (
        f"made by {DAHUA}; the MAC's OUI belongs to Lorex Technology Inc.; "
        "sold under another label: dhip vendor 'Lorex'"
    )
    assert lists(v) == CHINA_LISTS
    assert [o.signatures for o in v.evidence] == [("dahua-dhip",), ("dahua-dhip-vendor-oem",)]


def test_classify_randomised_mac_with_dhip_is_dahua_without_relabel(verdict: Verdict) -> None:
    v = verdict(RANDOM_MAC, [("dhip", "method", "client.notifyDevInfo")])
    assert v is not None
    assert (v.vendor_id, v.device_class, v.how, v.detail, v.confidence, v.relabel, v.brand) == (
        "dahua", "camera", "protocol", "dahua-dhip", 0.9, None, None
    )


def test_classify_local_mac_never_blames_its_oui(verdict: Verdict) -> None:
    # even when a caller hands over a registry entry for a locally administered MAC
    espressif = OuiMatch(prefix=0x240AC4, bits=24, organization="Espressif Inc.")
    v = verdict("26:0A:C4:55:66:77", [("dhip", "method", "client.notifyDevInfo")], oui=espressif)
    assert v is not None
    assert (v.vendor_id, v.how, v.confidence, v.relabel) == ("dahua", "protocol", 0.9, None)


def test_classify_oem_field_marks_a_relabel_even_when_the_oui_agrees(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC, [("sadp", "message", "hello"), ("sadp", "oem_code", "LTS")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence, v.brand) == ("hikvision", "protocol", "hikvision-sadp", 0.98,
                                                                     "LTS")
    assert v.relabel == f"made by {HIKVISION}; sold under another label: sadp oem_code 'LTS'"


def test_classify_default_oem_codes_are_not_labels(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC, [("sadp", "message", "hello"), ("sadp", "oem_code", "1")])
    assert v is not None
    assert (v.brand, v.relabel, v.confidence) == (None, None, 0.98)
    v = verdict(DAHUA_MAC, [("dhip", "method", "client.notifyDevInfo"), ("dhip", "vendor", "General")])
    assert v is not None
    assert (v.brand, v.relabel, v.confidence) == (None, None, 0.98)


def test_classify_oem_field_alone_keeps_the_oui_maker(verdict: Verdict) -> None:
    # an OEM label is no maker clue: the OUI decides, and the label is still reported
    v = verdict(DAHUA_MAC, [("dhip", "vendor", "Lorex")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence, v.brand) == ("dahua", "oui-pin", "3C-EF-8C/24", 0.8, "Lorex")
    assert v.relabel == "sold under another label: dhip vendor 'Lorex'"


def test_classify_half_is_enough_to_decide(verdict: Verdict) -> None:
    v = verdict(RANDOM_MAC, [("wsdiscovery", "name", "Dahua")])  # dahua-onvif-scope, decisive, weight 0.5
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence) == ("dahua", "protocol", "dahua-onvif-scope", 0.5)


def test_classify_cloud_calls_alone_name_no_maker(verdict: Verdict) -> None:
    """A laptop opening the Hik-Connect portal looks up and calls hik-connect.com too: not a Hikvision device."""
    assert verdict(RANDOM_MAC, [("tls", "sni", "time.ys7.com")]) is None  # ezviz-cloud-ys7, 0.5, not decisive
    assert verdict(RANDOM_MAC, [("tls", "sni", "litedev.hik-connect.com"),
                                ("dns", "query", "litedev.hik-connect.com")]) is None  # 0.76, neither decisive


def test_classify_below_half_names_nobody(verdict: Verdict) -> None:
    assert verdict(RANDOM_MAC, [("dns", "query", "time.ys7.com")]) is None  # ezviz-dns-ys7, weight 0.4


# -- the OUI alone --------------------------------------------------------------------------------


def test_classify_oui_pin_alone(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC)
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail, v.confidence) == (
        "hikvision", HIKVISION, "camera", "oui-pin", "4C-BD-8F/24", 0.8
    )
    assert (v.relabel, v.brand, v.model, v.firmware, v.evidence, v.parents) == (None, None, None, None, (), ())
    assert lists(v) == CHINA_LISTS


def test_classify_org_pattern_alone(verdict: Verdict) -> None:
    v = verdict(HUAWEI_MAC)
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.detail, v.confidence) == (
        "huawei", "Huawei Technologies Co., Ltd.", "network", "org-pattern", "Huawei Technologies Co.,Ltd", 0.7
    )


def test_classify_weak_evidence_for_another_maker_does_not_overrule_the_oui(verdict: Verdict) -> None:
    # two Dahua clues, 1 - 0.9 * 0.6 = 0.46 < 0.5, on a Hikvision MAC
    v = verdict(HIKVISION_MAC, [("dhip", "firmware", "2.800.0000000.25.R"),
                                ("wsdiscovery", "hardware", "IPC-HFW2431S-S-S2")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.confidence, v.relabel) == (
        "hikvision", "oui-pin", "4C-BD-8F/24", 0.8, None
    )


def test_classify_takes_no_model_from_a_maker_that_lost(verdict: Verdict) -> None:
    v = verdict(HIKVISION_MAC, [("wsdiscovery", "hardware", "IPC-HFW2431S-S-S2")])
    assert v is not None
    assert (v.vendor_id, v.model) == ("hikvision", None)


def test_classify_weak_agreeing_evidence_strengthens_the_oui(verdict: Verdict) -> None:
    v = verdict(DAHUA_MAC, [("wsdiscovery", "hardware", "IPC-HFW2431S-S-S2")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.model) == (
        "dahua", "oui-pin", "3C-EF-8C/24; dahua-onvif-hardware", "IPC-HFW2431S-S-S2"
    )
    assert v.confidence == 0.88  # 1 - (1 - 0.8) * (1 - 0.4)


# -- class ----------------------------------------------------------------------------------------


def test_classify_nvr_model_beats_the_camera_class(verdict: Verdict) -> None:
    v = verdict(DAHUA_MAC, [("dhip", "method", "client.notifyDevInfo"),
                            ("dhip", "device_type", "DHI-NVR4104HS-P-4KS2")])
    assert v is not None
    assert (v.vendor_id, v.device_class, v.model, v.confidence) == ("dahua", "nvr", "DHI-NVR4104HS-P-4KS2", 0.98)
    v = verdict(HIKVISION_MAC, [("sadp", "message", "hello"), ("sadp", "model", "DS-7608NI-K2/8P")])
    assert v is not None
    assert (v.vendor_id, v.device_class, v.model) == ("hikvision", "nvr", "DS-7608NI-K2/8P")


def test_classify_camera_model_keeps_the_camera_class(verdict: Verdict) -> None:
    v = verdict(DAHUA_MAC, [("dhip", "method", "client.notifyDevInfo"), ("dhip", "device_type", "IPC-HDW2431T-AS")])
    assert v is not None
    assert (v.device_class, v.model) == ("camera", "IPC-HDW2431T-AS")


def test_classify_implied_class_overrides_the_default_on_the_oui_path(verdict: Verdict) -> None:
    v = verdict(HUAWEI_MAC, [("wsdiscovery", "type", "NetworkVideoTransmitter")])
    assert v is not None
    assert (v.vendor_id, v.device_class, v.how, v.detail, v.confidence) == (
        "huawei", "camera", "org-pattern", "Huawei Technologies Co.,Ltd", 0.7
    )


def test_classify_onvif_camera_of_an_unknown_maker(verdict: Verdict) -> None:
    v = verdict(ESPRESSIF_MAC, [("wsdiscovery", "type", "NetworkVideoTransmitter")])
    assert v == VendorVerdict(
        vendor_id=None, name=None, device_class="camera", how="protocol", detail="onvif-video-transmitter",
        confidence=0.8,
        evidence=(Observation("wsdiscovery", "type", "NetworkVideoTransmitter", 1_000, 1_000, 1,
                              ("onvif-video-transmitter",)),),
    )


def test_classify_nothing_known_is_none(verdict: Verdict) -> None:
    assert verdict(ESPRESSIF_MAC) is None
    assert verdict(RANDOM_MAC) is None
    assert verdict(ESPRESSIF_MAC, [("dns", "query", "pool.ntp.org"), ("sadp", "message", "probe")]) is None


def test_classify_without_a_catalog_names_no_maker(registry: OuiRegistry, signatures: SignatureSet) -> None:
    mac = parse_mac(HIKVISION_MAC)
    table = EvidenceTable(signatures)
    table.observe(mac, 1, "sadp", [("message", "hello")])
    assert classify(mac, registry.lookup(mac), None, table.get(mac)) is None
    table.observe(mac, 2, "wsdiscovery", [("type", "NetworkVideoTransmitter")])
    v = classify(mac, registry.lookup(mac), None, table.get(mac))
    assert v is not None
    assert (v.vendor_id, v.device_class, v.how, v.detail, v.confidence) == (
        None, "camera", "protocol", "onvif-video-transmitter", 0.8
    )


# -- parents and lists come from the maker --------------------------------------------------------


def test_classify_ezviz_evidence_gives_its_parent(verdict: Verdict) -> None:
    v = verdict(EZVIZ_MAC, [("tls", "sni", "litedev.ezvizlife.com")])
    assert v is not None
    assert (v.vendor_id, v.name, v.how, v.detail, v.confidence, v.parents, v.relabel) == (
        "ezviz", "Hangzhou Ezviz Software Co., Ltd.", "oui-pin", "58-8F-CF/24; ezviz-cloud", 0.92, ("hikvision",),
        None,
    )
    assert lists(v) == CHINA_LISTS
    assert v.lists[0].note == "Covered as a Hikvision subsidiary (consumer camera brand)."


def test_classify_parent_and_subsidiary_evidence_agree_with_the_oui(verdict: Verdict) -> None:
    # an EZVIZ MAC talking to Hik-Connect: Hikvision evidence, the OUI of its subsidiary: agreement, no relabel
    v = verdict(EZVIZ_MAC, [("tls", "sni", "litedev.hik-connect.com")])
    assert v is not None
    assert (v.vendor_id, v.how, v.detail, v.relabel, v.parents) == (
        "ezviz", "oui-pin", "58-8F-CF/24; hik-connect-cloud", None, ("hikvision",)
    )
    assert v.confidence == 0.92  # 1 - (1 - 0.6) * (1 - 0.8)
    v = verdict(HIKVISION_MAC, [("tls", "sni", "litedev.ezvizlife.com")])
    assert v is not None
    assert (v.vendor_id, v.relabel, v.parents, v.confidence) == ("hikvision", None, (), 0.92)
    # decisive protocol evidence of the parent on a subsidiary's MAC names the parent, still no relabel
    v = verdict(EZVIZ_MAC, [("sadp", "message", "hello")])
    assert v is not None
    assert (v.vendor_id, v.how, v.relabel, v.confidence) == ("hikvision", "protocol", None, 0.98)


def test_classify_unrelated_catalog_oui_is_a_relabel(verdict: Verdict) -> None:
    v = verdict(AXIS_MAC, [("sadp", "message", "hello")])
    assert v is not None
    assert (v.vendor_id, v.confidence) == ("hikvision", 0.9)
    assert v.relabel == f"made by {HIKVISION}; the MAC's OUI belongs to Axis Communications AB"


# -- the verdict cache ----------------------------------------------------------------------------


def test_device_verdicts_returns_the_same_object_until_a_matching_fact_arrives(
        registry: OuiRegistry, catalog: VendorCatalog, signatures: SignatureSet) -> None:
    evidence = EvidenceTable(signatures)
    verdicts = DeviceVerdicts(registry, catalog, evidence)
    mac = parse_mac(ESPRESSIF_MAC)
    assert verdicts(mac) is None
    evidence.observe(mac, 1, "wsdiscovery", [("type", "NetworkVideoTransmitter")])
    first = verdicts(mac)
    assert first is not None
    assert (first.vendor_id, first.device_class) == (None, "camera")
    assert verdicts(mac) is first
    evidence.observe(mac, 2, "wsdiscovery", [("type", "NetworkVideoTransmitter")])  # seen before
    evidence.observe(mac, 3, "dns", [("query", "pool.ntp.org")])  # new, matches nothing
    assert verdicts(mac) is first
    # the cached verdict's evidence is a snapshot: the fact has been seen twice since
    assert first.evidence[0].count == 1
    facts = verdicts.facts(mac)
    assert facts is not None
    assert facts.observations()[0].count == 2
    evidence.observe(mac, 4, "sadp", [("message", "hello")])  # new and matching
    second = verdicts(mac)
    assert second is not first
    assert second is not None
    assert (second.vendor_id, second.how, second.confidence, second.evidence[0].count) == (
        "hikvision", "protocol", 0.9, 2
    )
    assert verdicts(mac) is second


def test_device_verdicts_without_evidence_uses_the_oui(registry: OuiRegistry, catalog: VendorCatalog) -> None:
    verdicts = DeviceVerdicts(registry, catalog)
    mac = parse_mac(HIKVISION_MAC)
    first = verdicts(mac)
    assert first is not None
    assert (first.vendor_id, first.how, first.confidence) == ("hikvision", "oui-pin", 0.8)
    assert verdicts(mac) is first
    assert verdicts.facts(mac) is None
    assert verdicts(parse_mac(RANDOM_MAC)) is None


def test_device_verdicts_starts_over_when_full(registry: OuiRegistry, catalog: VendorCatalog) -> None:
    verdicts = DeviceVerdicts(registry, catalog, max_entries=1)
    cam, nvr = parse_mac(HIKVISION_MAC), parse_mac(DAHUA_MAC)
    first = verdicts(cam)
    assert verdicts(cam) is first
    assert verdicts(nvr) is not None  # evicts cam
    again = verdicts(cam)
    assert again is not first
    assert again == first


# -- analyst pins --------------------------------------------------------------------------------


def _facts(signatures: SignatureSet, mac: int, facts: Sequence[Fact]) -> DeviceFacts | None:
    table = EvidenceTable(signatures)
    for i, (protocol, field, value) in enumerate(facts):
        table.observe(mac, i + 1, protocol, [(field, value)])
    return table.get(mac)


def test_classify_an_analysts_pin_wins_over_oui_and_protocol_evidence(
    registry: OuiRegistry, catalog: VendorCatalog, signatures: SignatureSet
) -> None:
    mac = parse_mac(LOREX_MAC)
    facts = _facts(signatures, mac, [("dhip", "method", "client.notifyDevInfo"), ("dhip", "vendor", "Lorex")])
    pin = AnalystPin(mac, "lorex", "nvr", model="N861", note="asset 4411", reference="site.yaml:40")
    v = classify(mac, registry.lookup(mac), catalog, facts, pin)
    assert v is not None
    assert (v.vendor_id, v.device_class, v.how, v.detail, v.confidence, v.model, v.relabel) == (
        "lorex", "nvr", "analyst-pin", "site.yaml:40: asset 4411", 1.0, "N861", None)
    assert [o.field for o in v.evidence] == ["method", "vendor"]  # the evidence is still shown


def test_classify_a_pin_of_the_class_alone_keeps_the_maker_the_evidence_found(
    registry: OuiRegistry, catalog: VendorCatalog, signatures: SignatureSet
) -> None:
    mac = parse_mac(DAHUA_MAC)
    pin = AnalystPin(mac, None, "nvr", reference="site.yaml:9")
    v = classify(mac, registry.lookup(mac), catalog, None, pin)
    assert v is not None
    assert (v.vendor_id, v.device_class, v.how, [e.list_id for e in v.lists]) == (
        "dahua", "nvr", "analyst-pin", ["ndaa-889", "fcc-covered"])
    unknown = parse_mac(RANDOM_MAC)
    v = classify(unknown, None, catalog, None, AnalystPin(unknown, None, "computer", reference="site.yaml:12"))
    assert v is not None
    assert (v.vendor_id, v.name, v.device_class, v.how, v.lists) == (None, None, "computer", "analyst-pin", ())


def test_classify_needs_decisive_clues_alone_to_reach_half(verdict: Verdict) -> None:
    """easy4ip (0.7, not decisive: phone apps speak it too) with a 0.1 decisive clue names no maker."""
    facts = [("easy4ip", "method", "DHGET"), ("dhip", "firmware", "2.800.0000000.25.R")]
    assert verdict(RANDOM_MAC, facts) is None
    v = verdict(RANDOM_MAC, [*facts, ("dhip", "method", "client.notifyDevInfo")])
    assert v is not None
    assert (v.vendor_id, v.how) == ("dahua", "protocol")
    assert v.confidence == 0.973  # 1 - (1 - 0.9) * (1 - 0.1) * (1 - 0.7): the easy4ip clue still adds confidence
