"""Settings people write (auditor.toml and flags); read by cli and pipeline only.

The settings are plain frozen dataclasses, so a run with no config file and no flags starts
without importing pydantic (about 0.1 s of start-up). Whatever a person supplies is validated
by pydantic (a TypeAdapter over the same dataclasses, constraints from annotated_types), with
errors that name the file and the field.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import annotated_types as at

from auditor.errors import ConfigError
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS

_STRICT = {"extra": "forbid"}  # pydantic reads __pydantic_config__: unknown keys are errors


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Flow-table timeouts and limits ([flows] in auditor.toml)."""

    __pydantic_config__ = _STRICT

    udp_idle_timeout_s: Annotated[float, at.Gt(0)] = 120.0
    """Non-TCP flows end after this idle time."""
    tcp_idle_timeout_s: Annotated[float, at.Gt(0)] = 3600.0
    """TCP flows end after this idle time."""
    tcp_close_linger_s: Annotated[float, at.Ge(0)] = 5.0
    """A closed TCP flow (RST, or FIN both ways) ends once quiet this long."""
    max_flows: Annotated[int, at.Ge(1)] = 1_000_000
    """Active flows kept before the least recently seen are ended."""


@dataclass(frozen=True, slots=True)
class SensorSettings:
    """The live sensor's capture and output ([sensor] in auditor.toml; `auditor sense` flags win)."""

    __pydantic_config__ = _STRICT

    snaplen: Annotated[int, at.Ge(64), at.Le(262_144)] = 65_535
    """Bytes kept of each frame (payload parsers need whole heads: keep the default)."""
    promiscuous: bool = True
    """A SPAN port delivers other hosts' frames: without promiscuous mode the NIC drops them."""
    buffer_mib: Annotated[int, at.Ge(1), at.Le(4096)] = 256
    """Kernel capture buffer: absorbs bursts while the engine is busy with a batch (measured: 64 MiB lost
    3 % of 300 k packets/s that 256 MiB kept whole; the ring counts against the unit's MemoryMax)."""
    bpf: str = ""
    """A capture filter (tcpdump syntax), e.g. 'not port 22'; empty: every frame."""
    flush_interval_s: Annotated[float, at.Gt(0)] = 60.0
    """Devices, metrics and ended flows are written at least this often."""
    rules: tuple[str, ...] = ()
    """Rule files or folders; empty: $CONFIGURATION_DIRECTORY/policies, else the shipped policies."""
    rotate_mib: Annotated[int, at.Ge(1)] = 256
    """flows.jsonl is rotated (flows-<time>.jsonl) when it reaches this size."""
    keep_rotated: Annotated[int, at.Ge(0)] = 30
    """Rotated flow files kept; older ones are deleted."""
    store: str = ""
    """A store the sensor also writes to at each flush interval: a SQLite path or a postgresql:// URL. Empty:
    none, so a trial `auditor sense -o DIR` never mixes into the site's reports; the units' reports read
    /var/lib/auditor/auditor.sqlite, which is what a sensor under systemd should name here."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run can be told; defaults suit a typical site."""

    __pydantic_config__ = _STRICT

    local_networks: tuple[str, ...] = DEFAULT_LOCAL_NETWORKS
    """CIDRs that count as this site (multicast and broadcast always do)."""
    flows: FlowSettings = field(default_factory=FlowSettings)
    geoip_country: str | None = None
    """A country (or City, or IPinfo lite) .mmdb file; the auditor never downloads one."""
    geoip_asn: str | None = None
    """An ASN (or ISP, or IPinfo lite) .mmdb file."""
    sensor: SensorSettings = field(default_factory=SensorSettings)


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    """Return settings from an optional TOML file, with non-None keyword overrides applied on top."""
    data: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        where = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    if not data:
        return Settings()
    settings = _validate(data, where)
    for cidr in settings.local_networks:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"{where}: local_networks: {cidr!r} is not a network") from None
    return settings


def _validate(data: dict[str, Any], where: str) -> Settings:
    from pydantic import TypeAdapter, ValidationError  # only when a person supplied something

    try:
        settings: Settings = TypeAdapter(Settings).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_path = ".".join(str(p) for p in err["loc"])
        message = "unknown setting" if err["type"] == "unexpected_keyword_argument" else err["msg"]
        raise ConfigError(f"{where}: {field_path}: {message}") from exc
    return settings
