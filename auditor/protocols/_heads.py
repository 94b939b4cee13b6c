"""HTTP-like message heads (start line + header fields), shared by the SSDP, HTTP and RTSP parsers.

Sources: RFC 9112 §2-§5 (HTTP/1.1 message format: start line, field lines, empty line), which
SSDP (UPnP Device Architecture 2.0 §1) and RTSP (RFC 2326 §4) reuse over UDP and TCP. The parser is
deliberately lenient, as embedded servers are: CRLF or bare LF line ends, field lines without a
colon are skipped, obsolete folded continuation lines (RFC 9112 §5.2) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.protocols._wire import text

MAX_HEAD_BYTES = 8192
"""Default cap on the bytes of a payload looked at for the head."""

MAX_HEADERS = 64
"""Default cap on the header fields kept."""

MAX_START_LINE = 1024
"""Cap on the start line (characters): request targets can be longer than an ordinary value."""

MAX_NAME = 128
"""Cap on one header field name (characters)."""

_CONTROL = frozenset(range(0x20)) - {0x09} | {0x7F}
"""Bytes that may not appear in a start line: C0 controls except HTAB, and DEL (RFC 9112 §2.2)."""


@dataclass(frozen=True, slots=True)
class Head:
    """The head of an HTTP-like message."""

    start_line: str
    """The first line: 'NOTIFY * HTTP/1.1', 'HTTP/1.1 200 OK', 'GET / HTTP/1.1' (stripped, capped)."""

    headers: tuple[tuple[str, str], ...]
    """(name, value) in wire order; names lower-cased, values stripped and capped at 256 chars."""

    def get(self, name: str) -> str | None:
        """Return the first value of header `name` (case-insensitive), or None when it is absent."""
        key = name.lower()
        for k, v in self.headers:
            if k == key:
                return v
        return None

    def get_all(self, name: str) -> tuple[str, ...]:
        """Return every value of header `name` (case-insensitive) in wire order."""
        key = name.lower()
        return tuple(v for k, v in self.headers if k == key)


def parse_head(payload: bytes, max_bytes: int = MAX_HEAD_BYTES, max_headers: int = MAX_HEADERS) -> Head | None:
    """Return the head of an HTTP-like message, or None when there is no printable start line.

    Only the first `max_bytes` bytes are read; at most `max_headers` fields are kept. The head ends
    at the first empty line or at the end of the capped data (a truncated last line is kept).
    """
    lines = payload[: max(0, max_bytes)].split(b"\n")
    i = 0
    # RFC 9112 §2.2: a recipient SHOULD ignore at least one empty line before the start line.
    while i < len(lines) and not lines[i].strip(b"\r"):
        i += 1
    if i == len(lines):
        return None
    raw_start = lines[i].rstrip(b"\r")
    if not raw_start.strip() or any(b in _CONTROL for b in raw_start):
        return None
    start_line = text(raw_start, MAX_START_LINE)
    headers: list[tuple[str, str]] = []
    for raw in lines[i + 1 :]:
        if len(headers) >= max_headers:
            break
        line = raw.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue  # RFC 9112 §5.2: obsolete line folding; ignored rather than joined
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = text(name, MAX_NAME).lower()
        if not key:
            continue
        headers.append((key, text(value)))
    return Head(start_line=start_line, headers=tuple(headers))
