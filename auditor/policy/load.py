"""Load rule files: a file or a folder of them, validated, cross-checked, in evaluation order.

Errors name file:line: field (RuleFileError, exit code 2), and come before any packet is read,
so a bad rule file never costs a run or overwrites earlier output.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.devices.types import AnalystPin
from auditor.errors import ConfigError, RuleFileError
from auditor.policy.schema import Destination, DeviceSelector, Policy, RuleFile, Waiver, mac_value
from auditor.yamlfile import Loc, field_name, line_of, load_yaml, located, validate

RULE_SUFFIXES = (".yaml", ".yml", ".json")
"""Rule files are YAML; a JSON file is a MUD file (RFC 8520), converted as it is read."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The names rule files may refer to (from the vendor catalog); None when there is no catalog."""

    vendors: frozenset[str] | None
    lists: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A policy with where it came from."""

    policy: Policy
    ruleset: str
    reference: str
    """file:line of the policy's entry."""


@dataclass(frozen=True, slots=True)
class LoadedWaiver:
    """A waiver with where it came from."""

    waiver: Waiver
    ruleset: str
    reference: str


@dataclass(frozen=True, slots=True)
class RuleSource:
    """A rule file that was loaded, with its hash (runs record which rules judged them)."""

    path: str
    sha256: str
    ruleset: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every policy of the loaded files, in evaluation order: the paths as given (a folder's files by
    name), then the policies in file order; and the analysts' device pins."""

    policies: tuple[LoadedPolicy, ...]
    sources: tuple[RuleSource, ...]
    pins: tuple[AnalystPin, ...] = ()
    sets: dict[str, tuple[Destination, ...]] | None = None
    """Named destination sets of every file, by name."""
    waivers: tuple[LoadedWaiver, ...] = ()
    warnings: tuple[str, ...] = ()
    """Things a person should know that do not stop the run: expired pins and waivers."""

    def set_entries(self, name: str) -> tuple[Destination, ...]:
        """Return the entries of the named set (load_rules checked that it exists)."""
        return (self.sets or {})[name]


def rule_files(path: Path) -> list[Path]:
    """Return the rule files at `path`: the file itself, or a folder's *.yaml / *.yml in name order.

    A folder is not searched recursively; hidden files (.name) are left out; a link that leads
    nowhere is an error rather than a file silently skipped.
    """
    if path.is_dir():
        try:
            entries = sorted(path.iterdir())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot list the folder: {exc.strerror or exc}") from exc
        files = []
        for p in entries:
            if p.name.startswith(".") or p.suffix.lower() not in RULE_SUFFIXES:
                continue
            if not p.is_file():
                if p.is_dir():
                    continue
                raise ConfigError(f"{p}: not a readable rule file (a broken or looping link?)")
            files.append(p)
        if not files:
            raise ConfigError(f"{path}: no rule files (*.yaml, *.yml, MUD *.json) in this folder")
        return files
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path}: a broken or looping link")
    if not path.exists():
        raise ConfigError(f"{path}: no such rule file or folder")
    return [path]


def load_rules(paths: Iterable[Path], vocabulary: Vocabulary, today: datetime.date | None = None) -> RuleSet:
    """Load and check the rule files at `paths` (files or folders, in the order given; a folder's
    files in name order); RuleFileError on the first problem. A file given twice is read once.

    `today` (default: the UTC date) decides which pins have expired: those are left out, with a
    warning. Waivers are kept whatever their date, since they are judged by each flow's time.
    """
    today = today or datetime.datetime.now(datetime.UTC).date()
    policies: list[LoadedPolicy] = []
    sources: list[RuleSource] = []
    pins: dict[int, AnalystPin] = {}
    pinned_where: dict[int, str] = {}
    sets: dict[str, tuple[Destination, ...]] = {}
    set_where: dict[str, str] = {}
    uses: list[tuple[Path, dict[Loc, int], Loc, str]] = []  # set references, checked once all files are read
    waivers: list[LoadedWaiver] = []
    waiver_where: dict[str, str] = {}
    warnings: list[str] = []
    seen: dict[str, str] = {}  # policy id -> where it was first defined
    read: set[Path] = set()
    for file in (f for p in paths for f in rule_files(p)):
        if file.resolve() in read:
            continue
        read.add(file.resolve())
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc
        data, lines = _read_rule_data(file)
        parsed = validate(file, data, lines, RuleFile)
        ruleset = parsed.ruleset or file.stem
        for name, entries in parsed.sets.items():
            if name in sets:
                raise located(file, lines, ("sets", name), f"set {name!r} is already defined at {set_where[name]}")
            sets[name] = entries
            set_where[name] = _where(file, lines, ("sets", name))
        for i, policy in enumerate(parsed.policies):
            loc: Loc = ("policies", i)
            _check_names(file, lines, loc, policy.devices, vocabulary)
            where = _where(file, lines, loc)
            if policy.id in seen:
                raise located(file, lines, (*loc, "id"),
                              f"policy id {policy.id!r} is already defined at {seen[policy.id]}")
            seen[policy.id] = where
            policies.append(LoadedPolicy(policy, ruleset, where))
            for kind in ("deny", "allow"):
                uses.extend((file, lines, (*loc, kind, j, "set"), e.set)
                            for j, e in enumerate(getattr(policy, kind)) if e.set is not None)
        for i, waiver in enumerate(parsed.waivers):
            loc = ("waivers", i)
            _check_names(file, lines, loc, waiver.devices, vocabulary)
            where = _where(file, lines, loc)
            if waiver.id in waiver_where:
                raise located(file, lines, (*loc, "id"),
                              f"waiver id {waiver.id!r} is already defined at {waiver_where[waiver.id]}")
            waiver_where[waiver.id] = where
            waivers.append(LoadedWaiver(waiver, ruleset, where))
            uses.extend((file, lines, (*loc, "destinations", j, "set"), e.set)
                        for j, e in enumerate(waiver.destinations) if e.set is not None)
            if waiver.expires < today:
                warnings.append(f"{where}: waiver {waiver.id!r} expired on {waiver.expires.isoformat()}: flows after "
                                "that day are judged as if it were not there")
        for i, pin in enumerate(parsed.pins):
            where = _where(file, lines, ("pins", i))
            mac = mac_value(pin.mac)
            if mac in pinned_where:
                raise located(file, lines, ("pins", i, "mac"),
                              f"{pin.mac} is already pinned at {pinned_where[mac]}")
            pinned_where[mac] = where
            if pin.maker is not None and vocabulary.vendors is not None and pin.maker not in vocabulary.vendors:
                raise located(file, lines, ("pins", i, "maker"),
                              f"no vendor with id {pin.maker!r} in the vendor catalog")
            if pin.expires is not None and pin.expires < today:
                warnings.append(f"{where}: the pin of {pin.mac} expired on {pin.expires.isoformat()}: the wire and "
                                "the OUI decide that device again")
                continue
            pins[mac] = AnalystPin(mac, pin.maker, pin.device_class, pin.brand, pin.model, pin.firmware, pin.note,
                                   where)
        sources.append(RuleSource(str(file), hashlib.sha256(raw).hexdigest(), ruleset))
    for file, lines, loc, name in uses:
        if name not in sets:
            known = ", ".join(sorted(sets)) or "none is defined"
            raise located(file, lines, loc, f"no destination set named {name!r} ({known})")
    return RuleSet(tuple(policies), tuple(sources), tuple(pins.values()), sets, tuple(waivers), tuple(warnings))


def _where(file: Path, lines: dict[Loc, int], loc: Loc) -> str:
    """Return 'file:line' of `loc`, or 'file: field' where the file has no lines (a converted MUD file)."""
    line = line_of(lines, loc)
    return f"{file}:{line}" if line is not None else f"{file}: {field_name(loc)}"


def _read_rule_data(file: Path) -> tuple[Any, dict[Loc, int]]:
    """Return a rule file's data and the lines of its keys; a MUD file (JSON) is converted first."""
    if file.suffix.lower() == ".json":
        from auditor.policy import mud  # only runs that use MUD files pay for it

        conversion = mud.load_mud(file)
        return conversion.rule_file, {}
    data, lines = load_yaml(file)
    _not_another_kind(file, data)
    return data, lines


def _not_another_kind(file: Path, data: object) -> None:
    """The vendor catalog and signature files are YAML too: say so, rather than 'unknown field'."""
    if isinstance(data, dict):
        if "vendors" in data:
            raise RuleFileError(str(file), 1, None,
                                "this is a vendor catalog, not a rule file (give it with --vendors)")
        if "signatures" in data:
            raise RuleFileError(str(file), 1, None, "this is a signature file (rules/fingerprints), not a rule file")


def _check_names(file: Path, lines: dict[Loc, int], loc: Loc, devices: tuple[DeviceSelector, ...],
                 vocabulary: Vocabulary) -> None:
    """Vendor and list ids must exist in the catalog: a typo would silently select nothing."""
    for j, selector in enumerate(devices):
        for field, known in (("vendors", vocabulary.vendors), ("lists", vocabulary.lists)):
            for k, name in enumerate(getattr(selector, field) or ()):
                where = (*loc, "devices", j, field, k)
                if known is None:
                    raise located(file, lines, where, f"{name!r}: no vendor catalog (rules/vendors.yaml) is loaded")
                if name not in known:
                    kind = "vendor" if field == "vendors" else "list"
                    raise located(file, lines, where, f"no {kind} with id {name!r} in the vendor catalog")
