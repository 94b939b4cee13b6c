"""Column-to-text conversions shared by the writers: IP addresses, MACs, timestamps."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from auditor.flows.types import ip_text

_T = TypeVar("_T")


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
                text = cache[(h, low)] = ip_text(6, h, low)
            out[pos] = text
    return out


def mac_texts(macs: NDArray[np.uint64]) -> list[str | None]:
    """Return each MAC in RFC 7042 form (AA-BB-CC-DD-EE-FF), None for 0 (no MAC on that link)."""
    return per_distinct(macs, lambda m: mac_text(m) if m else None)


def per_distinct(column: NDArray[Any], make: Callable[[Any], _T]) -> list[_T]:
    """Return make(value) for each value of `column`, computed once per distinct value."""
    uniq, inverse = np.unique(column, return_inverse=True)
    texts = [make(v) for v in uniq.tolist()]
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_time(ts_ns: int) -> str:
    """Return one time as iso_times does (microseconds, floored), without a numpy round trip."""
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
