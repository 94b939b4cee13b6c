"""QUIC client Initial packets: decrypted to read the TLS ClientHello they carry (SNI, ALPN, JA4 'q' form).

Sources: RFC 9000 §17.2 (long header; version 1 connection IDs are at most 20 bytes), §17.2.2 (Initial:
token, Length, packet number), §12.2 (coalesced packets; a short-header packet can only be last), §12.4
(the frames an Initial may carry), §16 (variable-length integers), §19.1-19.6, §19.19 (PADDING, PING, ACK,
CRYPTO, CONNECTION_CLOSE); RFC 9001 §4 (CRYPTO frames carry TLS handshake messages, no TLS records), §5.2
(Initial secrets from the client's Destination Connection ID), §5.3 (AEAD_AES_128_GCM, nonce = iv XOR
packet number), §5.4 (header protection), Appendix A (test vectors); RFC 9369 §3 (QUIC v2: version,
packet types, salt, labels) and Appendix A; RFC 8446 §7.1 (HKDF-Expand-Label). JA4: FoxIO
`technical_details/JA4.md` ("q" for QUIC in place of "t").

Initial packets are encrypted only with keys anyone can derive from the Destination Connection ID in
clear (RFC 9001 §5.2), so a passive observer reads the ClientHello. A ClientHello with post-quantum key
shares is larger than one datagram: ClientHelloAssembler joins the CRYPTO data of one connection's
datagrams. The crypto work uses the `cryptography` library (HKDF, AES-ECB for the header mask, AES-GCM).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from auditor.protocols import _wire, tls
from auditor.protocols.types import Fact

logger = logging.getLogger(__name__)

QUIC_V1 = 0x00000001  # RFC 9000 §15
QUIC_V2 = 0x6B3343CF  # RFC 9369 §3.1
QUIC_VERSION_NAMES = {QUIC_V1: "1", QUIC_V2: "2"}
"""Version -> the quic_version fact's value."""

MAX_DATAGRAM = 65535
"""Bytes of a datagram looked at (the largest UDP payload)."""

MAX_PACKETS = 8
"""Coalesced long-header packets walked in one datagram (RFC 9000 §12.2; senders coalesce 2-3)."""

MAX_FRAMES = 512
"""Frames walked in one decrypted packet (a run of PADDING counts as one)."""

MAX_ACK_RANGES = 256
"""ACK Range Count accepted (RFC 9000 §19.3); an Initial's ACK has a handful."""

MAX_CRYPTO = 16384
"""CRYPTO bytes kept per connection: a ClientHello is 0.3-2 KB, 2-3 KB with post-quantum key shares."""

MAX_CID_LEN = 20  # RFC 9000 §17.2: a version 1 (and 2) connection ID is at most 20 bytes

AEAD_TAG_LEN = 16  # RFC 9001 §5.3: AEAD_AES_128_GCM
HP_SAMPLE_OFFSET = 4  # RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number's start
HP_SAMPLE_LEN = 16  # RFC 9001 §5.4.3: AES-based header protection samples 16 bytes

FRAME_PADDING = 0x00  # RFC 9000 §19.1
FRAME_PING = 0x01  # §19.2
FRAME_ACK = 0x02  # §19.3
FRAME_ACK_ECN = 0x03
FRAME_CRYPTO = 0x06  # §19.6
FRAME_CONNECTION_CLOSE = 0x1C  # §19.19
FRAME_APPLICATION_CLOSE = 0x1D


@dataclass(frozen=True, slots=True)
class _Version:
    """What differs between QUIC versions for client Initials."""

    salt: bytes
    key_label: bytes
    iv_label: bytes
    hp_label: bytes
    initial_type: int
    """Long-header packet type of an Initial (bits 4-5 of the first byte)."""
    retry_type: int
    """Long-header packet type of a Retry, which has no Length field (it fills the datagram)."""


_VERSIONS: dict[int, _Version] = {
    # RFC 9001 §5.2; §17.2: Initial 0, 0-RTT 1, Handshake 2, Retry 3
    QUIC_V1: _Version(
        bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), b"quic key", b"quic iv", b"quic hp", 0, 3
    ),
    # RFC 9369 §3.3.1, §3.3.2; §3.2: Initial 1, 0-RTT 2, Handshake 3, Retry 0
    QUIC_V2: _Version(
        bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), b"quicv2 key", b"quicv2 iv", b"quicv2 hp", 1, 0
    ),
}

_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class QuicRecord:
    """What a QUIC client's Initial packets say: the ClientHello's name, protocols and fingerprint."""

    protocol: ClassVar[str] = "quic"

    version: int
    """QUIC version of the Initial packets (QUIC_V1 or QUIC_V2)."""

    dcid: bytes
    """The client's original Destination Connection ID (the Initial keys derive from it)."""

    server_name: str | None = None
    """SNI of the ClientHello."""

    alpn: tuple[str, ...] = ()
    """ALPN protocol names in wire order: ('h3',)."""

    ja4: str | None = None
    """JA4 with 'q' for QUIC, e.g. 'q13d0310h3_55b375c5d22e_cd85d2d88918'; None while the hello is incomplete."""

    complete: bool = False
    """False when the ClientHello is cut (its other datagrams are missing) or exceeds a cap."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the client."""
        texts = (
            ("quic_version", _version_name(self.version)),
            ("quic_sni", self.server_name),
            ("alpn", ",".join(self.alpn)),
            ("ja4", self.ja4),
        )
        for name, value in texts:
            if value:
                yield (name, value)


def from_hello(version: int, dcid: bytes, hello: tls.TlsRecord) -> QuicRecord:
    """Return the QuicRecord of a ClientHello read from a connection's Initial packets."""
    ja4 = "q" + hello.ja4[1:] if hello.ja4 else None  # JA4.md: the first character is the transport
    return QuicRecord(
        version=version,
        dcid=dcid,
        server_name=hello.server_name,
        alpn=hello.alpn,
        ja4=ja4,
        complete=hello.complete,
    )


def initial_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Return the client Initial (key, iv, hp) derived from a client's first DCID (RFC 9001 §5.2), None for
    versions other than 1 and 2."""
    params = _VERSIONS.get(version)
    return None if params is None else _client_keys(params, dcid)


def initial_crypto(
    datagram: bytes, original_dcid: bytes | None = None
) -> tuple[int, bytes, list[tuple[int, bytes]]] | None:
    """Decrypt every client Initial packet coalesced in one UDP datagram (RFC 9000 §12.2).

    Return (version, original destination connection id, [(crypto offset, crypto data), ...]), or None when
    the datagram holds no decryptable client Initial of QUIC v1 (RFC 9001 §5) or v2 (RFC 9369). The keys
    come from the first Initial's DCID, or from `original_dcid` when the caller knows the connection's
    (a client's later Initials carry the server's chosen ID, but keep the first keys: RFC 9001 §5.2).
    A server's Initial fails authentication with client keys, so it gives None.
    """
    data = datagram[:MAX_DATAGRAM]
    size = len(data)
    # cheap rejection before any crypto: a long header with the fixed bit (RFC 9000 §17.2), version 1 or 2
    if size < 7 or data[0] & 0xC0 != 0xC0:
        return None
    version = _U32.unpack_from(data, 1)[0]
    params = _VERSIONS.get(version)
    if params is None:
        return None
    keys_dcid = original_dcid
    opener: _Opener | None = None
    opened = False
    crypto: list[tuple[int, bytes]] = []
    pos = 0
    for _ in range(MAX_PACKETS):
        # the rest is a short-header packet (it can only come last), zero padding, or junk
        if size - pos < 7 or data[pos] & 0xC0 != 0xC0 or _U32.unpack_from(data, pos + 1)[0] != version:
            break
        try:
            packet_type, dcid, pn_offset, end = _long_header(data, pos, params)
        except _wire.Malformed:
            break
        if packet_type == params.initial_type:
            if keys_dcid is None:
                keys_dcid = dcid
            # RFC 9000 §12.2: coalesced packets share the DCID; another one is another connection's
            if original_dcid is not None or dcid == keys_dcid:
                if opener is None:
                    opener = _Opener(_client_keys(params, keys_dcid))
                payload = opener.open(data, pos, pn_offset, end)
                if payload is not None:
                    opened = True
                    _crypto_frames(payload, crypto)
        pos = end
    if not opened or keys_dcid is None:
        return None
    return version, keys_dcid, crypto


class ClientHelloAssembler:
    """Joins the CRYPTO data of one connection's client Initials until the ClientHello is complete.

    A ClientHello with post-quantum key shares spans 2+ datagrams, which may arrive out of order,
    duplicated or overlapping (retransmissions). Bounded: bytes at or beyond `cap` are ignored, and
    nothing is added once the hello is complete.
    """

    __slots__ = ("_cap", "_data", "_have", "_hello")

    def __init__(self, cap: int = MAX_CRYPTO) -> None:
        self._cap = cap
        self._data = bytearray()
        self._have = bytearray()
        """One byte per byte of _data: 1 where a CRYPTO frame gave it, 0 in a gap."""
        self._hello: tls.TlsRecord | None = None

    def add(self, crypto: list[tuple[int, bytes]]) -> None:
        """Take the (offset, data) CRYPTO chunks of one datagram, in any order."""
        if self.complete:
            return
        cap = self._cap
        for offset, chunk in crypto:
            if not 0 <= offset < cap or not chunk:
                continue
            chunk = chunk[: cap - offset]
            stop = offset + len(chunk)
            grow = stop - len(self._data)
            if grow > 0:
                self._data += bytes(grow)
                self._have += bytes(grow)
            # RFC 9000 §19.6: a retransmission carries the same bytes at the same offset, so overwriting is harmless
            self._data[offset:stop] = chunk
            self._have[offset:stop] = b"\x01" * len(chunk)

    @property
    def complete(self) -> bool:
        """True once the first handshake message is contiguous from offset 0 through its end."""
        if self._hello is not None:
            return True
        end = self._message_end()
        return end is not None and self._contiguous() >= end

    def client_hello(self, partial: bool = False) -> tls.TlsRecord | None:
        """Return the ClientHello once complete; with `partial`, also a cut one (complete=False) from the
        contiguous bytes at offset 0. None when there is none yet or the data is not a ClientHello."""
        if self._hello is not None:
            return self._hello
        end = self._message_end()
        if end is None:
            return None
        have = self._contiguous()
        if have >= end:
            self._hello = tls.client_hello_message(bytes(self._data[:end]))
            return self._hello
        return tls.client_hello_message(bytes(self._data[:have])) if partial else None

    def _contiguous(self) -> int:
        """Return how many bytes from offset 0 have arrived without a gap."""
        gap = self._have.find(0)
        return len(self._have) if gap < 0 else gap

    def _message_end(self) -> int | None:
        """Return the end offset of the first handshake message, None before its header has arrived."""
        if len(self._have) < 4 or self._have[:4] != b"\x01\x01\x01\x01":
            return None
        data = self._data
        return 4 + ((data[1] << 16) | (data[2] << 8) | data[3])


def parse_initial(datagram: bytes) -> QuicRecord | None:
    """Return the ClientHello of the client Initials in one datagram (partial when cut), None when the
    datagram holds no decryptable client Initial or its CRYPTO data does not start a ClientHello."""
    found = initial_crypto(datagram)
    if found is None:
        return None
    version, dcid, crypto = found
    assembler = ClientHelloAssembler()
    assembler.add(crypto)
    hello = assembler.client_hello(partial=True)
    return None if hello is None else from_hello(version, dcid, hello)


class _Opener:
    """The client Initial keys of one connection: removes header protection and decrypts."""

    __slots__ = ("_aead", "_hp", "_iv")

    def __init__(self, keys: tuple[bytes, bytes, bytes]) -> None:
        key, self._iv, hp = keys
        self._aead = AESGCM(key)
        self._hp = Cipher(algorithms.AES(hp), modes.ECB())

    def open(self, data: bytes, start: int, pn_offset: int, end: int) -> bytes | None:
        """Return the plaintext payload of the long-header packet data[start:end], None when it does not
        authenticate (not a client Initial of these keys, or damaged)."""
        sample_at = pn_offset + HP_SAMPLE_OFFSET
        if sample_at + HP_SAMPLE_LEN > end:
            return None
        encryptor = self._hp.encryptor()
        mask = encryptor.update(data[sample_at : sample_at + HP_SAMPLE_LEN]) + encryptor.finalize()
        first = data[start] ^ (mask[0] & 0x0F)  # RFC 9001 §5.4.1: 4 bits of a long header's first byte
        pn_len = (first & 0x03) + 1
        if pn_offset + pn_len + AEAD_TAG_LEN > end:
            return None
        pn_bytes = bytes(b ^ m for b, m in zip(data[pn_offset : pn_offset + pn_len], mask[1 : 1 + pn_len], strict=True))
        header = bytes((first,)) + data[start + 1 : pn_offset] + pn_bytes
        # RFC 9000 §17.1 encodes the packet number truncated; a client's first Initials number 0, 1, 2..., so
        # the truncated value is the full one
        packet_number = int.from_bytes(pn_bytes, "big")
        nonce = (int.from_bytes(self._iv, "big") ^ packet_number).to_bytes(len(self._iv), "big")
        try:
            return self._aead.decrypt(nonce, data[pn_offset + pn_len : end], header)
        except InvalidTag:
            return None


def _client_keys(params: _Version, dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """Return the client Initial (key, iv, hp) of a version for a client's first DCID (RFC 9001 §5.2)."""
    initial_secret = HKDF.extract(hashes.SHA256(), params.salt, dcid)
    client_secret = _expand_label(initial_secret, b"client in", 32)
    return (
        _expand_label(client_secret, params.key_label, 16),
        _expand_label(client_secret, params.iv_label, 12),
        _expand_label(client_secret, params.hp_label, 16),
    )


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """Return HKDF-Expand-Label(secret, label, "", length) with SHA-256 (RFC 8446 §7.1)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"  # HkdfLabel, empty context
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _long_header(data: bytes, pos: int, params: _Version) -> tuple[int, bytes, int, int]:
    """Return (packet type, DCID, packet number offset, packet end) of the long-header packet at `pos`.

    Raise Malformed when it is cut, a Retry (no Length field), or its lengths are out of range.
    """
    packet_type = (data[pos] >> 4) & 0x03
    if packet_type == params.retry_type:
        raise _wire.Malformed("a Retry has no Length field")
    r = _wire.Reader(data, pos + 5)  # first byte, version
    dcid_len = r.u8()
    if dcid_len > MAX_CID_LEN:
        raise _wire.Malformed("RFC 9000 §17.2: a DCID is at most 20 bytes")
    dcid = r.take(dcid_len)
    scid_len = r.u8()
    if scid_len > MAX_CID_LEN:
        raise _wire.Malformed("RFC 9000 §17.2: an SCID is at most 20 bytes")
    r.skip(scid_len)
    if packet_type == params.initial_type:
        r.skip(_varint(r))  # token
    length = _varint(r)
    end = r.pos + length
    if end > len(data):
        raise _wire.Malformed("packet cut by the datagram end")
    return packet_type, dcid, r.pos, end


def _varint(r: _wire.Reader) -> int:
    """Read a variable-length integer (RFC 9000 §16: the top two bits give its length, 1/2/4/8 bytes)."""
    first = r.u8()
    n = 1 << (first >> 6)
    value = first & 0x3F
    for byte in r.take(n - 1):
        value = (value << 8) | byte
    return value


def _crypto_frames(payload: bytes, out: list[tuple[int, bytes]]) -> None:
    """Append the (offset, data) of the CRYPTO frames of a decrypted Initial payload to `out`.

    Walks the frames an Initial may carry (RFC 9000 §12.4) and stops at any other type or a malformed frame,
    keeping what came before it.
    """
    r = _wire.Reader(payload)
    try:
        for _ in range(MAX_FRAMES):
            if not r.left:
                return
            frame_type = r.u8()
            if frame_type == FRAME_PADDING:
                # a run of zeros counts as one frame: clients pad with 1000+ of them, Chrome also between frames
                r.pos = len(payload) - len(payload[r.pos :].lstrip(b"\x00"))  # the whole run, in C
            elif frame_type == FRAME_CRYPTO:
                offset = _varint(r)
                out.append((offset, r.take(_varint(r))))
            elif frame_type in (FRAME_ACK, FRAME_ACK_ECN):
                _varint(r)  # largest acknowledged
                _varint(r)  # ACK delay
                ranges = _varint(r)
                if ranges > MAX_ACK_RANGES:
                    return
                for _ in range(1 + 2 * ranges + (3 if frame_type == FRAME_ACK_ECN else 0)):
                    _varint(r)  # first range, (gap, length) pairs, ECN counts
            elif frame_type == FRAME_CONNECTION_CLOSE:
                _varint(r)  # error code
                _varint(r)  # frame type
                r.skip(_varint(r))  # reason phrase
            elif frame_type == FRAME_APPLICATION_CLOSE:
                _varint(r)
                r.skip(_varint(r))
            elif frame_type != FRAME_PING:
                return
    except _wire.Malformed:
        return


def _version_name(version: int) -> str:
    """Return '1' or '2' for the QUIC versions read here, else the version in hex."""
    return QUIC_VERSION_NAMES.get(version, f"0x{version:08x}")
