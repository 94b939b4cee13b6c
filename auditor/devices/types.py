"""Records the device stage produces (so far: what the IEEE registry says about a MAC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DeviceClass = Literal[
    "camera", "nvr", "screening-scanner", "drone", "radio", "network", "phone", "computer", "iot", "other"
]
"""What a device is; vendors.yaml, signatures and rule files use these words."""


@dataclass(frozen=True, slots=True)
class OuiMatch:
    """The IEEE assignment a MAC address falls in."""

    prefix: int
    """The assigned prefix, as an integer of `bits` bits."""
    bits: int
    """24 (MA-L / OUI), 28 (MA-M) or 36 (MA-S, IAB)."""
    organization: str
    """The registrant's name as the registry spells it (untrusted text: escape it when shown)."""

    @property
    def block(self) -> str:
        """The prefix in RFC 7042 form with its length, e.g. '4C-BD-8F/24' or 'C0-9B-F4-B/28'."""
        digits = f"{self.prefix:0{self.bits // 4}X}"
        pairs = [digits[i : i + 2] for i in range(0, len(digits), 2)]
        return "-".join(pairs) + f"/{self.bits}"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """A vendor's membership of a restriction list, as reports show it."""

    list_id: str
    list_name: str
    clause: str
    since: str
    note: str | None = None
    """Caveats from the catalog (scope, unverified dates): shown with the membership."""


@dataclass(frozen=True, slots=True)
class AnalystPin:
    """A verdict a person wrote down for one MAC (a rule file's `pins`): it wins over any evidence."""

    mac: int
    maker: str | None
    """Vendor id of rules/vendors.yaml, or None when only the class or model is pinned."""
    device_class: str | None = None
    brand: str | None = None
    model: str | None = None
    firmware: str | None = None
    note: str | None = None
    reference: str = ""
    """Where the pin is written: 'rules/site.yaml:40'."""


@dataclass(frozen=True, slots=True)
class Observation:
    """A fact a device's own packets stated (protocols/*: facts()), with the signatures it matched."""

    protocol: str
    field: str
    value: str
    """Untrusted text from the wire: escape it wherever it is shown."""
    first_ns: int
    last_ns: int
    count: int
    signatures: tuple[str, ...] = ()
    """Ids of the signatures (rules/fingerprints) that matched this fact."""


@dataclass(frozen=True, slots=True)
class VendorVerdict:
    """Which maker a device is attributed to, and on what evidence."""

    vendor_id: str | None
    """The maker: who built it (a vendor id of rules/vendors.yaml); None when only the class is known."""
    name: str | None
    device_class: str
    how: str
    """'oui-pin' or 'org-pattern' (the MAC alone), 'protocol' (signatures, with or without the MAC's
    agreement) or 'analyst-pin' (a rule file says so)."""
    detail: str
    confidence: float
    lists: tuple[ListEntry, ...] = ()
    parents: tuple[str, ...] = ()
    brand: str | None = None
    """What it is sold as, when that differs from the maker or is known from the wire (OEM labels)."""
    model: str | None = None
    firmware: str | None = None
    relabel: str | None = None
    """Why this looks like an OEM relabel (the MAC or an OEM field names someone else), or None."""
    evidence: tuple[Observation, ...] = ()
    """The observations behind the verdict (those that matched signatures)."""


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """An address a device sent from, with when."""

    ip: str
    first_ns: int
    last_ns: int


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device as the outputs show it."""

    mac: int
    first_ns: int
    last_ns: int
    packets: int
    bytes: int
    addresses: tuple[DeviceAddress, ...]
    vlans: tuple[int, ...]
    role: str
    """'host', or 'gateway' for a MAC that forwards remote hosts' traffic."""
    locally_administered: bool
    oui: OuiMatch | None
    vendor: VendorVerdict | None
    observations: tuple[Observation, ...] = ()
    """Everything the device stated on the wire (facts of its parsed payloads), first seen first."""
