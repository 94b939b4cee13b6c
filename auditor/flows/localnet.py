"""Which addresses are local, and the ECS network.direction of a flow, vectorised over columns.

Addresses are the engine's two uint64 columns (hi, lo) plus a version column; IPv4 lives in the
low 32 bits of lo with hi = 0. A network only ever matches addresses of its own version, so
IPv4 10.0.0.1 (lo = 0x0A000001) never matches an IPv6 network such as ::a00:0/104, whose
addresses have the same integer value.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

DEFAULT_LOCAL_NETWORKS: tuple[str, ...] = (
    "10.0.0.0/8",  # RFC 1918 §3 private
    "172.16.0.0/12",  # RFC 1918 §3 private
    "192.168.0.0/16",  # RFC 1918 §3 private
    "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT)
    "169.254.0.0/16",  # RFC 3927 IPv4 link-local
    "127.0.0.0/8",  # RFC 1122 §3.2.1.3 loopback
    "224.0.0.0/4",  # RFC 5771 multicast: never leaves the site as a destination of interest
    "255.255.255.255/32",  # RFC 919 limited broadcast
    "0.0.0.0/32",  # RFC 1122 §3.2.1.3 unspecified (DHCP discover source)
    "fe80::/10",  # RFC 4291 §2.5.6 IPv6 link-local
    "fc00::/7",  # RFC 4193 unique local addresses
    "::1/128",  # RFC 4291 §2.5.3 loopback
    "ff00::/8",  # RFC 4291 §2.7 multicast
    "::/128",  # RFC 4291 §2.5.2 unspecified (DAD/MLD source)
)

# ECS network.direction (https://www.elastic.co/guide/en/ecs/current/ecs-network.html).
# The code is 2 * initiator_local + responder_local, so names are indexed by that sum.
# The codes live in types.py so that later stages can name directions without importing this module.
from auditor.flows.types import (  # noqa: E402
    DIRECTION_EXTERNAL,
    DIRECTION_INBOUND,
    DIRECTION_INTERNAL,
    DIRECTION_NAMES,
    DIRECTION_OUTBOUND,
)

__all__ = [
    "DEFAULT_LOCAL_NETWORKS",
    "DIRECTION_EXTERNAL",
    "DIRECTION_INBOUND",
    "DIRECTION_INTERNAL",
    "DIRECTION_NAMES",
    "DIRECTION_OUTBOUND",
    "LocalNetworks",
    "direction",
]

_U64 = (1 << 64) - 1


class LocalNetworks:
    """A set of IPv4/IPv6 networks whose members count as local (inside the audited site)."""

    __slots__ = ("_hi_mask", "_hi_net", "_lo_mask", "_lo_net", "_networks", "_version")

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for text in cidrs:
            networks.append(_parse_network(text))
        self._networks = tuple(networks)
        # One row per network: version, then (hi, lo) network and mask in the engine's layout.
        # For IPv4 the hi mask is 0, so only the 32-bit value in lo is compared.
        self._version = np.array([net.version for net in networks], dtype=np.uint8)
        self._hi_net = np.array([int(net.network_address) >> 64 for net in networks], dtype=np.uint64)
        self._lo_net = np.array([int(net.network_address) & _U64 for net in networks], dtype=np.uint64)
        self._hi_mask = np.array([int(net.netmask) >> 64 for net in networks], dtype=np.uint64)
        self._lo_mask = np.array([int(net.netmask) & _U64 for net in networks], dtype=np.uint64)

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Return the configured networks, normalised (host bits cleared), in the given order."""
        return self._networks

    def __len__(self) -> int:
        return len(self._networks)

    def __repr__(self) -> str:
        return f"LocalNetworks({[str(net) for net in self._networks]!r})"

    def contains(self, version: ArrayLike, hi: ArrayLike, lo: ArrayLike) -> NDArray[np.bool_]:
        """Return, per address, whether it lies in any of the networks."""
        version_ = np.asarray(version, dtype=np.uint8)
        hi_ = np.asarray(hi, dtype=np.uint64)
        lo_ = np.asarray(lo, dtype=np.uint64)
        if not version_.shape == hi_.shape == lo_.shape:
            raise ValueError(f"columns differ in shape: {version_.shape}, {hi_.shape}, {lo_.shape}")
        found = np.zeros(version_.shape, dtype=bool)
        of_version = {4: version_ == 4, 6: version_ == 6}
        # A loop over the (few) networks, each step vectorised over all addresses.
        for i in range(len(self._networks)):
            found |= (
                of_version[int(self._version[i])]
                & ((hi_ & self._hi_mask[i]) == self._hi_net[i])
                & ((lo_ & self._lo_mask[i]) == self._lo_net[i])
            )
        return found


def direction(init_local: ArrayLike, resp_local: ArrayLike) -> NDArray[np.uint8]:
    """Return ECS network.direction codes (index into DIRECTION_NAMES) per flow."""
    init = np.asarray(init_local, dtype=bool)
    resp = np.asarray(resp_local, dtype=bool)
    if init.shape != resp.shape:
        raise ValueError(f"columns differ in shape: {init.shape}, {resp.shape}")
    # ECS: outbound = local initiator to remote responder, inbound = the reverse,
    # internal = both local, external = both remote.
    codes = init.astype(np.uint8)
    codes <<= 1
    codes |= resp
    return codes


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Return the network written as `text`; ValueError naming the text when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a network (expected a CIDR string)")
    try:
        # strict=False: "192.168.1.7/24" means 192.168.1.0/24, as in most router and IDS configs.
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network: {exc}") from exc
