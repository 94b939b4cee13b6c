"""JSON-lines writers: one document per line to a stream the caller opened."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import orjson


class JsonLinesWriter:
    """Writes dicts as JSON lines (UTF-8) to a binary stream; counts what it wrote."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.written = 0

    def write(self, documents: Iterable[dict[str, Any]]) -> int:
        """Write each document as one line; return how many were written."""
        dumps = orjson.dumps
        lines = [dumps(doc) for doc in documents]
        if lines:
            self._stream.write(b"\n".join(lines) + b"\n")
        self.written += len(lines)
        return len(lines)

    def write_lines(self, lines: list[bytes]) -> int:
        """Write lines that are already JSON (no newline); return how many were written."""
        if lines:
            self._stream.write(b"\n".join(lines) + b"\n")
        self.written += len(lines)
        return len(lines)

    def close(self) -> None:
        """Flush the stream (the caller owns and closes it)."""
        self._stream.flush()
