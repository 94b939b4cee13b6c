"""Bounded reading of untrusted payloads: every parser reads through these, never by bare slicing.

A parser catches only Malformed (and returns None); any other exception is a bug for the fuzz
tests to find. Strings from the wire are decoded with errors="replace" and capped, so a record
never holds more than a few KB whatever the payload says.
"""

from __future__ import annotations

import ipaddress
import re
import struct

_U16, _U32, _U16LE, _U32LE = (struct.Struct(f) for f in (">H", ">I", "<H", "<I"))

MAX_TEXT = 256
"""Default cap on one string taken from the wire (characters)."""


class Malformed(Exception):
    """The payload is not what the parser expected (too short, bad length, bad structure)."""


class Reader:
    """A cursor over bytes that raises Malformed instead of reading past the end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def left(self) -> int:
        """Return how many bytes remain."""
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        """Return the next n bytes."""
        if n < 0 or self.pos + n > len(self.data):
            raise Malformed(f"wanted {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        """Move past n bytes."""
        self.take(n)

    # The fixed-size readers check the bounds and unpack in place (no slice, no take() call): parsers
    # call them millions of times on a busy capture.
    def u8(self) -> int:
        """Return the next byte."""
        pos = self.pos
        if pos >= len(self.data):
            raise Malformed(f"wanted 1 byte at {pos}, have 0")
        self.pos = pos + 1
        return self.data[pos]

    def u16(self) -> int:
        """Return the next big-endian 16-bit integer."""
        return self._unpack(_U16)

    def u24(self) -> int:
        """Return the next big-endian 24-bit integer."""
        return int.from_bytes(self.take(3), "big")

    def u32(self) -> int:
        """Return the next big-endian 32-bit integer."""
        return self._unpack(_U32)

    def u16le(self) -> int:
        """Return the next little-endian 16-bit integer."""
        return self._unpack(_U16LE)

    def u32le(self) -> int:
        """Return the next little-endian 32-bit integer."""
        return self._unpack(_U32LE)

    def _unpack(self, fmt: struct.Struct) -> int:
        pos = self.pos
        end = pos + fmt.size
        if end > len(self.data):
            raise Malformed(f"wanted {fmt.size} bytes at {pos}, have {len(self.data) - pos}")
        self.pos = end
        return int(fmt.unpack_from(self.data, pos)[0])

    def rest(self) -> bytes:
        """Return everything left."""
        return self.take(self.left)

    def sub(self, n: int) -> Reader:
        """Return a Reader over the next n bytes (length-prefixed structures), moving past them."""
        return Reader(self.take(n))


def text(raw: bytes, cap: int = MAX_TEXT) -> str:
    """Return wire bytes as text (UTF-8, bad bytes replaced), stripped and cut to `cap` characters."""
    return raw[: cap * 4].decode("utf-8", errors="replace").strip()[:cap]


_MAC_DIGITS = re.compile(r"\A[0-9A-Fa-f]{12}\Z")


def mac_text(value: str | None, separators: str = "-:") -> str | None:
    """Return a MAC written with any of `separators` (or none) between digits as 'AA-BB-CC-DD-EE-FF',
    else None."""
    if value is None:
        return None
    digits = value.translate({ord(c): None for c in separators})
    if not _MAC_DIGITS.match(digits):
        return None
    digits = digits.upper()
    return "-".join(digits[i : i + 2] for i in range(0, 12, 2))


def ipv4_text(value: str | None) -> str | None:
    """Return a dotted IPv4 address, or None when `value` is not one."""
    if value is None or len(value) > 15:
        return None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None
