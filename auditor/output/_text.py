"""Column-to-text conversions shared by the writers: IP addresses, MACs, timestamps."""

from __future__ import annotations

import ipaddress
import socket

import numpy as np
from numpy.typing import NDArray


def ip_texts(version: NDArray[np.uint8], hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> list[str]:
    """Return the text form of each address; each distinct address is formatted once."""
    n = version.shape[0]
    if not n:
        return []
    keys = np.empty(n, dtype=[("v", "u1"), ("hi", "u8"), ("lo", "u8")])
    keys["v"], keys["hi"], keys["lo"] = version, hi, lo
    uniq, inverse = np.unique(keys, return_inverse=True)
    texts = [_ip_text(int(v), int(h), int(lo_)) for v, h, lo_ in uniq.tolist()]
    return [texts[i] for i in inverse.ravel().tolist()]


def _ip_text(version: int, hi: int, lo: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, lo.to_bytes(4, "big"))
    # not inet_ntop: glibc writes ::10.0.0.1 for IPv4-compatible addresses; RFC 5952 says ::a00:1
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def mac_texts(macs: NDArray[np.uint64]) -> list[str | None]:
    """Return each MAC in RFC 7042 form (AA-BB-CC-DD-EE-FF), None for 0 (no MAC on that link)."""
    uniq, inverse = np.unique(macs, return_inverse=True)
    texts = [_mac_text(int(m)) if m else None for m in uniq.tolist()]
    return [texts[i] for i in inverse.ravel().tolist()]


def _mac_text(mac: int) -> str:
    h = f"{mac:012X}"
    return "-".join(h[i : i + 2] for i in range(0, 12, 2))


def iso_times(ts_ns: NDArray[np.int64]) -> list[str]:
    """Return ISO 8601 UTC times with microseconds, e.g. 2026-11-02T09:00:00.000000Z."""
    if not ts_ns.shape[0]:
        return []
    text = np.datetime_as_string(ts_ns.astype("datetime64[ns]").astype("datetime64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]
