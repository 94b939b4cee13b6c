"""Protocol signatures (rules/fingerprints/*.yaml): what a protocol fact implies about its sender.

A signature names a protocol and a field of that protocol's records (protocols/*: `facts()`), a
pattern, and what a match implies: the maker (a vendor id of rules/vendors.yaml), the brand it is
sold as, the device class, and model and firmware taken from the pattern's named groups
`(?P<model>...)` / `(?P<firmware>...)`. Its weight says how much one match is worth on its own
(0 < weight < 1). Adding a signature is a data change: no code knows vendor strings.

Patterns: `exact` (case-insensitive equality), `regex` (Python, searched case-insensitively in
the capped value), or `domain` (the name or any name under it: `domain: hik-connect.com` matches
`litedev.hik-connect.com`, not `nothik-connect.com`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auditor.devices.types import DeviceClass
from auditor.errors import ConfigError
from auditor.yamlfile import line_of, load_yaml, located, validate

_ID = r"^[a-z0-9][a-z0-9-]*$"
SIGNATURE_SUFFIXES = (".yaml", ".yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Implies(_Strict):
    """What a match says about the sender."""

    maker: str | None = Field(default=None, pattern=_ID)
    """Vendor id (rules/vendors.yaml) of who built it."""
    brand: str | None = None
    """The name it is sold under, when the signature shows it (an OEM label)."""
    device_class: DeviceClass | None = Field(default=None, alias="class")
    oem: bool = False
    """The matched value names an OEM label rather than the maker (e.g. DHIP Vendor, SADP DetailOEMCode):
    the value itself becomes the brand."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Signature(_Strict):
    """One pattern on one protocol field."""

    id: str = Field(pattern=_ID)
    protocol: str = Field(pattern=_ID)
    field: str = Field(pattern=r"^[a-z0-9_]+$")
    exact: str | None = None
    regex: str | None = None
    domain: str | None = None
    implies: Implies
    weight: float = Field(gt=0, lt=1)
    decisive: bool = True
    """False for clues a device's user can cause as well as the device: a laptop that opens the
    Hik-Connect portal calls hik-connect.com too. Such a signature strengthens a maker that the OUI
    or a decisive signature already names, but never names one alone."""
    source: str | None = None
    """Where the fact comes from (fingerprints.md section, a capture)."""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(?:[a-z0-9-]+\.)+[a-z0-9-]+", value):
            raise ValueError(f"{value!r} is not a domain name (lower case, e.g. hik-connect.com)")
        return value

    @model_validator(mode="after")
    def _one_pattern(self) -> Signature:
        given = [name for name in ("exact", "regex", "domain") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of exact, regex, domain")
        if self.implies.maker is None and self.implies.brand is None and self.implies.device_class is None \
                and not self.implies.oem:
            raise ValueError("implies: give at least one of maker, brand, class, oem")
        return self


class SignatureFile(_Strict):
    """One file of rules/fingerprints/."""

    version: int = Field(ge=1, le=1)
    signatures: tuple[Signature, ...] = Field(min_length=1)


MAX_REMEMBERED_FACTS = 100_000
"""Facts whose signature matches are remembered (a value is at most a few hundred characters)."""


@dataclass(frozen=True, slots=True)
class Match:
    """A signature that matched a fact."""

    signature: Signature
    model: str | None
    firmware: str | None


class _Compiled:
    __slots__ = ("domain", "exact", "regex", "signature")

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.exact = signature.exact.casefold() if signature.exact is not None else None
        self.regex = re.compile(signature.regex, re.IGNORECASE) if signature.regex is not None else None
        self.domain = signature.domain

    def match(self, value: str) -> Match | None:
        if self.exact is not None:
            return Match(self.signature, None, None) if value.casefold() == self.exact else None
        if self.domain is not None:
            name = value.casefold().rstrip(".")
            ok = name == self.domain or name.endswith("." + self.domain)
            return Match(self.signature, None, None) if ok else None
        assert self.regex is not None
        m = self.regex.search(value)
        if m is None:
            return None
        groups = m.groupdict()
        return Match(self.signature, groups.get("model") or None, groups.get("firmware") or None)


class SignatureSet:
    """Loaded signatures, indexed by (protocol, field)."""

    def __init__(self, signatures: list[Signature], sources: list[str]) -> None:
        self.sources = sources
        self.signatures = signatures
        self._by_field: dict[tuple[str, str], list[_Compiled]] = {}
        self._memo: dict[tuple[str, str, str], tuple[Match, ...]] = {}
        for s in signatures:
            self._by_field.setdefault((s.protocol, s.field), []).append(_Compiled(s))

    def __len__(self) -> int:
        return len(self.signatures)

    def match(self, protocol: str, field: str, value: str) -> tuple[Match, ...]:
        """Return every signature of this protocol field that matches `value` (remembered: the same
        facts recur across devices, e.g. cloud names, SSDP servers, DHCP parameter lists)."""
        compiled = self._by_field.get((protocol, field))
        if not compiled:
            return ()
        key = (protocol, field, value)
        known = self._memo.get(key)
        if known is None:
            known = tuple(m for c in compiled if (m := c.match(value)) is not None)
            if len(self._memo) >= MAX_REMEMBERED_FACTS:
                self._memo.clear()  # many distinct values: start over rather than grow
            self._memo[key] = known
        return known


def load_signatures(path: Path, known_vendors: frozenset[str] | None) -> SignatureSet:
    """Load a signature file or a folder of them (*.yaml, name order); RuleFileError names file:line: field."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if not p.name.startswith(".") and p.suffix.lower() in SIGNATURE_SUFFIXES and p.is_file())
    elif path.exists():
        files = [path]
    else:
        raise ConfigError(f"{path}: no such signature file or folder")
    signatures: list[Signature] = []
    seen: dict[str, str] = {}
    for file in files:
        data, lines = load_yaml(file)
        parsed = validate(file, data, lines, SignatureFile)
        for i, s in enumerate(parsed.signatures):
            if s.id in seen:
                raise located(file, lines, ("signatures", i, "id"), f"signature id {s.id!r} is already defined at "
                              f"{seen[s.id]}")
            seen[s.id] = f"{file}:{line_of(lines, ('signatures', i))}"
            if s.implies.maker is not None and known_vendors is not None and s.implies.maker not in known_vendors:
                raise located(file, lines, ("signatures", i, "implies", "maker"),
                              f"no vendor with id {s.implies.maker!r} in the vendor catalog")
            signatures.append(s)
    return SignatureSet(signatures, [str(f) for f in files])

