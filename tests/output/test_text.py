from __future__ import annotations

import numpy as np

from auditor.output._text import ip_texts, iso_times, mac_texts


def test_ip_texts_formats_both_families_and_repeats() -> None:
    version = np.array([4, 6, 4], dtype=np.uint8)
    hi = np.array([0, 0x20010DB800000000, 0], dtype=np.uint64)
    lo = np.array([0xC0A80A15, 1, 0xC0A80A15], dtype=np.uint64)
    assert ip_texts(version, hi, lo) == ["192.168.10.21", "2001:db8::1", "192.168.10.21"]


def test_ip_texts_does_not_confuse_ipv4_with_ipv6_of_same_value() -> None:
    version = np.array([4, 6], dtype=np.uint8)
    zero = np.zeros(2, dtype=np.uint64)
    lo = np.array([0x0A000001, 0x0A000001], dtype=np.uint64)
    assert ip_texts(version, zero, lo) == ["10.0.0.1", "::a00:1"]


def test_mac_texts_uses_rfc7042_form_and_none_for_absent() -> None:
    macs = np.array([0x4CBD8F112233, 0, 0x0A0B0C0D0E0F], dtype=np.uint64)
    assert mac_texts(macs) == ["4C-BD-8F-11-22-33", None, "0A-0B-0C-0D-0E-0F"]


def test_iso_times_are_utc_with_microseconds() -> None:
    ts = np.array([1_793_610_000_123_456_789, 0], dtype=np.int64)
    assert iso_times(ts) == ["2026-11-02T09:00:00.123456Z", "1970-01-01T00:00:00.000000Z"]


def test_ip_texts_follow_rfc5952() -> None:
    version = np.array([6, 6, 6, 6], dtype=np.uint8)
    hi = np.array([0, 0, 0x20010DB800000000, 0xFE80000000000000], dtype=np.uint64)
    lo = np.array([1, 0xFFFF0A000001, 0x0000000000000001, 0x021122FFFE334455], dtype=np.uint64)
    assert ip_texts(version, hi, lo) == ["::1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::211:22ff:fe33:4455"]


def test_iso_time_equals_iso_times_for_every_value() -> None:
    from auditor.output._text import iso_time

    values = np.array([0, 1, 999, 1000, 1_793_610_000_123_456_789, -1, -999, -1001, 2**62], dtype=np.int64)
    assert [iso_time(int(v)) for v in values] == iso_times(values)
