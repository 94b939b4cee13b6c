"""GeoIP: country and ASN of an address from MaxMind DB (.mmdb) files the user supplies.

Nothing is downloaded here, ever. The user points us at a country database and/or an ASN database;
we open each with ``maxminddb`` (MODE_MMAP: the pure-Python reader over mmap; see _open), detect
its layout from ``metadata.database_type`` and read the fields that layout uses:

==================  =================================================  ===================================
layout              database_type (metadata)                           fields we read
==================  =================================================  ===================================
maxmind-country     GeoLite2-/GeoIP2-Country, -City (and regional      country.iso_code, else
                    GeoIP2-City-*, GeoIP2-Precision-City)              registered_country.iso_code
maxmind-asn         GeoLite2-ASN                                       autonomous_system_number,
                                                                       autonomous_system_organization
maxmind-isp         GeoIP2-ISP, GeoIP2-Precision-ISP                   as maxmind-asn; organization, then
                                                                       isp, when the AS name is missing
dbip-country        DBIP-Country-Lite, DBIP-City-Lite, DBIP-Country,   as maxmind-country
                    DBIP-Location (compat=City)
dbip-asn            DBIP-ASN-Lite (compat=GeoLite2-ASN)                as maxmind-asn
ipinfo-lite         "ipinfo lite.mmdb" (any type starting "ipinfo"     country_code (else a 2-letter
                    and naming lite or country_asn)                    country), asn "AS13335", as_name
==================  =================================================  ===================================

Sources for the non-MaxMind layouts:
- DB-IP database_type strings: oschwald/geoip2-golang reader.go ``getDBType`` (commit 347ca458) lists
  "DBIP-Country-Lite", "DBIP-City-Lite", "DBIP-Country", "DBIP-Location (compat=City)" beside the
  GeoIP2 City/Country types and "DBIP-ASN-Lite (compat=GeoLite2-ASN)" beside "GeoLite2-ASN".
- DB-IP country lite fields: db-ip.com/db/format/ip-to-country-lite/mmdb.html ("country.iso_code
  utf8_string  ISO 3166-1 alpha-2 country code"; "we try to stay as close as possible to [MaxMind's]
  expected schema"). DB-IP ASN lite fields: sapics/ip-location-db dbip-asn-mmdb/README.md ("MMDB Format:
  autonomous_system_number, autonomous_system_organization").
- IPinfo Lite fields: IPinfo's Lite schema (as quoted in PascalMinder/geoblock#93 and the api-evangelist
  ipinfo-lite-response-schema.json): country_code "CA", country "Canada" (a *name*), asn "AS174" (a
  string), as_name, as_domain, continent_code. Its database_type "ipinfo lite.mmdb" is taken from
  third-party code that reads real files; we accept any "ipinfo ... lite" type. The older IPinfo
  "country_asn" file (flask-geo#1) keeps the ISO code in ``country``, so a 2-letter ``country`` is used
  when ``country_code`` is absent.

Roles. Each file answers only for the role it was given: ``country_db`` supplies GeoInfo.country and
``asn_db`` supplies GeoInfo.asn/as_org. A City database has no ASN, so it cannot be ``asn_db``; an ASN
or ISP database cannot be ``country_db``. IPinfo Lite holds both: pass the same file as both
``country_db`` and ``asn_db`` to get both from it (it is opened and reported once, and each address is
read from it once); passed in one role only, it answers only that role.

Addresses are wire data, so ``lookup`` never raises: an unparsable address gives an empty GeoInfo.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from auditor.errors import ConfigError
from auditor.geo.types import DatabaseInfo, GeoInfo

MAX_AGE_DAYS = 45  # a database built more than this many days before "today" gets a warning
EMPTY = GeoInfo(country=None, asn=None, as_org=None)
ASN_MAX = 2**32 - 1  # RFC 6793: AS numbers are 32 bits
NAME_MAX_CHARS = 256  # cap on organisation names copied out of a user-supplied file

Role = Literal["country", "asn"]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# layout -> the roles it can fill
LAYOUTS: dict[str, frozenset[Role]] = {
    "maxmind-country": frozenset({"country"}),
    "maxmind-asn": frozenset({"asn"}),
    "maxmind-isp": frozenset({"asn"}),
    "dbip-country": frozenset({"country"}),
    "dbip-asn": frozenset({"asn"}),
    "ipinfo-lite": frozenset({"country", "asn"}),
}

_MAXMIND_COUNTRY = re.compile(r"(?:GeoLite2|GeoIP2)-(?:Country|City)|GeoIP2-City-[A-Za-z-]+|GeoIP2-Precision-City")
_MAXMIND_ASN = {"GeoLite2-ASN"}
_MAXMIND_ISP = {"GeoIP2-ISP", "GeoIP2-Precision-ISP"}
_DBIP_COUNTRY = {"dbip-country-lite", "dbip-city-lite", "dbip-country", "dbip-location"}
_DBIP_ASN = {"dbip-asn-lite"}
_COMPAT_SUFFIX = re.compile(r"\s*\(compat=[^)]*\)\s*$")  # DB-IP: "DBIP-ASN-Lite (compat=GeoLite2-ASN)"
_ROLE_NAMES: dict[Role, str] = {"country": "country", "asn": "ASN"}


def detect_layout(database_type: str) -> str | None:
    """Return the layout name for a metadata database_type, or None when we cannot read that type."""
    if _MAXMIND_COUNTRY.fullmatch(database_type):
        return "maxmind-country"
    if database_type in _MAXMIND_ASN:
        return "maxmind-asn"
    if database_type in _MAXMIND_ISP:
        return "maxmind-isp"
    dbip = _COMPAT_SUFFIX.sub("", database_type).casefold()
    if dbip in _DBIP_COUNTRY:
        return "dbip-country"
    if dbip in _DBIP_ASN:
        return "dbip-asn"
    folded = database_type.casefold()
    if folded.startswith("ipinfo") and ("lite" in folded or "country_asn" in folded):
        return "ipinfo-lite"
    return None


class _Database:
    """One opened .mmdb file with its detected layout."""

    __slots__ = ("info", "reader")

    def __init__(self, reader: maxminddb.Reader, info: DatabaseInfo) -> None:
        self.reader = reader
        self.info = info

    def record(self, address: IpAddress) -> Mapping[str, object] | None:
        """Return the record for an address; None when there is none or it is not a map."""
        try:
            found = self.reader.get(address)
        except (ValueError, TypeError, LookupError, RuntimeError, SystemError):
            # ValueError: IPv6 in an IPv4-only file. The rest (InvalidDatabaseError is a RuntimeError,
            # UnicodeDecodeError a ValueError, SystemError from the C extension): a corrupt data section
            return None
        return found if isinstance(found, dict) else None


def _fail(path: Path, reason: str) -> ConfigError:
    return ConfigError(f"{path}: not a MaxMind DB file ({reason})")


def _open(path: Path, today: datetime.date) -> _Database:
    """Open one user-supplied database; ConfigError (one line naming the file) when we cannot use it."""
    if path.is_dir():
        raise _fail(path, "it is a directory")
    try:
        # Not MODE_AUTO: maxminddb 3.2's C extension segfaulted on 2 of 600 corrupted copies of a test
        # database (a crash no except can catch), where the pure-Python reader raises. A database is a
        # file the user supplies, so it is hostile input too; the per-address cache pays for the speed.
        reader = maxminddb.open_database(path, maxminddb.MODE_MMAP)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read GeoIP database (permission denied)") from None
    except OSError as exc:
        raise _fail(path, exc.strerror or type(exc).__name__) from exc
    except (InvalidDatabaseError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _fail(path, "no valid metadata section") from exc
    try:
        try:
            metadata = reader.metadata()  # the C extension decodes it here, lazily
        except (InvalidDatabaseError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise _fail(path, "no valid metadata section") from exc
        database_type = metadata.database_type
        if not isinstance(database_type, str):
            raise _fail(path, "database_type is not a string")
        try:
            built = datetime.datetime.fromtimestamp(metadata.build_epoch, datetime.UTC).date()
        except (OverflowError, OSError, ValueError, TypeError) as exc:
            raise _fail(path, f"bad build_epoch {metadata.build_epoch!r}") from exc
        layout = detect_layout(database_type)
        if layout is None:
            raise ConfigError(
                f"{path}: unsupported GeoIP database type {database_type!r} (expected MaxMind GeoLite2/GeoIP2 "
                "Country, City, ASN or ISP, DB-IP lite, or IPinfo lite)"
            )
    except ConfigError:
        reader.close()
        raise
    info = DatabaseInfo(
        path=str(path), database_type=database_type, layout=layout, build_date=built, age_days=(today - built).days
    )
    return _Database(reader, info)


def _require(db: _Database, role: Role) -> None:
    """Raise ConfigError when a database cannot fill the role it was given."""
    if role in LAYOUTS[db.info.layout]:
        return
    has = " and ".join(_ROLE_NAMES[r] for r in sorted(LAYOUTS[db.info.layout]))
    raise ConfigError(
        f"{db.info.path}: {db.info.database_type!r} is a {has} database and has no {_ROLE_NAMES[role]} data; "
        f"it cannot be the {role} database"
    )


def _iso_code(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("iso_code")
    return value if isinstance(value, str) and 0 < len(value) <= 3 else None


def _read_country(layout: str, record: Mapping[str, object]) -> str | None:
    if layout == "ipinfo-lite":
        code = record.get("country_code")
        if isinstance(code, str) and 0 < len(code) <= 3:
            return code
        legacy = record.get("country")  # IPinfo "country_asn" files: the ISO code itself
        return legacy if isinstance(legacy, str) and len(legacy) == 2 else None
    # MaxMind and DB-IP: the country where the address is used, else where its block is registered
    return _iso_code(record.get("country")) or _iso_code(record.get("registered_country"))


def _asn_number(value: object) -> int | None:
    if isinstance(value, str):  # IPinfo: "AS13335"
        digits = value[2:] if value[:2].upper() == "AS" else value
        value = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 10 else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= ASN_MAX:
        return value
    return None


def _name(value: object) -> str | None:
    return value[:NAME_MAX_CHARS] if isinstance(value, str) and value else None


def _read_asn(layout: str, record: Mapping[str, object]) -> tuple[int | None, str | None]:
    if layout == "ipinfo-lite":
        return _asn_number(record.get("asn")), _name(record.get("as_name"))
    org = _name(record.get("autonomous_system_organization"))
    if org is None and layout == "maxmind-isp":
        org = _name(record.get("organization")) or _name(record.get("isp"))
    return _asn_number(record.get("autonomous_system_number")), org


class GeoReader:
    """Country and ASN lookups over user-supplied .mmdb files, with a bounded per-address LRU cache."""

    def __init__(
        self,
        country_db: Path | None,
        asn_db: Path | None,
        today: datetime.date | None = None,
        cache_size: int = 65_536,
    ) -> None:
        if cache_size < 0:
            raise ConfigError(f"geoip cache size must be >= 0, not {cache_size}")
        self._today = today or datetime.datetime.now(datetime.UTC).date()
        self._cache_size = cache_size
        self._cache: OrderedDict[str, GeoInfo] = OrderedDict()
        self._country: _Database | None = None
        self._asn: _Database | None = None
        try:
            if country_db is not None:
                self._country = _open(Path(country_db), self._today)
                _require(self._country, "country")
            if asn_db is not None:
                shared = self._country
                if shared is None or Path(asn_db).resolve() != Path(shared.info.path).resolve():
                    shared = _open(Path(asn_db), self._today)
                self._asn = shared
                _require(shared, "asn")
        except BaseException:
            self.close()
            raise

    def lookup(self, ip: str) -> GeoInfo:
        """Return the country and AS of an address; fields are None where no database has them (never raises)."""
        cached = self._cache.get(ip)
        if cached is not None:
            self._cache.move_to_end(ip)
            return cached
        try:
            address = ipaddress.ip_address(ip)
        except (ValueError, TypeError):
            return EMPTY
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(address.packed)  # "fe80::1%eth0": the zone is not in any database
        info = self._read(address)
        if self._cache_size:
            self._cache[ip] = info
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return info

    def _read(self, address: IpAddress) -> GeoInfo:
        """Read the databases for one parsed address (the uncached path of lookup)."""
        country = asn = org = None
        country_record = self._country.record(address) if self._country is not None else None
        if self._country is not None and country_record is not None:
            country = _read_country(self._country.info.layout, country_record)
        if self._asn is not None:
            asn_record = country_record if self._asn is self._country else self._asn.record(address)
            if asn_record is not None:
                asn, org = _read_asn(self._asn.info.layout, asn_record)
        if country is None and asn is None and org is None:
            return EMPTY
        return GeoInfo(country=country, asn=asn, as_org=org)

    def databases(self) -> list[DatabaseInfo]:
        """Return the type, layout and build date of each opened database (one entry per file)."""
        opened = [self._country, self._asn if self._asn is not self._country else None]
        return [db.info for db in opened if db is not None]

    def warnings(self) -> list[str]:
        """Return one line per database built more than MAX_AGE_DAYS before today; empty when all are fresh."""
        return [
            f"{info.path}: database built {info.build_date.isoformat()} is {info.age_days} days old "
            f"(over {MAX_AGE_DAYS})"
            for info in self.databases()
            if info.age_days > MAX_AGE_DAYS
        ]

    def close(self) -> None:
        """Close the database files; lookups after close are an error of the caller."""
        for db in {id(d): d for d in (self._country, self._asn) if d is not None}.values():
            db.reader.close()
        self._cache.clear()

    def __enter__(self) -> GeoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
