"""Shared helpers of the decode tests: whole Headers rows as plain dicts, one-frame decoding."""

from __future__ import annotations

import dataclasses

from scapy.layers.l2 import Ether
from scapy.packet import Packet

from auditor.capture.types import batch_from_frames
from auditor.decode import Headers, decode
from auditor.decode.types import KIND_SKIPPED, SKIP_CODE

FIELDS = tuple(f.name for f in dataclasses.fields(Headers) if f.name != "batch")
SRC, DST = "00:11:22:33:44:55", "66:77:88:99:aa:bb"


def rows(h: Headers) -> list[dict[str, int]]:
    """Every row of `h` as a plain dict of Python ints/bools."""
    return [{name: getattr(h, name)[i].item() for name in FIELDS} for i in range(len(h))]


def decode_one(frame: bytes | Packet, linktype: int = 1) -> dict[str, int]:
    """Decode one frame alone and return its row."""
    return rows(decode(batch_from_frames([bytes(frame)], linktype=linktype)))[0]


def eth() -> Ether:
    return Ether(src=SRC, dst=DST)


def assert_skipped(row: dict[str, int], reason: str) -> None:
    assert (row["kind"], row["skip_reason"]) == (KIND_SKIPPED, SKIP_CODE[reason])
