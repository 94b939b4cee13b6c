"""Local networks and ECS network.direction."""

from __future__ import annotations

import ipaddress
import re

import numpy as np
import pytest

from auditor.flows.localnet import (
    DEFAULT_LOCAL_NETWORKS,
    DIRECTION_EXTERNAL,
    DIRECTION_INBOUND,
    DIRECTION_INTERNAL,
    DIRECTION_NAMES,
    DIRECTION_OUTBOUND,
    LocalNetworks,
    direction,
)

_U64 = (1 << 64) - 1
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _contains(nets: LocalNetworks, addrs: list[Address]) -> list[bool]:
    version = np.array([a.version for a in addrs], dtype=np.uint8)
    hi = np.array([int(a) >> 64 for a in addrs], dtype=np.uint64)
    lo = np.array([int(a) & _U64 for a in addrs], dtype=np.uint64)
    found: list[bool] = nets.contains(version, hi, lo).tolist()
    return found


def _oracle(cidrs: tuple[str, ...] | list[str], addrs: list[Address]) -> list[bool]:
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [any(a.version == n.version and a in n for n in nets) for a in addrs]


def _around_boundaries(cidrs: tuple[str, ...] | list[str]) -> list[Address]:
    """First and last address of each network, and the addresses just outside them."""
    out: list[Address] = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        top = 2**32 - 1 if net.version == 4 else 2**128 - 1
        first, last = int(net.network_address), int(net.broadcast_address)
        for value in (first - 1, first, first + 1, last - 1, last, last + 1):
            if 0 <= value <= top:
                out.append(ipaddress.IPv4Address(value) if net.version == 4 else ipaddress.IPv6Address(value))
    return out


def test_default_networks_boundaries_match_stdlib() -> None:
    addrs = _around_boundaries(DEFAULT_LOCAL_NETWORKS)
    got = _contains(LocalNetworks(DEFAULT_LOCAL_NETWORKS), addrs)
    assert got == _oracle(DEFAULT_LOCAL_NETWORKS, addrs)
    # Every default network's first and last address is local.
    for cidr in DEFAULT_LOCAL_NETWORKS:
        net = ipaddress.ip_network(cidr)
        assert _contains(
            LocalNetworks(DEFAULT_LOCAL_NETWORKS), [net.network_address, net.broadcast_address]
        ) == [
            True,
            True,
        ], cidr


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("9.255.255.255", False),
        ("10.0.0.0", True),
        ("10.255.255.255", True),
        ("11.0.0.0", False),
        ("172.15.255.255", False),
        ("172.16.0.0", True),
        ("172.31.255.255", True),
        ("172.32.0.0", False),
        ("192.167.255.255", False),
        ("192.168.0.0", True),
        ("192.169.0.0", False),
        ("100.63.255.255", False),
        ("100.64.0.0", True),
        ("100.127.255.255", True),
        ("100.128.0.0", False),
        ("169.253.255.255", False),
        ("169.254.0.1", True),
        ("169.255.0.0", False),
        ("126.255.255.255", False),
        ("127.0.0.1", True),
        ("128.0.0.0", False),
        ("223.255.255.255", False),
        ("224.0.0.251", True),
        ("239.255.255.250", True),
        ("240.0.0.0", False),
        ("255.255.255.254", False),
        ("255.255.255.255", True),
        ("0.0.0.0", True),
        ("0.0.0.1", False),
        ("8.8.8.8", False),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
        ("fe80::1", True),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
        ("fec0::", False),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
        ("fc00::", True),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
        ("fe00::", False),
        ("::", True),
        ("::1", True),
        ("::2", False),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", False),
        ("ff02::fb", True),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:4860:4860::8888", False),
    ],
)
def test_default_networks_classify_address(address: str, local: bool) -> None:
    assert _contains(LocalNetworks(DEFAULT_LOCAL_NETWORKS), [ipaddress.ip_address(address)]) == [local]


def test_contains_matches_stdlib_on_random_addresses() -> None:
    rng = np.random.default_rng(7)
    cidrs = [*DEFAULT_LOCAL_NETWORKS, "192.0.2.0/24", "2001:db8:1234::/48", "203.0.113.7/32"]
    addrs: list[Address] = [ipaddress.IPv4Address(int(x)) for x in rng.integers(0, 2**32, 2000)]
    # Random IPv6 is almost never local, so half the samples keep the first 16 bits of a local one.
    for x in rng.integers(0, 2**63, (2000, 2), dtype=np.uint64):
        value = (int(x[0]) << 65) | (int(x[1]) << 1)
        addrs.append(ipaddress.IPv6Address(value))
        prefix = rng.choice([0xFE80, 0xFC00, 0xFD12, 0xFF02, 0x2001, 0xFEC0])
        addrs.append(ipaddress.IPv6Address((int(prefix) << 112) | (value & ((1 << 112) - 1))))
    addrs += _around_boundaries(cidrs)
    assert _contains(LocalNetworks(cidrs), addrs) == _oracle(cidrs, addrs)


def test_contains_does_not_confuse_v4_with_v6_of_same_value() -> None:
    v4 = ipaddress.IPv4Address("10.0.0.1")
    v6 = ipaddress.IPv6Address("::a00:1")  # the same integer, 0x0A000001
    assert int(v4) == int(v6)
    assert _contains(LocalNetworks(["::a00:0/104"]), [v4, v6]) == [False, True]
    assert _contains(LocalNetworks(["10.0.0.0/8"]), [v4, v6]) == [True, False]
    assert _contains(LocalNetworks(DEFAULT_LOCAL_NETWORKS), [v4, v6]) == [True, False]
    # ::/128 is local, IPv4 0.0.0.0 is a different address that happens to be local too;
    # ::ffff (IPv6) must not match IPv4 0.0.255.255.
    assert _contains(LocalNetworks(["0.0.0.0/16"]), [ipaddress.IPv6Address("::ffff")]) == [False]


def test_custom_networks_replace_defaults() -> None:
    nets = LocalNetworks(["192.0.2.0/24", " 2001:db8::/32 ", "198.51.100.9"])
    addrs = [
        ipaddress.ip_address(a) for a in ("192.0.2.77", "2001:db8::5", "198.51.100.9", "10.0.0.1", "fe80::1")
    ]
    assert _contains(nets, addrs) == [True, True, True, False, False]
    assert [str(n) for n in nets.networks] == ["192.0.2.0/24", "2001:db8::/32", "198.51.100.9/32"]
    assert len(nets) == 3


def test_no_networks_means_nothing_is_local() -> None:
    assert _contains(LocalNetworks([]), [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")]) == [
        False,
        False,
    ]


def test_host_bits_are_cleared_not_rejected() -> None:
    nets = LocalNetworks(["192.168.1.7/24"])
    assert [str(n) for n in nets.networks] == ["192.168.1.0/24"]
    assert _contains(nets, [ipaddress.ip_address("192.168.1.200")]) == [True]


@pytest.mark.parametrize(
    "bad", ["10.0.0.300/8", "10.0.0.0/33", "fe80::/129", "not-a-net", "", "10.0.0.0/8/8"]
)
def test_bad_cidr_raises_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        LocalNetworks(["10.0.0.0/8", bad])


def test_non_string_cidr_raises_value_error() -> None:
    with pytest.raises(ValueError, match="167772160"):
        LocalNetworks([167772160])  # type: ignore[list-item]


def test_contains_accepts_empty_columns() -> None:
    z = np.zeros(0, dtype=np.uint64)
    assert LocalNetworks(DEFAULT_LOCAL_NETWORKS).contains(np.zeros(0, dtype=np.uint8), z, z).shape == (0,)


def test_direction_codes_all_four_cases() -> None:
    init = np.array([True, False, True, False])
    resp = np.array([False, True, True, False])
    codes = direction(init, resp)
    assert codes.tolist() == [DIRECTION_OUTBOUND, DIRECTION_INBOUND, DIRECTION_INTERNAL, DIRECTION_EXTERNAL]
    assert [DIRECTION_NAMES[c] for c in codes] == ["outbound", "inbound", "internal", "external"]
    # numpy-side lookup, as writers will do for a whole column
    assert np.array(DIRECTION_NAMES)[codes].tolist() == ["outbound", "inbound", "internal", "external"]


def test_direction_of_flows_between_local_networks() -> None:
    nets = LocalNetworks(DEFAULT_LOCAL_NETWORKS)
    init = [ipaddress.ip_address(a) for a in ("192.168.1.10", "8.8.8.8", "fe80::1", "2001:db8::1")]
    resp = [ipaddress.ip_address(a) for a in ("1.1.1.1", "10.0.0.5", "ff02::fb", "2606:4700::1111")]
    codes = direction(_contains(nets, init), _contains(nets, resp))
    assert [DIRECTION_NAMES[c] for c in codes] == ["outbound", "inbound", "internal", "external"]


def test_direction_rejects_columns_of_different_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        direction(np.array([True]), np.array([True, False]))
