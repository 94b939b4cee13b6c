"""GeoReader on MaxMind's test databases (../shared/geoip-test) and on tiny DB-IP/IPinfo-like files built here."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from auditor.errors import ConfigError
from auditor.geo import MAX_AGE_DAYS, GeoInfo, GeoReader

GEOIP_TEST = Path(__file__).resolve().parents[3] / "shared" / "geoip-test"
EMPTY = GeoInfo(None, None, None)
BUILT = datetime.date(2026, 2, 4)  # build_epoch of every MaxMind test database (README)


@pytest.fixture
def geoip_test() -> Path:
    """The shared MaxMind test databases; skips the test when they are absent."""
    if not GEOIP_TEST.is_dir():
        pytest.skip(f"shared GeoIP test databases absent: {GEOIP_TEST}")
    return GEOIP_TEST


def build_mmdb(path: Path, database_type: str, networks: dict[str, dict[str, Any]]) -> Path:
    """Write a tiny IPv6 (IPv4-mapped) .mmdb with the given database_type and records."""
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def dbip(tmp_path: Path) -> tuple[Path, Path]:
    """DB-IP lite look-alikes: country (country.iso_code) and ASN (autonomous_system_*)."""
    country = build_mmdb(
        tmp_path / "dbip-country-lite.mmdb",
        "DBIP-Country-Lite",
        {
            "192.0.2.0/24": {"continent": {"code": "AS"}, "country": {"iso_code": "CN", "is_in_european_union": False}},
            "2001:db8::/32": {"country": {"iso_code": "DE", "is_in_european_union": True}},
        },
    )
    asn = build_mmdb(
        tmp_path / "dbip-asn-lite.mmdb",
        "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
        {
            "192.0.2.0/24": {
                "autonomous_system_number": MmdbU32(64500),
                "autonomous_system_organization": "TEST-CAM-CLOUD",
            },
            "203.0.113.0/24": {"autonomous_system_number": MmdbU32(4200000001), "autonomous_system_organization": "X"},
        },
    )
    return country, asn


@pytest.fixture
def ipinfo(tmp_path: Path) -> Path:
    """An IPinfo Lite look-alike: one flat file with country_code, asn "AS…" and as_name."""
    return build_mmdb(
        tmp_path / "ipinfo_lite.mmdb",
        "ipinfo lite.mmdb",
        {
            "203.0.113.0/24": {
                "country": "Japan",
                "country_code": "JP",
                "continent": "Asia",
                "continent_code": "AS",
                "asn": "AS13335",
                "as_name": "Cloudflare, Inc.",
                "as_domain": "cloudflare.com",
            },
            "2001:db8::/32": {"country": "Canada", "country_code": "CA", "asn": "not-a-number", "as_name": ""},
        },
    )


# --- MaxMind test databases: the README's table, exactly ------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.160", GeoInfo("GB", None, None)),
        ("89.160.20.129", GeoInfo("SE", 29518, "Bredband2 AB")),
        ("1.128.0.1", GeoInfo(None, 1221, "Telstra Pty Ltd")),
        ("2001:218::1", GeoInfo("JP", None, None)),
        ("8.8.8.8", EMPTY),
        ("10.0.0.1", EMPTY),
    ],
)
def test_lookup_geolite2_country_and_asn_match_readme(geoip_test: Path, ip: str, expected: GeoInfo) -> None:
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", geoip_test / "GeoLite2-ASN-Test.mmdb") as reader:
        assert reader.lookup(ip) == expected


def test_lookup_city_database_gives_country(geoip_test: Path) -> None:
    with GeoReader(geoip_test / "GeoIP2-City-Test.mmdb", None) as reader:
        assert reader.lookup("175.16.199.1") == GeoInfo("CN", None, None)


def test_lookup_isp_database_gives_asn_and_organisation(geoip_test: Path) -> None:
    with GeoReader(None, geoip_test / "GeoIP2-ISP-Test.mmdb") as reader:
        assert reader.lookup("1.128.0.1") == GeoInfo(None, 1221, "Telstra Pty Ltd")
        assert reader.databases()[0].layout == "maxmind-isp"


def test_databases_record_type_layout_and_build_date(geoip_test: Path) -> None:
    today = BUILT + datetime.timedelta(days=10)
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", geoip_test / "GeoLite2-ASN-Test.mmdb", today) as r:
        infos = r.databases()
    assert [(i.database_type, i.layout, i.build_date, i.age_days) for i in infos] == [
        ("GeoLite2-Country", "maxmind-country", BUILT, 10),
        ("GeoLite2-ASN", "maxmind-asn", BUILT, 10),
    ]
    assert infos[0].path == str(geoip_test / "GeoLite2-Country-Test.mmdb")


# --- layouts built in the test ----------------------------------------------------------------------------------


def test_lookup_dbip_lite_layouts(dbip: tuple[Path, Path]) -> None:
    with GeoReader(*dbip) as reader:
        assert reader.lookup("192.0.2.7") == GeoInfo("CN", 64500, "TEST-CAM-CLOUD")
        assert reader.lookup("2001:db8::1") == GeoInfo("DE", None, None)
        assert reader.lookup("203.0.113.9") == GeoInfo(None, 4200000001, "X")
        assert reader.lookup("198.51.100.1") == EMPTY
        assert [i.layout for i in reader.databases()] == ["dbip-country", "dbip-asn"]


def test_lookup_ipinfo_lite_one_file_for_both_roles(ipinfo: Path) -> None:
    with GeoReader(ipinfo, ipinfo) as reader:
        assert reader.lookup("203.0.113.5") == GeoInfo("JP", 13335, "Cloudflare, Inc.")
        assert reader.lookup("2001:db8::5") == GeoInfo("CA", None, None)  # bad "asn" and empty name dropped
        assert reader.lookup("192.0.2.1") == EMPTY
        assert [(i.database_type, i.layout) for i in reader.databases()] == [("ipinfo lite.mmdb", "ipinfo-lite")]


def test_lookup_ipinfo_lite_answers_only_the_role_it_was_given(ipinfo: Path) -> None:
    with GeoReader(ipinfo, None) as reader:
        assert reader.lookup("203.0.113.5") == GeoInfo("JP", None, None)
    with GeoReader(None, ipinfo) as reader:
        assert reader.lookup("203.0.113.5") == GeoInfo(None, 13335, "Cloudflare, Inc.")


# --- age warnings ---------------------------------------------------------------------------------------------


def test_warnings_over_45_days(geoip_test: Path) -> None:
    path = geoip_test / "GeoLite2-Country-Test.mmdb"
    with GeoReader(path, None, today=BUILT + datetime.timedelta(days=46)) as reader:
        assert reader.warnings() == [f"{path}: database built 2026-02-04 is 46 days old (over {MAX_AGE_DAYS})"]
    for days in (44, 45):
        with GeoReader(path, None, today=BUILT + datetime.timedelta(days=days)) as reader:
            assert reader.warnings() == []


def test_warnings_on_built_database(dbip: tuple[Path, Path]) -> None:
    with GeoReader(*dbip) as fresh:
        built = fresh.databases()[0].build_date
        assert fresh.warnings() == []
    with GeoReader(*dbip, today=built + datetime.timedelta(days=46)) as old:
        assert len(old.warnings()) == 2
    with GeoReader(*dbip, today=built + datetime.timedelta(days=44)) as young:
        assert young.warnings() == []


# --- errors: one line naming the file -------------------------------------------------------------------------


def _error(country_db: Path | None, asn_db: Path | None) -> str:
    with pytest.raises(ConfigError) as info:
        GeoReader(country_db, asn_db)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 2
    return message


def test_open_missing_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-Country.mmdb"
    assert _error(path, None) == f"{path}: not a MaxMind DB file (no such file)"


def test_open_directory_is_config_error(tmp_path: Path) -> None:
    assert _error(None, tmp_path) == f"{tmp_path}: not a MaxMind DB file (it is a directory)"


@pytest.mark.parametrize("content", [b"", b"country,asn\nGB,1\n", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 8])
def test_open_non_mmdb_file_is_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    assert _error(path, None).startswith(f"{path}: not a MaxMind DB file (")


def test_open_unknown_layout_names_database_type(geoip_test: Path) -> None:
    path = geoip_test / "GeoIP2-Domain-Test.mmdb"
    message = _error(path, None)
    assert message.startswith(f"{path}: unsupported GeoIP database type 'GeoIP2-Domain'")


def test_open_country_database_as_asn_is_config_error(geoip_test: Path) -> None:
    path = geoip_test / "GeoLite2-Country-Test.mmdb"
    message = _error(None, path)
    assert message.startswith(f"{path}: 'GeoLite2-Country' is a country database")
    assert "cannot be the asn database" in message


def test_open_asn_database_as_country_is_config_error(geoip_test: Path) -> None:
    path = geoip_test / "GeoLite2-ASN-Test.mmdb"
    assert "cannot be the country database" in _error(path, geoip_test / "GeoLite2-ASN-Test.mmdb")


def test_open_city_database_as_asn_is_config_error(geoip_test: Path) -> None:
    assert "has no ASN data" in _error(
        geoip_test / "GeoLite2-Country-Test.mmdb", geoip_test / "GeoLite2-City-Test.mmdb"
    )


# --- hostile addresses and the cache --------------------------------------------------------------------------


@pytest.mark.parametrize("ip", ["", "x", "999.1.1.1", "1.2.3.4/24", "81.2.69.160\x00", " 81.2.69.160", "::ffff:zz"])
def test_lookup_invalid_address_is_empty(geoip_test: Path, ip: str) -> None:
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", geoip_test / "GeoLite2-ASN-Test.mmdb") as reader:
        assert reader.lookup(ip) == EMPTY


def test_lookup_scoped_ipv6_and_mapped_ipv4(geoip_test: Path) -> None:
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", None) as reader:
        assert reader.lookup("fe80::1%eth0") == EMPTY
        assert reader.lookup("::ffff:81.2.69.160") == GeoInfo("GB", None, None)


def _count_reads(reader: GeoReader) -> list[str]:
    calls: list[str] = []
    read: Callable[[Any], GeoInfo] = reader._read

    def counting(address: Any) -> GeoInfo:
        calls.append(str(address))
        return read(address)

    reader._read = counting  # type: ignore[method-assign]
    return calls


def test_lookup_cache_reads_each_address_once(geoip_test: Path) -> None:
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", geoip_test / "GeoLite2-ASN-Test.mmdb") as reader:
        calls = _count_reads(reader)
        first = reader.lookup("89.160.20.129")
        assert reader.lookup("89.160.20.129") == first == GeoInfo("SE", 29518, "Bredband2 AB")
        assert reader.lookup("8.8.8.8") == reader.lookup("8.8.8.8") == EMPTY  # misses are cached too
        assert calls == ["89.160.20.129", "8.8.8.8"]


def test_lookup_cache_is_bounded_lru(geoip_test: Path) -> None:
    with GeoReader(geoip_test / "GeoLite2-Country-Test.mmdb", None, cache_size=2) as reader:
        calls = _count_reads(reader)
        for ip in ("81.2.69.160", "2001:218::1", "81.2.69.160", "8.8.8.8", "81.2.69.160", "2001:218::1"):
            reader.lookup(ip)
        # 81.2.69.160 stayed (recently used); 2001:218::1 was evicted by 8.8.8.8 and read again
        assert calls == ["81.2.69.160", "2001:218::1", "8.8.8.8", "2001:218::1"]


# one reader for every hypothesis example (function-scoped fixtures do not mix with @given)
_SHARED = (
    GeoReader(GEOIP_TEST / "GeoLite2-City-Test.mmdb", GEOIP_TEST / "GeoIP2-ISP-Test.mmdb")
    if GEOIP_TEST.is_dir()
    else None
)


@given(text=st.text(max_size=64) | st.ip_addresses().map(str))
def test_lookup_never_raises(text: str) -> None:
    if _SHARED is None:
        pytest.skip(f"shared GeoIP test databases absent: {GEOIP_TEST}")
    assert isinstance(_SHARED.lookup(text), GeoInfo)
