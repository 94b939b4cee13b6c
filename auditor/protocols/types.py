"""What every protocol record offers the device classifier."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Protocol

Fact = tuple[str, str]
"""(field, value): e.g. ("server", "Hikvision-Webs"), ("model", "DS-2CD2143G0-I")."""


class Record(Protocol):
    """A parsed payload."""

    protocol: ClassVar[str]
    """The protocol's name as signatures write it: 'sadp', 'dhip', 'ssdp', 'http', 'tls'..."""

    def facts(self) -> Iterator[Fact]:
        """Yield what the payload says about its sender, as (field, value) pairs; values are capped text."""
        ...
