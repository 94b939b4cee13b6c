"""Settings people write: auditor.toml and flags, validated with a one-line error naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.config import Settings, load_settings
from auditor.errors import ConfigError
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS


def test_defaults_without_a_file() -> None:
    s = load_settings()
    assert s == Settings()
    assert s.local_networks == DEFAULT_LOCAL_NETWORKS
    assert (s.flows.udp_idle_timeout_s, s.flows.tcp_idle_timeout_s, s.flows.max_flows) == (120.0, 3600.0, 1_000_000)


def test_file_values_and_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "auditor.toml"
    path.write_text('local_networks = ["10.0.0.0/8"]\n[flows]\nudp_idle_timeout_s = 30\nmax_flows = 5000\n')
    s = load_settings(path)
    assert s.local_networks == ("10.0.0.0/8",)
    assert (s.flows.udp_idle_timeout_s, s.flows.max_flows) == (30.0, 5000)
    s = load_settings(path, local_networks=("192.168.0.0/16",))
    assert s.local_networks == ("192.168.0.0/16",)
    assert load_settings(path, local_networks=None).local_networks == ("10.0.0.0/8",)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('local_networks = ["10.0.0.300/8"]\n', "local_networks"),
        ("[flows]\nmax_flows = 0\n", "flows.max_flows"),
        ("[flows]\nudp_idle_timeout_s = -1\n", "flows.udp_idle_timeout_s"),
        ("[flows]\nbogus = 1\n", "flows.bogus"),
        ("unknown_key = 1\n", "unknown_key"),
    ],
)
def test_bad_values_name_the_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "auditor.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {field}")
    assert "\n" not in message
    assert err.value.exit_code == 2


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "absent.toml")


def test_the_sensor_writes_to_no_store_unless_one_is_named(tmp_path: Path) -> None:
    assert load_settings().sensor.store == ""  # a trial `sense -o DIR` must not mix into the site's reports
    path = tmp_path / "auditor.toml"
    path.write_text('[sensor]\nstore = "postgresql://auditor@db.example/auditor"\n')
    assert load_settings(path).sensor.store == "postgresql://auditor@db.example/auditor"
    path.write_text("[sensor]\nstore = 5\n")
    with pytest.raises(ConfigError, match=r"sensor\.store"):
        load_settings(path)
