"""An append-only JSON-lines file that rotates by size: what a sensor running for months writes.

`flows.jsonl` grows until it reaches the limit, is renamed `flows-<UTC time>.jsonl`, and a new one
starts; only the newest `keep` rotated files are kept. Each write is flushed, so what was written
is on disk when the sensor is killed (the store of issue 7 replaces these files).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from pathlib import Path
from typing import BinaryIO


def file_stamp() -> str:
    """Return the UTC time as a file-name part that sorts in time order: 20261122T103000.123456Z."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class RotatingJsonl:
    """Appends JSON lines to `path`, rotating it at `max_bytes`; keeps `keep` rotated files."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.written = 0
        self._fh: BinaryIO = open(path, "ab")  # noqa: SIM115 - held open for the sensor's life
        self._size = self._fh.tell()
        self._cut_torn_tail()

    def write_lines(self, lines: list[bytes]) -> int:
        """Append lines (JSON, without newline) and flush; rotate first when the file is full."""
        if not lines:
            return 0
        return self.write_block(b"\n".join(lines) + b"\n", len(lines))

    def write_block(self, data: bytes, lines: int) -> int:
        """Append `lines` whole lines given as one block (each ended by a newline) and flush; rotate first
        when the file is full."""
        if not data:
            return 0
        if self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError:
            # a full disk wrote part of the lines: cut them off, so the file keeps whole lines only
            self._truncate(self._size)
            raise
        self._size += len(data)
        self.written += lines
        return lines

    def _cut_torn_tail(self) -> None:
        """Drop a last line without its newline (the previous writer was killed mid-line)."""
        if not self._size:
            return
        with open(self.path, "rb") as fh:
            fh.seek(max(self._size - 65_536, 0))
            tail = fh.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        self._truncate(self._size - len(tail) + cut + 1 if cut >= 0 else max(self._size - len(tail), 0))

    def _truncate(self, size: int) -> None:
        try:
            self._fh = _reopen(self._fh, self.path)
            os.truncate(self.path, size)
            self._size = size
        except OSError:
            pass  # nothing better to do: the next write appends after the torn part

    def rotate(self) -> Path | None:
        """Rename the current file aside (if it has anything) and start a new one; prune old ones."""
        self._fh.close()
        moved = None
        if self.path.exists() and self.path.stat().st_size:
            stamp = file_stamp()
            moved = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
            os.replace(self.path, moved)
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._size = 0
        self._prune()
        return moved

    def _prune(self) -> None:
        rotated = sorted(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))
        for old in rotated[: max(len(rotated) - self.keep, 0)]:
            old.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk fails the last flush: the lines are already cut
            self._fh.close()


def _reopen(fh: BinaryIO, path: Path) -> BinaryIO:
    """Drop what the buffered file still holds and open it again for appending."""
    with contextlib.suppress(OSError):
        fh.close()
    return open(path, "ab")
