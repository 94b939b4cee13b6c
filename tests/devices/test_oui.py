"""The IEEE registry table: longest-prefix lookup, local and group MACs, snapshots, sources."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from auditor.devices.oui import (
    OuiEntry,
    OuiRegistry,
    is_group,
    is_locally_administered,
    mac_text,
    parse_mac,
    write_snapshot,
)
from auditor.devices.oui_sources import read_ieee_csv, read_manuf, read_source
from auditor.errors import ConfigError

MANUF = """\
# This is Wireshark 'manuf' file
# https://standards-oui.ieee.org/oui/oui.csv:
#   Last-Modified: Sun, 25 Aug 2024 08:01:19 GMT
# https://standards-oui.ieee.org/oui28/mam.csv:
#   Last-Modified: Mon, 26 Aug 2024 08:01:03 GMT
4C:BD:8F\tHangzhou\tHangzhou Hikvision Digital Technology Co.,Ltd.
C0:9B:F4\tIEEERegi\tIEEE Registration Authority
C0:9B:F4:B0:00:00/28\tNuctech\tNuctech Company Limited
70:B3:D5\tIEEERegi\tIEEE Registration Authority
70:B3:D5:00:10:00/36\tSomeOne\tSome One Ltd
00:00:13\tCamex
01:00:0C:CC:CC:CC/48\tCisco-CDP\tCisco CDP (a well-known address, not an assignment)
"""


@pytest.fixture
def registry(tmp_path: Path) -> OuiRegistry:
    path = tmp_path / "manuf"
    path.write_text(MANUF)
    listing = read_manuf(path)
    return OuiRegistry(listing.entries, listing.source, listing.date.isoformat())


def test_lookup_prefers_the_longest_prefix(registry: OuiRegistry) -> None:
    nuctech = registry.lookup(parse_mac("c0:9b:f4:b1:02:15"))
    assert nuctech is not None and (nuctech.organization, nuctech.bits, nuctech.block) == (
        "Nuctech Company Limited",
        28,
        "C0-9B-F4-B/28",
    )
    other = registry.lookup(parse_mac("c0:9b:f4:c1:02:15"))  # same MA-L, outside the /28
    assert other is not None and (other.organization, other.bits) == ("IEEE Registration Authority", 24)
    ma_s = registry.lookup(parse_mac("70:b3:d5:00:1a:bc"))
    assert ma_s is not None and (ma_s.organization, ma_s.bits, ma_s.block) == ("Some One Ltd", 36, "70-B3-D5-00-1/36")
    assert registry.lookup(parse_mac("70:b3:d5:00:2a:bc")).bits == 24  # type: ignore[union-attr]


def test_lookup_ma_l_and_short_only_names(registry: OuiRegistry) -> None:
    hik = registry.lookup(parse_mac("4C-BD-8F-11-22-33"))
    assert hik is not None and hik.organization.startswith("Hangzhou Hikvision")
    assert registry.lookup(parse_mac("00:00:13:00:00:01")).organization == "Camex"  # type: ignore[union-attr]
    assert registry.lookup(parse_mac("00:11:11:00:00:01")) is None


def test_local_and_group_addresses_are_never_looked_up(registry: OuiRegistry) -> None:
    # 4E-BD-8F has the locally administered bit on top of Hikvision's OUI: it names nobody
    local = parse_mac("4e:bd:8f:11:22:33")
    assert is_locally_administered(local) and registry.lookup(local) is None
    group = parse_mac("4d:bd:8f:11:22:33")
    assert is_group(group) and registry.lookup(group) is None
    assert is_group(parse_mac("ff:ff:ff:ff:ff:ff"))
    assert not is_group(parse_mac("4c:bd:8f:11:22:33")) and not is_locally_administered(parse_mac("4c:bd:8f:11:22:33"))


def test_manuf_records_the_newest_last_modified_and_skips_non_assignments(registry: OuiRegistry) -> None:
    assert registry.date == "2024-08-26"
    assert (registry.count(24), registry.count(28), registry.count(36)) == (4, 1, 1)


@pytest.mark.parametrize("text", ["4c:bd:8f:11:22:33", "4C-BD-8F-11-22-33", "4cbd.8f11.2233", "4cbd8f112233"])
def test_parse_mac_accepts_common_forms(text: str) -> None:
    assert parse_mac(text) == 0x4CBD8F112233
    assert mac_text(parse_mac(text)) == "4C-BD-8F-11-22-33"


@pytest.mark.parametrize("text", ["4c:bd:8f:11:22", "zz:bd:8f:11:22:33", ""])
def test_parse_mac_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        parse_mac(text)


def test_ieee_csvs_with_quoted_commas_and_all_block_sizes(tmp_path: Path) -> None:
    header = "Registry,Assignment,Organization Name,Organization Address\n"
    (tmp_path / "oui.csv").write_text(
        header + 'MA-L,4CBD8F,"Hangzhou Hikvision Digital Technology Co.,Ltd.","No.555, Hangzhou"\n'
    )
    (tmp_path / "mam.csv").write_text(header + "MA-M,C09BF4B,Nuctech Company Limited,Beijing\n")
    (tmp_path / "oui36.csv").write_text(header + "MA-S,70B3D5001,Some One Ltd,Somewhere\n")
    (tmp_path / "iab.csv").write_text(header + "IAB,0050C2ABC,An IAB Holder,Somewhere\n")
    listing = read_source(tmp_path)
    reg = OuiRegistry(listing.entries, listing.source, listing.date.isoformat())
    assert reg.lookup(parse_mac("4c:bd:8f:00:00:01")).organization == "Hangzhou Hikvision Digital Technology Co.,Ltd."  # type: ignore[union-attr]
    assert reg.lookup(parse_mac("c0:9b:f4:b0:00:01")).bits == 28  # type: ignore[union-attr]
    assert reg.lookup(parse_mac("70:b3:d5:00:10:01")).bits == 36  # type: ignore[union-attr]
    assert reg.lookup(parse_mac("00:50:c2:ab:c0:01")).organization == "An IAB Holder"  # type: ignore[union-attr]


def test_bad_csv_assignment_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mam.csv"
    path.write_text("Registry,Assignment,Organization Name,Organization Address\nMA-M,XYZ,Bad,Nowhere\n")
    with pytest.raises(ConfigError, match=r"mam\.csv:2: Assignment: 'XYZ'"):
        read_ieee_csv(path)


def test_newest_source_in_a_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "manuf").write_text(MANUF)  # data of 2024-08-26
    csv_path = tmp_path / "oui.csv"
    csv_path.write_text("Registry,Assignment,Organization Name,Organization Address\nMA-L,4CBD8F,Newer Name,X\n")
    os.utime(csv_path, (1_800_000_000, 1_800_000_000))  # 2027: newer than the manuf data
    assert read_source(tmp_path).source.startswith("ieee-csv:")
    os.utime(csv_path, (1_600_000_000, 1_600_000_000))  # 2020: older
    assert read_source(tmp_path).source.startswith("wireshark-manuf:")


def test_not_a_source_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match="not a Wireshark manuf file"):
        read_source(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no IEEE CSV listing"):
        read_source(empty)


def test_snapshot_round_trip_is_deterministic(tmp_path: Path, registry: OuiRegistry) -> None:
    entries = [OuiEntry(0x4CBD8F, 24, "Hikvision"), OuiEntry(0xC09BF4B, 28, "Nuctech"), OuiEntry(0x70B3D5001, 36, "X")]
    a, b = tmp_path / "a.tsv.gz", tmp_path / "b.tsv.gz"
    assert write_snapshot(entries, "test", "2026-01-01", a) == 3
    write_snapshot(reversed(entries), "test", "2026-01-01", b)
    assert a.read_bytes() == b.read_bytes()
    loaded = OuiRegistry.load(a)
    assert (loaded.source, loaded.date, len(loaded)) == ("test", "2026-01-01", 3)
    assert loaded.lookup(parse_mac("c0:9b:f4:b0:00:00")).organization == "Nuctech"  # type: ignore[union-attr]
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_snapshot_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "oui.tsv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="cannot read OUI table"):
        OuiRegistry.load(bad)
    worse = tmp_path / "plain.tsv"
    worse.write_text("# source: x\nnot a line\n")
    with pytest.raises(ConfigError, match=r"plain\.tsv:2"):
        OuiRegistry.load(worse)


def test_shipped_snapshot_is_dated_and_complete() -> None:
    reg = OuiRegistry.default()
    assert reg.date >= "2024-08-25"
    assert reg.count(24) > 30_000 and reg.count(28) > 4_000 and reg.count(36) > 9_000
    assert "Hikvision" in reg.lookup(parse_mac("4c:bd:8f:00:00:01")).organization  # type: ignore[union-attr]
    assert "Nuctech" in reg.lookup(parse_mac("c0:9b:f4:b1:02:15")).organization  # type: ignore[union-attr]


def test_state_directory_table_takes_precedence(tmp_path: Path) -> None:
    write_snapshot([OuiEntry(0x4CBD8F, 24, "Local Override")], "test", "2030-01-01", tmp_path / "oui.tsv.gz")
    reg = OuiRegistry.default(tmp_path)
    assert reg.date == "2030-01-01"
    assert reg.lookup(parse_mac("4c:bd:8f:00:00:01")).organization == "Local Override"  # type: ignore[union-attr]
    assert OuiRegistry.default(tmp_path / "nothing-here").count(24) > 30_000


def test_snapshot_is_gzip_text_with_a_header() -> None:
    from importlib import resources

    data = (resources.files("auditor.devices.data") / "oui.tsv.gz").read_bytes()
    head = gzip.decompress(data).decode().splitlines()[:3]
    assert head[0].startswith("# source: ") and head[1].startswith("# date: ")
