"""Records the geo stage produces: what one address resolves to, and which databases answered."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """Country and autonomous system of one address; a field is None when no database knows it."""

    country: str | None  # ISO 3166-1 alpha-2, as the database stores it ("GB")
    asn: int | None  # 29518, never "AS29518"
    as_org: str | None  # "Bredband2 AB"


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """One opened GeoIP database: what it is and how old it is, for every report to record."""

    path: str
    database_type: str  # metadata.database_type, verbatim ("GeoLite2-Country", "ipinfo lite.mmdb")
    layout: str  # the record layout we read it with (see geo/reader.py LAYOUTS)
    build_date: datetime.date  # metadata.build_epoch as a UTC date
    age_days: int  # days from build_date to the reader's "today"
