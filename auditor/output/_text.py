"""Column-to-text conversions shared by the writers: IP addresses, MACs, timestamps."""

from __future__ import annotations

import ipaddress
import socket

import numpy as np
from numpy.typing import NDArray


def ip_texts(version: NDArray[np.uint8], hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> list[str]:
    """Return the text form of each address; each distinct address is formatted once."""
    out: list[str] = [""] * int(version.shape[0])
    v4 = np.flatnonzero(version == 4)
    if v4.size:  # one integer sort: far cheaper than sorting (hi, lo) records
        uniq, inverse = np.unique(lo[v4], return_inverse=True)
        texts = [socket.inet_ntop(socket.AF_INET, int(a).to_bytes(4, "big")) for a in uniq.tolist()]
        for pos, i in zip(v4.tolist(), inverse.ravel().tolist(), strict=True):
            out[pos] = texts[i]
    v6 = np.flatnonzero(version != 4)
    if v6.size:
        cache: dict[tuple[int, int], str] = {}
        for pos, h, low in zip(v6.tolist(), hi[v6].tolist(), lo[v6].tolist(), strict=True):
            text = cache.get((h, low))
            if text is None:
                text = cache[(h, low)] = _ip_text(6, h, low)
            out[pos] = text
    return out


def _ip_text(version: int, hi: int, lo: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, lo.to_bytes(4, "big"))
    if hi == 0 and lo >> 32 == 0:
        # glibc's inet_ntop writes ::10.0.0.1 for the deprecated IPv4-compatible range; RFC 5952
        # text is ::a00:1 (IPv4-mapped ::ffff:10.0.0.1 keeps its dotted tail, as RFC 5952 §5 says)
        return str(ipaddress.IPv6Address(lo))
    return socket.inet_ntop(socket.AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))


def mac_texts(macs: NDArray[np.uint64]) -> list[str | None]:
    """Return each MAC in RFC 7042 form (AA-BB-CC-DD-EE-FF), None for 0 (no MAC on that link)."""
    uniq, inverse = np.unique(macs, return_inverse=True)
    texts = [mac_text(int(m)) if m else None for m in uniq.tolist()]
    return [texts[i] for i in inverse.ravel().tolist()]


def mac_text(mac: int) -> str:
    """Return one MAC in RFC 7042 form, AA-BB-CC-DD-EE-FF."""
    return mac.to_bytes(6, "big").hex("-").upper()


def iso_times(ts_ns: NDArray[np.int64]) -> list[str]:
    """Return ISO 8601 UTC times with microseconds, e.g. 2026-11-02T09:00:00.000000Z."""
    if not ts_ns.shape[0]:
        return []
    text = np.datetime_as_string(ts_ns.astype("datetime64[ns]").astype("datetime64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]
