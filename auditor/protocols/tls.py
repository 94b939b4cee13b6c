"""TLS handshakes opening a TCP flow: ClientHello fingerprints (SNI, ALPN, JA3, JA4), ServerHello, Certificate.

Sources: RFC 8446 §5.1 (record layer: type, legacy_record_version, length ≤ 2^14; handshake
messages may be coalesced into one record or fragmented over several), §4 (handshake header: type,
uint24 length), §4.1.2 (ClientHello), §4.1.3 (ServerHello), §4.2 (extensions), §4.2.1
(supported_versions), §4.2.3 (signature_algorithms), §4.2.7 (supported_groups); RFC 5246 §7.4.2
(TLS 1.2 Certificate message: uint24 list of uint24-prefixed DER certificates); RFC 8422 §5.1.2
(ec_point_formats); RFC 6066 §3 (server_name); RFC 7301 §3.1 (ALPN); RFC 8701 §2 (GREASE values
0x?A?A); RFC 5280 §4.1 (TBSCertificate layout) and X.690 §8.1 (DER tag/length); RFC 4514 §2
(a Name as a string, last RDN first). JA3: github.com/salesforce/ja3 README ("SSLVersion,Cipher,
SSLExtension,EllipticCurve,EllipticCurvePointFormat", decimal values joined by '-', GREASE
ignored, MD5). JA4: github.com/FoxIO-LLC/ja4 `technical_details/JA4.md` (TCP 't' form only).
fingerprints.md B13: TLS certificate subjects name camera makers
('CN=www.hikvision.com,OU=DVRNVR,O=HIKVISION,L=HangZhou,ST=ZheJiang,C=CN').

Only what is in this one payload is parsed: records are not reassembled across TCP segments. A
ClientHello cut by the end of the payload (modern hellos with post-quantum key shares often span two
segments) gives a partial record, `complete=False`: the fields read before the cut (often the SNI)
are kept, but JA3/JA4 and the offered version are left out because they would be wrong. A ServerHello
must be whole; a Certificate that follows it may be cut, and the first certificate's issuer and
subject are read when their bytes are present.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import filterfalse
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols.types import Fact

MAX_PAYLOAD = 16384
"""Bytes of a payload looked at: a ClientHello is 0.2-2 KB; a server flight with a certificate a few KB."""

MAX_RECORDS = 16
"""TLS records walked in one payload."""

MAX_HANDSHAKES = 8
"""Handshake messages walked after the first one (looking for the Certificate)."""

MAX_CIPHER_SUITES = 512
"""Cipher suites kept; more makes the hello incomplete (browsers offer about 16, scanners up to ~300)."""

MAX_EXTENSIONS = 64
"""Extensions kept; more makes the hello incomplete (browsers send about 16-20)."""

MAX_LIST = 64
"""Entries kept from one list extension (groups, signature algorithms, versions, point formats)."""

MAX_ALPN = 16
"""ALPN protocol names kept."""

MAX_DER_LENGTH_BYTES = 4
"""X.690 §8.1.3.5 long-form length octets accepted (a certificate is far below 4 GB)."""

MAX_RDNS = 32
"""Relative distinguished names read from one X.509 Name."""

MAX_RDN_ATTRIBUTES = 8
"""Attributes read from one RDN (multi-valued RDNs are rare)."""

MAX_DN_VALUE = 128
"""Cap on one attribute value (characters)."""

MAX_DECIMAL_TABLE = 4096
"""Values whose decimal text JA3 keeps at hand (a hostile stream of odd values cannot grow the table further)."""

TLS_RECORD_HEADER_LEN = 5  # RFC 8446 §5.1: type, legacy_record_version, length
TLS_MAX_PLAINTEXT = 1 << 14
"""RFC 8446 §5.1 / RFC 5246 §6.2.1: a plaintext record fragment is at most 2^14 bytes."""

TLS_CONTENT_ALERT = 21  # RFC 8446 §5.1 ContentType.alert; §6: an alert is 2 bytes
TLS_CONTENT_HANDSHAKE = 22  # RFC 8446 §5.1 ContentType.handshake

TLS_HANDSHAKE_CLIENT_HELLO = 1  # RFC 8446 §4
TLS_HANDSHAKE_SERVER_HELLO = 2
TLS_HANDSHAKE_CERTIFICATE = 11

TLS_EXT_SERVER_NAME = 0  # RFC 6066 §3
TLS_EXT_SUPPORTED_GROUPS = 10  # RFC 8446 §4.2.7 (RFC 4492 "elliptic_curves")
TLS_EXT_EC_POINT_FORMATS = 11  # RFC 8422 §5.1.2
TLS_EXT_SIGNATURE_ALGORITHMS = 13  # RFC 8446 §4.2.3
TLS_EXT_ALPN = 16  # RFC 7301 §3.1
TLS_EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1

SNI_HOST_NAME = 0
"""RFC 6066 §3: NameType host_name."""

TLS_VERSION_NAMES = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
"""Protocol version -> name used in facts; other values are written as '0x7f1c'."""

JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2"}
"""JA4.md 'TLS and DTLS Version' (the DTLS values are not needed over TCP); unknown is '00'."""

JA4_EMPTY_HASH = "000000000000"
"""JA4.md: the b or c part when its list is empty."""

TLS12 = 0x0303
"""TLS 1.2: the last version whose Certificate message travels in clear (RFC 8446 §4.4.2 encrypts it)."""

X509_ATTRIBUTES = {
    b"\x55\x04\x03": "CN",  # 2.5.4.3 commonName
    b"\x55\x04\x06": "C",  # 2.5.4.6 countryName
    b"\x55\x04\x07": "L",  # 2.5.4.7 localityName
    b"\x55\x04\x08": "ST",  # 2.5.4.8 stateOrProvinceName
    b"\x55\x04\x0a": "O",  # 2.5.4.10 organizationName
    b"\x55\x04\x0b": "OU",  # 2.5.4.11 organizationalUnitName
}
"""DER-encoded attribute type OIDs -> RFC 4514 §3 short names; other attributes are left out."""

DER_SEQUENCE = 0x30  # X.690 §8.9, constructed
DER_SET = 0x31  # X.690 §8.11, constructed
DER_INTEGER = 0x02
DER_OID = 0x06
DER_CONTEXT_0 = 0xA0  # RFC 5280 §4.1: version [0] EXPLICIT

DER_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # T61String (TeletexString): Latin-1 is what real certificates mean by it
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
"""X.690 string tags -> the codec that decodes them (errors replaced)."""

RFC4514_SPECIALS = frozenset('"+,;<>\\')
"""RFC 4514 §2.4: characters escaped with a backslash in an attribute value."""


def is_grease(value: int) -> bool:
    """Return True for the RFC 8701 GREASE values 0x0A0A, 0x1A1A, ... 0xFAFA."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class TlsRecord:
    """The first handshake message of a TLS payload: a ClientHello, a ServerHello, or a Certificate."""

    protocol: ClassVar[str] = "tls"

    handshake: str
    """'client_hello', 'server_hello' or 'certificate'."""

    record_version: int
    """legacy_record_version of the first record (0x0301 in most ClientHellos)."""

    legacy_version: int | None = None
    """The hello's legacy_version (client_version; 0x0303 for TLS 1.3 hellos)."""

    complete: bool = True
    """False when a ClientHello is cut by the payload end or exceeds a cap: JA3/JA4 are then None."""

    supported_versions: tuple[int, ...] = ()
    """ClientHello supported_versions (43) in wire order, GREASE included."""

    cipher_suites: tuple[int, ...] = ()
    """ClientHello cipher suites in wire order, GREASE included."""

    extensions: tuple[int, ...] = ()
    """Extension types in wire order, GREASE included."""

    server_name: str | None = None
    """SNI (server_name, host_name entry)."""

    alpn: tuple[str, ...] = ()
    """ALPN protocol names in wire order: ('h2', 'http/1.1')."""

    supported_groups: tuple[int, ...] = ()
    """supported_groups (10) in wire order, GREASE included."""

    ec_point_formats: tuple[int, ...] = ()
    """ec_point_formats (11) in wire order."""

    signature_algorithms: tuple[int, ...] = ()
    """signature_algorithms (13) in wire order, GREASE included."""

    ja3_string: str | None = None
    """The JA3 input: 'version,ciphers,extensions,groups,pointformats' in decimal, GREASE removed."""

    ja3: str | None = None
    """MD5 of ja3_string, lower-case hex."""

    ja4: str | None = None
    """The JA4 TLS client fingerprint (TCP form), e.g. 't13d1516h2_8daaf6152771_e5627efa2ab1'."""

    cipher_suite: int | None = None
    """ServerHello: the chosen cipher suite."""

    selected_version: int | None = None
    """ServerHello: the negotiated version (supported_versions if present, else legacy_version)."""

    cert_subject: str | None = None
    """Subject of the first certificate, RFC 4514 style: 'CN=...,OU=...,O=...,C=..'."""

    cert_issuer: str | None = None
    """Issuer of the first certificate, same form."""

    def offered_version(self) -> int | None:
        """Return the highest non-GREASE supported_versions entry, else legacy_version (JA4's rule)."""
        offered = list(filterfalse(_is_grease, self.supported_versions))
        return max(offered) if offered else self.legacy_version

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender (the client for a ClientHello, else the server)."""
        texts: tuple[tuple[str, str | None], ...]
        if self.handshake == "client_hello":
            version = self.offered_version() if self.complete else None
            texts = (
                ("sni", self.server_name),
                ("alpn", ",".join(self.alpn)),
                ("ja3", self.ja3),
                ("ja4", self.ja4),
                ("tls_version", _version_name(version)),
            )
        else:
            texts = (
                ("server_version", _version_name(self.selected_version)),
                ("cert_subject", self.cert_subject),
                ("cert_issuer", self.cert_issuer),
            )
        for name, value in texts:
            if value:
                yield (name, value)


_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
"""The RFC 8701 GREASE values as a set: `v in _GREASE` is is_grease(v) without a call (hot loops)."""

_is_grease = _GREASE.__contains__

_DECODED_EXTENSIONS = frozenset(
    {
        TLS_EXT_SERVER_NAME,
        TLS_EXT_SUPPORTED_GROUPS,
        TLS_EXT_EC_POINT_FORMATS,
        TLS_EXT_SIGNATURE_ALGORITHMS,
        TLS_EXT_ALPN,
        TLS_EXT_SUPPORTED_VERSIONS,
    }
)
"""Extensions whose content JA3/JA4 or the facts need; the others are only listed by type."""

_U16_PAIR = struct.Struct(">HH")
_U16_VECTORS: dict[int, struct.Struct] = {}
"""Compiled '>nH' formats by n, filled on first use; n is at most MAX_CIPHER_SUITES, so this stays small."""


def _u16_struct(count: int) -> struct.Struct:
    """Return the compiled struct for `count` big-endian uint16 (cached up to MAX_CIPHER_SUITES)."""
    fmt = _U16_VECTORS.get(count)
    if fmt is None:
        fmt = struct.Struct(f">{count}H")
        if count <= MAX_CIPHER_SUITES:
            _U16_VECTORS[count] = fmt
    return fmt


def parse(payload: bytes) -> TlsRecord | None:
    """Return the first TLS handshake message of a TCP payload, or None when the payload is not TLS handshake."""
    data = payload[:MAX_PAYLOAD]
    size = len(data)
    # Fast path, the usual ClientHello: the first record is a handshake record holding the whole first message,
    # or cut by the payload end. Its bytes are then read in place; anything else takes the general path.
    if size >= 9 and data[0] == TLS_CONTENT_HANDSHAKE and data[5] == TLS_HANDSHAKE_CLIENT_HELLO:
        record_version, record_len = _U16_PAIR.unpack_from(data, 1)
        if record_version >> 8 == 3 and 0 < record_len <= TLS_MAX_PLAINTEXT:
            msg_end = 9 + ((data[6] << 16) | (data[7] << 8) | data[8])
            record_end = 5 + record_len
            if msg_end <= record_end or record_end >= size:
                end = min(msg_end, size)
                return _client_hello(record_version, data, 9, end, end == msg_end)
    found = _handshake_bytes(data)
    if found is None:
        return None
    record_version, hs = found
    if len(hs) < 4:
        return None
    msg_type = hs[0]
    length = (hs[1] << 16) | (hs[2] << 8) | hs[3]
    end = min(4 + length, len(hs))
    whole = end - 4 == length
    if msg_type == TLS_HANDSHAKE_CLIENT_HELLO:
        return _client_hello(record_version, hs, 4, end, whole)
    if msg_type == TLS_HANDSHAKE_SERVER_HELLO:
        return _server_flight(record_version, hs) if whole else None
    if msg_type == TLS_HANDSHAKE_CERTIFICATE:
        subject, issuer = _first_certificate(hs[4:end])
        return TlsRecord(
            handshake="certificate", record_version=record_version, cert_subject=subject, cert_issuer=issuer
        )
    return None


def ja3_string(
    version: int,
    cipher_suites: tuple[int, ...] | list[int],
    extensions: tuple[int, ...] | list[int],
    groups: tuple[int, ...],
    point_formats: tuple[int, ...],
) -> str:
    """Return the JA3 input string (salesforce/ja3 README): decimal fields, '-' inside, ',' between, no GREASE."""
    return _ja3(
        version, _no_grease(cipher_suites), _no_grease(extensions), _no_grease(groups), _no_grease(point_formats)
    )


def ja4(
    version: int | None,
    cipher_suites: tuple[int, ...] | list[int],
    extensions: tuple[int, ...] | list[int],
    alpn_first: bytes | None,
    signature_algorithms: tuple[int, ...],
) -> str:
    """Return the JA4 fingerprint of a ClientHello over TCP (FoxIO `technical_details/JA4.md`)."""
    return _ja4(
        version, _no_grease(cipher_suites), _no_grease(extensions), alpn_first, _no_grease(signature_algorithms)
    )


class _DecimalTable(dict[int, str]):
    """int -> decimal text, filled on first use (JA3 writes the same few hundred values over and over)."""

    __slots__ = ()

    def __missing__(self, value: int) -> str:
        out = str(value)
        if len(self) < MAX_DECIMAL_TABLE:
            self[value] = out
        return out


_decimal = _DecimalTable().__getitem__


def _no_grease(values: Sequence[int]) -> Sequence[int]:
    """Return the values without GREASE ones (the same sequence when it holds none, the usual case)."""
    return values if _GREASE.isdisjoint(values) else list(filterfalse(_is_grease, values))


def _ja3(
    version: int, ciphers: Sequence[int], exts: Sequence[int], groups: Sequence[int], formats: Sequence[int]
) -> str:
    """Return the JA3 string of lists already free of GREASE."""
    return (
        f"{version},{'-'.join(map(_decimal, ciphers))},{'-'.join(map(_decimal, exts))},"
        f"{'-'.join(map(_decimal, groups))},{'-'.join(map(_decimal, formats))}"
    )


def _ja4(
    version: int | None, ciphers: Sequence[int], exts: Sequence[int], alpn_first: bytes | None, sigs: Sequence[int]
) -> str:
    """Return the JA4 fingerprint of lists already free of GREASE (wire order; sorted here where JA4 sorts)."""
    sni = "d" if TLS_EXT_SERVER_NAME in exts else "i"
    part_a = (
        f"t{JA4_VERSIONS.get(version or 0, '00')}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}"
        f"{_ja4_alpn(alpn_first)}"
    )
    part_b = _hash12(_hex_join(sorted(ciphers)))
    sorted_exts = _hex_join([e for e in sorted(exts) if e != TLS_EXT_SERVER_NAME and e != TLS_EXT_ALPN])
    sig_text = _hex_join(sigs)
    part_c = _hash12(f"{sorted_exts}_{sig_text}" if sorted_exts and sig_text else sorted_exts)
    return f"{part_a}_{part_b}_{part_c}"


def _hex_join(values: Sequence[int]) -> str:
    """Return the values as 4-digit lower-case hex joined by ',' (JA4's lists)."""
    try:
        packed: bytes = _u16_struct(len(values)).pack(*values)  # one C call for the usual uint16 values
        return packed.hex(",", 2)
    except struct.error:
        return ",".join(f"{v:04x}" for v in values)  # values outside uint16 (direct callers): as written


def _hash12(text: str) -> str:
    """Return the first 12 hex characters of SHA-256 of `text`, or the JA4 empty marker for ''."""
    if not text:
        return JA4_EMPTY_HASH
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _ja4_alpn(first: bytes | None) -> str:
    """Return JA4's two ALPN characters: first and last of the first value, hex digits if either is not alnum."""
    if not first:
        return "00"
    head, tail = first[:1], first[-1:]
    if head.isalnum() and tail.isalnum():  # bytes.isalnum: ASCII letters and digits only
        return head.decode("ascii") + tail.decode("ascii")
    digits = first.hex()
    return digits[0] + digits[-1]


def _handshake_bytes(data: bytes) -> tuple[int, bytes] | None:
    """Return (first record's version, the handshake bytes of the leading handshake records), or None.

    The first record must be a plausible handshake record (warning alerts before it are skipped);
    later records are joined while they are handshake records too (RFC 8446 §5.1 lets a message span
    records). A record cut by the payload end contributes the bytes present.
    """
    chunks: list[bytes] = []
    first_version: int | None = None
    pos = 0
    size = len(data)
    for _ in range(MAX_RECORDS):
        if size - pos < TLS_RECORD_HEADER_LEN:
            break
        content_type = data[pos]
        version, length = _U16_PAIR.unpack_from(data, pos + 1)
        pos += TLS_RECORD_HEADER_LEN
        if first_version is None and content_type == TLS_CONTENT_ALERT and version >> 8 == 3 and length == 2:
            pos += 2  # RFC 6066 §3: a warning unrecognized_name alert may precede the ServerHello
            if pos > size:
                return None
            continue
        if content_type != TLS_CONTENT_HANDSHAKE or version >> 8 != 3 or not 0 < length <= TLS_MAX_PLAINTEXT:
            if first_version is None:
                return None
            break
        if first_version is None:
            first_version = version
        chunks.append(data[pos : pos + length])
        pos = min(pos + length, size)
    if first_version is None:
        return None
    return first_version, chunks[0] if len(chunks) == 1 else b"".join(chunks)


MAX_REMEMBERED_SHAPES = 4096
_FINGERPRINTS: dict[tuple[object, ...], tuple[str, str, str]] = {}
"""(JA3 string, JA3, JA4) by ClientHello shape (versions, ciphers, extensions in order, groups, formats,
ALPN, signature algorithms): the parser's only state, a bounded cache of pure functions of the key."""


def _client_hello(record_version: int, buf: bytes, pos: int, end: int, whole: bool) -> TlsRecord | None:
    """Return the ClientHello in buf[pos:end] (complete when `whole`), partial when cut; None when malformed.

    The fields are read in place with explicit bounds checks (a cut or bad length raises Malformed); what
    was read before a cut stays in the locals, so a partial hello keeps it.
    """
    legacy_version: int | None = None
    cipher_suites: tuple[int, ...] = ()
    extensions: list[int] = []
    supported_versions: tuple[int, ...] = ()
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    alpn_first: bytes | None = None
    supported_groups: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    capped = False
    try:
        # RFC 8446 §4.1.2: legacy_version, random[32], legacy_session_id<0..32>, cipher_suites<2..2^16-2>,
        # legacy_compression_methods<1..2^8-1>, extensions<8..2^16-1> (absent in SSL 3.0 / early TLS hellos)
        if pos + 2 > end:
            raise _wire.Malformed("no legacy_version")
        legacy_version = (buf[pos] << 8) | buf[pos + 1]
        if legacy_version >> 8 != 3:
            return None  # legacy_version is 0x0300-0x0303 in every real ClientHello
        pos += 34  # legacy_version, random
        if pos >= end:
            raise _wire.Malformed("cut before legacy_session_id")
        session_id_len = buf[pos]
        if session_id_len > 32:
            raise _wire.Malformed("RFC 8446 §4.1.2: legacy_session_id is at most 32 bytes")
        pos += 1 + session_id_len
        if pos + 2 > end:
            raise _wire.Malformed("cut before cipher_suites")
        suites_len = (buf[pos] << 8) | buf[pos + 1]
        if suites_len % 2:
            raise _wire.Malformed("odd cipher_suites length")
        pos += 2
        if pos + suites_len > end:
            raise _wire.Malformed("cipher_suites cut")
        count = suites_len // 2
        cipher_suites = _u16_struct(min(count, MAX_CIPHER_SUITES)).unpack_from(buf, pos)
        capped = count > MAX_CIPHER_SUITES
        pos += suites_len
        if pos >= end:
            raise _wire.Malformed("cut before legacy_compression_methods")
        pos += 1 + buf[pos]
        if pos > end:
            raise _wire.Malformed("legacy_compression_methods cut")
        if pos < end:
            if pos + 2 > end:
                raise _wire.Malformed("cut extensions length")
            ext_end = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
            pos += 2
            if ext_end > end:
                if whole:
                    raise _wire.Malformed("extensions overrun the hello")
                ext_end = end
            append = extensions.append
            for _ in range(MAX_EXTENSIONS):
                if pos >= ext_end:
                    break
                if pos + 4 > ext_end:
                    raise _wire.Malformed("cut extension header")
                ext_type, ext_len = _U16_PAIR.unpack_from(buf, pos)
                start = pos + 4
                pos = start + ext_len
                if pos > ext_end:
                    raise _wire.Malformed("extension overruns the block")
                append(ext_type)
                if ext_type not in _DECODED_EXTENSIONS:
                    continue
                # The first of each kind that gives a value is kept; a malformed inner list leaves the
                # field empty (RFC 6066 §3, RFC 7301 §3.1, RFC 8446 §4.2).
                try:
                    if ext_type == TLS_EXT_SERVER_NAME:
                        if server_name is None:
                            server_name = _server_name(buf[start:pos])
                    elif ext_type == TLS_EXT_SUPPORTED_GROUPS:
                        if not supported_groups:
                            supported_groups, over = _vector_u16(buf[start:pos], 2)
                            capped |= over
                    elif ext_type == TLS_EXT_EC_POINT_FORMATS:
                        if not ec_point_formats:
                            if ext_len < 1 or buf[start] > ext_len - 1:
                                raise _wire.Malformed("ec_point_formats cut")
                            n = buf[start]
                            capped |= n > MAX_LIST
                            ec_point_formats = tuple(buf[start + 1 : start + 1 + min(n, MAX_LIST)])
                    elif ext_type == TLS_EXT_SIGNATURE_ALGORITHMS:
                        if not signature_algorithms:
                            signature_algorithms, over = _vector_u16(buf[start:pos], 2)
                            capped |= over
                    elif ext_type == TLS_EXT_ALPN:
                        if not alpn:
                            alpn, alpn_first = _alpn(buf[start:pos])
                    elif not supported_versions:  # TLS_EXT_SUPPORTED_VERSIONS
                        supported_versions, over = _vector_u16(buf[start:pos], 1)
                        capped |= over
                except _wire.Malformed:
                    pass
            else:
                capped |= pos < ext_end  # more extensions than MAX_EXTENSIONS
    except _wire.Malformed:
        if whole:
            return None
    else:
        whole = whole and not capped
    if legacy_version is None:
        return None
    ja3_text = ja3_hash = ja4_text = None
    if whole:
        # a device sends the same hello shape on every connection: the hashes are worked out once per shape
        key = (legacy_version, cipher_suites, tuple(extensions), supported_groups, ec_point_formats,
               supported_versions, alpn_first, signature_algorithms)
        known = _FINGERPRINTS.get(key)
        if known is None:
            ciphers, exts = _no_grease(cipher_suites), _no_grease(extensions)
            ja3_text = _ja3(legacy_version, ciphers, exts, _no_grease(supported_groups), _no_grease(ec_point_formats))
            ja3_hash = hashlib.md5(ja3_text.encode("ascii"), usedforsecurity=False).hexdigest()
            offered = _no_grease(supported_versions)
            version = max(offered) if offered else legacy_version
            known = (ja3_text, ja3_hash, _ja4(version, ciphers, exts, alpn_first, _no_grease(signature_algorithms)))
            if len(_FINGERPRINTS) >= MAX_REMEMBERED_SHAPES:
                _FINGERPRINTS.clear()  # shuffled extension orders (Chrome): start over rather than grow
            _FINGERPRINTS[key] = known
        ja3_text, ja3_hash, ja4_text = known
    return TlsRecord(
        handshake="client_hello",
        record_version=record_version,
        legacy_version=legacy_version,
        complete=whole,
        supported_versions=supported_versions,
        cipher_suites=cipher_suites,
        extensions=tuple(extensions),
        server_name=server_name,
        alpn=alpn,
        supported_groups=supported_groups,
        ec_point_formats=ec_point_formats,
        signature_algorithms=signature_algorithms,
        ja3_string=ja3_text,
        ja3=ja3_hash,
        ja4=ja4_text,
    )


def _vector_u16(data: bytes, len_bytes: int) -> tuple[tuple[int, ...], bool]:
    """Return a length-prefixed vector of uint16 (prefix of `len_bytes`) capped at MAX_LIST, and whether it was cut."""
    if len(data) < len_bytes:
        raise _wire.Malformed("no vector length")
    n = data[0] if len_bytes == 1 else (data[0] << 8) | data[1]
    if n % 2:
        raise _wire.Malformed("odd uint16 vector length")
    if len_bytes + n > len(data):
        raise _wire.Malformed("vector overruns the extension")
    count = n // 2
    return _u16_struct(min(count, MAX_LIST)).unpack_from(data, len_bytes), count > MAX_LIST


def _server_name(data: bytes) -> str | None:
    """Return the first host_name of a server_name extension (RFC 6066 §3), None if there is none."""
    if len(data) < 2:
        raise _wire.Malformed("no server_name_list length")
    end = 2 + ((data[0] << 8) | data[1])
    if end > len(data):
        raise _wire.Malformed("server_name_list overruns the extension")
    pos = 2
    while pos < end:
        if pos + 3 > end:
            raise _wire.Malformed("cut ServerName")
        name_type = data[pos]
        start = pos + 3
        pos = start + ((data[pos + 1] << 8) | data[pos + 2])
        if pos > end:
            raise _wire.Malformed("HostName overruns the list")
        if name_type == SNI_HOST_NAME:
            return _wire.text(data[start:pos]) or None
    return None


def _alpn(data: bytes) -> tuple[tuple[str, ...], bytes | None]:
    """Return the ALPN protocol names (RFC 7301 §3.1) and the first one's raw bytes (for JA4)."""
    if len(data) < 2:
        raise _wire.Malformed("no protocol_name_list length")
    end = 2 + ((data[0] << 8) | data[1])
    if end > len(data):
        raise _wire.Malformed("protocol_name_list overruns the extension")
    names: list[str] = []
    first: bytes | None = None
    pos = 2
    while pos < end and len(names) < MAX_ALPN:
        start = pos + 1
        pos = start + data[pos]
        if pos > end:
            raise _wire.Malformed("ProtocolName overruns the list")
        raw = data[start:pos]
        if first is None:
            first = raw
        names.append(_wire.text(raw))
    return tuple(names), first


def _server_flight(record_version: int, hs: bytes) -> TlsRecord | None:
    """Return the ServerHello at the start of `hs`, with the first certificate of a following Certificate message."""
    r = _wire.Reader(hs)
    try:
        r.skip(1)  # type
        hello = r.sub(r.u24())
        legacy_version = hello.u16()
        if legacy_version >> 8 != 3:
            return None
        hello.skip(32)  # random
        session_id_len = hello.u8()
        if session_id_len > 32:
            return None
        hello.skip(session_id_len)
        cipher_suite = hello.u16()
        hello.skip(1)  # legacy_compression_method
        selected = legacy_version
        if hello.left:
            exts = hello.sub(hello.u16())
            for _ in range(MAX_EXTENSIONS):
                if not exts.left:
                    break
                ext_type = exts.u16()
                data = exts.take(exts.u16())
                if ext_type == TLS_EXT_SUPPORTED_VERSIONS and len(data) == 2:
                    selected = int.from_bytes(data, "big")  # RFC 8446 §4.2.1: selected_version
    except _wire.Malformed:
        return None
    subject = issuer = None
    if selected <= TLS12:
        subject, issuer = _following_certificate(r)
    return TlsRecord(
        handshake="server_hello",
        record_version=record_version,
        legacy_version=legacy_version,
        cipher_suite=cipher_suite,
        selected_version=selected,
        cert_subject=subject,
        cert_issuer=issuer,
    )


def _following_certificate(r: _wire.Reader) -> tuple[str | None, str | None]:
    """Return (subject, issuer) of the first certificate in a Certificate message among the next handshakes."""
    try:
        for _ in range(MAX_HANDSHAKES):
            msg_type = r.u8()
            length = r.u24()
            if msg_type == TLS_HANDSHAKE_CERTIFICATE:
                return _first_certificate(r.take(min(length, r.left)))
            r.skip(length)
    except _wire.Malformed:
        pass
    return None, None


def _first_certificate(body: bytes) -> tuple[str | None, str | None]:
    """Return (subject, issuer) of the first certificate of a TLS 1.2 Certificate body (RFC 5246 §7.4.2).

    The body may be cut: whatever of the first DER certificate is present is walked.
    """
    r = _wire.Reader(body)
    try:
        r.skip(3)  # certificate_list length
        cert_len = r.u24()
        der = r.take(min(cert_len, r.left))
    except _wire.Malformed:
        return None, None
    return _tbs_names(der)


def _tbs_names(der: bytes) -> tuple[str | None, str | None]:
    """Return (subject, issuer) from a DER Certificate's TBSCertificate (RFC 5280 §4.1), reading what is present."""
    r = _wire.Reader(der)
    issuer: str | None = None
    try:
        _expect(r, DER_SEQUENCE)  # Certificate: walked into, not bounded (it may be cut)
        _expect(r, DER_SEQUENCE)  # TBSCertificate
        tag, n = _der_header(r)
        if tag == DER_CONTEXT_0:  # version [0] EXPLICIT
            r.skip(n)
            tag, n = _der_header(r)
        if tag != DER_INTEGER:  # serialNumber
            return None, None
        r.skip(n)
        r.skip(_expect(r, DER_SEQUENCE))  # signature AlgorithmIdentifier
        issuer = _name(r.take(_expect(r, DER_SEQUENCE)))
        r.skip(_expect(r, DER_SEQUENCE))  # validity
        subject = _name(r.take(_expect(r, DER_SEQUENCE)))
    except _wire.Malformed:
        return None, issuer
    return subject, issuer


def _der_header(r: _wire.Reader) -> tuple[int, int]:
    """Return (tag, length) of the next DER element (X.690 §8.1.2-8.1.3); raise Malformed for forms DER forbids."""
    tag = r.u8()
    if tag & 0x1F == 0x1F:
        raise _wire.Malformed("multi-byte tags do not occur in a TBSCertificate")
    first = r.u8()
    if first < 0x80:
        return tag, first
    n = first & 0x7F
    if n == 0 or n > MAX_DER_LENGTH_BYTES:
        raise _wire.Malformed("indefinite or oversized DER length")
    return tag, int.from_bytes(r.take(n), "big")


def _expect(r: _wire.Reader, tag: int) -> int:
    """Read a DER header that must carry `tag`; return its length."""
    got, n = _der_header(r)
    if got != tag:
        raise _wire.Malformed(f"expected DER tag {tag:#x}, got {got:#x}")
    return n


def _name(raw: bytes) -> str | None:
    """Return an X.509 Name (RFC 5280 §4.1.2.4) as an RFC 4514 string of the known attributes, None if none."""
    rdns: list[str] = []
    r = _wire.Reader(raw)
    for _ in range(MAX_RDNS):
        if not r.left:
            break
        rdn = r.sub(_expect(r, DER_SET))
        parts: list[str] = []
        for _ in range(MAX_RDN_ATTRIBUTES):
            if not rdn.left:
                break
            attr = rdn.sub(_expect(rdn, DER_SEQUENCE))
            oid = attr.take(_expect(attr, DER_OID))
            tag, n = _der_header(attr)
            value = attr.take(n)
            short = X509_ATTRIBUTES.get(oid)
            codec = DER_STRING_CODECS.get(tag)
            if short is None or codec is None:
                continue
            text = _wire.text(value.decode(codec, errors="replace").encode("utf-8"), MAX_DN_VALUE)
            parts.append(f"{short}={_escape(text)}")
        if parts:
            rdns.append("+".join(parts))
    if not rdns:
        return None
    return ",".join(reversed(rdns))[: _wire.MAX_TEXT]  # RFC 4514 §2.1: the last RDN is written first


def _escape(value: str) -> str:
    """Return an attribute value escaped as RFC 4514 §2.4 asks (specials, leading '#' or space, trailing space)."""
    out = "".join("\\" + c if c in RFC4514_SPECIALS else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _version_name(version: int | None) -> str | None:
    """Return 'TLS 1.2' style names, '0x7f1c' for unknown values, None for None."""
    if version is None:
        return None
    return TLS_VERSION_NAMES.get(version, f"0x{version:04x}")


def client_hello_message(hs: bytes) -> TlsRecord | None:
    """Return the ClientHello of a bare handshake message (QUIC CRYPTO data, RFC 9001 §4), partial when cut.

    None when `hs` does not start a ClientHello or it is malformed. QUIC has no record layer, so
    record_version is set to TLS 1.2 (0x0303), the value a TLS 1.3 hello's record would carry.
    """
    data = hs[:MAX_PAYLOAD]
    if len(data) < 5 or data[0] != TLS_HANDSHAKE_CLIENT_HELLO:
        return None
    msg_end = 4 + ((data[1] << 16) | (data[2] << 8) | data[3])
    end = min(msg_end, len(data))
    return _client_hello(TLS12, data, 4, end, end == msg_end)
