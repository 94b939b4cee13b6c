"""HTTP/1.x and RTSP/1.0 message heads from the first payload packets of a TCP flow, on any port.

Sources: RFC 9112 §3 (request line: method SP request-target SP HTTP-version) and §4 (status line:
HTTP-version SP status-code SP [reason-phrase]); RFC 2326 §6.1 / §7.1 (RTSP/1.0 reuses both forms
with its own version token and absolute rtsp:// targets); RFC 9110 §11.6.1 (WWW-Authenticate:
auth-scheme then auth-params such as realm; schemes are case-insensitive, §11.1); RFC 9110 §7.2
(Host), §10.1.5 (User-Agent), §10.2.4 (Server), §8.3 (Content-Type). fingerprints.md B13: the
Server banners and digest realms that name camera makers ('Hikvision-Webs', 'DNVRS-Webs',
'Dahua Rtsp Server', Digest realm="Hikvision", Basic realm="Login to <serial>").

The head itself (lines, fields, caps) is split by `_heads.parse_head`; this module only accepts it
when the start line is a strict HTTP/1.x or RTSP/1.0 request or status line, which rejects TLS,
binary protocols and body fragments that happen to contain printable text.

One record class per protocol name: `RtspRecord` is an `HttpRecord` whose `protocol` ClassVar is
'rtsp'. The fields are the same, `parse` returns either, and `record.protocol` tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from auditor.protocols import _wire
from auditor.protocols._heads import field_lines, split_head
from auditor.protocols.types import Fact

MAX_PAYLOAD = 8192
"""Bytes of a payload looked at for the head."""

MAX_HEADERS = 64
"""Header fields kept from one head."""

MAX_PATH = 128
"""Cap on the request path fact (characters): enough for '/ISAPI/System/deviceInfo' style paths."""

MAX_TARGET = 256
"""Cap on the request target kept in the record (characters)."""

MAX_SCHEME = 32
"""Cap on an authentication scheme name (characters)."""

RTSP_VERSION = "RTSP/1.0"
"""RFC 2326 §3.1: the only RTSP version this parser accepts."""

_VERSION = r"(HTTP/1\.[01]|RTSP/1\.0)"
"""RFC 9112 §2.3 HTTP-version (1.0 and 1.1 carry text heads) or RFC 2326 §3.1 RTSP-Version."""

_REQUEST_LINE = re.compile(r"([A-Z][A-Z0-9_-]{0,31}) (\S{1,1024}) " + _VERSION)
"""RFC 9112 §3 / RFC 2326 §6.1: methods are upper-case tokens in practice (GET, DESCRIBE, GET_PARAMETER)."""

_STATUS_LINE = re.compile(_VERSION + r" ([1-5][0-9][0-9])(?: (.*))?")
"""RFC 9112 §4 / RFC 2326 §7.1: version, a three-digit status code, an optional reason phrase."""

_ABSOLUTE_FORM = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]{0,15}://[^/?#]{0,256}")
"""RFC 9112 §3.2.2 absolute-form (proxies; every RTSP request): 'scheme://authority' before the path."""

_AUTH_SCHEME = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32})")
"""RFC 9110 §11.1: auth-scheme is a token."""

_REALM = re.compile(r"""(?:\A|[\s,])realm\s*=\s*(?:"([^"]{0,256})"?|([^\s,"]{1,256}))""", re.IGNORECASE)
"""RFC 9110 §11.5: the realm parameter, quoted-string or token (a cut-off closing quote is tolerated)."""


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class HttpRecord:
    """The head of one HTTP/1.x request or response (RtspRecord: of an RTSP/1.0 one)."""

    protocol: ClassVar[str] = "http"

    kind: str
    """'request' or 'response'."""

    version: str
    """The version token: 'HTTP/1.1', 'HTTP/1.0' or 'RTSP/1.0'."""

    method: str | None = None
    """Request method: 'GET', 'POST', 'DESCRIBE', 'OPTIONS'... (requests only)."""

    target: str | None = None
    """Request target as sent, capped at MAX_TARGET characters (requests only)."""

    path: str | None = None
    """The target without an absolute-form 'scheme://authority' prefix, query kept, capped at MAX_PATH."""

    status: int | None = None
    """Status code (responses only)."""

    reason: str | None = None
    """Reason phrase (responses only; may be absent)."""

    host: str | None = None
    """Host header."""

    user_agent: str | None = None
    """User-Agent header."""

    server: str | None = None
    """Server header, e.g. 'Hikvision-Webs', 'Dahua Rtsp Server'."""

    auth_scheme: str | None = None
    """Scheme of the first WWW-Authenticate challenge, lower-cased: 'digest', 'basic'."""

    realm: str | None = None
    """Realm of the first WWW-Authenticate challenge, e.g. 'Hikvision', 'Login to 8F0A...'."""

    content_type: str | None = None
    """Content-Type header, as sent."""

    def facts(self) -> Iterator[Fact]:
        """Yield (field, value) pairs describing the sender (client for requests, server for responses)."""
        texts = (
            ("method", self.method),
            ("path", self.path),
            ("host", self.host),
            ("user_agent", self.user_agent),
            ("server", self.server),
            ("status", None if self.status is None else str(self.status)),
            ("realm", self.realm),
            ("auth_scheme", self.auth_scheme),
            ("content_type", self.content_type),
        )
        for name, value in texts:
            if value:
                yield (name, value)


# not frozen, never mutated: built per packet, where a frozen __init__ costs ~10x (1.4 vs 0.14 µs)
@dataclass(slots=True, unsafe_hash=True)
class RtspRecord(HttpRecord):
    """The head of one RTSP/1.0 request or response: an HttpRecord under the protocol name 'rtsp'."""

    protocol: ClassVar[str] = "rtsp"


_WANTED = frozenset({"host", "user-agent", "server", "www-authenticate", "content-type"})
"""The header fields the record keeps (names as parse_head writes them)."""


def parse(payload: bytes) -> HttpRecord | None:
    """Return the HTTP/1.x or RTSP/1.0 head at the start of a TCP payload (an RtspRecord for RTSP), else None."""
    split = split_head(payload, MAX_PAYLOAD)
    if split is None:
        return None
    start_line, block = split
    method = target = path = reason = None
    code: int | None = None
    request = _REQUEST_LINE.fullmatch(start_line)
    response = None if request else _STATUS_LINE.fullmatch(start_line)
    if request is not None:
        kind = "request"
        method, raw_target, version = request.groups()
        target = raw_target[:MAX_TARGET]
        path = _ABSOLUTE_FORM.sub("", raw_target, count=1)[:MAX_PATH] or None
    elif response is not None:
        kind = "response"
        version, raw_code, raw_reason = response.groups()
        code = int(raw_code)
        reason = (raw_reason or "").strip() or None
    else:
        return None
    fields = dict(reversed(field_lines(block, MAX_HEADERS, _WANTED)))  # reversed: the first value of a name wins
    scheme, realm = _challenge(fields.get("www-authenticate"))
    cls = RtspRecord if version == RTSP_VERSION else HttpRecord
    return cls(
        kind=kind,
        version=version,
        method=method,
        target=target,
        path=path,
        status=code,
        reason=reason,
        host=fields.get("host") or None,
        user_agent=fields.get("user-agent") or None,
        server=fields.get("server") or None,
        auth_scheme=scheme,
        realm=realm,
        content_type=fields.get("content-type") or None,
    )


def _challenge(value: str | None) -> tuple[str | None, str | None]:
    """Return (scheme lower-cased, realm) of a WWW-Authenticate value; (None, None) when absent."""
    if not value:
        return None, None
    scheme = _AUTH_SCHEME.match(value)
    if scheme is None:
        return None, None
    params = value[scheme.end() :]
    realm = _REALM.search(params)
    realm_text = None
    if realm is not None:
        realm_text = _wire.text((realm.group(1) or realm.group(2) or "").encode("utf-8")) or None
    return scheme.group(1).lower()[:MAX_SCHEME], realm_text
