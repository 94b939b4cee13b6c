"""Load rule files: a file or a folder of them, validated, cross-checked, in evaluation order.

Errors name file:line: field (RuleFileError, exit code 2), and come before any packet is read,
so a bad rule file never costs a run or overwrites earlier output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from auditor.devices.types import AnalystPin
from auditor.errors import ConfigError, RuleFileError
from auditor.policy.schema import Policy, RuleFile, mac_value
from auditor.yamlfile import Loc, line_of, load_yaml, located, validate

RULE_SUFFIXES = (".yaml", ".yml")


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
            raise ConfigError(f"{path}: no rule files (*.yaml, *.yml) in this folder")
        return files
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path}: a broken or looping link")
    if not path.exists():
        raise ConfigError(f"{path}: no such rule file or folder")
    return [path]


def load_rules(paths: Iterable[Path], vocabulary: Vocabulary) -> RuleSet:
    """Load and check the rule files at `paths` (files or folders, in the order given; a folder's
    files in name order); RuleFileError on the first problem. A file given twice is read once."""
    policies: list[LoadedPolicy] = []
    sources: list[RuleSource] = []
    pins: dict[int, AnalystPin] = {}
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
        data, lines = load_yaml(file)
        _not_another_kind(file, data)
        parsed = validate(file, data, lines, RuleFile)
        ruleset = parsed.ruleset or file.stem
        for i, policy in enumerate(parsed.policies):
            _check_names(file, lines, ("policies", i), policy, vocabulary)
            where = f"{file}:{line_of(lines, ('policies', i))}"
            if policy.id in seen:
                raise located(file, lines, ("policies", i, "id"),
                              f"policy id {policy.id!r} is already defined at {seen[policy.id]}")
            seen[policy.id] = where
            policies.append(LoadedPolicy(policy, ruleset, where))
        for i, pin in enumerate(parsed.pins):
            where = f"{file}:{line_of(lines, ('pins', i))}"
            mac = mac_value(pin.mac)
            if mac in pins:
                raise located(file, lines, ("pins", i, "mac"),
                              f"{pin.mac} is already pinned at {pins[mac].reference}")
            if pin.maker is not None and vocabulary.vendors is not None and pin.maker not in vocabulary.vendors:
                raise located(file, lines, ("pins", i, "maker"),
                              f"no vendor with id {pin.maker!r} in the vendor catalog")
            pins[mac] = AnalystPin(mac, pin.maker, pin.device_class, pin.brand, pin.model, pin.firmware, pin.note,
                                   where)
        sources.append(RuleSource(str(file), hashlib.sha256(raw).hexdigest(), ruleset))
    return RuleSet(tuple(policies), tuple(sources), tuple(pins.values()))


def _not_another_kind(file: Path, data: object) -> None:
    """The vendor catalog and signature files are YAML too: say so, rather than 'unknown field'."""
    if isinstance(data, dict):
        if "vendors" in data:
            raise RuleFileError(str(file), 1, None,
                                "this is a vendor catalog, not a rule file (give it with --vendors)")
        if "signatures" in data:
            raise RuleFileError(str(file), 1, None, "this is a signature file (rules/fingerprints), not a rule file")


def _check_names(file: Path, lines: dict[Loc, int], loc: Loc, policy: Policy, vocabulary: Vocabulary) -> None:
    """Vendor and list ids must exist in the catalog: a typo would silently select nothing."""
    for j, selector in enumerate(policy.devices):
        for field, known in (("vendors", vocabulary.vendors), ("lists", vocabulary.lists)):
            for k, name in enumerate(getattr(selector, field) or ()):
                where = (*loc, "devices", j, field, k)
                if known is None:
                    raise located(file, lines, where, f"{name!r}: no vendor catalog (rules/vendors.yaml) is loaded")
                if name not in known:
                    kind = "vendor" if field == "vendors" else "list"
                    raise located(file, lines, where, f"no {kind} with id {name!r} in the vendor catalog")
