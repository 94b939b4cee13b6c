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
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
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
        offered = [v for v in self.supported_versions if not is_grease(v)]
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


@dataclass(slots=True)
class _Hello:
    """ClientHello fields gathered so far (mutable scratch, so a cut-off hello keeps what was read)."""

    legacy_version: int | None = None
    cipher_suites: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    supported_versions: tuple[int, ...] = ()
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    alpn_first: bytes | None = None
    supported_groups: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    capped: bool = False


def parse(payload: bytes) -> TlsRecord | None:
    """Return the first TLS handshake message of a TCP payload, or None when the payload is not TLS handshake."""
    found = _handshake_bytes(payload[:MAX_PAYLOAD])
    if found is None:
        return None
    record_version, hs = found
    r = _wire.Reader(hs)
    try:
        msg_type = r.u8()
        length = r.u24()
    except _wire.Malformed:
        return None
    body = hs[4 : 4 + length]
    whole = len(body) == length
    if msg_type == TLS_HANDSHAKE_CLIENT_HELLO:
        return _client_hello(record_version, body, whole)
    if msg_type == TLS_HANDSHAKE_SERVER_HELLO:
        return _server_flight(record_version, hs) if whole else None
    if msg_type == TLS_HANDSHAKE_CERTIFICATE:
        subject, issuer = _first_certificate(body)
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

    def join(values: tuple[int, ...] | list[int]) -> str:
        return "-".join(str(v) for v in values if not is_grease(v))

    return f"{version},{join(cipher_suites)},{join(extensions)},{join(groups)},{join(point_formats)}"


def ja4(
    version: int | None,
    cipher_suites: tuple[int, ...] | list[int],
    extensions: tuple[int, ...] | list[int],
    alpn_first: bytes | None,
    signature_algorithms: tuple[int, ...],
) -> str:
    """Return the JA4 fingerprint of a ClientHello over TCP (FoxIO `technical_details/JA4.md`)."""
    ciphers = [c for c in cipher_suites if not is_grease(c)]
    exts = [e for e in extensions if not is_grease(e)]
    sni = "d" if TLS_EXT_SERVER_NAME in exts else "i"
    part_a = (
        f"t{JA4_VERSIONS.get(version or 0, '00')}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}"
        f"{_ja4_alpn(alpn_first)}"
    )
    part_b = _hash12(",".join(f"{c:04x}" for c in sorted(ciphers)))
    sorted_exts = ",".join(f"{e:04x}" for e in sorted(exts) if e not in (TLS_EXT_SERVER_NAME, TLS_EXT_ALPN))
    sigs = ",".join(f"{s:04x}" for s in signature_algorithms if not is_grease(s))
    part_c = _hash12(f"{sorted_exts}_{sigs}" if sorted_exts and sigs else sorted_exts)
    return f"{part_a}_{part_b}_{part_c}"


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
    r = _wire.Reader(data)
    chunks: list[bytes] = []
    first_version: int | None = None
    try:
        for _ in range(MAX_RECORDS):
            if r.left < TLS_RECORD_HEADER_LEN:
                break
            content_type = r.u8()
            version = r.u16()
            length = r.u16()
            if first_version is None and content_type == TLS_CONTENT_ALERT and version >> 8 == 3 and length == 2:
                r.skip(2)  # RFC 6066 §3: a warning unrecognized_name alert may precede the ServerHello
                continue
            if content_type != TLS_CONTENT_HANDSHAKE or version >> 8 != 3 or not 0 < length <= TLS_MAX_PLAINTEXT:
                if first_version is None:
                    return None
                break
            if first_version is None:
                first_version = version
            chunks.append(r.take(min(length, r.left)))
    except _wire.Malformed:
        return None
    if first_version is None:
        return None
    return first_version, b"".join(chunks)


def _client_hello(record_version: int, body: bytes, whole: bool) -> TlsRecord | None:
    """Return the ClientHello in `body` (complete when `whole`), partial when cut; None when malformed."""
    hello = _Hello()
    try:
        _read_client_hello(_wire.Reader(body), hello, whole)
    except _wire.Malformed:
        if whole:
            return None
    else:
        whole = whole and not hello.capped
    if hello.legacy_version is None or hello.legacy_version >> 8 != 3:
        return None  # RFC 8446 §4.1.2: legacy_version is 0x0300-0x0303 in every real ClientHello
    ja3_text = ja3_hash = ja4_text = None
    if whole:
        ja3_text = ja3_string(
            hello.legacy_version, hello.cipher_suites, hello.extensions, hello.supported_groups, hello.ec_point_formats
        )
        ja3_hash = hashlib.md5(ja3_text.encode("ascii"), usedforsecurity=False).hexdigest()
        offered = [v for v in hello.supported_versions if not is_grease(v)]
        ja4_text = ja4(
            max(offered) if offered else hello.legacy_version,
            hello.cipher_suites,
            hello.extensions,
            hello.alpn_first,
            hello.signature_algorithms,
        )
    return TlsRecord(
        handshake="client_hello",
        record_version=record_version,
        legacy_version=hello.legacy_version,
        complete=whole,
        supported_versions=hello.supported_versions,
        cipher_suites=tuple(hello.cipher_suites),
        extensions=tuple(hello.extensions),
        server_name=hello.server_name,
        alpn=hello.alpn,
        supported_groups=hello.supported_groups,
        ec_point_formats=hello.ec_point_formats,
        signature_algorithms=hello.signature_algorithms,
        ja3_string=ja3_text,
        ja3=ja3_hash,
        ja4=ja4_text,
    )


def _read_client_hello(r: _wire.Reader, hello: _Hello, whole: bool) -> None:
    """Fill `hello` from a ClientHello body (RFC 8446 §4.1.2); raise Malformed where it stops making sense."""
    hello.legacy_version = r.u16()
    r.skip(32)  # random
    session_id_len = r.u8()
    if session_id_len > 32:
        raise _wire.Malformed("RFC 8446 §4.1.2: legacy_session_id is at most 32 bytes")
    r.skip(session_id_len)
    suites_len = r.u16()
    if suites_len % 2:
        raise _wire.Malformed("odd cipher_suites length")
    suites = r.take(suites_len)
    hello.cipher_suites = _u16_list(suites, MAX_CIPHER_SUITES)
    hello.capped |= len(suites) // 2 > MAX_CIPHER_SUITES
    r.skip(r.u8())  # legacy_compression_methods
    if not r.left:
        return  # SSL 3.0 / early TLS hellos may have no extensions block
    ext_len = r.u16()
    exts = _wire.Reader(r.take(ext_len) if whole else r.take(min(ext_len, r.left)))
    while exts.left:
        if len(hello.extensions) >= MAX_EXTENSIONS:
            hello.capped = True
            return
        ext_type = exts.u16()
        data = exts.take(exts.u16())
        hello.extensions.append(ext_type)
        _read_extension(ext_type, data, hello)


def _read_extension(ext_type: int, data: bytes, hello: _Hello) -> None:
    """Decode the extensions JA3/JA4 and the facts need; a malformed inner list leaves the field empty."""
    try:
        if ext_type == TLS_EXT_SERVER_NAME and hello.server_name is None:
            hello.server_name = _server_name(_wire.Reader(data))
        elif ext_type == TLS_EXT_ALPN and not hello.alpn:
            hello.alpn, hello.alpn_first = _alpn(_wire.Reader(data))
        elif ext_type == TLS_EXT_SUPPORTED_GROUPS and not hello.supported_groups:
            hello.supported_groups = _vector_u16(_wire.Reader(data), 2, hello)
        elif ext_type == TLS_EXT_EC_POINT_FORMATS and not hello.ec_point_formats:
            r = _wire.Reader(data)
            formats = r.take(r.u8())
            hello.capped |= len(formats) > MAX_LIST
            hello.ec_point_formats = tuple(formats[:MAX_LIST])
        elif ext_type == TLS_EXT_SIGNATURE_ALGORITHMS and not hello.signature_algorithms:
            hello.signature_algorithms = _vector_u16(_wire.Reader(data), 2, hello)
        elif ext_type == TLS_EXT_SUPPORTED_VERSIONS and not hello.supported_versions:
            hello.supported_versions = _vector_u16(_wire.Reader(data), 1, hello)
    except _wire.Malformed:
        return


def _u16_list(raw: bytes, cap: int) -> list[int]:
    """Return big-endian 16-bit values of `raw` (an odd last byte is dropped), at most `cap` of them."""
    n = min(len(raw) // 2, cap)
    return [int.from_bytes(raw[2 * i : 2 * i + 2], "big") for i in range(n)]


def _vector_u16(r: _wire.Reader, len_bytes: int, hello: _Hello) -> tuple[int, ...]:
    """Return a length-prefixed vector of uint16 (prefix of `len_bytes`), capped at MAX_LIST entries."""
    n = r.u8() if len_bytes == 1 else r.u16()
    if n % 2:
        raise _wire.Malformed("odd uint16 vector length")
    raw = r.take(n)
    hello.capped |= n // 2 > MAX_LIST
    return tuple(_u16_list(raw, MAX_LIST))


def _server_name(r: _wire.Reader) -> str | None:
    """Return the first host_name of a server_name extension (RFC 6066 §3), None if there is none."""
    names = r.sub(r.u16())
    while names.left:
        name_type = names.u8()
        name = names.take(names.u16())
        if name_type == SNI_HOST_NAME:
            return _wire.text(name) or None
    return None


def _alpn(r: _wire.Reader) -> tuple[tuple[str, ...], bytes | None]:
    """Return the ALPN protocol names (RFC 7301 §3.1) and the first one's raw bytes (for JA4)."""
    protocols = r.sub(r.u16())
    names: list[str] = []
    first: bytes | None = None
    while protocols.left and len(names) < MAX_ALPN:
        raw = protocols.take(protocols.u8())
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
