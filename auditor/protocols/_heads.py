"""HTTP-like message heads (start line + header fields), shared by the SSDP, HTTP and RTSP parsers.

Sources: RFC 9112 §2-§5 (HTTP/1.1 message format: start line, field lines, empty line), which
SSDP (UPnP Device Architecture 2.0 §1) and RTSP (RFC 2326 §4) reuse over UDP and TCP. The parser is
deliberately lenient, as embedded servers are: CRLF or bare LF line ends, field lines without a
colon are skipped, obsolete folded continuation lines (RFC 9112 §5.2) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditor.protocols._wire import MAX_TEXT, text

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

_START_LINE = re.compile(
    rb"(?:\r*\n)*"  # RFC 9112 §2.2: empty lines before the start line are ignored
    + b"([^"
    + re.escape(bytes(sorted(_CONTROL)))
    + b"]*)"  # the start line: no control bytes (CR and LF among them)
    + rb"\r*(?:\n|\Z)"  # its end: CRs, then LF or the end of the data
).match
"""Finds the start line after any empty lines; no match when a control byte other than the line end's CRs is in it."""

_BLANK_LINE = re.compile(rb"\n\r*\n").search
"""The line end followed by the empty line that ends a head."""


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
    split = split_head(payload, max_bytes)
    if split is None:
        return None
    start_line, block = split
    return Head(start_line=start_line, headers=tuple(field_lines(block, max_headers)))


def split_head(payload: bytes, max_bytes: int = MAX_HEAD_BYTES) -> tuple[str, bytes] | None:
    """Return (start line, field block) as parse_head reads them, or None when there is no printable start line.

    The field block is the bytes after the start line up to the first empty line (excluded) or the end of
    the capped data: only the head is looked at, not a body that follows it. field_lines reads it.
    """
    data = payload[: max(0, max_bytes)]
    found = _START_LINE(data)
    if found is None:
        return None
    raw_start = found.group(1)
    if not raw_start.strip():
        return None
    start_line = text(raw_start, MAX_START_LINE)
    end = found.end()
    if end == len(data):
        return start_line, b""
    blank = _BLANK_LINE(data, end - 1)  # from the start line's LF: an empty line right after it ends the head
    return start_line, data[end:] if blank is None else data[end : blank.start()]


def field_lines(block: bytes, max_headers: int, wanted: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """Return the (name lower-cased, value) fields of a field block, at most `max_headers` of them, in wire order.

    Lines end with LF or CRLF; the walk stops at an empty line. Obsolete folded lines (RFC 9112 §5.2) and
    lines without a colon or with an empty name are skipped and not counted. With `wanted`, only the
    fields named in it are returned (the others still count towards `max_headers`, and their values are
    not decoded). Text is taken as _wire.text does: decoded, stripped, capped.
    """
    out: list[tuple[str, str]] = []
    kept = 0
    if block.isascii():
        # The usual head: decoded once. For ASCII, text(raw, cap) is raw.decode()[: cap * 4].strip()[:cap], which
        # is what is done to the decoded name and value below.
        for line in block.decode("ascii").split("\n"):
            if kept >= max_headers:
                break
            line = line.rstrip("\r")
            if not line:
                break
            if line[0] in " \t":
                continue  # RFC 9112 §5.2: obsolete line folding; ignored rather than joined
            name, colon, value = line.partition(":")
            if not colon:
                continue
            key = name[: MAX_NAME * 4].strip()[:MAX_NAME].lower()
            if not key:
                continue
            kept += 1
            if wanted is None or key in wanted:
                out.append((key, value[: MAX_TEXT * 4].strip()[:MAX_TEXT]))
        return out
    for raw in block.split(b"\n"):
        if kept >= max_headers:
            break
        raw_line = raw.rstrip(b"\r")
        if not raw_line:
            break
        if raw_line[0] in (0x20, 0x09):
            continue  # obsolete line folding, as above
        raw_name, raw_colon, raw_value = raw_line.partition(b":")
        if not raw_colon:
            continue
        key = text(raw_name, MAX_NAME).lower()
        if not key:
            continue
        kept += 1
        if wanted is None or key in wanted:
            out.append((key, text(raw_value)))
    return out
