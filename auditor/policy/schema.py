"""The rule-file schema (policy language version 1): what people write in rules/policies/*.yaml.

A rule file names device groups and, for each, the destinations they are approved to reach
(allow) and those that are findings whatever else is allowed (deny); a flow that a grouped device
starts toward anything no entry decides is a finding with the policy's severity. Destinations are
matched by address (local, CIDR), name (domains), country, ASN, protocol and port, directly or
through named sets. Waivers accept known findings until a date. Strict (unknown fields are
errors) so that a typo never silently widens a policy. Every field added since the first files
is optional, so those files stay valid.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from auditor.devices.types import DeviceClass
from auditor.flows.types import PORTED_PROTOCOLS
from auditor.yamlfile import LocatedError

Severity = Literal["low", "medium", "high", "critical"]  # the order of policy.types.SEVERITIES

_ID = r"^[a-z0-9][a-z0-9-]*$"
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:\-]?)[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}$")
_PORT_RANGE = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")

# IANA protocol numbers of the names rule files may use (lower case, as ECS network.transport)
PROTOCOL_NUMBERS: dict[str, int] = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50,
                                    "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}


def _as_tuple(value: Any) -> Any:
    """Let a single value stand for a list of one: `classes: camera` = `classes: [camera]`."""
    return (value,) if isinstance(value, (str, int)) and not isinstance(value, bool) else value


def _network(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a network (write it as a string, e.g. '10.0.0.0/8')")
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not a network (an address or CIDR such as 10.0.0.0/8)") from None
    address = text.split("/")[0].strip()
    if net.network_address != ipaddress.ip_address(address):
        # 192.168.10.5/24 would silently approve the whole /24: say which was meant
        host = f"{address}/{net.max_prefixlen}"
        raise ValueError(f"{text!r} has host bits set: write {str(net)!r} for the network or {host!r} for the host")
    return text.strip()


def _mac(text: Any) -> str:
    if not isinstance(text, str) or not _MAC.match(text.strip()):
        raise ValueError(f"{text!r} is not a MAC address (AA:BB:CC:DD:EE:FF)")
    return text.strip()


def _protocol(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    if isinstance(value, str) and value.strip().lower() in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[value.strip().lower()]
    names = ", ".join(sorted(PROTOCOL_NUMBERS))
    raise ValueError(f"{value!r} is not a protocol (one of {names}, or a number 0-255)")


def _port_range(value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and (m := _PORT_RANGE.match(value)):
        low, high = int(m.group(1)), int(m.group(2))
    elif isinstance(value, str) and value.strip().isdigit():
        low = high = int(value)
    else:
        raise ValueError(f"{value!r} is not a port (a number, or a range such as '8000-8100')")
    if not 0 <= low <= high <= 65535:
        what = "a port (0-65535)" if low == high else "a port range (0-65535, low first)"
        raise ValueError(f"{value!r} is not {what}")
    return low, high


_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ASN = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


def _domain(value: Any) -> str:
    """Return a domain pattern in its canonical form: 'example.com' (that name only), '*.example.com'
    (its subdomains only) or '.example.com' (the name and its subdomains); lower case, no final dot,
    international names as IDNA ('xn--') labels."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a domain (e.g. 'example.com', '*.example.com', '.example.com')")
    text = value.strip().lower().rstrip(".")
    prefix = ""
    if text.startswith("*."):
        prefix, text = "*.", text[2:]
    elif text.startswith("."):
        prefix, text = ".", text[1:]
    if not text.isascii():
        # Python's codec is IDNA 2003, which maps 'straße' to 'strasse', another domain than the
        # 'xn--strae-oqa' clients send today (IDNA 2008): ask for the form that is on the wire
        raise ValueError(f"{value!r}: write an international name in its ASCII form (xn--...), as it is on the wire")
    ascii_text = text
    labels = ascii_text.split(".")
    if not ascii_text or len(ascii_text) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        hint = " (a wildcard is allowed only as the whole first label: '*.example.com')" if "*" in text else ""
        raise ValueError(f"{value!r} is not a domain name{hint}")
    return prefix + ascii_text


def _country(value: Any) -> str:
    if isinstance(value, str) and _COUNTRY.match(value.strip().upper()):
        return value.strip().upper()
    raise ValueError(f"{value!r} is not a country (an ISO 3166-1 alpha-2 code such as CN, as GeoIP databases give)")


def _asn(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and (m := _ASN.match(value.strip())):
        number = int(m.group(1))
    else:
        raise ValueError(f"{value!r} is not an AS number (e.g. 37963 or 'AS37963')")
    if not 0 < number < 2**32:
        raise ValueError(f"{value!r} is not an AS number (1 to 4294967295)")
    return number


Network = Annotated[str, BeforeValidator(_network)]
Mac = Annotated[str, BeforeValidator(_mac)]
Protocol = Annotated[int, BeforeValidator(_protocol)]
PortRange = Annotated[tuple[int, int], BeforeValidator(_port_range)]
Domain = Annotated[str, BeforeValidator(_domain)]
Country = Annotated[str, BeforeValidator(_country)]
Asn = Annotated[int, BeforeValidator(_asn)]


Id = Annotated[str, Field(pattern=_ID)]
Ids = Annotated[tuple[Id, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Classes = Annotated[tuple[DeviceClass, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Macs = Annotated[tuple[Mac, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Networks = Annotated[tuple[Network, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Protocols = Annotated[tuple[Protocol, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
PortRanges = Annotated[tuple[PortRange, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Domains = Annotated[tuple[Domain, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Countries = Annotated[tuple[Country, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Asns = Annotated[tuple[Asn, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Urls = Annotated[tuple[Annotated[str, Field(min_length=1, max_length=2048)], ...], BeforeValidator(_as_tuple),
                 Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSelector(_Strict):
    """One way of picking devices; a device is selected when every field given here matches it.

    A policy's `devices` is a list of selectors: a device in any of them is in the group.
    """

    vendors: Ids | None = None
    """Vendor ids of rules/vendors.yaml; a vendor also selects its subsidiaries (ezviz under hikvision)."""
    classes: Classes | None = None
    lists: Ids | None = None
    """List ids of rules/vendors.yaml: devices whose vendor is on any of them."""
    macs: Macs | None = None
    ips: Networks | None = None
    """The device's (source) address is in one of these networks."""
    mud_urls: Urls | None = None
    """Devices that announce one of these MUD URLs (RFC 8520: DHCP option 161, DHCPv6 option 112)."""
    all: Literal[True] | None = None
    """Every device (a catch-all group)."""

    @model_validator(mode="after")
    def _not_empty(self) -> DeviceSelector:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            fields = ", ".join(type(self).model_fields)
            raise ValueError(f"a device selector needs at least one of {fields}")
        return self


MATCHERS = ("local", "networks", "domains", "countries", "asns", "protocols", "ports", "set")
"""The fields of a destination entry that match flows (the others describe it)."""


class Destination(_Strict):
    """One destination entry (allow, deny, a named set, a waiver); a flow matches when every field
    given here matches it."""

    local: Literal[True] | None = None
    """Any address of the site's local networks (auditor.toml local_networks, --local-net)."""
    networks: Networks | None = None
    domains: Domains | None = None
    """The flow's destination name (TLS SNI, QUIC SNI, HTTP Host or the client's own DNS answer):
    'example.com' that name only; '*.example.com' its subdomains only; '.example.com' both."""
    countries: Countries | None = None
    """Destination country (ISO code) by the GeoIP country database (--geoip-country)."""
    asns: Asns | None = None
    """Destination autonomous system by the GeoIP ASN database (--geoip-asn)."""
    protocols: Protocols | None = None
    ports: PortRanges | None = None
    """Destination (responder) ports: numbers or 'low-high' ranges; only TCP, UDP and SCTP have ports."""
    set: str | None = Field(default=None, pattern=_ID)
    """A named destination set (`sets:` of any loaded rule file): one of its entries must match."""
    severity: Severity | None = None
    """Deny entries only: the severity of flows this entry denies (default: the policy's, else high)."""
    comment: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Destination:
        if all(getattr(self, name) is None for name in MATCHERS):
            raise ValueError(f"a destination entry needs at least one of {', '.join(MATCHERS)}")
        if self.ports is not None and self.protocols is not None:
            portless = [p for p in self.protocols if p not in PORTED_PROTOCOLS]
            if portless:
                raise ValueError(f"ports given with protocol {portless[0]}, which has no ports (use tcp, udp, sctp)")
        return self


class Policy(_Strict):
    """A device group, its approved (allow) and refused (deny) destinations, and the severity of
    anything else. Without a severity the policy is a guard: flows none of its entries decides go on
    to the next policy that selects the device."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    description: str | None = None
    devices: tuple[DeviceSelector, ...] = Field(min_length=1)
    deny: tuple[Destination, ...] = ()
    allow: tuple[Destination, ...] = ()
    severity: Severity | None = None

    @model_validator(mode="after")
    def _decides_something(self) -> Policy:
        for i, entry in enumerate(self.allow):
            if entry.severity is not None:
                raise LocatedError(("allow", i, "severity"), "severity belongs to deny entries (an allowed flow "
                                   "is no finding); the policy's own severity is for what no entry allows")
        if self.severity is None and not self.allow and not self.deny:
            raise ValueError("a policy needs a severity, or allow or deny entries (a guard policy)")
        return self


class Waiver(_Strict):
    """Findings a person has accepted until a date: flows of these devices to these destinations are
    reported as waived, not as alerts. After `expires` the waiver no longer applies, and says so."""

    id: str = Field(pattern=_ID)
    devices: tuple[DeviceSelector, ...] = Field(min_length=1)
    destinations: tuple[Destination, ...] = Field(min_length=1)
    policies: Ids | None = None
    """Only findings of these policies (default: any)."""
    expires: datetime.date
    """The last day (UTC) the waiver applies: flows that start after it are findings again."""
    reason: str = Field(min_length=1)
    """Why, who decided and where it is recorded (a ticket)."""

    @model_validator(mode="after")
    def _no_severity(self) -> Waiver:
        for i, entry in enumerate(self.destinations):
            if entry.severity is not None:
                raise LocatedError(("destinations", i, "severity"), "a waiver's destinations have no severity")
        return self


class Pin(_Strict):
    """What a person knows about one device, which beats anything the wire or the OUI says."""

    mac: Mac
    maker: str | None = Field(default=None, pattern=_ID)
    """Vendor id of rules/vendors.yaml."""
    device_class: DeviceClass | None = Field(default=None, alias="class")
    brand: str | None = None
    model: str | None = None
    firmware: str | None = None
    note: str | None = None
    """Why: an asset tag, who checked it and when."""
    expires: datetime.date | None = None
    """The last day (UTC) the pin holds; after it the wire and the OUI decide again (a warning says so)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _says_something(self) -> Pin:
        if self.maker is None and self.device_class is None and self.model is None and self.brand is None:
            raise ValueError("a pin needs at least one of maker, class, brand, model")
        return self


class RuleFile(_Strict):
    """One rule file."""

    version: Literal[1]
    ruleset: str | None = Field(default=None, pattern=_ID)
    """Name of this set of rules in alerts (ECS rule.ruleset); default: the file name without .yaml."""
    description: str | None = None
    pins: tuple[Pin, ...] = ()
    """Device verdicts written by a person, by MAC."""
    sets: dict[Annotated[str, Field(pattern=_ID)], Annotated[tuple[Destination, ...], Field(min_length=1)]] = {}
    """Named destination sets, usable by every loaded rule file's entries as `set: name`."""
    policies: tuple[Policy, ...] = ()
    waivers: tuple[Waiver, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> RuleFile:
        if not self.policies and not self.pins and not self.sets and not self.waivers:
            raise ValueError("a rule file needs policies, pins, sets or waivers")
        return self

    @model_validator(mode="after")
    def _flat_sets(self) -> RuleFile:
        for name, entries in self.sets.items():
            for i, entry in enumerate(entries):
                for field in ("set", "severity"):
                    if getattr(entry, field) is not None:
                        raise LocatedError(("sets", name, i, field), f"a set's entries cannot use {field}: "
                                           "write it where the set is used")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleFile:
        seen: set[str] = set()
        for i, policy in enumerate(self.policies):
            if policy.id in seen:
                raise LocatedError(("policies", i, "id"), f"policy id {policy.id!r} is used twice")
            seen.add(policy.id)
        waivers: set[str] = set()
        for i, waiver in enumerate(self.waivers):
            if waiver.id in waivers:
                raise LocatedError(("waivers", i, "id"), f"waiver id {waiver.id!r} is used twice")
            waivers.add(waiver.id)
        macs: set[int] = set()
        for i, pin in enumerate(self.pins):
            if mac_value(pin.mac) in macs:
                raise LocatedError(("pins", i, "mac"), f"{pin.mac} is pinned twice")
            macs.add(mac_value(pin.mac))
        return self


def mac_value(text: str) -> int:
    """Return a MAC written as AA:BB:.., AA-BB-.. or AABB.. as a 48-bit integer."""
    return int(text.replace(":", "").replace("-", ""), 16)
