"""TLS (RFC 8446/5246): ClientHello fields, JA3 and JA4 against published values, ServerHello and certificate names."""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import tls
from auditor.protocols.tls import TlsRecord

# --- a small ClientHello builder (RFC 8446 §4.1.2, §4.2) -------------------------------------------

GREASE_VALUES = [0x0A0A + 0x1010 * i for i in range(16)]
"""RFC 8701 §2, written out independently of the parser's bit test."""


def u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack(">H", v) for v in values)


def vec16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def ext(ext_type: int, data: bytes = b"") -> bytes:
    return struct.pack(">H", ext_type) + vec16(data)


def sni(name: bytes) -> bytes:
    return ext(0, vec16(b"\x00" + vec16(name)))  # RFC 6066 §3: host_name entry


def alpn(*names: bytes) -> bytes:
    return ext(16, vec16(b"".join(bytes([len(n)]) + n for n in names)))  # RFC 7301 §3.1


def groups(values: list[int]) -> bytes:
    return ext(10, vec16(u16s(values)))


def point_formats(values: list[int]) -> bytes:
    return ext(11, bytes([len(values), *values]))


def sigalgs(values: list[int]) -> bytes:
    return ext(13, vec16(u16s(values)))


def versions(values: list[int]) -> bytes:
    return ext(43, bytes([2 * len(values)]) + u16s(values))


def record(content_type: int, fragment: bytes, version: int = 0x0301) -> bytes:
    return struct.pack(">BHH", content_type, version, len(fragment)) + fragment


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def client_hello_body(ciphers: list[int], extensions: list[bytes] | None, version: int = 0x0303) -> bytes:
    body = struct.pack(">H", version) + bytes(range(32)) + b"\x20" + bytes(32) + vec16(u16s(ciphers)) + b"\x01\x00"
    if extensions is not None:
        body += vec16(b"".join(extensions))
    return body


def client_hello(ciphers: list[int], extensions: list[bytes] | None, version: int = 0x0303) -> bytes:
    return record(22, handshake(1, client_hello_body(ciphers, extensions, version)))


def reference_ja3(version: int, ciphers: list[int], exts: list[int], curves: list[int], formats: list[int]) -> str:
    """JA3 written straight from the salesforce/ja3 README, as a check on the parser's own code."""

    def field(values: list[int]) -> str:
        return "-".join(str(v) for v in values if v not in GREASE_VALUES)

    text = ",".join([str(version), field(ciphers), field(exts), field(curves), field(formats)])
    return hashlib.md5(text.encode()).hexdigest()


# --- the JA4 spec's example hello (FoxIO technical_details/JA4.md), with GREASE added as Chrome does -

JA4_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014]
JA4_CIPHERS += [0x009C, 0x009D, 0x002F, 0x0035]
JA4_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
JA4_EXTENSIONS = [
    ext(0x3A3A),  # GREASE
    ext(0x001B, b"\x02\x00\x02"),  # compress_certificate
    sni(b"example.com"),
    ext(0x0033, vec16(u16s([0x3A3A, 1]) + b"\x00" + u16s([29, 32]) + bytes(32))),  # key_share
    alpn(b"h2", b"http/1.1"),
    ext(0x4469, vec16(b"\x02h2")),  # ALPS
    ext(0x0017),  # extended_master_secret
    ext(0x002D, b"\x01\x01"),  # psk_key_exchange_modes
    sigalgs(JA4_SIGALGS),
    ext(0x0005, b"\x01\x00\x00\x00\x00"),  # status_request
    ext(0x0023),  # session_ticket
    ext(0x0012),  # signed_certificate_timestamp
    versions([0x7A7A, 0x0304, 0x0303]),
    ext(0xFF01, b"\x00"),  # renegotiation_info
    point_formats([0]),
    groups([0x3A3A, 29, 23, 24]),
    ext(0x1A1A, b"\x00"),  # GREASE
    ext(0x0015, bytes(60)),  # padding
]
JA4_HELLO = client_hello([0x8A8A, *JA4_CIPHERS], JA4_EXTENSIONS)
JA4_EXTENSION_TYPES = [0x3A3A, 0x001B, 0, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012]
JA4_EXTENSION_TYPES += [0x002B, 0xFF01, 0x000B, 0x000A, 0x1A1A, 0x0015]

# --- a Chrome 143 hello as reported by tls.browserleaks.com (ja3_text, ja3_hash, ja4, ja4_r; quoted in
# the public repository service0427/v2_cp_app, file tls.md): X25519MLKEM768 (4588), ECH (65037)
CHROME_CIPHERS = [4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157, 47, 53]
CHROME_EXTENSIONS = [
    ext(0xDADA),  # GREASE
    ext(45, b"\x01\x01"),
    ext(51, vec16(u16s([0xDADA, 1]) + b"\x00" + u16s([4588, 4]) + bytes(4) + u16s([29, 32]) + bytes(32))),
    alpn(b"h2", b"http/1.1"),
    ext(65037, b"\x00\x00\x01\x00\x01" + bytes(20)),
    ext(23),
    ext(17613, vec16(b"\x02h2")),
    sni(b"tls.browserleaks.com"),
    point_formats([0]),
    groups([0xDADA, 4588, 29, 23, 24]),
    versions([0xDADA, 0x0304, 0x0303]),
    ext(65281, b"\x00"),
    ext(35),
    ext(18),
    ext(5, b"\x01\x00\x00\x00\x00"),
    sigalgs(JA4_SIGALGS),
    ext(27, b"\x02\x00\x02"),
    ext(0x2A2A, b"\x00"),  # GREASE
]
CHROME_HELLO = client_hello([0xDADA, *CHROME_CIPHERS], CHROME_EXTENSIONS)


def test_tls_parse_reads_a_client_hello() -> None:
    rec = tls.parse(JA4_HELLO)
    assert rec is not None
    assert (rec.handshake, rec.record_version, rec.legacy_version, rec.complete) == (
        "client_hello",
        0x0301,
        0x0303,
        True,
    )
    assert rec.server_name == "example.com"
    assert rec.alpn == ("h2", "http/1.1")
    assert rec.cipher_suites == (0x8A8A, *JA4_CIPHERS)
    assert rec.extensions == tuple(JA4_EXTENSION_TYPES)
    assert rec.supported_versions == (0x7A7A, 0x0304, 0x0303)
    assert rec.supported_groups == (0x3A3A, 29, 23, 24)
    assert rec.ec_point_formats == (0,)
    assert rec.signature_algorithms == tuple(JA4_SIGALGS)


def test_tls_parse_computes_the_ja4_spec_example() -> None:
    # FoxIO technical_details/JA4.md 'Example': t13d1516h2_8daaf6152771_e5627efa2ab1 (GREASE ignored)
    rec = tls.parse(JA4_HELLO)
    assert rec is not None
    assert rec.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_tls_parse_computes_ja3_like_a_straightforward_implementation() -> None:
    rec = tls.parse(JA4_HELLO)
    assert rec is not None
    assert rec.ja3 == reference_ja3(0x0303, [0x8A8A, *JA4_CIPHERS], JA4_EXTENSION_TYPES, [0x3A3A, 29, 23, 24], [0])
    assert rec.ja3_string is not None and "2570" not in rec.ja3_string.split(",")[1]  # no GREASE 0x0a0a..


def test_tls_parse_matches_the_ja3_readme_examples() -> None:
    # salesforce/ja3 README: '769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0'
    ciphers = [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4]
    rec = tls.parse(client_hello(ciphers, [sni(b"a.example"), groups([23, 24, 25]), point_formats([0])], 0x0301))
    assert rec is not None
    assert rec.ja3_string == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert rec.ja3 == "ada70206e40642a3e4461f35503241d5"
    # and '769,4-5-10-9-100-98-3-6-19-18-99,,,': a hello without an extensions block
    rec = tls.parse(client_hello([4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], None, 0x0301))
    assert rec is not None
    assert rec.ja3 == "de350869b8c85de67a350c8d186f11e6"
    assert rec.ja4 == "t10i110000_3609b414f052_000000000000"  # sha256('0003,0004,...,0064')[:12]


def test_tls_parse_matches_a_published_chrome_fingerprint() -> None:
    rec = tls.parse(CHROME_HELLO)
    assert rec is not None
    assert rec.ja3_string == (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0"
    )
    assert rec.ja3 == "98487aa16281980e7d1120d399efb6a4"
    assert rec.ja4 == "t13d1516h2_8daaf6152771_d8a2da3f94cd"


def test_tls_facts_describe_the_client() -> None:
    rec = tls.parse(JA4_HELLO)
    assert rec is not None
    assert rec.protocol == "tls"
    assert list(rec.facts()) == [
        ("sni", "example.com"),
        ("alpn", "h2,http/1.1"),
        ("ja3", rec.ja3),
        ("ja4", "t13d1516h2_8daaf6152771_e5627efa2ab1"),
        ("tls_version", "TLS 1.3"),
    ]


def test_tls_is_grease_matches_rfc_8701() -> None:
    assert [v for v in range(0x10000) if tls.is_grease(v)] == GREASE_VALUES


@pytest.mark.parametrize(
    ("first", "chars"),
    [
        # FoxIO technical_details/JA4.md 'ALPN Extension Value'
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"h", "hh"),
        (b"\xab", "ab"),
        (b"\xab\xcd", "ad"),
        (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"),
        (b"\x30\xab\xcd\x31", "01"),
        (b"", "00"),
        (None, "00"),
    ],
)
def test_tls_ja4_writes_alpn_characters_as_the_spec_says(first: bytes | None, chars: str) -> None:
    assert tls.ja4(0x0304, [0x1301], [0x0010], first, ())[8:10] == chars


def test_tls_ja4_handles_empty_lists_and_missing_signature_algorithms() -> None:
    exts = [0x001B, 0, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012, 0x002B, 0xFF01, 0x000B]
    exts += [0x000A, 0x0015]
    # JA4.md: without signature algorithms the extension list alone is hashed ('= 6d807ffa2a79')
    assert tls.ja4(0x0303, [], exts, None, ()) == "t12d001600_000000000000_6d807ffa2a79"
    assert tls.ja4(0x0303, [0x1301], [0x0000, 0x0010], None, (0x0403,)).endswith("_000000000000")
    assert tls.ja4(0x7F1C, [0x1301], [], None, ()).startswith("t00i0100")


def test_tls_parse_keeps_the_head_of_a_hello_cut_by_the_segment_end() -> None:
    # a 1400-byte post-quantum key share pushes the hello past one 1460-byte segment
    big = client_hello(JA4_CIPHERS, [sni(b"cam.example.net"), ext(0x0033, bytes(1400)), alpn(b"h2")])
    assert len(big) > 1460
    rec = tls.parse(big[:1460])
    assert rec is not None
    assert (rec.complete, rec.server_name, rec.alpn, rec.extensions) == (False, "cam.example.net", (), (0,))
    assert (rec.ja3, rec.ja4, rec.ja3_string) == (None, None, None)
    assert list(rec.facts()) == [("sni", "cam.example.net")]


def test_tls_parse_rejects_a_whole_hello_with_bad_lengths() -> None:
    body = client_hello_body(JA4_CIPHERS, None)
    assert tls.parse(record(22, handshake(1, body + b"\x00\x40" + ext(0x0017)))) is None  # block says 64, has 4
    assert tls.parse(record(22, handshake(1, body + vec16(b"\x00\x17\x00\x09")))) is None  # extension past block
    assert tls.parse(record(22, handshake(1, body[:34] + b"\x21" + bytes(60)))) is None  # session id > 32 bytes


def test_tls_parse_skips_inner_lists_it_cannot_read() -> None:
    rec = tls.parse(client_hello([0x1301], [ext(0, b"\x00\x09"), ext(10, b"\x00\x03\x00\x17\x00"), alpn(b"h2")]))
    assert rec is not None
    assert (rec.server_name, rec.supported_groups, rec.alpn, rec.complete) == (None, (), ("h2",), True)
    assert rec.ja4 is not None and rec.ja4.startswith("t12d0103h2")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x16\x03\x01",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        record(23, bytes(40)),  # application data
        record(22, handshake(1, b""), version=0x0201),  # not a 3.x record version
        record(22, handshake(4, bytes(10))),  # NewSessionTicket first
        record(22, b"\x01\x00"),  # a handshake header cut short
        record(22, handshake(1, client_hello_body([0x1301], [])[:1])),  # not even a version
        record(22, handshake(1, client_hello_body([0x1301], [], version=0xFEFD))),  # DTLS version over TCP
        # SSLv2-compatible ClientHello (ndpi__google_ssl.pcap frame 4): not parsed
        bytes.fromhex("807c0103010063000000100000390000380000350000160000130000"),
        struct.pack(">BHH", 22, 0x0301, 0x4001) + bytes(100),  # record longer than 2^14
    ],
)
def test_tls_parse_rejects_what_is_not_a_hello(payload: bytes) -> None:
    assert tls.parse(payload) is None


# --- ServerHello and certificates (RFC 5246 §7.4.1.3, §7.4.2; RFC 5280 §4.1) ------------------------


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    length = bytes([0x80 | size]) + n.to_bytes(size, "big")
    return bytes([tag]) + length + content


OID = {"C": b"\x55\x04\x06", "ST": b"\x55\x04\x08", "L": b"\x55\x04\x07", "O": b"\x55\x04\x0a"}
OID |= {"OU": b"\x55\x04\x0b", "CN": b"\x55\x04\x03", "E": bytes.fromhex("2a864886f70d010901")}


def x509_name(*attributes: tuple[str, int, bytes]) -> bytes:
    """A Name: one single-valued RDN per (attribute, string tag, value), in DER (issuing) order."""
    return der(0x30, b"".join(der(0x31, der(0x30, der(0x06, OID[a]) + der(tag, v))) for a, tag, v in attributes))


def certificate(subject: bytes, issuer: bytes) -> bytes:
    """A DER Certificate (RFC 5280 §4.1) around a TBSCertificate with a v3 version, serial, names, a fake key."""
    algorithm = der(0x30, der(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
    validity = der(0x30, der(0x17, b"240101000000Z") + der(0x17, b"340101000000Z"))
    spki = der(0x30, algorithm + der(0x03, b"\x00" + bytes(70)))
    version = der(0xA0, der(0x02, b"\x02"))
    tbs = der(0x30, version + der(0x02, bytes.fromhex("00c0ffee")) + algorithm + issuer + validity + subject + spki)
    return der(0x30, tbs + algorithm + der(0x03, b"\x00" + bytes(256)))


# fingerprints.md B13 (recog x509_subjects.xml): the Hikvision DVR/NVR self-signed certificate subject
HIKVISION_SUBJECT = x509_name(
    ("C", 0x13, b"CN"),
    ("ST", 0x0C, b"ZheJiang"),
    ("L", 0x0C, b"HangZhou"),
    ("O", 0x0C, b"HIKVISION"),
    ("OU", 0x0C, b"DVRNVR"),
    ("CN", 0x0C, b"www.hikvision.com"),
)
HIKVISION_ISSUER = x509_name(("C", 0x13, b"CN"), ("O", 0x0C, b"HIKVISION"), ("CN", 0x0C, b"HIKVISION Root CA"))
HIKVISION_CERT = certificate(HIKVISION_SUBJECT, HIKVISION_ISSUER)


def server_hello(cipher: int = 0xC02F, extensions: bytes = ext(0xFF01, b"\x00") + ext(0x0017)) -> bytes:
    body = struct.pack(">H", 0x0303) + bytes(32) + b"\x00" + struct.pack(">H", cipher) + b"\x00" + vec16(extensions)
    return handshake(2, body)


def certificate_message(*certs: bytes) -> bytes:
    chain = b"".join(len(c).to_bytes(3, "big") + c for c in certs)
    return handshake(11, len(chain).to_bytes(3, "big") + chain)


# OpenSSL style: ServerHello, Certificate and ServerHelloDone in separate records of one TCP payload
SERVER_FLIGHT = (
    record(22, server_hello(), 0x0303)
    + record(22, certificate_message(HIKVISION_CERT), 0x0303)
    + record(22, handshake(14, b""), 0x0303)
)
TLS13_SERVER_HELLO = record(  # RFC 8446 §4.1.3: supported_versions carries the real version; CCS follows
    22, server_hello(0x1301, ext(43, b"\x03\x04") + ext(0x0033, u16s([29, 32]) + bytes(32))), 0x0303
) + record(20, b"\x01", 0x0303)


def test_tls_parse_reads_a_server_hello_and_its_certificate() -> None:
    rec = tls.parse(SERVER_FLIGHT)
    assert rec == TlsRecord(
        handshake="server_hello",
        record_version=0x0303,
        legacy_version=0x0303,
        cipher_suite=0xC02F,
        selected_version=0x0303,
        cert_subject="CN=www.hikvision.com,OU=DVRNVR,O=HIKVISION,L=HangZhou,ST=ZheJiang,C=CN",
        cert_issuer="CN=HIKVISION Root CA,O=HIKVISION,C=CN",
    )
    assert rec is not None
    assert list(rec.facts()) == [
        ("server_version", "TLS 1.2"),
        ("cert_subject", "CN=www.hikvision.com,OU=DVRNVR,O=HIKVISION,L=HangZhou,ST=ZheJiang,C=CN"),
        ("cert_issuer", "CN=HIKVISION Root CA,O=HIKVISION,C=CN"),
    ]


def test_tls_parse_reads_messages_coalesced_in_one_record() -> None:
    rec = tls.parse(record(22, server_hello() + certificate_message(HIKVISION_CERT) + handshake(14, b""), 0x0303))
    assert rec is not None and rec.cert_subject is not None and rec.cert_subject.startswith("CN=www.hikvision.com,")


def test_tls_parse_reads_the_issuer_of_a_certificate_cut_by_the_segment_end() -> None:
    cut = SERVER_FLIGHT.index(HIKVISION_SUBJECT) + 20
    rec = tls.parse(SERVER_FLIGHT[:cut])
    assert rec is not None
    assert (rec.cert_subject, rec.cert_issuer) == (None, "CN=HIKVISION Root CA,O=HIKVISION,C=CN")


def test_tls_parse_reads_a_certificate_that_starts_a_payload() -> None:
    rec = tls.parse(record(22, certificate_message(HIKVISION_CERT), 0x0303))
    assert rec is not None
    assert (rec.handshake, rec.selected_version) == ("certificate", None)
    assert next(iter(rec.facts())) == (
        "cert_subject",
        "CN=www.hikvision.com,OU=DVRNVR,O=HIKVISION,L=HangZhou,ST=ZheJiang,C=CN",
    )


def test_tls_parse_reads_a_tls13_server_hello() -> None:
    rec = tls.parse(TLS13_SERVER_HELLO)
    assert rec is not None
    assert (rec.cipher_suite, rec.selected_version, rec.cert_subject) == (0x1301, 0x0304, None)
    assert list(rec.facts()) == [("server_version", "TLS 1.3")]


def test_tls_parse_skips_an_unrecognized_name_alert_before_the_server_hello() -> None:
    # ndpi__http_ipv6.pcap frame 94: a warning alert record precedes the ServerHello (RFC 6066 §3)
    rec = tls.parse(record(21, b"\x01\x70", 0x0303) + SERVER_FLIGHT)
    assert rec is not None and rec.cert_issuer == "CN=HIKVISION Root CA,O=HIKVISION,C=CN"


def test_tls_parse_escapes_and_decodes_name_values() -> None:
    subject = x509_name(
        ("C", 0x13, b"US"),
        ("O", 0x1E, "Facebook, Inc.".encode("utf-16-be")),  # BMPString
        ("E", 0x16, b"ops@example.com"),  # not one of the kept attributes
        ("CN", 0x14, b"caf\xe9 #1"),  # T61String read as Latin-1
    )
    rec = tls.parse(record(22, certificate_message(certificate(subject, subject)), 0x0303))
    assert rec is not None
    assert rec.cert_subject == "CN=café #1,O=Facebook\\, Inc.,C=US"


def test_tls_parse_rejects_cut_or_odd_server_hellos() -> None:
    assert tls.parse(SERVER_FLIGHT[:30]) is None  # a ServerHello must be whole
    assert tls.parse(record(22, handshake(2, b"\x03\x03" + bytes(32) + b"\x40"), 0x0303)) is None
    broken = record(22, server_hello() + certificate_message(b"\x30\x80" + bytes(20)), 0x0303)  # indefinite length
    rec = tls.parse(broken)
    assert rec is not None and (rec.cert_subject, rec.cert_issuer) == (None, None)


# --- caps and hostile input -------------------------------------------------------------------------


def test_tls_parse_bounds_a_huge_payload() -> None:
    many = client_hello([0x1301], [ext(0x7000 + i) for i in range(3000)])
    payload = many + record(22, bytes(16000)) * 64
    assert len(payload) > 1_000_000
    rec = tls.parse(payload)
    assert rec is not None
    assert len(rec.extensions) == tls.MAX_EXTENSIONS
    assert (rec.complete, rec.ja3, rec.ja4) == (False, None, None)


def test_tls_parse_caps_cipher_suites() -> None:
    rec = tls.parse(client_hello(list(range(1, 2001)), [sni(b"scan")]))
    assert rec is not None
    assert len(rec.cipher_suites) == tls.MAX_CIPHER_SUITES
    assert (rec.complete, rec.server_name, rec.ja3) == (False, "scan", None)


@given(st.binary(max_size=2048))
def test_tls_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    rec = tls.parse(payload)
    assert rec is None or isinstance(rec, TlsRecord)
    if rec is not None:
        list(rec.facts())


@given(st.binary(max_size=1024))
def test_tls_parse_never_raises_behind_a_hello_header(body: bytes) -> None:
    rec = tls.parse(record(22, handshake(1, b"\x03\x03" + bytes(32) + b"\x00" + body)))
    assert rec is None or isinstance(rec, TlsRecord)
    if rec is not None:
        list(rec.facts())


@given(st.binary(max_size=1024))
def test_tls_parse_never_raises_behind_a_certificate_header(der_bytes: bytes) -> None:
    rec = tls.parse(record(22, server_hello() + certificate_message(b"\x30\x82\x05\x00\x30\x82\x04\x00" + der_bytes)))
    assert isinstance(rec, TlsRecord)
    list(rec.facts())


@pytest.mark.parametrize("good", [JA4_HELLO, CHROME_HELLO, SERVER_FLIGHT, TLS13_SERVER_HELLO])
def test_tls_parse_survives_every_truncation(good: bytes) -> None:
    assert tls.parse(good) is not None
    for n in range(len(good) + 1):
        rec = tls.parse(good[:n])
        assert rec is None or isinstance(rec, TlsRecord)


# --- the real corpus ---------------------------------------------------------------------------------

TLS_FILES = (
    "ndpi__android.pcap",
    "ndpi__dns_doh.pcap",
    "ndpi__google_ssl.pcap",
    "ndpi__http_ipv6.pcap",
    "ndpi__tls_ech.pcapng",
    "ndpi__tls_esni_sni_both.pcap",
    "suricata-verify__ja4-tls-quic.pcap",
    "zeek__tls_tls13-ech.pcap",
)
"""Corpus files with TLS ClientHellos over TCP (MANIFEST.md; QUIC hellos are left out)."""


def _tcp_payloads(path: Path, frames: set[int]) -> dict[int, bytes]:
    """Return {frame number: TCP payload} for the wanted frames of a capture."""
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader

    out: dict[int, bytes] = {}
    with PcapReader(str(path)) as reader:
        for number, pkt in enumerate(reader, 1):
            if number in frames and TCP in pkt:
                out[number] = bytes(pkt[TCP].payload)
    return out


@pytest.mark.corpus
@pytest.mark.oracle
@pytest.mark.parametrize("name", TLS_FILES)
def test_tls_parse_agrees_with_tshark_on_sni_and_ja3(corpus: Path, tshark: str, name: str) -> None:
    fields = ("tls.handshake.extensions_server_name", "tls.handshake.ja3", "tls.handshake.ja3_full")
    cmd = [tshark, "-r", str(corpus / name), "-Y", "tls.handshake.type == 1 and tcp", "-T", "fields"]
    cmd += ["-E", "separator=|", "-e", "frame.number", *(a for f in fields for a in ("-e", f))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    # tshark computes no JA3 for SSLv2-compatible hellos (ndpi__google_ssl.pcap), which are not parsed
    expected = {int(r[0]): (r[1] or None, r[2], r[3]) for r in rows if r[0] and r[2]}
    payloads = _tcp_payloads(corpus / name, set(expected))
    for number, (server_name, ja3, ja3_full) in expected.items():
        rec = tls.parse(payloads[number])
        assert rec is not None and rec.complete, f"{name} frame {number}"
        assert (rec.server_name, rec.ja3_string, rec.ja3) == (server_name, ja3_full, ja3), f"{name} frame {number}"


@pytest.mark.corpus
def test_tls_parse_matches_the_published_ja4_of_the_suricata_capture(corpus: Path) -> None:
    # OISF/suricata-verify tests/ja4-tls-quic/README.md: FoxIO's ja4 gives t13d1516h2_8daaf6152771_e5627efa2ab1
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader

    found = []
    with PcapReader(str(corpus / "suricata-verify__ja4-tls-quic.pcap")) as reader:
        for pkt in reader:
            if TCP in pkt:
                rec = tls.parse(bytes(pkt[TCP].payload))
                if rec is not None and rec.handshake == "client_hello":
                    found.append((rec.server_name, rec.ja4))
    assert found == [("cloudflare-quic.com", "t13d1516h2_8daaf6152771_e5627efa2ab1")]


@pytest.mark.corpus
def test_tls_parse_reads_a_real_certificate(corpus: Path) -> None:
    # ndpi__http_ipv6.pcap frame 182: ServerHello + Certificate; both names as `openssl x509 -nameopt RFC2253` prints
    rec = tls.parse(_tcp_payloads(corpus / "ndpi__http_ipv6.pcap", {182})[182])
    assert rec is not None
    assert rec.cert_subject == "CN=*.ak.fbcdn.net,O=Facebook\\, Inc.,L=Menlo Park,ST=CA,C=US"
    assert rec.cert_issuer == "CN=DigiCert High Assurance CA-3,OU=www.digicert.com,O=DigiCert Inc,C=US"
