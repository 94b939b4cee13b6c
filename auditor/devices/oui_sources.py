"""Read IEEE assignments from the two places a Debian machine has them, for `auditor oui update`.

- IEEE's own CSV listings (`oui.csv` MA-L, `mam.csv` MA-M, `oui36.csv` MA-S, `iab.csv` IAB), as in
  Debian's ieee-data (/usr/share/ieee-data) or downloaded by hand from standards-oui.ieee.org.
- Wireshark's `manuf` file (Debian libwireshark-data, /usr/share/wireshark/manuf), which merges
  the same listings and records when IEEE last modified each.

When several are given, the newest wins (IEEE's Last-Modified lines in manuf, file dates of CSVs).
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import re
from dataclasses import dataclass
from pathlib import Path

from auditor.devices.oui import OuiEntry
from auditor.errors import ConfigError

IEEE_CSV_BITS = {"oui.csv": 24, "mam.csv": 28, "oui36.csv": 36, "iab.csv": 36}
_MANUF_LINE = re.compile(r"^([0-9A-Fa-f]{2}(?:[:\-.][0-9A-Fa-f]{2}){2,5})(?:/(\d+))?\t([^\t]*)(?:\t(.*))?$")


@dataclass(frozen=True, slots=True)
class Listing:
    """Assignments read from one source, with the date of its data."""

    entries: list[OuiEntry]
    source: str
    date: dt.date


def read_source(path: Path) -> Listing:
    """Read a manuf file, one IEEE CSV, or a folder holding IEEE CSVs and/or a manuf file (newest wins)."""
    if path.is_dir():
        found = [read_ieee_folder(path)] if any((path / n).is_file() for n in IEEE_CSV_BITS) else []
        if (path / "manuf").is_file():
            found.append(read_manuf(path / "manuf"))
        if not found:
            raise ConfigError(f"{path}: no IEEE CSV listing ({', '.join(IEEE_CSV_BITS)}) and no manuf file")
        return max(found, key=lambda listing: listing.date)
    if path.name in IEEE_CSV_BITS:
        return _listing_of_csvs([path], source=f"ieee-csv:{path}")
    return read_manuf(path)


def read_ieee_folder(folder: Path) -> Listing:
    """Read every IEEE CSV listing present in `folder`."""
    paths = [folder / name for name in IEEE_CSV_BITS if (folder / name).is_file()]
    return _listing_of_csvs(paths, source=f"ieee-csv:{folder}")


def _listing_of_csvs(paths: list[Path], source: str) -> Listing:
    entries: list[OuiEntry] = []
    for path in paths:
        entries.extend(read_ieee_csv(path))
    newest = max(dt.datetime.fromtimestamp(p.stat().st_mtime, tz=dt.UTC).date() for p in paths)
    return Listing(entries, source, newest)


def read_ieee_csv(path: Path) -> list[OuiEntry]:
    """Read one IEEE listing: Registry,Assignment,Organization Name,Organization Address."""
    bits = IEEE_CSV_BITS.get(path.name)
    if bits is None:
        raise ConfigError(f"{path}: not one of the IEEE listings {', '.join(IEEE_CSV_BITS)}")
    entries = []
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for number, row in enumerate(csv.reader(fh), 1):
                if number == 1 or len(row) < 3:  # header, or a blank line
                    continue
                assignment = row[1].strip()
                if len(assignment) * 4 != bits or not _is_hex(assignment):
                    raise ConfigError(f"{path}:{number}: Assignment: {assignment!r} is not a {bits}-bit prefix")
                entries.append(OuiEntry(int(assignment, 16), bits, _clean(row[2])))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return entries


def read_manuf(path: Path) -> Listing:
    """Read Wireshark's manuf file (prefix[/bits] TAB short name [TAB long name])."""
    entries = []
    newest: dt.date | None = None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    for line in text.splitlines():
        if line.startswith("#"):
            # tools/make-manuf.py copies IEEE's HTTP headers: "#   Last-Modified: Sun, 25 Aug 2024 ..."
            _, sep, when = line.partition("Last-Modified:")
            if sep:
                parsed = email.utils.parsedate_to_datetime(when.strip()).date()
                newest = parsed if newest is None or parsed > newest else newest
            continue
        m = _MANUF_LINE.match(line)
        if m is None:
            continue
        digits = re.sub(r"[:\-.]", "", m.group(1))
        bits = int(m.group(2)) if m.group(2) else 24
        if bits not in (24, 28, 36) or len(digits) * 4 < bits:
            continue  # well-known multicast ranges and other masks are not IEEE assignments
        prefix = int(digits, 16) >> (len(digits) * 4 - bits)
        entries.append(OuiEntry(prefix, bits, _clean(m.group(4) or m.group(3))))
    if not entries:
        raise ConfigError(f"{path}: not a Wireshark manuf file (no assignments found)")
    if newest is None:
        newest = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).date()
    return Listing(entries, f"wireshark-manuf:{path}", newest)


def _is_hex(text: str) -> bool:
    return bool(text) and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _clean(name: str) -> str:
    """One line of printable text: registry names are untrusted input too."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
