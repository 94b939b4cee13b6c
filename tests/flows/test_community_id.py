"""Community ID: spec baseline vectors, and agreement with the `communityid` reference package."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import communityid  # type: ignore[import-untyped]  # no py.typed in 1.5
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from auditor.flows.community_id import (
    ICMP_TYPE_PAIRS,
    ICMPV6_TYPE_PAIRS,
    PORT_PROTOS,
    FlowTuple,
    community_ids,
    flow_tuple,
)

_U64 = (1 << 64) - 1
_COUNTERPART = {
    proto: {**dict(pairs), **{b: a for a, b in pairs}}
    for proto, pairs in ((1, ICMP_TYPE_PAIRS), (58, ICMPV6_TYPE_PAIRS))
}


@dataclass
class Packets:
    """Columns of N packets in the engine's layout, plus the textual addresses for the oracle."""

    version: NDArray[np.uint8]
    proto: NDArray[np.uint8]
    s_hi: NDArray[np.uint64]
    s_lo: NDArray[np.uint64]
    d_hi: NDArray[np.uint64]
    d_lo: NDArray[np.uint64]
    sport: NDArray[np.uint16]
    dport: NDArray[np.uint16]

    def tuple(self) -> FlowTuple:
        return flow_tuple(
            self.version, self.proto, self.s_hi, self.s_lo, self.d_hi, self.d_lo, self.sport, self.dport
        )

    def ids(self, seed: int = 0) -> list[str]:
        ft = self.tuple()
        return community_ids(
            self.version, self.proto, ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo, ft.port_a, ft.port_b, seed=seed
        )

    def reversed(self) -> Packets:
        """The reply direction: endpoints exchanged; ICMP request types answered by their reply."""
        rtype = np.array(
            [
                _COUNTERPART.get(int(p), {}).get(int(t), int(t))
                for p, t in zip(self.proto, self.sport, strict=True)
            ],
            dtype=np.uint16,
        )
        icmp = (self.proto == 1) | (self.proto == 58)
        return Packets(
            self.version,
            self.proto,
            self.d_hi,
            self.d_lo,
            self.s_hi,
            self.s_lo,
            np.where(icmp, rtype, self.dport).astype(np.uint16),
            # A reply's code need not match the request's; the ID must not depend on it.
            np.where(icmp, (self.dport + 1) % 256, self.sport).astype(np.uint16),
        )


def _packets(rows: list[tuple[int, str, str, int, int]]) -> Packets:
    """Build columns from (proto, saddr, daddr, sport or type, dport or code) rows."""
    cols: dict[str, list[int]] = {k: [] for k in ("v", "p", "sh", "sl", "dh", "dl", "sp", "dp")}
    for proto, saddr, daddr, sport, dport in rows:
        s = ipaddress.ip_address(saddr)
        d = ipaddress.ip_address(daddr)
        cols["v"].append(s.version)
        cols["p"].append(proto)
        cols["sh"].append(int(s) >> 64)
        cols["sl"].append(int(s) & _U64)
        cols["dh"].append(int(d) >> 64)
        cols["dl"].append(int(d) & _U64)
        cols["sp"].append(sport)
        cols["dp"].append(dport)
    return Packets(
        np.array(cols["v"], dtype=np.uint8),
        np.array(cols["p"], dtype=np.uint8),
        np.array(cols["sh"], dtype=np.uint64),
        np.array(cols["sl"], dtype=np.uint64),
        np.array(cols["dh"], dtype=np.uint64),
        np.array(cols["dl"], dtype=np.uint64),
        np.array(cols["sp"], dtype=np.uint16),
        np.array(cols["dp"], dtype=np.uint16),
    )


def _packed(version: int, hi: int, lo: int) -> bytes:
    return lo.to_bytes(4, "big") if version == 4 else ((hi << 64) | lo).to_bytes(16, "big")


def _reference_tuples(pk: Packets) -> list[communityid.FlowTuple]:
    """The reference package's FlowTuple for each packet (ports only for port protocols)."""
    out = []
    for i in range(len(pk.proto)):
        v, proto = int(pk.version[i]), int(pk.proto[i])
        s = _packed(v, int(pk.s_hi[i]), int(pk.s_lo[i]))
        d = _packed(v, int(pk.d_hi[i]), int(pk.d_lo[i]))
        if proto in PORT_PROTOS:
            out.append(communityid.FlowTuple(proto, s, d, int(pk.sport[i]), int(pk.dport[i])))
        else:
            out.append(communityid.FlowTuple(proto, s, d))
    return out


def _reference_ids(pk: Packets, seed: int) -> list[str]:
    algo = communityid.CommunityID(seed=seed)
    return [algo.calc(t) for t in _reference_tuples(pk)]


def _random_packets(rng: np.random.Generator, n: int) -> Packets:
    """Random packets built to hit the corners: shared addresses, equal ports, every ICMP type."""
    version = rng.choice(np.array([4, 6], dtype=np.uint8), n)
    protos = np.array([6, 17, 132, 1, 58, 47, 50, 46, 0, 255], dtype=np.uint8)
    proto = rng.choice(protos, n)
    # Every ICMP and ICMPv6 type with codes 0, 1 and a random one, on both families.
    icmp_rows = np.arange(256 * 2 * 3)
    proto[icmp_rows] = np.where(icmp_rows < 768, 1, 58)
    icmp_type = (icmp_rows % 256).astype(np.uint16)
    icmp_code = np.where((icmp_rows // 256) % 3 == 0, 0, 1).astype(np.uint16)
    icmp_code[(icmp_rows // 256) % 3 == 2] = rng.integers(0, 256, int(np.sum((icmp_rows // 256) % 3 == 2)))

    def addresses() -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
        hi = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
        lo = rng.integers(0, 1 << 64, n, dtype=np.uint64, endpoint=False)
        # A small pool makes equal addresses and equal hi halves common; the top bit is set
        # on half of them so that a signed comparison would go wrong.
        pool_hi = np.array([0, 1, 0xFE80 << 48, 0xFF02 << 48], dtype=np.uint64)
        pool_lo = np.array([1, 2, 0x0A000001, 0xC0A80001, 0xFFFFFFFF, 1 << 63], dtype=np.uint64)
        use_pool = rng.random(n) < 0.5
        hi = np.where(use_pool, rng.choice(pool_hi, n), hi)
        lo = np.where(use_pool, rng.choice(pool_lo, n), lo)
        v4 = version == 4
        return np.where(v4, 0, hi).astype(np.uint64), np.where(v4, lo & 0xFFFFFFFF, lo).astype(np.uint64)

    s_hi, s_lo = addresses()
    d_hi, d_lo = addresses()
    same = rng.random(n) < 0.15  # equal addresses, so the ports decide the order
    d_hi = np.where(same, s_hi, d_hi)
    d_lo = np.where(same, s_lo, d_lo)

    sport = rng.integers(0, 65536, n).astype(np.uint16)
    dport = rng.integers(0, 65536, n).astype(np.uint16)
    small = rng.random(n) < 0.3  # small ports collide often, including sport == dport
    sport = np.where(small, rng.integers(0, 4, n), sport).astype(np.uint16)
    dport = np.where(small, rng.integers(0, 4, n), dport).astype(np.uint16)
    sport[icmp_rows] = icmp_type
    dport[icmp_rows] = icmp_code
    icmp = (proto == 1) | (proto == 58)
    sport[icmp] %= 256
    dport[icmp] %= 256
    return Packets(version, proto, s_hi, s_lo, d_hi, d_lo, sport, dport)


@pytest.fixture(scope="module")
def random_packets() -> Packets:
    return _random_packets(np.random.default_rng(20240601), 4000)


# community-id-spec baseline/README.md, "Default settings" and "A custom seed=1 value" tables.
_V4_A = "1.2.3.4"
_V4_B = "5.6.7.8"
_V6_A = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D"
_V6_B = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"
SPEC_TABLE = [
    # (proto, saddr, daddr, sport, dport, seed 0, seed 1)
    (6, _V4_A, _V4_B, 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (6, _V4_B, _V4_A, 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (17, _V4_A, _V4_B, 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (17, _V4_B, _V4_A, 3344, 1122, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (132, _V4_A, _V4_B, 1122, 3344, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (132, _V4_B, _V4_A, 3344, 1122, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (1, _V4_A, _V4_B, 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, _V4_B, _V4_A, 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, _V4_A, _V4_B, 11, 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="),
    (58, _V6_A, _V6_B, 128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, _V6_B, _V6_A, 129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, _V6_A, _V6_B, 146, 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
    (46, _V4_A, _V4_B, 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, _V4_B, _V4_A, 0, 0, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, _V6_A, _V6_B, 0, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
    (46, _V6_B, _V6_A, 0, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
]

# community-id-spec baseline/baseline_deflt.json (from pcaps/combined.pcap.gz), seed 0.
SPEC_PCAP = [
    (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 136, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 135, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
    (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 136, "1:zavyT/cezQr1fmImYCwYnMXbgck="),
    (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="),
    (
        58,
        "3ffe:501:410:0:2c0:dfff:fe47:33e",
        "3ffe:507:0:1:200:86ff:fe05:80da",
        1,
        4,
        "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
    ),
    (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
    (
        6,
        "2001:470:e5bf:dead:4957:2174:e82c:4887",
        "2607:f8b0:400c:c03::1a",
        63943,
        25,
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    ),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (46, "10.1.12.2", "10.1.12.1", 0, 0, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
]


def test_community_ids_match_spec_baseline_table() -> None:
    pk = _packets([row[:5] for row in SPEC_TABLE])
    assert pk.ids(seed=0) == [row[5] for row in SPEC_TABLE]
    assert pk.ids(seed=1) == [row[6] for row in SPEC_TABLE]


def test_community_ids_match_spec_baseline_pcap() -> None:
    pk = _packets([row[:5] for row in SPEC_PCAP])
    assert pk.ids() == [row[5] for row in SPEC_PCAP]


@pytest.mark.parametrize("seed", [0, 1, 4242, 0xFFFF])
def test_community_ids_match_reference_package(random_packets: Packets, seed: int) -> None:
    assert random_packets.ids(seed) == _reference_ids(random_packets, seed)


def test_flow_tuple_orders_like_reference_package(random_packets: Packets) -> None:
    pk = random_packets
    ft = pk.tuple()
    for i, ref in enumerate(_reference_tuples(pk)):
        v = int(pk.version[i])
        data = ref.in_nbo().in_order()
        assert _packed(v, int(ft.a_hi[i]), int(ft.a_lo[i])) == data.saddr, i
        assert _packed(v, int(ft.b_hi[i]), int(ft.b_lo[i])) == data.daddr, i
        if ref.has_ports():
            assert (int(ft.port_a[i]), int(ft.port_b[i])) == (
                int.from_bytes(data.sport, "big"),
                int.from_bytes(data.dport, "big"),
            ), i
        else:
            assert (int(ft.port_a[i]), int(ft.port_b[i])) == (0, 0), i
        # The reference also "flips" a tuple whose two endpoints are identical; we report that
        # as not swapped, since nothing moved.
        symmetric = data.saddr == data.daddr and ft.port_a[i] == ft.port_b[i]
        assert bool(ft.swapped[i]) == (not ref.in_nbo().is_ordered() and not symmetric), i


def test_community_ids_agree_in_both_directions(random_packets: Packets) -> None:
    fwd, rev = random_packets, random_packets.reversed()
    two_way = np.array(
        [
            int(p) not in _COUNTERPART or int(t) in _COUNTERPART[int(p)]
            for p, t in zip(fwd.proto, fwd.sport, strict=True)
        ]
    )
    assert two_way.sum() > 1800
    for seed in (0, 77):
        ids_fwd = np.array(fwd.ids(seed))
        ids_rev = np.array(rev.ids(seed))
        assert (ids_fwd[two_way] == ids_rev[two_way]).all()
    t_fwd, t_rev = fwd.tuple(), rev.tuple()
    for name in ("a_hi", "a_lo", "b_hi", "b_lo", "port_a", "port_b"):
        np.testing.assert_array_equal(getattr(t_fwd, name)[two_way], getattr(t_rev, name)[two_way])
    symmetric = (t_fwd.a_hi == t_fwd.b_hi) & (t_fwd.a_lo == t_fwd.b_lo) & (t_fwd.port_a == t_fwd.port_b)
    assert (t_fwd.swapped != t_rev.swapped)[two_way & ~symmetric].all()
    assert not (t_fwd.swapped | t_rev.swapped)[symmetric].any()


def test_flow_tuple_never_reorders_one_way_icmp() -> None:
    # Destination unreachable (3) and time exceeded (11) / ICMPv6 packet too big (2): one-way.
    pk = _packets(
        [
            (1, "9.9.9.9", "1.1.1.1", 3, 3),
            (1, "9.9.9.9", "1.1.1.1", 11, 0),
            (58, "2001:db8::9", "2001:db8::1", 2, 0),
        ]
    )
    ft = pk.tuple()
    assert not ft.swapped.any()
    assert ft.a_lo.tolist() == pk.s_lo.tolist()
    assert ft.port_a.tolist() == [3, 11, 2]
    assert ft.port_b.tolist() == [3, 0, 0]


def test_flow_tuple_maps_icmp_reply_to_request_ports() -> None:
    # Echo replies from the larger address to the requester 1.1.1.1 / 2001:db8::1.
    pk = _packets([(1, "9.9.9.9", "1.1.1.1", 0, 0), (58, "2001:db8::9", "2001:db8::1", 129, 0)])
    ft = pk.tuple()
    # (reply type, request type) becomes, seen from the requester, (request type, reply type).
    assert ft.swapped.tolist() == [True, True]
    assert ft.a_lo.tolist() == pk.d_lo.tolist()
    assert ft.port_a.tolist() == [8, 128]
    assert ft.port_b.tolist() == [0, 129]


def test_flow_tuple_zeroes_ports_of_portless_protocols() -> None:
    pk = _packets([(47, "10.0.0.2", "10.0.0.1", 1234, 80), (50, "10.0.0.1", "10.0.0.1", 9, 1)])
    ft = pk.tuple()
    assert ft.port_a.tolist() == [0, 0]
    assert ft.port_b.tolist() == [0, 0]
    assert ft.swapped.tolist() == [True, False]


def test_flow_tuple_orders_equal_addresses_by_port() -> None:
    pk = _packets([(6, "::1", "::1", 443, 50000), (6, "::1", "::1", 50000, 443), (17, "::1", "::1", 53, 53)])
    ft = pk.tuple()
    assert ft.port_a.tolist() == [443, 443, 53]
    assert ft.port_b.tolist() == [50000, 50000, 53]
    assert ft.swapped.tolist() == [False, True, False]


def test_flow_tuple_compares_addresses_unsigned() -> None:
    # 128.0.0.1 and ff02::1 have the top bit set; a signed comparison would put them first.
    pk = _packets(
        [(6, "128.0.0.1", "1.0.0.1", 1, 2), (6, "ff02::1", "fe80::1", 1, 2), (6, "::1:0:0:0:1", "::2", 1, 2)]
    )
    assert pk.tuple().swapped.tolist() == [True, True, True]


def test_community_ids_of_empty_input_is_empty() -> None:
    pk = _packets([])
    assert len(pk.tuple()) == 0
    assert pk.ids() == []


@pytest.mark.parametrize("seed", [-1, 0x10000])
def test_community_ids_rejects_seed_out_of_range(seed: int) -> None:
    pk = _packets([(6, "1.2.3.4", "5.6.7.8", 1, 2)])
    with pytest.raises(ValueError, match="seed"):
        pk.ids(seed)


def test_community_ids_rejects_unknown_version() -> None:
    z = np.zeros(1, dtype=np.uint64)
    with pytest.raises(ValueError, match="version"):
        community_ids(np.array([5], dtype=np.uint8), np.array([6], dtype=np.uint8), z, z, z, z, z, z)


def test_flow_tuple_rejects_columns_of_different_length() -> None:
    z = np.zeros(2, dtype=np.uint64)
    with pytest.raises(ValueError, match="equal length"):
        flow_tuple(np.array([4], dtype=np.uint8), np.array([6, 6], dtype=np.uint8), z, z, z, z, z, z)


_addr_v4 = st.one_of(st.sampled_from([0, 1, 0x0A000001, 0x80000000, 0xFFFFFFFF]), st.integers(0, 2**32 - 1))
_addr_v6 = st.one_of(
    st.sampled_from([0, 1, 0xFE80 << 112, (0xFF02 << 112) | 1, (1 << 64) | 1, (1 << 64) | 2, 2**128 - 1]),
    st.integers(0, 2**128 - 1),
)
_proto = st.sampled_from([1, 6, 17, 58, 132, 0, 2, 47, 50, 255])


@st.composite
def _packet_rows(draw: st.DrawFn) -> tuple[int, str, str, int, int]:
    proto = draw(_proto)
    addr = _addr_v4 if draw(st.booleans()) else _addr_v6
    s = draw(addr)
    d = draw(st.one_of(st.just(s), addr))
    port = st.integers(0, 255) if proto in (1, 58) else st.one_of(st.integers(0, 3), st.integers(0, 65535))
    ip = ipaddress.IPv4Address if addr is _addr_v4 else ipaddress.IPv6Address
    return proto, str(ip(s)), str(ip(d)), draw(port), draw(port)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(_packet_rows(), min_size=1, max_size=8), seed=st.sampled_from([0, 1, 0xFFFF]))
def test_community_ids_match_reference_for_any_packets(
    rows: list[tuple[int, str, str, int, int]], seed: int
) -> None:
    pk = _packets(rows)
    assert pk.ids(seed) == _reference_ids(pk, seed)


def test_flow_tuple_is_idempotent_on_its_own_output(random_packets: Packets) -> None:
    # Consumers that store the ordered tuple (ICMP ports already mapped) can re-derive IDs from it.
    pk = random_packets
    ft = pk.tuple()
    again = flow_tuple(pk.version, pk.proto, ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo, ft.port_a, ft.port_b)
    for name in ("a_hi", "a_lo", "b_hi", "b_lo", "port_a", "port_b"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ft, name))
    assert not again.swapped.any()
