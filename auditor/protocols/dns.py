"""DNS messages (unicast DNS on UDP 53 and the Multicast DNS wire format on UDP 5353).

Sources: RFC 1035 §4.1 (header, question, resource record layout) and §4.1.4 (name compression),
RFC 2782 (SRV rdata), RFC 3596 (AAAA), RFC 4343 §2.1 (the \\DDD escape for label octets),
RFC 6762 §18.12-§18.13 (mDNS: unicast-response bit in QCLASS, cache-flush bit in RRCLASS),
RFC 6891 §6.1.2 (OPT: its CLASS field is the UDP payload size, not a class).

This is the general parser that mdns.py builds on and passive DNS will use: the record keeps every
question and resource record it read (up to the caps), with rdata decoded for the types people
look at. Hostile input is contained: compression pointers must point strictly backwards (so loops
are impossible), names are limited to 255 wire bytes and 128 labels, each section to 64 records.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_MESSAGE = 65535
"""Bytes of a payload looked at: the largest DNS message a UDP datagram can carry."""

DNS_HEADER_LEN = 12
"""Fixed header: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT (RFC 1035 §4.1.1)."""

MAX_NAME_BYTES = 255
"""Longest name on the wire, length octets and the root included (RFC 1035 §2.3.4)."""

MAX_LABELS = 128
"""Most labels in a name: 255 bytes allow at most 127 one-octet labels plus the root."""

MAX_NAME_STEPS = 256
"""Labels plus pointer jumps followed while reading one name (work cap; pointers only go backwards)."""

MAX_MESSAGE_STEPS = 8192
"""Labels plus pointer jumps for all names of a message: 256 records with two names of ~10 labels
each need about 5,000; a hostile message of long pointer chains stops here (complete=False)."""

MAX_SECTION_RECORDS = 64
"""Records read per section; a section claiming more ends the parse there (complete=False)."""

MAX_TXT_STRINGS = 64
"""Character-strings kept per TXT record."""

MAX_TXT_CHARS = _wire.MAX_TEXT
"""Cap on one TXT character-string (characters)."""

MAX_ANSWER_FACTS = 32
"""Answer facts yielded per message."""

DNS_PTR_MASK = 0xC0
"""Top two bits of a length octet: 11 = compression pointer, 00 = label of at most 63 octets (RFC 1035 §4.1.4)."""

# Header flag bits (RFC 1035 §4.1.1)
DNS_QR = 0x8000
DNS_OPCODE_SHIFT = 11
DNS_AA = 0x0400
DNS_TC = 0x0200
DNS_RD = 0x0100
DNS_RA = 0x0080
DNS_RCODE_MASK = 0x000F

MDNS_UNICAST_RESPONSE = 0x8000
"""Top bit of QCLASS in mDNS: the querier accepts a unicast reply (RFC 6762 §18.12)."""

MDNS_CACHE_FLUSH = 0x8000
"""Top bit of RRCLASS in mDNS: this record replaces cached ones (RFC 6762 §18.13)."""

# RR TYPE values (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 6891, RFC 4034, RFC 9460)
TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_HINFO = 13
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41
TYPE_NSEC = 47
TYPE_HTTPS = 65
TYPE_ANY = 255

TYPE_NAMES = {
    TYPE_A: "A",
    TYPE_NS: "NS",
    TYPE_CNAME: "CNAME",
    TYPE_SOA: "SOA",
    TYPE_PTR: "PTR",
    TYPE_HINFO: "HINFO",
    TYPE_MX: "MX",
    TYPE_TXT: "TXT",
    TYPE_AAAA: "AAAA",
    TYPE_SRV: "SRV",
    TYPE_OPT: "OPT",
    TYPE_NSEC: "NSEC",
    TYPE_HTTPS: "HTTPS",
    TYPE_ANY: "ANY",
}
"""Mnemonics used in facts; other types are written 'TYPE<n>' (RFC 3597 §5)."""

_NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR})
"""Types whose rdata is a single domain name."""

_RDATA_TYPES = frozenset({TYPE_A, TYPE_AAAA, TYPE_SRV, TYPE_TXT}) | _NAME_TYPES
"""Types whose rdata is decoded (see _read_rdata)."""

_FACT_TYPES = frozenset({TYPE_A, TYPE_AAAA, TYPE_CNAME})
"""Answer types reported as facts."""


def _escape_table() -> tuple[str, ...]:
    """Return the text for each octet of a (lower-cased) label: RFC 4343 §2.1 escapes."""
    out: list[str] = []
    for b in range(256):
        if b in (0x2E, 0x5C):  # '.' and '\' inside a label would make the name ambiguous
            out.append("\\" + chr(b))
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return tuple(out)


_LABEL_TEXT = _escape_table()

_PLAIN_LABEL = re.compile(rb"[\x20-\x2d\x2f-\x5b\x5d-\x7e]*")
"""Labels needing no escape: printable ASCII except '.' and '\\'."""

_CONTROL_ESCAPES = {c: f"\\{c:03d}" for c in [*range(0x20), 0x7F]}
"""str.translate table: control characters in TXT strings become \\DDD as in names."""


@dataclass(frozen=True, slots=True)
class SrvData:
    """SRV rdata (RFC 2782)."""

    priority: int
    """Lower is tried first."""

    weight: int
    """Share among targets of equal priority."""

    port: int
    """The service's port on the target."""

    target: str
    """The host offering the service (a name, lower-cased, no trailing dot)."""


RData = str | tuple[str, ...] | SrvData | None
"""Decoded rdata: address text (A/AAAA), a name (CNAME/PTR/NS), strings (TXT), SrvData, or None."""


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class DnsQuestion:
    """One entry of the question section."""

    name: str
    """QNAME, lower-cased, without the trailing dot, odd octets escaped as \\DDD; '' is the root."""

    qtype: int
    """QTYPE (1 = A, 28 = AAAA, 12 = PTR, 255 = ANY...)."""

    qclass: int
    """QCLASS with the mDNS unicast-response bit masked off (1 = IN)."""

    unicast_response: bool = False
    """The mDNS QU bit: the top bit of QCLASS was set (RFC 6762 §5.4)."""


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class DnsResource:
    """One resource record of the answer, authority or additional section."""

    name: str
    """Owner name, lower-cased, without the trailing dot, odd octets escaped as \\DDD."""

    rtype: int
    """TYPE."""

    rclass: int
    """CLASS with the mDNS cache-flush bit masked off; for OPT, the raw UDP payload size."""

    ttl_s: int
    """TTL in seconds (for OPT, the extended RCODE and flags, as on the wire)."""

    rdata: RData
    """Decoded rdata for A, AAAA (text), CNAME/PTR/NS (name), SRV, TXT; None for other types or bad rdata."""

    cache_flush: bool = False
    """The mDNS cache-flush bit: the top bit of CLASS was set (RFC 6762 §10.2); never set for OPT."""


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class DnsMessage:
    """One DNS message: header flags and the four sections."""

    protocol: ClassVar[str] = "dns"

    id: int
    """Transaction ID (0 in multicast DNS)."""

    qr: bool
    """True for a response, False for a query."""

    opcode: int
    """0 = QUERY, 4 = NOTIFY, 5 = UPDATE..."""

    aa: bool
    """Authoritative answer."""

    tc: bool
    """Truncated: the answer did not fit (or, in mDNS, more known answers follow)."""

    rd: bool
    """Recursion desired."""

    ra: bool
    """Recursion available."""

    rcode: int
    """Response code from the header (0 = NOERROR, 3 = NXDOMAIN...)."""

    questions: tuple[DnsQuestion, ...] = ()
    """The question section (at most 64)."""

    answers: tuple[DnsResource, ...] = ()
    """The answer section (at most 64)."""

    authority: tuple[DnsResource, ...] = ()
    """The authority section (at most 64; mDNS probes put their proposed records here)."""

    additional: tuple[DnsResource, ...] = ()
    """The additional section (at most 64)."""

    complete: bool = True
    """False when a section held more than 64 records, a resource record was cut off or malformed, or
    the names took more than MAX_MESSAGE_STEPS: the sections then hold what was read before that point."""

    def facts(self) -> Iterator[Fact]:
        """Yield ('query', qname) for a query's questions and ('answer', 'name TYPE value') for a response.

        A response's question section only echoes what the client asked, and a query's answer
        section lists answers the client already knows, so neither describes the sender.
        """
        if not self.qr:
            for q in self.questions:
                if q.name:
                    yield ("query", q.name)
            return
        emitted = 0
        for rr in self.answers:
            if emitted >= MAX_ANSWER_FACTS:
                break
            if rr.rtype in _FACT_TYPES and isinstance(rr.rdata, str) and rr.rdata:
                yield ("answer", f"{rr.name} {type_name(rr.rtype)} {rr.rdata}")
                emitted += 1


def type_name(rtype: int) -> str:
    """Return the mnemonic of an RR type ('A', 'PTR'...) or 'TYPE<n>' for one without a mnemonic here."""
    return TYPE_NAMES.get(rtype, f"TYPE{rtype}")


def labels(name: str) -> list[str]:
    """Return the labels of a name as this module writes it, splitting only at unescaped dots."""
    if not name:
        return []
    out: list[str] = []
    start = 0
    i = 0
    n = len(name)
    while i < n:
        c = name[i]
        if c == "\\":
            i += 2  # '\.', '\\' or the first digit of \DDD: none of them ends a label
            continue
        if c == ".":
            out.append(name[start:i])
            start = i + 1
        i += 1
    out.append(name[start:])
    return out


def _label_text(raw: bytes) -> str:
    """Return one label lower-cased, with RFC 4343 escapes for '.', '\\' and octets outside printable ASCII."""
    low = raw.lower()
    if _PLAIN_LABEL.fullmatch(low):
        return low.decode("ascii")
    return "".join(_LABEL_TEXT[b] for b in low)


_PLAIN_NAME = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")
"""A name joined with '.' needing no escape: printable ASCII except '\\' (dots inside labels are caught by count)."""


def _name_text(parts: list[bytes]) -> str:
    """Return the labels as a name: joined, lower-cased and escaped at once when no label needs an escape."""
    if not parts:
        return ""
    joined = b".".join(parts).lower()
    if _PLAIN_NAME.fullmatch(joined) and joined.count(b".") == len(parts) - 1:
        return joined.decode("ascii")
    return ".".join(map(_label_text, parts))


class _NameReader:
    """Reads names from one message, sharing a budget of steps across all of them (work cap)."""

    __slots__ = ("data", "known", "steps_left")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.steps_left = MAX_MESSAGE_STEPS
        self.known: dict[int, tuple[str, int, int]] = {}
        """Offset where a name was read -> (its text, steps, wire bytes of its labels), for pointers to it."""

    def read(self, pos: int) -> tuple[str, int]:
        """Return (name, offset just after it in place); follows compression pointers strictly backwards.

        Every label and pointer is one step, counted against MAX_NAME_STEPS for this name and against the
        message's budget: a name that would take the budget below zero raises (and leaves it below zero).
        """
        data = self.data
        size = len(data)
        budget = self.steps_left
        parts: list[bytes] = []
        wire_len = 1  # the root octet
        end = -1
        segment = start_pos = pos  # start of the run of labels being read; every pointer must jump before it
        step = 0
        try:
            for step in range(1, min(MAX_NAME_STEPS, budget) + 1):
                if pos >= size:
                    raise _wire.Malformed("name runs past the end")
                length = data[pos]
                if length == 0:
                    self.steps_left = budget - step
                    text = _name_text(parts)
                    if parts:
                        self.known[start_pos] = (text, step, wire_len - 1)
                    return text, (end if end >= 0 else pos + 1)
                if length < 0x40:  # a label of at most 63 octets
                    start = pos + 1
                    pos = start + length
                    if pos > size:
                        raise _wire.Malformed("label runs past the end")
                    wire_len += length + 1
                    if wire_len > MAX_NAME_BYTES:  # (at most 127 labels fit: MAX_LABELS is never reached)
                        raise _wire.Malformed("name too long")
                    parts.append(data[start:pos])
                    continue
                if length < DNS_PTR_MASK:
                    # 01/10: extended label types (RFC 6891 §5)
                    raise _wire.Malformed(f"label type {length & DNS_PTR_MASK:#x}")
                if pos + 1 >= size:
                    raise _wire.Malformed("pointer runs past the end")
                target = ((length & ~DNS_PTR_MASK) << 8) | data[pos + 1]
                if end < 0:
                    end = pos + 2
                # RFC 1035 §4.1.4 points at a prior occurrence; requiring a jump before the current run
                # makes run starts strictly decrease, so no loop is possible
                if target >= segment or target < DNS_HEADER_LEN:
                    raise _wire.Malformed(f"pointer at {pos} to {target} does not point backwards")
                known = self.known.get(target)
                # A name already read at the target ends as it did then (pointers depend only on where its run
                # starts): take its text when the steps and bytes it took still fit, as walking it again would.
                if known is not None and step + known[1] <= min(MAX_NAME_STEPS, budget):
                    text, steps, wire = known
                    if wire_len + wire <= MAX_NAME_BYTES:
                        self.steps_left = budget - step - steps
                        return (_name_text(parts) + "." + text if parts else text), end
                pos = segment = target
        except _wire.Malformed:
            self.steps_left = budget - step
            raise
        if budget < MAX_NAME_STEPS:
            self.steps_left = min(budget, 0) - 1
            raise _wire.Malformed("message takes too many name steps")
        self.steps_left = budget - MAX_NAME_STEPS
        raise _wire.Malformed("name takes too many steps")


_HEADER = struct.Struct(">6H")
_QUESTION_TAIL = struct.Struct(">HH")
_RR_TAIL = struct.Struct(">HHIH")
_SRV_HEAD = struct.Struct(">HHH")


def _ipv6_text_native() -> bool:
    """Return True when socket.inet_ntop writes IPv6 as ipaddress does (RFC 5952) for addresses without dots."""
    samples = (
        "::",
        "::1",
        "1::",
        "2001:db8::1",
        "2001:db8:0:1:1:1:1:1",
        "2001:0:0:1::1",
        "1:0:0:2:0:0:3:4",
        "fe80::1:0:0:0",
        "1:2:3:4:5:6:7:8",
        "0:1:0:1:0:1:0:1",
        "::abcd:ef01",
    )
    for sample in samples:
        packed = ipaddress.IPv6Address(sample).packed
        native = socket.inet_ntop(socket.AF_INET6, packed)
        if "." not in native and native != ipaddress.IPv6Address(packed).compressed:
            return False
    return True


_NATIVE_IPV6_TEXT = _ipv6_text_native()


def _ipv6_text(packed: bytes) -> str:
    """Return IPv6Address(packed).compressed, through the C inet_ntop unless it writes an embedded IPv4 form."""
    if _NATIVE_IPV6_TEXT:
        out = socket.inet_ntop(socket.AF_INET6, packed)
        if "." not in out:
            return out
    return ipaddress.IPv6Address(packed).compressed


def _read_txt(rdata: bytes) -> tuple[str, ...]:
    """Return the character-strings of TXT rdata (RFC 1035 §3.3.14), capped in count and length."""
    out: list[str] = []
    pos = 0
    size = len(rdata)
    while pos < size and len(out) < MAX_TXT_STRINGS:
        start = pos + 1
        pos = start + rdata[pos]
        if pos > size:
            raise _wire.Malformed("character-string runs past the rdata")
        out.append(_wire.text(rdata[start:pos], MAX_TXT_CHARS).translate(_CONTROL_ESCAPES))
    return tuple(out)


def _read_rdata(names: _NameReader, start: int, end: int, rtype: int) -> RData:
    """Return the decoded rdata at data[start:end], or None for other types."""
    if rtype == TYPE_A:
        return socket.inet_ntoa(names.data[start:end]) if end - start == 4 else None
    if rtype == TYPE_AAAA:
        return _ipv6_text(names.data[start:end]) if end - start == 16 else None
    if rtype in _NAME_TYPES:
        name, after = names.read(start)
        return name if after == end else None
    if rtype == TYPE_SRV:
        if end - start < 6:
            raise _wire.Malformed("SRV rdata too short")
        priority, weight, port = _SRV_HEAD.unpack_from(names.data, start)
        target, after = names.read(start + 6)
        if after != end:
            return None
        return SrvData(priority=priority, weight=weight, port=port, target=target)
    if rtype == TYPE_TXT:
        return _read_txt(names.data[start:end])
    return None


def parse(payload: bytes) -> DnsMessage | None:
    """Return the DNS message in a payload, or None when the header or the question section is malformed.

    Resource records are read until one is cut off or malformed (then complete=False and the
    sections keep what came before), so a truncated reply still yields its questions and first answers.
    """
    data = payload[:MAX_MESSAGE]
    size = len(data)
    if size < DNS_HEADER_LEN:
        return None
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    names = _NameReader(data)
    read_name = names.read
    pos = DNS_HEADER_LEN
    questions: list[DnsQuestion] = []
    try:
        for _ in range(min(qdcount, MAX_SECTION_RECORDS)):
            name, pos = read_name(pos)
            if pos + 4 > size:
                return None
            qtype, qclass = _QUESTION_TAIL.unpack_from(data, pos)
            pos += 4
            questions.append(
                DnsQuestion(name, qtype, qclass & ~MDNS_UNICAST_RESPONSE, (qclass & MDNS_UNICAST_RESPONSE) != 0)
            )
    except _wire.Malformed:
        return None
    complete = qdcount <= MAX_SECTION_RECORDS
    sections: list[tuple[DnsResource, ...]] = []
    for count in (ancount, nscount, arcount):
        if not complete or not count:
            sections.append(())
            continue
        records: list[DnsResource] = []
        try:
            for _ in range(min(count, MAX_SECTION_RECORDS)):
                if pos < size and data[pos] == 0 and names.steps_left > 0:  # the root (OPT's owner): one step
                    name = ""
                    pos += 1
                    names.steps_left -= 1
                else:
                    name, pos = read_name(pos)
                if pos + 10 > size:
                    raise _wire.Malformed("resource record cut")
                rtype, rclass, ttl_s, rdlength = _RR_TAIL.unpack_from(data, pos)
                start = pos + 10
                pos = start + rdlength
                if pos > size:
                    raise _wire.Malformed("rdata cut")
                rdata: RData = None
                if rtype in _RDATA_TYPES:
                    try:
                        rdata = _read_rdata(names, start, pos, rtype)
                    except _wire.Malformed:
                        rdata = None  # the record's framing is sound, only its rdata is bad: keep the record
                if rclass & MDNS_CACHE_FLUSH and rtype != TYPE_OPT:
                    records.append(DnsResource(name, rtype, rclass & ~MDNS_CACHE_FLUSH, ttl_s, rdata, True))
                else:
                    records.append(DnsResource(name, rtype, rclass, ttl_s, rdata, False))
        except _wire.Malformed:
            complete = False
        if count > MAX_SECTION_RECORDS:
            complete = False  # the rest of this section is unread, so later sections cannot be found
        sections.append(tuple(records))
    return DnsMessage(
        id=ident,
        qr=(flags & DNS_QR) != 0,
        opcode=(flags >> DNS_OPCODE_SHIFT) & 0xF,
        aa=(flags & DNS_AA) != 0,
        tc=(flags & DNS_TC) != 0,
        rd=(flags & DNS_RD) != 0,
        ra=(flags & DNS_RA) != 0,
        rcode=flags & DNS_RCODE_MASK,
        questions=tuple(questions),
        answers=sections[0],
        authority=sections[1],
        additional=sections[2],
        complete=complete,
    )
