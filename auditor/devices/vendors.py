"""The vendor catalog (rules/vendors.yaml): who makes what, under which brands, on which lists.

People write this file, so it is validated strictly (pydantic; unknown fields are errors) and
every error names file:line: field. A MAC is attributed to a vendor by an explicit OUI pin
(longest prefix first), else by matching the IEEE registry's organisation name against the
vendor's patterns, vetoed by its exclude patterns (false friends such as "Shanghai Dahua Scale
Factory"). Wireshark's short names are never used: they call Hikvision, EZVIZ and Huacheng all
"Hangzhou".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auditor.devices.oui import PREFIX_BITS, candidate_prefixes
from auditor.devices.types import DeviceClass, OuiMatch
from auditor.yamlfile import LocatedError, load_yaml, validate

_ID = r"^[a-z0-9][a-z0-9-]*$"
_PIN = re.compile(r"^([0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){2,5})(?:/(24|28|36))?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListDef(_Strict):
    """A restriction list (NDAA 889, FCC Covered List, Entity List...), with its source and date."""

    name: str
    authority: str
    source: str
    as_of: dt.date


class Membership(_Strict):
    """A vendor's entry on a list: which clause, since when."""

    list: str = Field(pattern=_ID)
    clause: str
    since: dt.date
    note: str | None = None


class Vendor(_Strict):
    """One canonical maker."""

    id: str = Field(pattern=_ID)
    name: str
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    classes: tuple[DeviceClass, ...] = Field(min_length=1)
    parent: str | None = None
    brands: tuple[str, ...] = ()
    org_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    ouis: tuple[str, ...] = ()
    lists: tuple[Membership, ...] = ()
    notes: str | None = None

    @field_validator("org_patterns", "exclude_patterns")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("ouis")
    @classmethod
    def _pins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pin in value:
            _parse_pin(pin)
        return value

    @property
    def default_class(self) -> str:
        """The class a device of this vendor gets when nothing says more."""
        return self.classes[0]


class VendorFile(_Strict):
    """The whole of rules/vendors.yaml."""

    version: Literal[1]
    lists: dict[str, ListDef]
    vendors: tuple[Vendor, ...]

    @model_validator(mode="after")
    def _references(self) -> VendorFile:
        ids = [v.id for v in self.vendors]
        seen: set[str] = set()
        for i, vendor in enumerate(self.vendors):
            if vendor.id in seen:
                raise LocatedError(("vendors", i, "id"), f"vendor id {vendor.id!r} is used twice")
            seen.add(vendor.id)
        pins: dict[tuple[int, int], str] = {}
        names: dict[str, str] = {}
        for i, vendor in enumerate(self.vendors):
            if vendor.parent is not None and vendor.parent not in ids:
                raise LocatedError(("vendors", i, "parent"), f"no vendor with id {vendor.parent!r}")
            for j, member in enumerate(vendor.lists):
                if member.list not in self.lists:
                    raise LocatedError(("vendors", i, "lists", j, "list"), f"no list with id {member.list!r}")
            # a pin, brand or name given to two vendors would silently go to the last one
            for j, pin in enumerate(vendor.ouis):
                owner = pins.setdefault(_parse_pin(pin), vendor.id)
                if owner != vendor.id:
                    raise LocatedError(("vendors", i, "ouis", j), f"{pin!r} is already pinned to {owner!r}")
            for field_name_, values in (("name", (vendor.name,)), ("brands", vendor.brands)):
                for j, value in enumerate(values):
                    owner = names.setdefault(value.casefold(), vendor.id)
                    if owner != vendor.id:
                        loc: tuple[str | int, ...] = ("vendors", i, field_name_) + (
                            (j,) if field_name_ == "brands" else ()
                        )
                        raise LocatedError(loc, f"{value!r} already names vendor {owner!r}")
        parent_of = {v.id: v.parent for v in self.vendors}
        for i, vendor in enumerate(self.vendors):
            seen, current = {vendor.id}, vendor.parent
            while current is not None:
                if current in seen:
                    raise LocatedError(("vendors", i, "parent"), f"parent chain of {vendor.id!r} loops back")
                seen.add(current)
                current = parent_of.get(current)
        return self


def _parse_pin(pin: str) -> tuple[int, int]:
    """Return (prefix, bits) of a pin like 'AA:BB:CC', 'C0:9B:F4:B0:00:00/28' or '70:B3:D5:CC:90:00/36'."""
    m = _PIN.match(pin.strip())
    if m is None:
        raise ValueError(f"{pin!r} is not an OUI (AA:BB:CC, or AA:BB:CC:DD:EE:FF/28 or /36)")
    digits = re.sub(r"[:\-]", "", m.group(1))
    bits = int(m.group(2)) if m.group(2) else 24
    if len(digits) * 4 < bits:
        raise ValueError(f"{pin!r}: /{bits} needs at least {bits // 4} hex digits")
    spare = len(digits) * 4 - bits
    value = int(digits, 16)
    if value & ((1 << spare) - 1):
        raise ValueError(f"{pin!r}: bits past /{bits} must be zero (a typo would pin another block)")
    return value >> spare, bits


@dataclass(frozen=True, slots=True)
class VendorMatch:
    """Why a MAC was attributed to a vendor."""

    vendor: Vendor
    how: Literal["oui-pin", "org-pattern"]
    detail: str
    """The pin ('C0-9B-F4-B/28') or the registry organisation name that matched."""


class VendorCatalog:
    """The loaded vendor file, ready for lookups."""

    def __init__(self, data: VendorFile, source: str) -> None:
        self.source = source
        self.lists = data.lists
        self.vendors = data.vendors
        self._by_id = {v.id: v for v in data.vendors}
        self._brands = {b.casefold(): v for v in data.vendors for b in (v.name, *v.brands)}
        self._pins: dict[int, dict[int, Vendor]] = {bits: {} for bits in PREFIX_BITS}
        for v in data.vendors:
            for pin in v.ouis:
                prefix, bits = _parse_pin(pin)
                self._pins[bits][prefix] = v
        self._patterns = [
            (
                v,
                [re.compile(p, re.IGNORECASE) for p in v.org_patterns],
                [re.compile(p, re.IGNORECASE) for p in v.exclude_patterns],
            )
            for v in data.vendors
        ]

    def get(self, vendor_id: str) -> Vendor | None:
        """Return the vendor with this id."""
        return self._by_id.get(vendor_id)

    def brand(self, name: str) -> Vendor | None:
        """Return the vendor a brand (or canonical name) belongs to, case-insensitively."""
        return self._brands.get(name.strip().casefold())

    def parents(self, vendor: Vendor) -> list[Vendor]:
        """Return the vendor's parent, grandparent... (a cycle stops the walk)."""
        chain: list[Vendor] = []
        current = vendor
        while current.parent is not None and (parent := self._by_id.get(current.parent)) is not None:
            if parent in chain or parent is vendor:
                break
            chain.append(parent)
            current = parent
        return chain

    def vendor_for(self, mac: int, oui: OuiMatch | None) -> VendorMatch | None:
        """Return the vendor a MAC is attributed to by pin or registry name; None for local/group MACs."""
        prefixes = candidate_prefixes(mac)
        if not prefixes:
            return None
        for bits, prefix in prefixes:
            vendor = self._pins[bits].get(prefix)
            if vendor is not None:
                return VendorMatch(vendor, "oui-pin", OuiMatch(prefix, bits, vendor.name).block)
        if oui is None:
            return None
        vendor = self.vendor_for_organization(oui.organization)
        return VendorMatch(vendor, "org-pattern", oui.organization) if vendor else None

    def vendor_for_organization(self, organization: str) -> Vendor | None:
        """Return the vendor whose patterns match a registry organisation name (and no exclude does)."""
        for vendor, patterns, excludes in self._patterns:
            if any(p.search(organization) for p in patterns) and not any(x.search(organization) for x in excludes):
                return vendor
        return None


def load_vendors(path: Path) -> VendorCatalog:
    """Load and check a vendor file; RuleFileError (file:line: field: problem) if anything is wrong."""
    data, lines = load_yaml(path)
    return VendorCatalog(validate(path, data, lines, VendorFile), str(path))
