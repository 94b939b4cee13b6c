"""The rule-file schema (policy v1): what people write in rules/policies/*.yaml.

A rule file names device groups and, for each, the destinations they are approved to reach; a
flow that a grouped device starts toward anything else is a finding with the policy's severity.
Strict (unknown fields are errors) so that a typo never silently widens a policy. Later versions
add destination matchers (domains, countries, ASNs, named sets) and deny entries as new optional
fields, so every v1 file stays valid.
"""

from __future__ import annotations

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


Network = Annotated[str, BeforeValidator(_network)]
Mac = Annotated[str, BeforeValidator(_mac)]
Protocol = Annotated[int, BeforeValidator(_protocol)]
PortRange = Annotated[tuple[int, int], BeforeValidator(_port_range)]


Id = Annotated[str, Field(pattern=_ID)]
Ids = Annotated[tuple[Id, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Classes = Annotated[tuple[DeviceClass, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Macs = Annotated[tuple[Mac, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Networks = Annotated[tuple[Network, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
Protocols = Annotated[tuple[Protocol, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
PortRanges = Annotated[tuple[PortRange, ...], BeforeValidator(_as_tuple), Field(min_length=1)]


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
    all: Literal[True] | None = None
    """Every device (a catch-all group)."""

    @model_validator(mode="after")
    def _not_empty(self) -> DeviceSelector:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a device selector needs at least one of vendors, classes, lists, macs, ips, all")
        return self


class Destination(_Strict):
    """One approved destination; a flow matches when every field given here matches it."""

    local: Literal[True] | None = None
    """Any address of the site's local networks (auditor.toml local_networks, --local-net)."""
    networks: Networks | None = None
    protocols: Protocols | None = None
    ports: PortRanges | None = None
    """Destination (responder) ports: numbers or 'low-high' ranges; only TCP, UDP and SCTP have ports."""
    comment: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Destination:
        if self.local is None and self.networks is None and self.protocols is None and self.ports is None:
            raise ValueError("an allow entry needs at least one of local, networks, protocols, ports")
        if self.ports is not None and self.protocols is not None:
            portless = [p for p in self.protocols if p not in PORTED_PROTOCOLS]
            if portless:
                raise ValueError(f"ports given with protocol {portless[0]}, which has no ports (use tcp, udp, sctp)")
        return self


class Policy(_Strict):
    """A device group, its approved destinations, and the severity of anything else."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    description: str | None = None
    devices: tuple[DeviceSelector, ...] = Field(min_length=1)
    allow: tuple[Destination, ...] = ()
    severity: Severity


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
    policies: tuple[Policy, ...] = ()

    @model_validator(mode="after")
    def _not_empty(self) -> RuleFile:
        if not self.policies and not self.pins:
            raise ValueError("a rule file needs policies or pins")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleFile:
        seen: set[str] = set()
        for i, policy in enumerate(self.policies):
            if policy.id in seen:
                raise LocatedError(("policies", i, "id"), f"policy id {policy.id!r} is used twice")
            seen.add(policy.id)
        macs: set[int] = set()
        for i, pin in enumerate(self.pins):
            if mac_value(pin.mac) in macs:
                raise LocatedError(("pins", i, "mac"), f"{pin.mac} is pinned twice")
            macs.add(mac_value(pin.mac))
        return self


def mac_value(text: str) -> int:
    """Return a MAC written as AA:BB:.., AA-BB-.. or AABB.. as a 48-bit integer."""
    return int(text.replace(":", "").replace("-", ""), 16)
