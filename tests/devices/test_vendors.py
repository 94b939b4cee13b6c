"""The shipped vendor catalog (rules/vendors.yaml): it loads, its pins and patterns attribute every
registry block of our vendors and none of the false friends, MA-M/MA-S blocks stay within their
bounds, brands and parents resolve, and list memberships are the ones we mean to claim."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from auditor.devices.oui import OuiRegistry, parse_mac
from auditor.devices.types import OuiMatch
from auditor.devices.vendors import VendorCatalog, load_vendors
from auditor.errors import RuleFileError

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "vendors.yaml"
OUI_CSV = REPO.parent / "shared" / "research" / "vendor_ouis_full.csv"

# vendor_group in vendor_ouis_full.csv -> vendor id (None: a group we deliberately do not attribute)
GROUP_TO_ID: dict[str, str | None] = {
    "hikvision": "hikvision",
    "hikvision-ezviz": "ezviz",
    "hikvision-hikrobot": "hikrobot",
    "dahua": "dahua",
    "dahua-imou": "imou",
    "lorex": "lorex",
    "uniview": "uniview",
    "tiandy": "tiandy",
    "nuctech": "nuctech",
    "tongfang": None,  # Tongfang PCs, TVs and silicon: false friends for Nuctech
    "huawei": "huawei",
    "honor": "honor",
    "zte": "zte",
    "hytera": "hytera",
    "dji": "dji",
    "hanwha": "hanwha",
    "axis": "axis",
    "bosch-security": "bosch-security",
    "smiths-detection": "smiths-detection",
    "rapiscan": "rapiscan",
    "cloudwalk": "cloudwalk",
    "sensetime": "sensetime",
    "yitu": "yitu",
    "sugon-dawning": "sugon",
    "iflytek": "iflytek",
    "intellifusion": "intellifusion",
}
# Rows whose organisation overrides their group: relation to ZTE unverified, kept as its own vendor.
ORG_TO_ID = {"SHANGHAI ZTE TECHNOLOGIES CO.,LTD": "shanghai-zte-technologies"}


@pytest.fixture(scope="module")
def catalog() -> VendorCatalog:
    return load_vendors(RULES)


@pytest.fixture(scope="module")
def registry() -> OuiRegistry:
    return OuiRegistry.default()


def attributed(catalog: VendorCatalog, registry: OuiRegistry, mac: int) -> str | None:
    """The vendor id the auditor gives a MAC: shipped registry lookup, then the catalog."""
    match = catalog.vendor_for(mac, registry.lookup(mac))
    return match.vendor.id if match else None


def first_mac(assignment: str) -> int:
    """The first MAC of a registry assignment given as 6, 7 or 9 hex digits."""
    return int(assignment.ljust(12, "0"), 16)


def pin_list(catalog: VendorCatalog) -> list[tuple[tuple[int, int], str]]:
    """((prefix, bits), vendor id) of every pin in the file, parsed independently of the loader."""
    out = []
    for vendor in catalog.vendors:
        for pin in vendor.ouis:
            text, _, bits_text = pin.partition("/")
            digits = text.replace(":", "").replace("-", "")
            bits = int(bits_text) if bits_text else 24
            out.append(((int(digits, 16) >> (len(digits) * 4 - bits), bits), vendor.id))
    return out


def pins_of(catalog: VendorCatalog) -> dict[tuple[int, int], str]:
    return dict(pin_list(catalog))


# -- the file itself ---------------------------------------------------------------------------------


def test_shipped_file_loads_with_unique_ids_and_valid_references(catalog: VendorCatalog) -> None:
    ids = [v.id for v in catalog.vendors]
    assert len(ids) == len(set(ids))
    assert set(catalog.lists) == {"ndaa-889", "fcc-covered", "entity-list"}
    for vendor in catalog.vendors:
        assert vendor.parent is None or vendor.parent in ids, vendor.id
        for member in vendor.lists:
            assert member.list in catalog.lists, (vendor.id, member.list)
            assert member.clause.strip(), vendor.id
        assert catalog.get(vendor.id) is vendor


def test_pins_are_unique_across_vendors(catalog: VendorCatalog) -> None:
    # The loader keeps the last of two identical pins silently: the file must not rely on that.
    seen: dict[tuple[int, int], str] = {}
    for key, vendor_id in pin_list(catalog):
        assert key not in seen, f"{vendor_id} pins {key[0]:X}/{key[1]}, already pinned by {seen[key]}"
        seen[key] = vendor_id


def test_brands_and_names_are_unique_across_vendors(catalog: VendorCatalog) -> None:
    # The loader's brand map keeps the last vendor for a repeated brand silently.
    owner: dict[str, str] = {}
    for vendor in catalog.vendors:
        for name in {n.casefold() for n in (vendor.name, *vendor.brands)}:
            assert name not in owner, f"{name!r} names both {owner[name]} and {vendor.id}"
            owner[name] = vendor.id


def test_every_pin_agrees_with_the_shipped_registry(catalog: VendorCatalog, registry: OuiRegistry) -> None:
    # A pin with a typo would silently claim someone else's block: where the registry knows the
    # block, its organisation must be one the same vendor's own patterns accept.
    for (prefix, bits), vendor_id in pins_of(catalog).items():
        match = registry.lookup(prefix << (48 - bits))
        assert match is not None and match.bits == bits, f"{vendor_id}: pin {prefix:X}/{bits} not in the table"
        by_name = catalog.vendor_for_organization(match.organization)
        assert by_name is not None and by_name.id == vendor_id, (vendor_id, match.organization)


# -- the research corpus -------------------------------------------------------------------------------


@pytest.mark.corpus
def test_every_researched_assignment_resolves_to_its_vendor(catalog: VendorCatalog, registry: OuiRegistry) -> None:
    if not OUI_CSV.is_file():
        pytest.skip(f"shared research absent: {OUI_CSV}")
    pins = pins_of(catalog)
    with OUI_CSV.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) > 2000
    wrong, skipped, checked = [], [], 0
    for row in rows:
        assignment, org = row["assignment"], row["organization"]
        expected = ORG_TO_ID.get(org, GROUP_TO_ID[row["vendor_group"]])
        bits = len(assignment) * 4
        mac = first_mac(assignment)
        pinned = (mac >> (48 - bits), bits) in pins
        in_table = (m := registry.lookup(mac)) is not None and m.bits == bits
        if not in_table and not pinned:
            skipped.append(assignment)  # e.g. 3A:72:C2, a locally administered prefix: never looked up
            continue
        checked += 1
        got = attributed(catalog, registry, mac)
        # and the last MAC of the block, so a /28 or /36 pin covers its whole block
        got_last = attributed(catalog, registry, mac | ((1 << (48 - bits)) - 1))
        if got != expected or got_last != expected:
            wrong.append(f"{row['vendor_group']} {assignment} {org!r}: {got}/{got_last}, want {expected}")
        # the organisation string as the research spells it (IEEE's casing) must match too
        by_name = catalog.vendor_for_organization(org)
        if (by_name.id if by_name else None) != expected:
            wrong.append(f"{assignment} {org!r} by name: {by_name.id if by_name else None}, want {expected}")
    assert not wrong, "\n".join(wrong)
    assert checked >= len(rows) - 5 and len(skipped) <= 5, skipped


def test_pinned_blocks_resolve_without_any_registry(catalog: VendorCatalog) -> None:
    for (prefix, bits), vendor_id in pins_of(catalog).items():
        first = prefix << (48 - bits)
        last = first | ((1 << (48 - bits)) - 1)
        for mac in (first, last):
            match = catalog.vendor_for(mac, None)
            assert match is not None and match.vendor.id == vendor_id and match.how == "oui-pin"


# -- false friends ---------------------------------------------------------------------------------------

FALSE_FRIENDS = [
    "Shanghai Dahua Scale Factory",
    "Chameleon Technology (UK) Limited",
    "Kameleon Technologies",
    "Galleon Embedded Computing",
    "Galleon Systems",
    "Ace Axis Limited",
    "Axis Electronics",
    "Axis-Shield PoC AS",
    "AXIS CORPORATION",
    "AXIS Sp z o.o.",
    "Galaxis Technology AG",
    "EcoAxis Systems Pvt. Ltd.",
    "Hanwha NxMD (Thailand) Co., Ltd.",
    "Tsinghua Tongfang Co., LTD",
    "Tongfang Computer Co.,Ltd.",
    "Tongfang computer co.Ltd.",
    "Tongfang Shenzhen Cloudcomputing Technology Co.,Ltd",
    "SHENYANG TONGFANG MULTIMEDIA TECHNOLOGY COMPANY LIMITED",
    "Shenzhen  Tongfang Multimedia  Technology Co.,Ltd.",
    "Tsinghua Tongfang Legend Silicon Tech. Co., Ltd.",
    "Robert Bosch GmbH",
    "Bosch Automotive Products (Suzhou) Co., Ltd.",
    "Bosch Thermotechnik GmbH",
    "Robert Bosch Smart Home GmbH",
    "Bosch Car Multimedia (Wuhu) Co. Ltd.",
    "Robert Bosch Healthcare Systems, Inc.",
    "Smiths Medical",
    "Smiths US Innovation LLC",
    "Shenzhen Honor Electronic Co.,Ltd",
    "Avedis Zildjian Company",
    "Aztek, Inc.",
    "Aztech Electronics Pte Ltd",
    "Hisilicon Technologies Co., Ltd",
    "Samsung Electronics Co.,Ltd",
    "HYESUNG TECHWIN Co., Ltd",
]

# Real blocks of false friends in the shipped table: (a MAC inside, a word of its organisation)
FALSE_FRIEND_MACS = [
    ("40:2C:76:10:00:01", "dahua scale"),
    ("00:18:F7:00:00:01", "kameleon"),
    ("0C:A2:F4:00:00:01", "chameleon"),
    ("C4:56:00:00:00:01", "galleon"),
    ("D4:5A:B2:00:00:01", "galleon"),
    ("00:24:24:00:00:01", "ace axis"),
    ("00:50:C2:61:50:01", "axis electronics"),
    ("00:50:C2:6E:70:01", "ace axis"),
    ("00:50:C2:C1:70:01", "axis-shield"),
    ("70:B3:D5:98:70:01", "axis corporation"),
    ("8C:1D:55:00:00:01", "nxmd"),
    ("00:22:78:00:00:01", "tongfang"),
    ("00:26:46:00:00:01", "tongfang"),
    ("00:16:3D:00:00:01", "tongfang"),
    ("10:07:23:30:00:01", "tongfang"),
    ("40:ED:98:00:00:01", "tongfang"),
    ("00:60:34:00:00:01", "bosch"),
    ("E0:B7:63:00:00:01", "bosch automotive"),
    ("00:1A:01:00:00:01", "smiths medical"),
    ("14:AE:85:70:00:01", "honor electronic"),
    ("F4:1A:79:70:00:01", "zildjian"),
]


@pytest.mark.parametrize("organization", FALSE_FRIENDS)
def test_false_friend_names_resolve_to_no_vendor(catalog: VendorCatalog, organization: str) -> None:
    assert catalog.vendor_for_organization(organization) is None
    # and through vendor_for, in a block no vendor pins
    oui = OuiMatch(prefix=0x00DEAD, bits=24, organization=organization)
    assert catalog.vendor_for(parse_mac("00:DE:AD:00:00:01"), oui) is None


@pytest.mark.parametrize(("mac_text", "word"), FALSE_FRIEND_MACS)
def test_false_friend_blocks_in_the_table_resolve_to_no_vendor(
    catalog: VendorCatalog, registry: OuiRegistry, mac_text: str, word: str
) -> None:
    mac = parse_mac(mac_text)
    oui = registry.lookup(mac)
    assert oui is not None and word in oui.organization.lower(), oui
    assert catalog.vendor_for(mac, oui) is None


def test_shanghai_zte_is_named_but_not_zte(catalog: VendorCatalog, registry: OuiRegistry) -> None:
    mac = parse_mac("AC:64:DD:50:12:34")
    assert attributed(catalog, registry, mac) == "shanghai-zte-technologies"
    assert catalog.vendor_for_organization("SHANGHAI ZTE TECHNOLOGIES CO.,LTD").id == "shanghai-zte-technologies"  # type: ignore[union-attr]
    assert catalog.vendor_for_organization("zte corporation").id == "zte"  # type: ignore[union-attr]
    assert not catalog.get("shanghai-zte-technologies").lists  # type: ignore[union-attr]


def test_registry_name_variants_match(catalog: VendorCatalog) -> None:
    variants = {
        "Zhejiang Dahua Technologyco.,Ltd": "dahua",
        "Zhejiang Dahua Technology Co., Ltd.": "dahua",
        "hangzhou huacheng network technology co., ltd": "imou",
        "Hangzhou Huacheng Network Technology Co.,Ltd": "imou",
        "Sz Dji Technology Co.,Ltd": "dji",
        "SZ DJI TECHNOLOGY CO.,LTD": "dji",
        "Prama Hikvision India Private Limited": "hikvision",
        "Hangzhou Hikvision Digital Technology Co.,Ltd.": "hikvision",
        "Hangzhou Ezviz Software Co.,Ltd.": "ezviz",
        "Hangzhou Hikrobot Technology Co., Ltd.": "hikrobot",
        "Hytera Communications Co .,ltd": "hytera",
        "NUCTECH COMPANY LIMITED": "nuctech",
        "Huawei Device Co., Ltd.": "huawei",
        "HUAWEI TECHNOLOGIES CO.,LTD": "huawei",
        "Honor Device Co., Ltd.": "honor",
        "zte corporation": "zte",
        "SAMSUNG TECHWIN CO.,LTD": "hanwha",
        "Hanwha Vision VietNam": "hanwha",
        "AXIS COMMUNICATIONS AB": "axis",
        "Bosch Security Systems B.V.": "bosch-security",
        "Shenzheng SenseTime Technology Co. Ltd": "sensetime",
        "Dawning Information Industry Co.,Ltd": "sugon",
    }
    for organization, vendor_id in variants.items():
        vendor = catalog.vendor_for_organization(organization)
        assert vendor is not None and vendor.id == vendor_id, organization


# -- MA-M and MA-S / IAB blocks ---------------------------------------------------------------------------

SMALL_BLOCKS = [
    # (inside the block, same MA-L outside the block, vendor)
    ("C0:9B:F4:B1:02:15", "C0:9B:F4:C1:02:15", "nuctech"),
    ("C0:9B:F4:BF:FF:FF", "C0:9B:F4:AF:FF:FF", "nuctech"),
    ("70:B3:D5:CC:9A:BC", "70:B3:D5:CC:AA:BC", "rapiscan"),
    ("70:B3:D5:CC:9F:FF", "70:B3:D5:CC:8F:FF", "rapiscan"),
    ("00:50:C2:2B:20:01", "00:50:C2:2B:30:01", "smiths-detection"),
    ("00:50:C2:2B:2F:FF", "00:50:C2:2B:1F:FF", "smiths-detection"),
]


@pytest.mark.parametrize(("inside", "outside", "vendor_id"), SMALL_BLOCKS)
def test_small_blocks_stay_within_their_bounds(
    catalog: VendorCatalog, registry: OuiRegistry, inside: str, outside: str, vendor_id: str
) -> None:
    mac_in, mac_out = parse_mac(inside), parse_mac(outside)
    match = catalog.vendor_for(mac_in, registry.lookup(mac_in))
    assert match is not None and match.vendor.id == vendor_id and match.how == "oui-pin"
    assert catalog.vendor_for(mac_in, None) is not None  # the pin alone suffices
    assert attributed(catalog, registry, mac_out) != vendor_id
    assert catalog.vendor_for(mac_out, None) is None


def test_local_and_group_addresses_are_never_attributed(catalog: VendorCatalog) -> None:
    hik = parse_mac("4C:BD:8F:00:00:01")
    assert catalog.vendor_for(hik, None).vendor.id == "hikvision"  # type: ignore[union-attr]
    assert catalog.vendor_for(hik | (0x02 << 40), None) is None  # locally administered
    assert catalog.vendor_for(hik | (0x01 << 40), None) is None  # group


# -- brands, parents, classes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brand", "vendor_id", "parent"),
    [
        ("EZVIZ", "ezviz", "hikvision"),
        ("ezviz", "ezviz", "hikvision"),
        ("HiLook", "hikvision", None),
        ("hilook", "hikvision", None),
        ("HIWATCH", "hikvision", None),
        ("Imou", "imou", "dahua"),
        ("IMOU", "imou", "dahua"),
        ("Hikmicro", "hikmicro", "hikvision"),
        ("Wisenet", "hanwha", None),
        ("Honor", "honor", None),
        ("  dji ", "dji", None),
    ],
)
def test_brands_map_to_vendors_case_insensitively(
    catalog: VendorCatalog, brand: str, vendor_id: str, parent: str | None
) -> None:
    vendor = catalog.brand(brand)
    assert vendor is not None and vendor.id == vendor_id
    assert vendor.parent == parent


def test_unknown_and_ambiguous_brands_map_to_nothing(catalog: VendorCatalog) -> None:
    assert catalog.brand("Bosch") is None  # appliances and car parts far more often than cameras
    assert catalog.brand("Tongfang") is None
    assert catalog.brand("Acme") is None


def test_parent_chains(catalog: VendorCatalog) -> None:
    def chain(vendor_id: str) -> list[str]:
        return [v.id for v in catalog.parents(catalog.get(vendor_id))]  # type: ignore[arg-type]

    assert chain("ezviz") == ["hikvision"]
    assert chain("hikrobot") == ["hikvision"]
    assert chain("imou") == ["dahua"]
    assert chain("lorex") == []  # Dahua-owned 2018-2023 only: see its notes
    assert chain("honor") == []  # sold by Huawei in 2020
    for vendor in catalog.vendors:  # no cycles: every chain ends at a vendor without parent
        ids = chain(vendor.id)
        assert len(ids) == len(set(ids)) and vendor.id not in ids
        if ids:
            assert catalog.get(ids[-1]).parent is None  # type: ignore[union-attr]


def test_default_classes(catalog: VendorCatalog) -> None:
    expected = {
        "hikvision": "camera",
        "dahua": "camera",
        "nuctech": "screening-scanner",
        "smiths-detection": "screening-scanner",
        "rapiscan": "screening-scanner",
        "dji": "drone",
        "hytera": "radio",
        "huawei": "network",
        "zte": "network",
        "honor": "phone",
        "sugon": "computer",
    }
    for vendor_id, cls in expected.items():
        assert catalog.get(vendor_id).default_class == cls  # type: ignore[union-attr]


# -- list memberships ---------------------------------------------------------------------------------------


def memberships(catalog: VendorCatalog, vendor_id: str) -> set[str]:
    vendor = catalog.get(vendor_id)
    assert vendor is not None, vendor_id
    return {m.list for m in vendor.lists}


@pytest.mark.parametrize("vendor_id", ["hikvision", "dahua", "huawei", "zte", "hytera"])
def test_named_makers_are_on_ndaa_889_and_the_covered_list(catalog: VendorCatalog, vendor_id: str) -> None:
    assert {"ndaa-889", "fcc-covered"} <= memberships(catalog, vendor_id)


@pytest.mark.parametrize("vendor_id", ["ezviz", "hikrobot", "hikmicro", "imou"])
def test_subsidiaries_carry_their_parents_memberships(catalog: VendorCatalog, vendor_id: str) -> None:
    parent = catalog.get(vendor_id).parent  # type: ignore[union-attr]
    assert parent is not None
    own = memberships(catalog, vendor_id)
    assert {"ndaa-889", "fcc-covered"} <= own
    assert own <= memberships(catalog, parent)  # nothing the parent itself is not recorded on


def test_ndaa_clauses_name_the_right_paragraph(catalog: VendorCatalog) -> None:
    for vendor_id, paragraph in [("huawei", "(f)(3)(A)"), ("zte", "(f)(3)(A)"), ("hikvision", "(f)(3)(B)"),
                                 ("dahua", "(f)(3)(B)"), ("hytera", "(f)(3)(B)")]:
        ndaa = [m for m in catalog.get(vendor_id).lists if m.list == "ndaa-889"]  # type: ignore[union-attr]
        assert len(ndaa) == 1 and paragraph in ndaa[0].clause
        assert str(ndaa[0].since) == "2019-08-13"


def test_nuctech_is_on_the_entity_list(catalog: VendorCatalog) -> None:
    assert memberships(catalog, "nuctech") == {"entity-list"}


@pytest.mark.parametrize(
    "vendor_id",
    # reference makers; and the judgement calls documented in each entry's notes
    ["axis", "bosch-security", "hanwha", "smiths-detection", "rapiscan",
     "lorex", "honor", "dji", "amcrest", "shanghai-zte-technologies", "uniview", "tiandy"],
)
def test_vendors_with_no_claimed_membership(catalog: VendorCatalog, vendor_id: str) -> None:
    assert memberships(catalog, vendor_id) == set()


# -- the loader rejects broken references (checked here because the catalog relies on it) -----------------

MINIMAL = """\
version: 1
lists:
  ndaa-889: {{name: n, authority: a, source: s, as_of: 2019-08-13}}
vendors:
  - id: acme
    name: Acme
    classes: [camera]
{extra}"""


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("    parent: nobody\n", "vendors[0].parent"),
        ("    lists:\n      - {list: no-such-list, clause: c, since: 2020-01-01}\n", "vendors[0].lists[0].list"),
        ("    ouis: ['4C:BD']\n", "vendors[0].ouis"),
        ("    org_patterns: ['(']\n", "vendors[0].org_patterns"),
        ("    colour: red\n", "vendors[0].colour"),
    ],
)
def test_loader_rejects_broken_files(tmp_path: Path, extra: str, field: str) -> None:
    path = tmp_path / "vendors.yaml"
    path.write_text(MINIMAL.format(extra=extra))
    with pytest.raises(RuleFileError) as info:
        load_vendors(path)
    assert info.value.field == field and info.value.line is not None and info.value.line >= 5


def test_loader_rejects_a_repeated_vendor_id(tmp_path: Path) -> None:
    path = tmp_path / "vendors.yaml"
    path.write_text(MINIMAL.format(extra="  - id: acme\n    name: Acme 2\n    classes: [nvr]\n"))
    with pytest.raises(RuleFileError) as info:
        load_vendors(path)
    assert info.value.line == 8 and info.value.field == "vendors[1].id"
