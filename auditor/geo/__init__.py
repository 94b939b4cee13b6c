"""IP -> country and ASN from MaxMind DB files the user supplies; nothing is ever downloaded."""

from auditor.geo.reader import MAX_AGE_DAYS, GeoReader
from auditor.geo.types import DatabaseInfo, GeoInfo

__all__ = ["MAX_AGE_DAYS", "DatabaseInfo", "GeoInfo", "GeoReader"]
