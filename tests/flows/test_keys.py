"""Flow keys: the exact packing of the narrow fields, and the 64-bit key hash."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from auditor.flows.keys import _C, hash_keys, pack_small_fields

U64 = NDArray[np.uint64]
_M = (1 << 64) - 1


def _u64(*values: int) -> U64:
    return np.array(values, dtype=np.uint64)


def _keys(n: int, seed: int = 1) -> tuple[U64, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 2**64, n, dtype=np.uint64) for _ in range(6))


small = st.tuples(
    st.sampled_from([4, 6]),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)


def _pack(rows: list[tuple[int, int, int, int, int, int]]) -> tuple[U64, U64]:
    cols = list(zip(*rows, strict=True))
    dtypes = (np.uint8, np.uint8, np.uint16, np.uint16, np.uint16, np.uint16)
    return pack_small_fields(*(np.array(c, dtype=d) for c, d in zip(cols, dtypes, strict=True)))


@settings(max_examples=100, deadline=None)
@given(st.lists(small, min_size=1, max_size=20))
def test_pack_small_fields_is_exact_and_reversible(rows: list[tuple[int, int, int, int, int, int]]) -> None:
    w1, w2 = _pack(rows)
    assert w1.dtype == w2.dtype == np.uint64
    for (version, proto, port_a, port_b, outer, inner), a, b in zip(rows, w1.tolist(), w2.tolist(), strict=True):
        # the layout the flow table reads back in FlowTable._records
        assert a & 0xFF == version
        assert (a >> 8) & 0xFF == proto
        assert (a >> 32) & 0xFFFF == port_b
        assert a >> 48 == port_a
        assert (a >> 16) & 0xFFFF == 0
        assert (b >> 16, b & 0xFFFF) == (outer, inner)


@settings(max_examples=100, deadline=None)
@given(small, small)
def test_pack_small_fields_keeps_distinct_fields_distinct(x: tuple[int, ...], y: tuple[int, ...]) -> None:
    w1, w2 = _pack([x, y])  # type: ignore[list-item]
    assert ((w1[0], w2[0]) == (w1[1], w2[1])) == (x == y)


def test_pack_small_fields_keeps_port_order() -> None:
    # port_a and port_b are the ordered endpoints' ports: swapping them is another key
    w1, _ = _pack([(4, 6, 80, 443, 1, 1), (4, 6, 443, 80, 1, 1)])
    assert w1[0] != w1[1]


def test_hash_keys_is_deterministic_u64_per_row() -> None:
    keys = _keys(1000)
    h = hash_keys(*keys)
    assert h.dtype == np.uint64
    assert h.shape == (1000,)
    assert np.array_equal(h, hash_keys(*keys))
    # row-wise: hashing a row alone gives the same value as in a batch
    assert all(int(hash_keys(*(k[i : i + 1] for k in keys))[0]) == int(h[i]) for i in range(0, 1000, 97))


def test_hash_keys_spreads_keys_differing_in_one_field() -> None:
    base = _keys(1)
    hashes = set()
    for field in range(6):
        for bit in range(0, 64, 8):
            cols = [k.copy() for k in base]
            cols[field] ^= np.uint64(1 << bit)
            hashes.add(int(hash_keys(*cols)[0]))
    assert len(hashes) == 6 * 8


def test_hash_keys_has_no_collisions_on_many_random_keys() -> None:
    h = hash_keys(*_keys(200_000, seed=3))
    assert np.unique(h).size == h.size


def test_hash_keys_does_not_warn_on_wrapping_arithmetic() -> None:
    keys = _keys(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hash_keys(*keys)  # the multiplications wrap around 2**64 on purpose


def _crafted_collision() -> tuple[tuple[U64, ...], tuple[U64, ...]]:
    """Two IPv6 keys whose products XOR to the same word under a linear pre-mix (the first hash
    had one: a_lo*C1 ^ b_lo*C3 ^ ...). The chained mix must keep them apart."""
    c1, c3 = int(_C[1]), int(_C[3])
    a_lo, b_lo, a_lo2 = 1, 2, 3
    b_lo2 = ((((a_lo * c1) ^ (b_lo * c3) ^ (a_lo2 * c1)) & _M) * pow(c3, -1, 1 << 64)) & _M
    rest = (0x20010DB8 << 32, 0x20010DB9 << 32, 0x1_0000_0000_0611, 0)
    k1 = (_u64(rest[0]), _u64(a_lo), _u64(rest[1]), _u64(b_lo), _u64(rest[2]), _u64(rest[3]))
    k2 = (_u64(rest[0]), _u64(a_lo2), _u64(rest[1]), _u64(b_lo2), _u64(rest[2]), _u64(rest[3]))
    return k1, k2


def test_hash_keys_keeps_linearly_crafted_keys_apart() -> None:
    k1, k2 = _crafted_collision()
    assert hash_keys(*k1)[0] != hash_keys(*k2)[0]
