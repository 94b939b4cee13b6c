"""Flow keys: a 64-bit hash of the canonical (protocol, addresses, ports, VLANs) tuple, per packet."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]

# Odd 64-bit multipliers (from splitmix64 / murmur3 fmix64); any odd constants would do: the
# table compares full keys on every hash match, so hash quality costs speed, never correctness.
_C = [np.uint64(c) for c in (
    0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB,
    0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0xD6E8FEB86659FD93,
)]
_S33 = np.uint64(33)


def pack_small_fields(
    ip_version: NDArray[np.uint8],
    ip_proto: NDArray[np.uint8],
    port_a: NDArray[np.uint16],
    port_b: NDArray[np.uint16],
    vlan_outer: NDArray[np.uint16],
    vlan_inner: NDArray[np.uint16],
) -> tuple[U64, U64]:
    """Return the narrow key fields packed into two u64 words (exact, reversible)."""
    w1 = (
        (port_a.astype(np.uint64) << np.uint64(48))
        | (port_b.astype(np.uint64) << np.uint64(32))
        | (ip_proto.astype(np.uint64) << np.uint64(8))
        | ip_version.astype(np.uint64)
    )
    w2 = (vlan_outer.astype(np.uint64) << np.uint64(16)) | vlan_inner.astype(np.uint64)
    return w1, w2


def hash_keys(a_hi: U64, a_lo: U64, b_hi: U64, b_lo: U64, w1: U64, w2: U64) -> U64:
    """Return a 64-bit hash per key (a chained multiply-xorshift mix of the six key words)."""
    h = np.full(a_hi.shape, _C[2], dtype=np.uint64)
    # each word is folded in and mixed before the next one, so no two words can cancel out
    for col, c in zip((a_hi, a_lo, b_hi, b_lo, w1, w2), _C, strict=True):
        h ^= col
        h *= c
        h ^= h >> _S33
    h *= _C[4]
    h ^= h >> _S33
    return h
