"""Settings people write (auditor.toml and flags), validated with pydantic; read by cli and pipeline only."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from auditor.errors import ConfigError
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS


class FlowSettings(BaseModel):
    """Flow-table timeouts and limits ([flows] in auditor.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    udp_idle_timeout_s: float = Field(default=120.0, gt=0, description="non-TCP flows end after this idle time")
    tcp_idle_timeout_s: float = Field(default=3600.0, gt=0, description="TCP flows end after this idle time")
    tcp_close_linger_s: float = Field(default=5.0, ge=0, description="a closed TCP flow ends once quiet this long")
    max_flows: int = Field(default=1_000_000, ge=1, description="active flows kept before the oldest are ended")


class Settings(BaseModel):
    """Everything a run can be told; defaults suit a typical site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    local_networks: tuple[str, ...] = Field(
        default=DEFAULT_LOCAL_NETWORKS, description="CIDRs that count as this site (multicast/broadcast always do)"
    )
    flows: FlowSettings = FlowSettings()

    @field_validator("local_networks")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a network") from exc
        return value


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    """Return settings from an optional TOML file, with non-None keyword overrides applied on top."""
    data: dict[str, object] = {}
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
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {field}: {err['msg']}") from exc
