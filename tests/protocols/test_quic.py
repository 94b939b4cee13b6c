"""QUIC client Initials (RFC 9001 §5, RFC 9369): the RFC vectors, ClientHello assembly, hostile datagrams."""

from __future__ import annotations

import itertools

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import quic, tls
from auditor.protocols.quic import QUIC_V1, QUIC_V2, ClientHelloAssembler, QuicRecord
from tests.protocols.test_tls import (
    alpn,
    client_hello_body,
    ext,
    groups,
    handshake,
    sigalgs,
    sni,
    u16s,
    vec16,
    versions,
)

# --- RFC 9001 Appendix A and RFC 9369 Appendix A ------------------------------------------------------

RFC_DCID = bytes.fromhex("8394c8f03e515708")
"""RFC 9001 A.1 / RFC 9369 A.1: the client's Destination Connection ID."""

RFC_CRYPTO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c000004130113"
    "02010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce1"
    "5d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806"
    "048000ffff"
)
"""RFC 9001 A.2 (the same in RFC 9369 A.2): the CRYPTO frame of the client Initial, a 241-byte ClientHello."""

RFC_HELLO = RFC_CRYPTO_FRAME[4:]  # frame type 0x06, offset 0, length 0x40f1 (a 2-byte varint: 241)
RFC_PAYLOAD = RFC_CRYPTO_FRAME + bytes(1162 - len(RFC_CRYPTO_FRAME))
"""The plaintext payload: the CRYPTO frame, then PADDING up to the 1162 bytes the header's Length implies."""

RFC_V1_INITIAL = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9bd8bab936b47d92ec356c"
    "0bab7df5976d27cd449f63300099f3991c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df621230c83711b39343fa028cea7f7fb5ff89"
    "eac2308249a02252155e2347b63d58c5457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec4e15daf8500a6ef69ec4e3feb6b1d98e"
    "610ac8b7ec3faf6ad760b7bad1db4ba3485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c7b4378e846d29f37ed7b4ea9ec5d82e7"
    "961b7f25a9323851f681d582363aa5f89937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c7468449a13d8e3b95811a198f3491de3e7"
    "fe942b330407abf82a4ed7c1b311663ac69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632291d6a418211cc2962e20fe47feb3edf"
    "330f2c603a9d48c0fcb5699dbfe5896425c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ffef132eef2fa09346aee33c28eb130ff2"
    "8f5b766953334113211996d20011a198e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73203a4a13e96f5432ec0fd4a1ee65accd"
    "d5e3904df54c1da510b0ff20dcc0c77fcb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03adea2e1fbc5aa463d08ca19896d2bf59a07"
    "1b851e6c239052172f296bfb5e72404790a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f440591f355e12d439ff150aab7613499d"
    "bd49adabc8676eef023b15b65bfc5ca06948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0be79e2fb8f5d5fbbe2e30ecadd220723"
    "c8c0aea8078cdfcb3868263ff8f0940054da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9f96f3ca9ec1dde434da7d2d392b905dd"
    "f3d1f9af93d1af5950bd493f5aa731b4056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44860018ab0856972e194cd934"
)
"""RFC 9001 A.2: the protected client Initial (packet number 2, 4-byte encoding), 1200 bytes."""

RFC_V2_INITIAL = bytes.fromhex(
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485dd04de806071bf03dceebfa162e75d6c"
    "96058bdbfb127cdfcbf903388e99ad049f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a12834e3f249a78d395e0d18f4d766004"
    "f1a2674802a747eaa901c3f10cda5500cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff3312ae50b187c1433c0f028edcc4c2838b"
    "6a9bfc226ca4b4530e7a4ccee1bfa2a3d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520bcfb7966fc49b393f0061d974a2706df"
    "8c4a9449f11d7f3d2dcbb90c6b877045636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c1216ccce2d0193f958bb3850a833f7ae43"
    "2b65bc5a53975c155aa4bcb4f7b2c4e54df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b8017c25ca9052ca1079d8b78aebd4787"
    "6d330a30f6a8c6d61dd1ab5589329de714d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91abfe43960977c87471cf9ad4074d30e1"
    "0d6a7f03c63bd5d4317f68ff325ba3bd80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18d703dd84045a274ae8bfa73379661388"
    "d6991fe39b0d93debb41700b41f90a15c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61f6b5b984d4d3dfa033c1bb7e4f0037fe"
    "bf406d91c0dccf32acf423cfa1e7071010d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e06ebfde206bfb0fcbc0edc4ebec30966"
    "1bdd908d532eb0c6adc38b7ca7331dce8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1e86215c2d54e6670e07383a27bbffb5a"
    "ddf47d66aa85a0c6f9f32e59d85a44dd5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89d5974ee12e5cf7d5da4d6a31123041f3"
    "3e61407e76cffcdcfd7e19ba58cf4b536f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96ba18b2faa745b6fe189cf772a9f84cbfc"
)
"""RFC 9369 A.2: the same client Initial protected with QUIC v2."""

RFC_V1_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb3"
    "8cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee"
)
"""RFC 9001 A.3: the server's Initial (ACK + CRYPTO carrying the ServerHello), to the client's SCID."""


# --- a test-side sealer: the inverse of the parser, checked against the RFC packets below ------------


def varint(value: int) -> bytes:
    """Return `value` as the shortest RFC 9000 §16 variable-length integer."""
    for size, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * size - 2):
            return (value | prefix << (8 * size - 8)).to_bytes(size, "big")
    raise ValueError(value)


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def initial_type(version: int) -> int:
    return 1 if version == QUIC_V2 else 0


def seal(
    payload: bytes,
    *,
    version: int = QUIC_V1,
    dcid: bytes = RFC_DCID,
    scid: bytes = b"",
    pn: int = 0,
    pn_len: int = 4,
    packet_type: int | None = None,
    keys: tuple[bytes, bytes, bytes] | None = None,
) -> bytes:
    """Protect one long-header packet as RFC 9001 §5.3-5.4 say, with the client Initial keys of `dcid`."""
    found = keys or quic.initial_keys(version, dcid)
    assert found is not None
    key, iv, hp = found
    kind = initial_type(version) if packet_type is None else packet_type
    first = 0xC0 | kind << 4 | (pn_len - 1)
    head = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if kind == initial_type(version):
        head += varint(0)  # no token
    head += (0x4000 | (pn_len + len(payload) + 16)).to_bytes(2, "big")
    pn_bytes = pn.to_bytes(pn_len, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, head + pn_bytes)
    sample = sealed[4 - pn_len : 20 - pn_len]
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    protected_pn = bytes(b ^ m for b, m in zip(pn_bytes, mask[1:], strict=False))
    return bytes([first ^ (mask[0] & 0x0F)]) + head[1:] + protected_pn + sealed


def server_keys(dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """The v1 server Initial keys (RFC 9001 §5.2 'server in'), written out here to check the A.3 vector."""

    def expand(secret: bytes, label: bytes, length: int) -> bytes:
        full = b"tls13 " + label
        info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
        return HKDFExpand(hashes.SHA256(), length, info).derive(secret)

    initial = HKDF.extract(hashes.SHA256(), bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), dcid)
    secret = expand(initial, b"server in", 32)
    return expand(secret, b"quic key", 16), expand(secret, b"quic iv", 12), expand(secret, b"quic hp", 16)


def padded(payload: bytes, size: int = 1162) -> bytes:
    return payload + bytes(max(0, size - len(payload)))


# --- a ClientHello too big for one datagram (X25519MLKEM768 key share, as Chrome sends) --------------

PQ_HELLO = handshake(
    1,
    client_hello_body(
        [0x1301, 0x1302, 0x1303],
        [
            sni(b"cam.example.net"),
            alpn(b"h3"),
            versions([0x0304]),
            groups([4588, 29]),
            sigalgs([0x0403, 0x0804, 0x0401]),
            ext(51, vec16(u16s([4588, 1216]) + bytes(1216) + u16s([29, 32]) + bytes(32))),  # key_share
            ext(57, bytes(40)),  # quic_transport_parameters (RFC 9001 §8.2)
        ],
    ),
)
SPLIT = 1000
PQ_FIRST = seal(padded(crypto_frame(0, PQ_HELLO[:SPLIT])), pn=0)
PQ_SECOND = seal(padded(crypto_frame(SPLIT, PQ_HELLO[SPLIT:])), pn=1)


# --- keys and the RFC packets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "key", "iv", "hp"),
    [
        # RFC 9001 A.1: client key, iv, hp
        (QUIC_V1, "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c", "9f50449e04a0e810283a1e9933adedd2"),
        # RFC 9369 A.1
        (QUIC_V2, "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f", "45b95e15235d6f45a6b19cbcb0294ba9"),
    ],
    ids=["v1", "v2"],
)
def test_quic_initial_keys_match_the_rfc_vectors(version: int, key: str, iv: str, hp: str) -> None:
    assert quic.initial_keys(version, RFC_DCID) == (bytes.fromhex(key), bytes.fromhex(iv), bytes.fromhex(hp))


def test_quic_initial_keys_are_none_for_other_versions() -> None:
    assert quic.initial_keys(0xFF00001D, RFC_DCID) is None  # draft-29


@pytest.mark.parametrize(
    ("version", "packet"), [(QUIC_V1, RFC_V1_INITIAL), (QUIC_V2, RFC_V2_INITIAL)], ids=["v1", "v2"]
)
def test_quic_initial_crypto_decrypts_the_rfc_client_initial(version: int, packet: bytes) -> None:
    assert quic.initial_crypto(packet) == (version, RFC_DCID, [(0, RFC_HELLO)])


@pytest.mark.parametrize(
    ("version", "packet"), [(QUIC_V1, RFC_V1_INITIAL), (QUIC_V2, RFC_V2_INITIAL)], ids=["v1", "v2"]
)
def test_quic_test_sealer_reproduces_the_rfc_packet(version: int, packet: bytes) -> None:
    # the round-trip tests below build their packets with seal(): it must protect exactly as the RFCs do
    assert seal(RFC_PAYLOAD, version=version, pn=2) == packet


def test_quic_parse_initial_reads_the_rfc_client_hello() -> None:
    rec = quic.parse_initial(RFC_V1_INITIAL)
    assert rec is not None
    assert (rec.version, rec.dcid, rec.server_name, rec.alpn, rec.complete) == (
        QUIC_V1,
        RFC_DCID,
        "example.com",
        ("alpn",),
        True,
    )
    hello = tls.client_hello_message(RFC_HELLO)
    assert hello is not None and hello.ja4 is not None
    assert rec.ja4 == "q" + hello.ja4[1:]
    assert rec.ja4.startswith("q13d0211an_")  # TLS 1.3, SNI, 2 suites (GREASE-free), 11 extensions, ALPN 'alpn'
    v2 = quic.parse_initial(RFC_V2_INITIAL)
    assert v2 is not None and v2.version == QUIC_V2 and v2.ja4 == rec.ja4


def test_quic_facts_describe_the_client() -> None:
    rec = quic.parse_initial(RFC_V2_INITIAL)
    assert rec is not None and rec.ja4 is not None
    assert list(rec.facts()) == [("quic_version", "2"), ("quic_sni", "example.com"), ("alpn", "alpn"), ("ja4", rec.ja4)]
    assert QuicRecord.protocol == "quic"
    bare = QuicRecord(version=QUIC_V1, dcid=b"")
    assert list(bare.facts()) == [("quic_version", "1")]


def test_quic_from_hello_writes_ja4_with_q_and_drops_it_for_a_cut_hello() -> None:
    whole = tls.client_hello_message(PQ_HELLO)
    cut = tls.client_hello_message(PQ_HELLO[:SPLIT])
    assert whole is not None and whole.ja4 is not None and whole.ja4.startswith("t13d")
    assert quic.from_hello(QUIC_V1, b"id", whole).ja4 == "q" + whole.ja4[1:]
    assert cut is not None and not cut.complete
    partial = quic.from_hello(QUIC_V1, b"id", cut)
    assert (partial.server_name, partial.ja4, partial.complete) == ("cam.example.net", None, False)


def test_quic_initial_crypto_gives_none_for_a_server_initial(monkeypatch: pytest.MonkeyPatch) -> None:
    # client keys do not open a server's Initial, not even those of the right connection: it fails authentication
    assert quic.initial_crypto(RFC_V1_SERVER_INITIAL) is None
    assert quic.initial_crypto(RFC_V1_SERVER_INITIAL, original_dcid=RFC_DCID) is None
    # ...while server keys do (so the vector is right, and the ACK before the CRYPTO frame is skipped); both
    # directions' keys derive from the client's first DCID, not from the DCID the server writes
    monkeypatch.setattr(quic, "_client_keys", lambda params, dcid: server_keys(dcid))
    found = quic.initial_crypto(RFC_V1_SERVER_INITIAL, original_dcid=RFC_DCID)
    assert found is not None
    version, dcid, crypto = found
    assert (version, dcid) == (QUIC_V1, RFC_DCID)
    assert [(offset, data[:1], len(data)) for offset, data in crypto] == [(0, b"\x02", 90)]  # the ServerHello


# --- walking datagrams and frames ------------------------------------------------------------------------


def test_quic_initial_crypto_reads_coalesced_packets_and_stops_at_a_short_header() -> None:
    handshake_packet = seal(bytes(40), packet_type=2)  # not decryptable with Initial keys: skipped
    short_header = bytes([0x40]) + bytes(40)
    datagram = (
        seal(crypto_frame(0, b"hello"), pn=0)
        + handshake_packet
        + seal(crypto_frame(5, b"world"), pn=1)
        + short_header
        + seal(crypto_frame(10, b"never"), pn=2)  # behind the short-header packet: not reached
    )
    assert quic.initial_crypto(datagram) == (QUIC_V1, RFC_DCID, [(0, b"hello"), (5, b"world")])


def test_quic_initial_crypto_skips_a_packet_of_another_connection() -> None:
    other = seal(crypto_frame(0, b"other"), dcid=b"\x01" * 8)
    assert quic.initial_crypto(seal(crypto_frame(0, b"mine")) + other) == (QUIC_V1, RFC_DCID, [(0, b"mine")])


def test_quic_initial_crypto_opens_later_initials_with_the_original_dcid() -> None:
    # after the server answers, the client writes the server's chosen ID but keeps the first keys (RFC 9001 §5.2)
    later = seal(crypto_frame(0, b"ack"), dcid=b"\x22" * 8, keys=quic.initial_keys(QUIC_V1, RFC_DCID))
    assert quic.initial_crypto(later) is None
    assert quic.initial_crypto(later, original_dcid=RFC_DCID) == (QUIC_V1, RFC_DCID, [(0, b"ack")])


def test_quic_initial_crypto_walks_the_frames_an_initial_may_carry() -> None:
    ack = b"\x02" + varint(1000) + varint(5) + varint(2) + varint(3) + varint(1) + varint(2) + varint(0) + varint(1)
    ack_ecn = b"\x03" + varint(7) + varint(0) + varint(0) + varint(7) + varint(1) + varint(2) + varint(3)
    close = b"\x1c" + varint(0x0A) + varint(6) + varint(3) + b"bye"
    app_close = b"\x1d" + varint(0x100) + varint(0)
    payload = b"\x01" + ack + bytes(30) + crypto_frame(0, b"abc") + ack_ecn + close + app_close
    payload += crypto_frame(16383, b"xyz") + bytes(500)  # a 2-byte offset varint
    assert quic.initial_crypto(seal(payload)) == (QUIC_V1, RFC_DCID, [(0, b"abc"), (16383, b"xyz")])


@pytest.mark.parametrize(
    "stopper",
    [b"\x08\x00\x03abc", b"\x40\x06", crypto_frame(0, b"x")[:-2], b"\x02" + varint(1) + varint(0) + varint(300)],
    ids=["stream-frame", "two-byte-frame-type", "cut-crypto", "too-many-ack-ranges"],
)
def test_quic_initial_crypto_keeps_frames_before_one_it_cannot_walk(stopper: bytes) -> None:
    payload = crypto_frame(0, b"kept") + stopper + crypto_frame(4, b"lost")
    if stopper.startswith(b"\x06"):
        payload = crypto_frame(0, b"kept") + stopper  # a cut frame can only be last
    assert quic.initial_crypto(seal(payload)) == (QUIC_V1, RFC_DCID, [(0, b"kept")])


def test_quic_initial_crypto_caps_frames_per_packet() -> None:
    ping = b"\x01"
    within = seal(ping * (quic.MAX_FRAMES - 1) + crypto_frame(0, b"in"))
    beyond = seal(ping * quic.MAX_FRAMES + crypto_frame(0, b"out"))
    assert quic.initial_crypto(within) == (QUIC_V1, RFC_DCID, [(0, b"in")])
    assert quic.initial_crypto(beyond) == (QUIC_V1, RFC_DCID, [])


def test_quic_initial_crypto_caps_coalesced_packets() -> None:
    datagram = b"".join(seal(crypto_frame(4 * i, b"abcd"), pn=i) for i in range(quic.MAX_PACKETS + 4))
    found = quic.initial_crypto(datagram)
    assert found is not None
    assert len(found[2]) == quic.MAX_PACKETS


def test_quic_initial_crypto_tolerates_zeros_after_the_packets() -> None:
    # some stacks pad the datagram itself, outside any packet
    assert quic.initial_crypto(seal(crypto_frame(0, b"hi")) + bytes(900)) == (QUIC_V1, RFC_DCID, [(0, b"hi")])


# --- rejection -----------------------------------------------------------------------------------------


def _no_crypto(*args: object) -> None:
    raise AssertionError("crypto work on a datagram that should be refused first")


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\xc0\x00\x00\x00",
        RFC_V1_INITIAL[:1] + (0xFF00001D).to_bytes(4, "big") + RFC_V1_INITIAL[5:],  # draft-29
        RFC_V1_INITIAL[:1] + b"Q050" + RFC_V1_INITIAL[5:],  # Google QUIC with IETF long headers
        RFC_V1_INITIAL[:1] + bytes(4) + RFC_V1_INITIAL[5:],  # version negotiation
        bytes([RFC_V1_INITIAL[0] & 0x7F]) + RFC_V1_INITIAL[1:],  # short header
        bytes([RFC_V1_INITIAL[0] & 0xBF]) + RFC_V1_INITIAL[1:],  # fixed bit clear
        bytes.fromhex("0d") + bytes(1199),  # a Google QUIC public header (ndpi__quic.pcap)
    ],
    ids=["empty", "cut-version", "draft-29", "gquic-q050", "version-negotiation", "short", "no-fixed-bit", "gquic"],
)
def test_quic_initial_crypto_refuses_other_datagrams_without_crypto_work(
    datagram: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quic, "_client_keys", _no_crypto)
    assert quic.initial_crypto(datagram) is None
    assert quic.parse_initial(datagram) is None


@pytest.mark.parametrize(
    ("version", "packet_type"),
    [(QUIC_V1, 1), (QUIC_V1, 2), (QUIC_V1, 3), (QUIC_V2, 0), (QUIC_V2, 2), (QUIC_V2, 3)],
    ids=["v1-0rtt", "v1-handshake", "v1-retry", "v2-retry", "v2-0rtt", "v2-handshake"],
)
def test_quic_initial_crypto_ignores_other_long_header_types(version: int, packet_type: int) -> None:
    packet = seal(padded(crypto_frame(0, RFC_HELLO)), version=version, packet_type=packet_type)
    assert quic.initial_crypto(packet) is None


def test_quic_initial_crypto_refuses_a_v1_initial_labelled_v2() -> None:
    # the v1 Initial type (0) is the v2 Retry type: the version decides how the header reads (RFC 9369 §3.2)
    relabelled = RFC_V1_INITIAL[:1] + QUIC_V2.to_bytes(4, "big") + RFC_V1_INITIAL[5:]
    assert quic.initial_crypto(relabelled) is None


@pytest.mark.parametrize("packet", [RFC_V1_INITIAL, RFC_V2_INITIAL], ids=["v1", "v2"])
def test_quic_initial_crypto_gives_none_for_every_truncation(packet: bytes) -> None:
    # a datagram cut by the capture's snap length cannot authenticate
    for n in range(len(packet)):
        assert quic.initial_crypto(packet[:n]) is None


@pytest.mark.parametrize("at", [0, 5, 9, 18, 22, 600, 1199])
def test_quic_initial_crypto_refuses_a_tampered_packet(at: int) -> None:
    # first byte bits, version, DCID, length, packet number, ciphertext, tag
    tampered = bytearray(RFC_V1_INITIAL)
    tampered[at] ^= 0x04
    assert quic.initial_crypto(bytes(tampered)) is None


def test_quic_initial_crypto_refuses_connection_ids_over_20_bytes() -> None:
    assert quic.initial_crypto(seal(padded(crypto_frame(0, RFC_HELLO)), dcid=bytes(21))) is None
    assert quic.initial_crypto(seal(padded(crypto_frame(0, RFC_HELLO)), dcid=bytes(20))) is not None


# --- assembling a ClientHello over datagrams -------------------------------------------------------------


def _crypto(datagram: bytes) -> list[tuple[int, bytes]]:
    found = quic.initial_crypto(datagram)
    assert found is not None
    return found[2]


def test_quic_assembler_joins_a_hello_split_over_two_datagrams_out_of_order() -> None:
    assembler = ClientHelloAssembler()
    assembler.add(_crypto(PQ_SECOND))
    assert not assembler.complete
    assert assembler.client_hello() is None
    assert assembler.client_hello(partial=True) is None  # nothing at offset 0 yet
    assembler.add(_crypto(PQ_FIRST))
    assert assembler.complete
    hello = assembler.client_hello()
    assert hello is not None and hello == tls.client_hello_message(PQ_HELLO)
    assert hello.complete and hello.server_name == "cam.example.net" and hello.alpn == ("h3",)
    rec = quic.from_hello(QUIC_V1, RFC_DCID, hello)
    assert rec.complete and rec.ja4 is not None and rec.ja4.startswith("q13d0307h3_")


def test_quic_assembler_gives_a_cut_hello_only_when_asked() -> None:
    assembler = ClientHelloAssembler()
    assembler.add(_crypto(PQ_FIRST))
    assert not assembler.complete
    assert assembler.client_hello() is None
    cut = assembler.client_hello(partial=True)
    assert cut is not None and not cut.complete and cut.server_name == "cam.example.net" and cut.ja4 is None


def test_quic_parse_initial_reads_the_first_datagram_of_a_split_hello() -> None:
    rec = quic.parse_initial(PQ_FIRST)
    assert rec is not None
    assert (rec.server_name, rec.alpn, rec.ja4, rec.complete) == ("cam.example.net", ("h3",), None, False)
    assert quic.parse_initial(PQ_SECOND) is None  # its CRYPTO data does not start the hello


def test_quic_assembler_tolerates_duplicate_and_overlapping_frames() -> None:
    h = PQ_HELLO
    assembler = ClientHelloAssembler()
    assembler.add([(400, h[400:1200]), (0, h[:600])])
    assembler.add([(0, h[:600]), (1100, h[1100:]), (1100, h[1100:1300])])
    assert assembler.client_hello() == tls.client_hello_message(h)


@given(st.data())
def test_quic_assembler_reads_any_split_in_any_order(data: st.DataObject) -> None:
    # Chrome cuts its ClientHello into many small CRYPTO frames and shuffles them (suricata-verify__ja4-tls-quic.pcap)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(PQ_HELLO) - 1), max_size=12))))
    bounds = [0, *cuts, len(PQ_HELLO)]
    chunks = [(a, PQ_HELLO[a:b]) for a, b in itertools.pairwise(bounds)]
    chunks += data.draw(st.lists(st.sampled_from(chunks), max_size=4))  # retransmissions
    order = data.draw(st.permutations(chunks))
    assembler = ClientHelloAssembler()
    for chunk in order:
        assembler.add([chunk])
    assert assembler.complete
    assert assembler.client_hello() == tls.client_hello_message(PQ_HELLO)


def test_quic_assembler_is_bounded() -> None:
    assembler = ClientHelloAssembler()
    header = b"\x01" + (quic.MAX_CRYPTO * 2).to_bytes(3, "big")  # claims more than the cap
    assembler.add([(0, header + bytes(quic.MAX_CRYPTO * 3)), (2**62 - 1, b"far"), (-1, b"negative")])
    assert len(assembler._data) == quic.MAX_CRYPTO  # bytes beyond the cap are not kept
    assert not assembler.complete  # a hello larger than the cap never completes
    assert assembler.client_hello() is None


def test_quic_assembler_ignores_data_once_complete_and_refuses_other_messages() -> None:
    assembler = ClientHelloAssembler()
    assembler.add([(0, RFC_HELLO)])
    hello = assembler.client_hello()
    assert hello is not None
    assembler.add([(0, b"\x02" + RFC_HELLO[1:])])
    assert assembler.client_hello() is hello
    other = ClientHelloAssembler()
    other.add([(0, b"\x02" + RFC_HELLO[1:])])  # a ServerHello's header
    assert other.complete and other.client_hello() is None and other.client_hello(partial=True) is None


# --- hostile input -------------------------------------------------------------------------------------


def _check(datagram: bytes) -> None:
    found = quic.initial_crypto(datagram)
    assert found is None or (found[0] in (QUIC_V1, QUIC_V2) and isinstance(found[2], list))
    rec = quic.parse_initial(datagram)
    assert rec is None or isinstance(rec, QuicRecord)
    if rec is not None:
        for name, value in rec.facts():
            assert name and value and len(value) <= 4096


@given(st.binary(max_size=2048))
def test_quic_never_raises_on_random_bytes(datagram: bytes) -> None:
    _check(datagram)


@given(st.sampled_from([QUIC_V1, QUIC_V2]), st.binary(max_size=1500))
def test_quic_never_raises_behind_a_long_header(version: int, rest: bytes) -> None:
    _check(bytes([0xC0 | initial_type(version) << 4]) + version.to_bytes(4, "big") + rest)


@given(st.data())
def test_quic_never_raises_on_mutated_initials(data: st.DataObject) -> None:
    good = data.draw(st.sampled_from([RFC_V1_INITIAL, RFC_V2_INITIAL, PQ_FIRST, RFC_V1_SERVER_INITIAL]))
    at = data.draw(st.integers(0, len(good)))
    junk = data.draw(st.binary(max_size=64))
    cut = data.draw(st.integers(0, len(good)))
    _check(good[:at] + junk + good[at + len(junk) :])
    _check(good[:cut])


@given(st.binary(max_size=1200))
def test_quic_never_raises_on_any_plaintext_behind_valid_protection(payload: bytes) -> None:
    # the frame walker and the ClientHello parser see whatever a sender encrypts
    _check(seal(payload))


@given(st.binary(max_size=1200), st.integers(0, 2**62 - 1))
def test_quic_never_raises_on_any_crypto_data(body: bytes, offset: int) -> None:
    _check(seal(crypto_frame(0, handshake(1, body))))
    _check(seal(crypto_frame(offset, body)))


@given(st.lists(st.tuples(st.integers(-10, 2 * quic.MAX_CRYPTO), st.binary(max_size=300)), max_size=20))
def test_quic_assembler_never_raises(chunks: list[tuple[int, bytes]]) -> None:
    assembler = ClientHelloAssembler()
    assembler.add(chunks)
    assert len(assembler._data) <= quic.MAX_CRYPTO
    for partial in (False, True):
        hello = assembler.client_hello(partial=partial)
        assert hello is None or isinstance(hello, tls.TlsRecord)
