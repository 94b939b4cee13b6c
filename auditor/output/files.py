"""Files replaced whole: a reader (a dashboard, a mail job, `auditor status`) never sees half of one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replacing(path: Path, mode: str) -> Iterator[Any]:
    """Open a temporary file beside `path` that replaces it only once written whole. A write that fails
    half-way leaves the previous file, and removes the temporary copy (on a full disk it would hold
    the space the next attempt needs)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8", newline=None if "b" in mode else "") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
