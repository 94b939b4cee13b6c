"""The vendor file loader: strict schema, and every error is one line naming file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.devices.oui import parse_mac
from auditor.devices.types import OuiMatch
from auditor.devices.vendors import load_vendors
from auditor.errors import RuleFileError

GOOD = """\
version: 1
lists:
  ndaa-889:
    name: NDAA FY2019 section 889
    authority: US Congress
    source: Pub. L. 115-232
    as_of: 2019-08-13
vendors:
  - id: hikvision
    name: Hangzhou Hikvision Digital Technology Co., Ltd.
    country: CN
    classes: [camera, nvr]
    brands: [Hikvision, HiLook]
    org_patterns: ['\\bhikvision\\b']
    ouis: ["4C:BD:8F"]
    lists:
      - list: ndaa-889
        clause: "(a)(1)(B)"
        since: 2019-08-13
  - id: ezviz
    name: Hangzhou Ezviz Software Co., Ltd.
    classes: [camera]
    parent: hikvision
    brands: [EZVIZ]
    org_patterns: ['\\bezviz\\b']
  - id: dahua
    name: Zhejiang Dahua Technology Co., Ltd.
    classes: [camera]
    org_patterns: ['\\bdahua\\b']
    exclude_patterns: ['scale factory']
  - id: nuctech
    name: Nuctech Company Limited
    classes: [screening-scanner]
    ouis: ["C0:9B:F4:B0:00:00/28"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vendors.yaml"
    path.write_text(text)
    return path


def test_good_file_loads_and_matches(tmp_path: Path) -> None:
    cat = load_vendors(write(tmp_path, GOOD))
    hik = cat.get("hikvision")
    assert hik is not None and hik.default_class == "camera" and hik.lists[0].list == "ndaa-889"
    assert cat.brand("hilook") is hik and cat.brand("EZVIZ") is cat.get("ezviz")
    assert cat.parents(cat.get("ezviz")) == [hik]  # type: ignore[arg-type]
    pinned = cat.vendor_for(parse_mac("4c:bd:8f:01:02:03"), None)
    assert pinned is not None and (pinned.vendor.id, pinned.how, pinned.detail) == (
        "hikvision",
        "oui-pin",
        "4C-BD-8F/24",
    )
    by_name = cat.vendor_for(
        parse_mac("08:ed:ed:01:02:03"), OuiMatch(0x08EDED, 24, "Zhejiang Dahua Technology Co., Ltd.")
    )
    assert by_name is not None and (by_name.vendor.id, by_name.how) == ("dahua", "org-pattern")
    scale = OuiMatch(0x402C761, 28, "Shanghai Dahua Scale Factory")
    assert cat.vendor_for(parse_mac("40:2c:76:10:00:01"), scale) is None
    nuctech = cat.vendor_for(parse_mac("c0:9b:f4:b1:02:15"), None)
    assert nuctech is not None and nuctech.vendor.id == "nuctech" and nuctech.detail == "C0-9B-F4-B/28"
    assert cat.vendor_for(parse_mac("c0:9b:f4:c1:02:15"), None) is None  # same MA-L, outside the /28
    assert cat.vendor_for(parse_mac("4e:bd:8f:01:02:03"), None) is None  # locally administered


@pytest.mark.parametrize(
    ("change", "line", "field", "problem"),
    [
        (("    country: CN\n", "    country: CN\n    colour: red\n"), 12, "vendors[0].colour", "unknown field"),
        (('ouis: ["4C:BD:8F"]', 'ouis: ["4C:BD"]'), 15, "vendors[0].ouis", "is not an OUI"),
        (
            ("org_patterns: ['\\bdahua\\b']", "org_patterns: ['(dahua']"),
            29,
            "vendors[2].org_patterns",
            "not a regular expression",
        ),
        (
            ("    parent: hikvision\n", "    parent: hikvisoin\n"),
            23,
            "vendors[1].parent",
            "no vendor with id 'hikvisoin'",
        ),
        (("      - list: ndaa-889\n", "      - list: ndaa889\n"), 17, "vendors[0].lists[0].list", "no list"),
        (("  - id: ezviz\n", "  - id: hikvision\n"), 20, "vendors[1].id", "used twice"),
        (("    classes: [screening-scanner]\n", "    classes: [scanner]\n"), 33, "vendors[3].classes[0]", ""),
        (("    as_of: 2019-08-13\n", "    as_of: yesterday\n"), 7, "lists.ndaa-889.as_of", ""),
        (("version: 1\n", "version: 2\n"), 1, "version", ""),
    ],
)
def test_bad_files_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], line: int, field: str, problem: str
) -> None:
    assert change[0] in GOOD, change[0]
    path = write(tmp_path, GOOD.replace(change[0], change[1], 1))
    with pytest.raises(RuleFileError) as err:
        load_vendors(path)
    e = err.value
    assert (e.path, e.line, e.field) == (str(path), line, field)
    assert str(e).startswith(f"{path}:{line}: {field}: ")
    assert problem in str(e)
    assert "\n" not in str(e)
    assert e.exit_code == 2


def test_not_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"vendors\.yaml:3: not valid YAML"):
        load_vendors(write(tmp_path, "version: 1\nlists: [unclosed\n"))
    with pytest.raises(RuleFileError, match=r"vendors\.yaml:2: version: given twice"):
        load_vendors(write(tmp_path, "version: 1\nversion: 1\n"))


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 9)
    ]
    with pytest.raises(RuleFileError, match="too many values"):
        load_vendors(write(tmp_path, "\n".join(lines) + "\n"))


def test_python_tags_are_not_executed(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError):
        load_vendors(write(tmp_path, "version: !!python/object/apply:os.system ['echo hacked']\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="cannot read"):
        load_vendors(tmp_path / "absent.yaml")
