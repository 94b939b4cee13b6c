from __future__ import annotations

import ctypes.util

import pytest

from auditor.runtime import bound_heap_growth


def test_bound_heap_growth_sets_the_glibc_threshold() -> None:
    name = ctypes.util.find_library("c")
    if not name or "libc.so" not in name:
        pytest.skip("not glibc")
    assert bound_heap_growth() is True
