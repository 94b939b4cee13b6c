"""Convert a MUD file (RFC 8520, with RFC 8519 access lists) into a span-auditor rule file.

A MUD file is a manufacturer's statement of what a device needs to reach. Its from-device policy
becomes one policy for the devices announcing its MUD URL: accept ACEs become `allow` entries and
drop/reject ACEs `deny` entries. The to-device policy is not converted: we judge the flows a device
starts, and replies to them are part of those flows. What a passive auditor cannot resolve
(same-manufacturer, controller, ...) is skipped with a warning naming the ACE, so a person
reviews the output (to_yaml writes the warnings into its header) before using it.

The conversion is never more permissive than the MUD file:

- ACE order. A MUD policy's ACEs (over its ACLs, in order) are tried in order, the first match
  deciding; a rule-file policy tries every deny before any allow. A drop after an accept it may
  overlap (same family, protocols, ports and networks not provably disjoint) is therefore applied
  first, the stricter reading, with a warning naming both ACEs. A drop with no matches drops every
  flow: the ACEs after it are never reached and are skipped (checked, not converted). A drop that
  cannot be converted is skipped with a warning naming the accepts after it, which may approve
  flows the MUD file drops.
- Address family. An ACE of an ipv4/ipv6 ACL, or with an ipv4/ipv6 match, applies to that family
  only: an entry with no destination of its own (no networks, domains or local) gets
  `networks: 0.0.0.0/0` or `::/0`. Names resolve per family and a network has one already;
  `local: true` is the site's local networks of both families.
- Ids. The policy id (and the default ruleset name) is `mud-` and a slug of the MUD URL's host,
  port, path (less a final `.json`) and query: two makers' `device.json` differ. An id longer
  than 60 characters is cut and ends in 8 hex digits of the URL's SHA-256.

The file is hostile input: sizes, list lengths and carried text are capped, and MudError is the
only exception. Every MudError message starts with the file name (one line, cleaned): then
`file:line:column:` for JSON syntax, `file: json.path: problem` for what is inside the document
(`ietf-mud:mud.from-device-policy`, `ietf-access-control-list:acls.acl[1].aces.ace[0].matches`),
where a missing member is named at its container (`...destination-port: no port`), and
`file: problem` when there is no path: the file cannot be read, is not JSON, is not a JSON object,
or an argument (severity, MAC, vendor, ruleset) is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import yaml

from auditor.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ACES = 10_000  # over every ACL of the file
MAX_ACLS = 1_000
MAX_REFS = 1_000  # access-list names per policy
MAX_WARNINGS = 500
MAX_TEXT = 200  # characters of a name or description carried into the rule file
MAX_URL = 2_048
ID_LENGTH = 60

MUD_KEY = "ietf-mud:mud"
ACLS_KEYS = ("ietf-access-control-list:acls", "ietf-access-control-list:access-lists")  # RFC 8519; drafts
SEVERITIES = ("low", "medium", "high", "critical")
DENY_SEVERITY = "high"

_MUD_FIELDS = frozenset({
    "mud-version", "mud-url", "last-update", "mud-signature", "cache-validity", "is-supported", "systeminfo",
    "mfg-name", "model-name", "firmware-rev", "software-rev", "documentation", "extensions",
    "from-device-policy", "to-device-policy",
})
# RFC 8520 §8 match abstractions that name other devices or site controllers: nothing on the wire says
# which addresses they are, so a passive auditor cannot judge them
_UNRESOLVABLE = ("same-manufacturer", "manufacturer", "model", "controller", "my-controller")
# RFC 8519 header fields we have no column for; ignoring them only widens an entry a little
_IGNORED_L3 = frozenset({"dscp", "ecn", "length", "ttl", "ihl", "flags", "offset", "identification", "flow-label"})
_IGNORED_L4 = frozenset({"sequence-number", "acknowledgement-number", "data-offset", "reserved", "flags",
                         "window-size", "urgent-pointer", "options", "length", "checksum"})
_SOURCE_FIELDS = frozenset({"ietf-acldns:src-dnsname", "source-ipv4-network", "source-ipv6-network"})
_DST_PORT = ("destination-port", "destination-port-range-or-operator", "destination-port-range")  # RFC; drafts
_SRC_PORT = ("source-port", "source-port-range-or-operator", "source-port-range")
_L4 = {"tcp": 6, "udp": 17, "icmp": 1}
_PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}  # names schema.py accepts
_PROTOCOL_NUMBERS = {name: number for number, name in _PROTOCOL_NAMES.items()}
_ANY_ADDRESS = {4: "0.0.0.0/0", 6: "::/0"}

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:\-]?)[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}$")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")

JsonPath = tuple[str | int, ...]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MudError(ConfigError, ValueError):
    """A MUD file cannot be converted: names the file and the JSON path (a ConfigError: CLI exit 2)."""


@dataclass(frozen=True, slots=True)
class MudConversion:
    """One converted MUD file."""

    rule_file: dict[str, Any]
    """The rule-file document (plain dicts, lists, str and int: yaml.safe_dump writes it)."""
    warnings: tuple[str, ...]
    """What was skipped or ignored, one line each, naming the ACE; a person reviews these."""
    mud_url: str
    source: str = ""
    """Where the MUD file came from (a path), for the YAML header."""


class _Skip(Exception):
    """This ACE cannot be converted faithfully; the message says why."""

    def __init__(self, message: str, *, inbound_only: bool = False) -> None:
        super().__init__(message)
        self.inbound_only = inbound_only
        """It matches only connections others open to the device: none of the flows we judge."""
        self.drop = False
        """It is a drop or reject ACE (set once its action is known)."""


class _DropsAll(Exception):
    """A drop ACE with no matches: it drops every flow, so no later ACE of the policy is reached."""


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a converted ACE matches, as far as proving two ACEs disjoint goes (None: any).

    Domains and `local` prove nothing: a MUD name stands for the addresses it resolves to, which
    another name or the site's local networks may share. Family, protocols, ports and networks do.
    """

    family: int | None
    networks: tuple[Network, ...] | None
    protocols: frozenset[int] | None
    ports: tuple[tuple[int, int], ...] | None

    @classmethod
    def of(cls, entry: dict[str, Any], family: int | None) -> _Shape:
        networks = tuple(ipaddress.ip_network(n) for n in entry["networks"]) if "networks" in entry else None
        protocols = frozenset(_PROTOCOL_NUMBERS[p] if isinstance(p, str) else int(p)
                              for p in entry["protocols"]) if "protocols" in entry else None
        ports = tuple(_port_range(p) for p in entry["ports"]) if "ports" in entry else None
        return cls(family, networks, protocols, ports)

    def disjoint(self, other: _Shape) -> bool:
        """Return True when no flow can match both (False: they may overlap)."""
        if self.family is not None and other.family is not None and self.family != other.family:
            return True
        if self.protocols is not None and other.protocols is not None and not self.protocols & other.protocols:
            return True
        if self.ports is not None and other.ports is not None and not any(
                low <= o_high and o_low <= high for low, high in self.ports for o_low, o_high in other.ports):
            return True
        return self.networks is not None and other.networks is not None and not any(
            a.version == b.version and a.overlaps(b) for a in self.networks for b in other.networks)


@dataclass(slots=True)
class _Converted:
    """A from-device policy's entries, in file order within allow and deny."""

    allow: list[dict[str, Any]] = field(default_factory=list)
    deny: list[dict[str, Any]] = field(default_factory=list)
    accepts: list[tuple[str, _Shape]] = field(default_factory=list)
    """The accept ACEs converted so far: label, shape."""
    skipped_drops: list[tuple[str, list[str]]] = field(default_factory=list)
    """Drop ACEs that could not be converted, with the labels of the accepts converted after them."""
    drops_all: str | None = None
    """The label of a drop ACE with no matches: ACEs after it are unreachable."""
    unreachable: list[str] = field(default_factory=list)


def _clean(text: str, limit: int = MAX_TEXT) -> str:
    """Return text safe for one line of YAML or a comment: no control characters, at most limit chars."""
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(path: JsonPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + _clean(part, 80)
    return out


class _Reader:
    """Typed access to the JSON document that fails with the file and the path, and collects warnings."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []
        self.dropped = 0

    def fail(self, path: JsonPath, message: str) -> NoReturn:
        where = _where(path)
        raise MudError(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(_clean(message, 400))
        else:
            self.dropped += 1

    def obj(self, value: Any, path: JsonPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "expected an object")
        return value

    def seq(self, value: Any, path: JsonPath, limit: int) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "expected a list")
        if len(value) > limit:
            self.fail(path, f"{len(value)} entries; at most {limit} are read")
        return value

    def text(self, value: Any, path: JsonPath) -> str:
        if not isinstance(value, str):
            self.fail(path, "expected a string")
        return value

    def optional_text(self, container: dict[str, Any], key: str, path: JsonPath) -> str | None:
        value = container.get(key)
        return None if value is None else self.text(value, (*path, key))

    def number(self, value: Any, path: JsonPath, high: int, what: str) -> int:
        # RFC 7951 writes uint8/uint16 as JSON numbers; some generators quote them
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
            self.fail(path, f"expected {what} (0-{high})")
        return value


@dataclass(frozen=True, slots=True)
class _Acl:
    name: str
    family: int | None
    """4 or 6 from the ACL type; None for mixed or Ethernet types."""
    aces: tuple[tuple[str, dict[str, Any], JsonPath], ...]


def is_mud_document(document: Any) -> bool:
    """Return True when document is a JSON object holding the `ietf-mud:mud` container."""
    return isinstance(document, dict) and MUD_KEY in document


def load_mud(
    path: str | os.PathLike[str],
    *,
    severity: str = "medium",
    macs: Sequence[str] = (),
    vendors: Sequence[str] = (),
    ruleset: str | None = None,
) -> MudConversion:
    """Read a MUD JSON file (at most 4 MiB) and return its conversion; MudError says what is wrong."""
    source = os.fspath(path)
    shown = _clean(source, 300)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise MudError(f"{shown}: cannot read: {_clean(str(exc.strerror or exc))}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise MudError(f"{shown}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not read")
    document = parse_json(data, source)
    return convert_mud(document, source, severity=severity, macs=macs, vendors=vendors, ruleset=ruleset)


def parse_json(data: bytes, source: str) -> Any:
    """Return the JSON value in data; MudError with file:line:column when it is not JSON."""
    source = _clean(source, 300)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MudError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MudError(f"{source}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise MudError(f"{source}: nested too deeply to be a MUD file") from None
    except ValueError as exc:  # e.g. an integer longer than int_max_str_digits
        raise MudError(f"{source}: not JSON: {_clean(str(exc))}") from None


def convert_mud(
    document: Any,
    source: str,
    *,
    severity: str = "medium",
    macs: Sequence[str] = (),
    vendors: Sequence[str] = (),
    ruleset: str | None = None,
) -> MudConversion:
    """Return the rule file for a parsed MUD document; MudError names the file and the JSON path."""
    reader = _Reader(_clean(source, 300))
    _check_arguments(reader.source, severity, macs, vendors, ruleset)
    if not isinstance(document, dict):
        reader.fail((), f"expected a JSON object holding {MUD_KEY!r}")
    if MUD_KEY not in document:
        reader.fail((), f"no {MUD_KEY!r} container: not a MUD file")
    for key in document:
        if key != MUD_KEY and key not in ACLS_KEYS:
            reader.warn(f"unknown top-level key {_quote(key)} ignored")
    mud = reader.obj(document[MUD_KEY], (MUD_KEY,))
    for key in mud:
        if key not in _MUD_FIELDS:
            reader.warn(f"unknown key {_quote(key)} in {MUD_KEY} ignored")
    about = _describe(reader, mud)
    acls = _acl_table(reader, document)

    converted = _Converted()
    used: set[str] = set()
    for name in _policy_acls(reader, mud, "from-device-policy"):
        used.add(name)
        if name not in acls:
            reader.warn(f"from-device policy names acl {_quote(name)}, which the file does not define; skipped")
            continue
        _convert_acl(reader, acls[name], converted)
    _order_warnings(reader, converted)
    allow, deny = converted.allow, converted.deny
    for name in _policy_acls(reader, mud, "to-device-policy"):
        used.add(name)
        for ace_name, _ace, _path in acls[name].aces if name in acls else ():
            reader.warn(f"to-device ace {_clean(ace_name)} (acl {_clean(name)}): skipped: inbound rules are not "
                        "judged (replies to a device's own flows are part of those flows)")
    for name in acls:
        if name not in used:
            reader.warn(f"acl {_clean(name)} is named by neither policy; skipped")

    policy_id = _derive_id(about["url"], about["model"])
    devices: list[dict[str, Any]] = [{"mud_urls": [about["url"]]}]
    if macs:
        devices.append({"macs": list(macs)})
    if vendors:
        devices.append({"vendors": list(vendors)})
    policy: dict[str, Any] = {
        "id": policy_id,
        "name": about["name"],
        "description": about["policy_description"],
        "devices": devices,
        "allow": allow,
    }
    if deny:
        policy["deny"] = deny
    policy["severity"] = severity
    rule_file: dict[str, Any] = {
        "version": 1,
        "ruleset": ruleset or policy_id,
        "description": about["description"],
        "policies": [policy],
    }
    if reader.dropped:
        reader.warnings.append(f"... and {reader.dropped} more warnings")
    logger.debug("%s: %d allow, %d deny entries, %d warnings", source, len(allow), len(deny), len(reader.warnings))
    return MudConversion(rule_file, tuple(reader.warnings), about["url"], reader.source)


def to_yaml(conversion: MudConversion) -> str:
    """Return the rule file as YAML under a header naming the source and listing every warning."""
    header = ["# Rule file converted by span-auditor from a MUD file (RFC 8520).",
              f"# Source: {_clean(conversion.source, 300) or '(not given)'}",
              f"# MUD URL: {_clean(conversion.mud_url, MAX_URL)}"]
    if conversion.warnings:
        count = len(conversion.warnings)
        header.append(f"# Review before use: {count} warning{'s' if count != 1 else ''}:")
        header.extend(f"#   {_clean(w, 400)}" for w in conversion.warnings)
    else:
        header.append("# No warnings; review before use all the same.")
    body = yaml.safe_dump(conversion.rule_file, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body


def _check_arguments(
    source: str, severity: str, macs: Sequence[str], vendors: Sequence[str], ruleset: str | None
) -> None:
    # these come from the caller (CLI flags), not the file: no JSON path, and say it is an argument
    if severity not in SEVERITIES:
        raise MudError(f"{source}: severity argument {_shown(severity)} is not one of {', '.join(SEVERITIES)}")
    for mac in macs:
        if not isinstance(mac, str) or not _MAC.match(mac):
            raise MudError(f"{source}: MAC argument {_shown(mac)} is not a MAC address (AA:BB:CC:DD:EE:FF)")
    for vendor in vendors:
        if not isinstance(vendor, str) or not _ID.match(vendor):
            raise MudError(f"{source}: vendor argument {_shown(vendor)} is not a vendor id "
                           "(lower case letters, digits and '-')")
    if ruleset is not None and (not isinstance(ruleset, str) or not _ID.match(ruleset)):
        raise MudError(f"{source}: ruleset argument {_shown(ruleset)} is not an id "
                       "(lower case letters, digits and '-')")


def _shown(value: object) -> str:
    return repr(_clean(value, 80)) if isinstance(value, str) else _clean(repr(value), 80)


def _others(container: dict[str, Any], *known: str) -> list[str]:
    """Return the keys of container not in known, in file order (warnings come out in a stable order)."""
    return [key for key in container if key not in known]


def _quote(key: Any) -> str:
    return repr(_clean(key, 80)) if isinstance(key, str) else repr(key)


def _describe(reader: _Reader, mud: dict[str, Any]) -> dict[str, str]:
    """Read the descriptive leaves: the URL, names and the two description texts."""
    path: JsonPath = (MUD_KEY,)
    if "mud-url" not in mud:
        reader.fail(path, "no mud-url")
    url = reader.text(mud["mud-url"], (*path, "mud-url"))
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (parts is None or not parts.scheme or not parts.netloc or len(url) > MAX_URL
            or any(ch.isspace() or not ch.isprintable() for ch in url)):
        reader.fail((*path, "mud-url"), "not a URL")
    if parts.scheme != "https":
        reader.warn(f"mud-url uses {_clean(parts.scheme, 20)}:, but RFC 8520 MUD URLs are https")
    version = mud.get("mud-version", 1)
    if version != 1 or isinstance(version, bool):
        shown = version if isinstance(version, int) and abs(version) < 10**9 else "(not a small number)"
        reader.warn(f"mud-version {shown}: this converter reads version 1; converted as such")
    fields = {key: reader.optional_text(mud, key, path) for key in
              ("systeminfo", "mfg-name", "model-name", "firmware-rev", "software-rev", "documentation", "last-update")}
    extensions = reader.seq(mud.get("extensions", []), (*path, "extensions"), MAX_REFS)
    for i, extension in enumerate(extensions):
        reader.warn(f"MUD extension {_clean(reader.text(extension, (*path, 'extensions', i)))} is not interpreted")

    systeminfo = _clean(fields["systeminfo"] or "")
    model = _clean(fields["model-name"] or "")
    description = f"Imported from MUD {url}"
    if systeminfo:
        description += f" ({systeminfo})"
    if fields["last-update"]:
        description += f", last-update {_clean(fields['last-update'], 40)}"
    details = [f"{label} {_clean(value)}" for label, value in (
        ("Manufacturer:", fields["mfg-name"]), ("Model:", fields["model-name"]),
        ("Firmware:", fields["firmware-rev"]), ("Software:", fields["software-rev"]),
        ("Documentation:", fields["documentation"])) if value]
    policy_description = " ".join(
        ["Flows the device starts, as the from-device policy of its MUD file allows them.",
         *(f"{d}." for d in details)])
    return {"url": url, "name": systeminfo.strip() or model.strip() or url, "model": model,
            "description": description, "policy_description": policy_description}


def _derive_id(url: str, model: str) -> str:
    """Return 'mud-' plus a slug of the URL's host, port, path (less '.json') and query (else of the model
    name, else 'device'); over ID_LENGTH characters, cut and ended with 8 hex digits of the URL's SHA-256.

    The host and the whole path keep two makers' `/mud/device.json` apart: the ids of a rules folder
    of MUD files must differ.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # not the user info
    path = re.sub(r"\.json$", "", parts.path, flags=re.IGNORECASE)
    slug = _slug(f"{host}/{path}/{parts.query}") or _slug(model) or "device"
    policy_id = f"mud-{slug}"
    if len(policy_id) <= ID_LENGTH:
        return policy_id
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{policy_id[: ID_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _acl_table(reader: _Reader, document: dict[str, Any]) -> dict[str, _Acl]:
    """Return the file's ACLs by name, in either spelling (RFC 8519 `acls` or the drafts' `access-lists`)."""
    present = [key for key in ACLS_KEYS if key in document]
    if not present:
        return {}
    if len(present) > 1:
        reader.fail((), f"both {ACLS_KEYS[0]!r} and {ACLS_KEYS[1]!r}; a MUD file has one")
    key = present[0]
    container = reader.obj(document[key], (key,))
    acl_list = reader.seq(container.get("acl", []), (key, "acl"), MAX_ACLS)
    table: dict[str, _Acl] = {}
    total = 0
    for i, raw in enumerate(acl_list):
        path: JsonPath = (key, "acl", i)
        acl = reader.obj(raw, path)
        name_key = "name" if "name" in acl else "acl-name"
        if name_key not in acl:
            reader.fail(path, "no name")
        name = reader.text(acl[name_key], (*path, name_key))
        if name in table:
            reader.fail((*path, name_key), f"acl {_clean(name)!r} is defined twice")
        type_key = "type" if "type" in acl else "acl-type"
        acl_type = reader.optional_text(acl, type_key, path) or ""
        aces_key = "aces" if "aces" in acl else "access-list-entries"
        aces: list[tuple[str, dict[str, Any], JsonPath]] = []
        if aces_key in acl:
            holder = reader.obj(acl[aces_key], (*path, aces_key))
            entries = reader.seq(holder.get("ace", []), (*path, aces_key, "ace"), MAX_ACES)
            total += len(entries)
            if total > MAX_ACES:
                reader.fail((*path, aces_key, "ace"), f"more than {MAX_ACES} ACEs in the file; not converted")
            for j, raw_ace in enumerate(entries):
                ace_path: JsonPath = (*path, aces_key, "ace", j)
                ace = reader.obj(raw_ace, ace_path)
                ace_key = "name" if "name" in ace else "rule-name"
                if ace_key not in ace:
                    reader.fail(ace_path, "no name")
                aces.append((reader.text(ace[ace_key], (*ace_path, ace_key)), ace, ace_path))
        for extra in _others(acl, name_key, type_key, aces_key):
            reader.warn(f"acl {_clean(name)}: unknown key {_quote(extra)} ignored")
        # identities may carry their module prefix: "ietf-access-control-list:ipv6-acl-type"
        short_type = acl_type.rsplit(":", 1)[-1]
        family = {"ipv4-acl-type": 4, "ipv6-acl-type": 6}.get(short_type)
        table[name] = _Acl(name, family, tuple(aces))
    return table


def _policy_acls(reader: _Reader, mud: dict[str, Any], direction: str) -> list[str]:
    """Return the ACL names a from-/to-device policy lists, in order."""
    path: JsonPath = (MUD_KEY, direction)
    if direction not in mud:
        if direction == "from-device-policy":
            reader.warn("no from-device-policy: every flow of these devices will be a finding")
        return []
    policy = reader.obj(mud[direction], path)
    for key in _others(policy, "access-lists"):
        reader.warn(f"{direction}: unknown key {_quote(key)} ignored")
    if "access-lists" not in policy:
        return []
    lists = reader.obj(policy["access-lists"], (*path, "access-lists"))
    refs = reader.seq(lists.get("access-list", []), (*path, "access-lists", "access-list"), MAX_REFS)
    names: list[str] = []
    for i, raw in enumerate(refs):
        ref_path: JsonPath = (*path, "access-lists", "access-list", i)
        ref = reader.obj(raw, ref_path)
        key = "name" if "name" in ref else "acl-name"
        if key not in ref:
            reader.fail(ref_path, "no name")
        names.append(reader.text(ref[key], (*ref_path, key)))
    return names


def _convert_acl(reader: _Reader, acl: _Acl, out: _Converted) -> None:
    """Convert one from-device ACL's ACEs into out, in order (the order of the policy's ACLs, then ACEs)."""
    for ace_name, ace, path in acl.aces:
        label = f"ace {_clean(ace_name)} (acl {_clean(acl.name)})"
        if out.drops_all is not None:
            # never reached in the MUD file: still checked (a wrong type is an error), not converted
            out.unreachable.append(label)
            with contextlib.suppress(_Skip, _DropsAll):
                _convert_ace(_Reader(reader.source), ace, path, label, acl.family)
            continue
        try:
            action, entry, shape = _convert_ace(reader, ace, path, label, acl.family)
        except _DropsAll:
            out.drops_all = label
            continue
        except _Skip as skip:
            reader.warn(f"{label}: {skip}; skipped")
            if skip.drop and not skip.inbound_only:
                out.skipped_drops.append((label, []))
            continue
        if action == "allow":
            out.allow.append(entry)
            out.accepts.append((label, shape))
            for _drop, later in out.skipped_drops:
                later.append(label)
            continue
        out.deny.append(entry)
        earlier = [accept for accept, accepted in out.accepts if not shape.disjoint(accepted)]
        if earlier:
            more = ""
            if len(earlier) > 1:
                more = f" and {len(earlier) - 1} more accept ({', '.join(earlier[1:4])}"
                more += ", ...)" if len(earlier) > 4 else ")"
            reader.warn(f"{label}: drop comes after {earlier[0]}{more}, an accept that "
                        "may match the same flows; a rule file cannot keep ACE order, so the deny is applied first "
                        "(the stricter reading: flows both match are findings, though the MUD file accepts them)")


def _order_warnings(reader: _Reader, out: _Converted) -> None:
    """Warn of what ACE order changed beyond a drop applied first (see _convert_acl)."""
    for label, later in out.skipped_drops:
        if later:
            more = f" and {len(later) - 1} more" if len(later) > 1 else ""
            reader.warn(f"{label}: this drop could not be converted, but accept {later[0]}{more} after it may match "
                        "flows it drops: those are approved here though the MUD file drops them; review")
    if out.drops_all is not None:
        count = len(out.unreachable)
        listed = ", ".join(out.unreachable[:3]) + (", ..." if count > 3 else "")
        after = (f"; the {count} later ACEs ({listed}) are never reached and are skipped" if count > 1
                 else f"; the later ACE ({listed}) is never reached and is skipped" if count else "")
        reader.warn(f"{out.drops_all}: drop with no matches drops every flow, as the policy's severity does "
                    f"for what no allow entry approves{after}")


def _convert_ace(
    reader: _Reader, ace: dict[str, Any], path: JsonPath, label: str, family: int | None
) -> tuple[str, dict[str, Any], _Shape]:
    """Return ("allow" | "deny", entry, its shape) for one from-device ACE; _Skip when it cannot be
    written, _DropsAll for a drop with no matches."""
    for key in _others(ace, "name", "rule-name", "matches", "actions"):
        reader.warn(f"{label}: unknown key {_quote(key)} ignored")
    action = _action(reader, ace.get("actions"), (*path, "actions"), label)
    matches = ace.get("matches")
    if (matches is None or matches == {}) and action == "deny":
        raise _DropsAll
    try:
        if matches is None or matches == {}:
            raise _Skip("no matches, so it would match every flow")
        entry, entry_family = _matches(reader, reader.obj(matches, (*path, "matches")), (*path, "matches"), label,
                                       family)
        if not entry:
            raise _Skip("nothing it matches can be judged here, so it would match every flow")
    except _Skip as skip:
        skip.drop = action == "deny"
        raise
    shape = _Shape.of(entry, entry_family)
    entry["comment"] = label
    if action == "deny":
        entry["severity"] = DENY_SEVERITY
    return action, entry, shape


def _action(reader: _Reader, value: Any, path: JsonPath, label: str) -> str:
    if value is None:
        raise _Skip("no actions")
    actions = reader.obj(value, path)
    for key in _others(actions, "forwarding", "logging", "permit", "deny"):
        reader.warn(f"{label}: unknown action {_quote(key)} ignored")
    if "forwarding" in actions:
        # an identity, maybe with its module prefix: "ietf-access-control-list:accept"
        forwarding = reader.text(actions["forwarding"], (*path, "forwarding")).rsplit(":", 1)[-1]
        if forwarding == "accept":
            return "allow"
        if forwarding in ("drop", "reject"):
            return "deny"
        raise _Skip(f"unknown forwarding action {_clean(forwarding, 40)!r}")
    if "permit" in actions or "deny" in actions:  # early drafts: empty leaves instead of `forwarding`
        return "allow" if "permit" in actions else "deny"
    raise _Skip("no forwarding action")


def _matches(
    reader: _Reader, matches: dict[str, Any], path: JsonPath, label: str, acl_family: int | None
) -> tuple[dict[str, Any], int | None]:
    """Return the destination fields (without comment) one ACE's matches map to, and its address family
    (4, 6 or None: either); _Skip if none can."""
    flat: dict[str, tuple[Any, JsonPath]] = {}
    for key, value in matches.items():
        if key in ("l3", "l4"):  # drafts wrapped the choices: "l3": {"ipv6": ...}, "l4": {"tcp": ...}
            for inner, inner_value in reader.obj(value, (*path, key)).items():
                if inner in flat:
                    raise _Skip(f"{_quote(inner)} given twice")
                flat[inner] = (inner_value, (*path, key, inner))
        elif key in flat:
            raise _Skip(f"{_quote(key)} given twice")
        else:
            flat[key] = (value, (*path, key))

    entry: dict[str, Any] = {}
    l3 = [key for key in ("ipv4", "ipv6", "eth") if key in flat]
    l4 = [key for key in _L4 if key in flat]
    unknown = _others(flat, "ipv4", "ipv6", "eth", *_L4, "ietf-mud:mud", "egress-interface", "ingress-interface")
    if unknown:
        raise _Skip(f"unknown match {_quote(unknown[0])}")
    if "eth" in flat:
        raise _Skip("Ethernet (eth) matches cannot be judged on IP flows")
    if len(l3) > 1 or len(l4) > 1:
        raise _Skip(f"matches {' and '.join(l3 + l4)} together (RFC 8519 allows one of each)")
    for key in ("egress-interface", "ingress-interface"):
        if key in flat:
            reader.warn(f"{label}: {key} cannot be judged passively; ignored")
    if "ietf-mud:mud" in flat:
        value, mud_path = flat["ietf-mud:mud"]
        _mud_abstractions(reader, value, mud_path, entry)

    family = acl_family
    protocol: int | None = None
    if l3:
        family = 4 if l3[0] == "ipv4" else 6
        value, l3_path = flat[l3[0]]
        protocol = _l3(reader, reader.obj(value, l3_path), l3_path, label, family, entry)
    if l4:
        value, l4_path = flat[l4[0]]
        implied = 58 if l4[0] == "icmp" and family == 6 else _L4[l4[0]]
        if protocol is not None and protocol != implied and not (l4[0] == "icmp" and protocol in (1, 58)):
            raise _Skip(f"protocol {protocol} contradicts its {l4[0]} match")
        if protocol is None and l4[0] == "icmp" and family is None:
            entry["protocols"] = ["icmp", "icmpv6"]
        else:
            entry["protocols"] = [_protocol_name(protocol if protocol is not None else implied)]
        ports = _l4(reader, reader.obj(value, l4_path), l4_path, label, l4[0])
        if ports:
            entry["ports"] = ports
    elif protocol is not None:
        entry["protocols"] = [_protocol_name(protocol)]
    if entry and family is not None and not entry.keys() & {"local", "domains", "networks"}:
        # `tcp 443` of an IPv4 ACL is IPv4 only. Not added to an empty entry: an ACE matching only
        # what we ignore (a source network, ttl...) is not "all of IPv4"
        entry["networks"] = [_ANY_ADDRESS[family]]
    # key order of the written entry: where to, then how
    order = ("local", "domains", "networks", "protocols", "ports")
    return {key: entry[key] for key in order if key in entry}, family


def _protocol_name(number: int) -> str | int:
    return _PROTOCOL_NAMES.get(number, number)


def _mud_abstractions(reader: _Reader, value: Any, path: JsonPath, entry: dict[str, Any]) -> None:
    """RFC 8520 §8 matches: local-networks becomes `local`; the rest name devices we cannot resolve."""
    abstractions = reader.obj(value, path)
    for key, item in abstractions.items():
        if key == "local-networks":
            entry["local"] = True
        elif key in _UNRESOLVABLE:
            named = f" {_clean(item, 80)!r}" if isinstance(item, str) else ""
            raise _Skip(f"matches {key}{named}: other devices or controllers, which a passive auditor cannot "
                        "resolve to addresses")
        else:
            raise _Skip(f"unknown MUD match {_quote(key)}")


def _l3(
    reader: _Reader, l3: dict[str, Any], path: JsonPath, label: str, family: int, entry: dict[str, Any]
) -> int | None:
    """Fill domains/networks from an ipv4/ipv6 match; return its protocol number, if any."""
    protocol: int | None = None
    for key, value in l3.items():
        field_path = (*path, key)
        if key == "ietf-acldns:dst-dnsname":  # RFC 8520 §10: a name the device resolves
            entry["domains"] = [_dns_name(reader.text(value, field_path))]
        elif key in ("destination-ipv4-network", "destination-ipv6-network"):
            entry["networks"] = [_network(reader.text(value, field_path), 4 if "ipv4" in key else 6, family)]
        elif key == "protocol":
            protocol = reader.number(value, field_path, 255, "a protocol number")
        elif key in _SOURCE_FIELDS:
            reader.warn(f"{label}: {key} names the device itself on a from-device ACE; ignored")
        elif key in _IGNORED_L3:
            reader.warn(f"{label}: ipv{family} {key} cannot be judged on flows; ignored")
        else:
            reader.warn(f"{label}: unknown ipv{family} field {_quote(key)} ignored")
    return protocol


def _dns_name(text: str) -> str:
    name = text.strip().lower().removesuffix(".")
    # our rule language reads '*.' and a leading '.' as wildcards: a MUD name is one exact host
    if not _DNS_NAME.match(name):
        raise _Skip(f"{_clean(text, 80)!r} is not a host name")
    return name


def _network(text: str, version: int, family: int) -> str:
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)  # ietf-inet-types: host bits are ignored
    except ValueError:
        raise _Skip(f"{_clean(text, 80)!r} is not a network") from None
    if network.version != version or version != family:
        raise _Skip(f"{_clean(text, 80)!r} is not an IPv{family} network")
    return str(network)


def _l4(reader: _Reader, l4: dict[str, Any], path: JsonPath, label: str, kind: str) -> list[int | str]:
    """Return the destination ports of a tcp/udp/icmp match (empty: any port)."""
    ports: list[int | str] = []
    for key, value in l4.items():
        field_path = (*path, key)
        if kind != "icmp" and key in _DST_PORT:
            ports = _ports(reader, value, field_path, label)
        elif kind != "icmp" and key in _SRC_PORT:
            reader.warn(f"{label}: {key} is the device's own port on a from-device ACE; ignored")
        elif key == "ietf-mud:direction-initiated":  # RFC 8520 §7: who opened the TCP connection
            direction = reader.text(value, field_path).rsplit(":", 1)[-1]
            if direction == "to-device":
                raise _Skip("direction-initiated to-device: connections others open to the device are not "
                            "its own flows", inbound_only=True)
            if direction != "from-device":
                raise _Skip(f"unknown direction-initiated {_clean(direction, 40)!r}")
        elif kind == "icmp" and key in ("type", "code", "rest-of-header"):
            reader.warn(f"{label}: icmp {key} cannot be judged on flows; ignored")
        elif key in _IGNORED_L4:
            reader.warn(f"{label}: {kind} {key} cannot be judged on flows; ignored")
        else:
            reader.warn(f"{label}: unknown {kind} field {_quote(key)} ignored")
    return ports


def _ports(reader: _Reader, value: Any, path: JsonPath, label: str) -> list[int | str]:
    """Return an RFC 8519 port range or operator as rule-file ports (numbers or 'low-high')."""
    spec = reader.obj(value, path)
    ranges: list[tuple[int, int]]
    if "lower-port" in spec or "upper-port" in spec:
        for key in _others(spec, "lower-port", "upper-port"):
            reader.warn(f"{label}: unknown port field {_quote(key)} ignored")
        for key in ("lower-port", "upper-port"):
            if key not in spec:
                reader.fail(path, f"no {key}")
        low = reader.number(spec["lower-port"], (*path, "lower-port"), 65535, "a port number")
        high = reader.number(spec["upper-port"], (*path, "upper-port"), 65535, "a port number")
        ranges = [(low, high)]
    else:
        for key in _others(spec, "operator", "port"):
            reader.warn(f"{label}: unknown port field {_quote(key)} ignored")
        operator = reader.text(spec.get("operator", "eq"), (*path, "operator")).rsplit(":", 1)[-1]
        if "port" not in spec:
            reader.fail(path, "no port")
        port = reader.number(spec["port"], (*path, "port"), 65535, "a port number")
        by_operator = {
            "eq": [(port, port)],
            "lte": [(0, port)], "lt": [(0, port - 1)],  # lt/gt: draft spellings
            "gte": [(port, 65535)], "gt": [(port + 1, 65535)],
            "neq": [(0, port - 1), (port + 1, 65535)],  # ports are ORed, so "not p" is two ranges
        }
        if operator not in by_operator:
            raise _Skip(f"unknown port operator {_clean(operator, 20)!r}")
        ranges = by_operator[operator]
    ranges = [(low, high) for low, high in ranges if low <= high]
    if not ranges:
        raise _Skip("its destination port range is empty")
    return [low if low == high else f"{low}-{high}" for low, high in ranges]


def _port_range(port: int | str) -> tuple[int, int]:
    """Return a written port (443 or '8000-8100') as (low, high)."""
    if isinstance(port, int):
        return port, port
    low, _, high = port.partition("-")
    return int(low), int(high)
