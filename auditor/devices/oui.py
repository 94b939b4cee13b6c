"""The IEEE MAC address registry: longest-prefix lookup (36, then 28, then 24 bits) of 48-bit MACs.

A registry is loaded from a snapshot table (`oui.tsv.gz`): the one shipped in the package, or a
newer one that `auditor oui update` wrote into the state directory, which then takes precedence.
Locally administered (randomised) and group (multicast) addresses are never looked up: their
first three bytes name nobody.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from auditor.devices.types import OuiMatch
from auditor.errors import ConfigError

logger = logging.getLogger(__name__)

PREFIX_BITS = (36, 28, 24)  # IEEE MA-S/IAB, MA-M, MA-L: longest first
SNAPSHOT_NAME = "oui.tsv.gz"
GROUP_BIT = 0x01 << 40  # IEEE 802-2014 §8.2: I/G bit, the lowest bit of the first octet
LOCAL_BIT = 0x02 << 40  # U/L bit: set on locally administered (randomised, virtual) addresses


def is_group(mac: int) -> bool:
    """Return True for a multicast or broadcast address."""
    return bool(mac & GROUP_BIT)


def is_locally_administered(mac: int) -> bool:
    """Return True for a locally administered address (randomised by phones and laptops, VMs)."""
    return bool(mac & LOCAL_BIT)


def candidate_prefixes(mac: int) -> list[tuple[int, int]]:
    """Return (bits, prefix) of `mac` for each assignment size, longest first; [] for a local or
    group MAC, whose first bytes name nobody."""
    if is_group(mac) or is_locally_administered(mac):
        return []
    return [(bits, mac >> (48 - bits)) for bits in PREFIX_BITS]


def parse_mac(text: str) -> int:
    """Return a MAC given as AA:BB:CC:DD:EE:FF, AA-BB-..., AABB.CCDD.EEFF or 12 hex digits."""
    digits = "".join(ch for ch in text.strip() if ch not in ":-.")
    if len(digits) != 12:
        raise ValueError(f"{text!r} is not a MAC address")
    try:
        return int(digits, 16)
    except ValueError:
        raise ValueError(f"{text!r} is not a MAC address") from None


def mac_text(mac: int) -> str:
    """Return a MAC in RFC 7042 form, AA-BB-CC-DD-EE-FF."""
    return mac.to_bytes(6, "big").hex("-").upper()


@dataclass(frozen=True, slots=True)
class OuiEntry:
    """One assignment, as stored in a snapshot."""

    prefix: int
    bits: int
    organization: str


class OuiRegistry:
    """IEEE assignments by prefix length; `lookup` tries the longest prefix first."""

    def __init__(self, entries: Iterable[OuiEntry], source: str, date: str) -> None:
        self.source = source
        """Where the table came from (e.g. 'wireshark-manuf' or 'ieee-csv')."""
        self.date = date
        """Date of the newest registry data in it (ISO 8601), shown in reports."""
        self._by_bits: dict[int, dict[int, str]] = {bits: {} for bits in PREFIX_BITS}
        for e in entries:
            if e.bits in self._by_bits:
                self._by_bits[e.bits][e.prefix] = e.organization

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_bits.values())

    def count(self, bits: int) -> int:
        """Return how many assignments of this prefix length the table holds."""
        return len(self._by_bits.get(bits, {}))

    def lookup(self, mac: int) -> OuiMatch | None:
        """Return the assignment `mac` belongs to; None if unassigned, local or group."""
        for bits, prefix in candidate_prefixes(mac):
            org = self._by_bits[bits].get(prefix)
            if org is not None:
                return OuiMatch(prefix=prefix, bits=bits, organization=org)
        return None

    # -- snapshots ------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> OuiRegistry:
        """Read a snapshot table (gzip or plain TSV); ConfigError naming the file if it is not one."""
        try:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read OUI table: {exc}") from exc
        meta: dict[str, str] = {}
        entries = []
        for number, line in enumerate(lines, 1):
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                meta[key.strip()] = value.strip()
                continue
            if not line:
                continue
            try:
                prefix, bits, org = line.split("\t", 2)
                entries.append(OuiEntry(int(prefix, 16), int(bits), org))
            except ValueError:
                raise ConfigError(f"{path}:{number}: not an OUI table line: {line[:60]!r}") from None
        return cls(entries, source=meta.get("source", "unknown"), date=meta.get("date", "unknown"))

    @classmethod
    def default(cls, state_dir: Path | None = None) -> OuiRegistry:
        """Return the table `oui update` left in the state directory, else the packaged snapshot."""
        if state_dir is not None and (state_dir / SNAPSHOT_NAME).is_file():
            return cls.load(state_dir / SNAPSHOT_NAME)
        with resources.as_file(resources.files("auditor.devices.data") / SNAPSHOT_NAME) as path:
            return cls.load(path)


def write_snapshot(entries: Iterable[OuiEntry], source: str, date: str, path: Path) -> int:
    """Write a snapshot table atomically (temporary file, then rename); return the entries written."""
    rows = sorted(entries, key=lambda e: (e.bits, e.prefix))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = f"# source: {source}\n# date: {date}\n# columns: prefix (hex), bits, organization\n" + "".join(
        f"{e.prefix:0{e.bits // 4}X}\t{e.bits}\t{e.organization}\n" for e in rows
    )
    # mtime=0 and no file name in the header: the same entries always give the same bytes
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    os.replace(tmp, path)
    return len(rows)
