"""The live sensor's systemd unit and example config: systemd-analyze accepts the unit, its exposure
stays low, the hardening that matters is in place, and the example config loads.

systemd-analyze verify exits 0 even when it reports errors (an unknown key, a bad value), so the
verify tests fail on any stderr output instead of looking at the exit code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from auditor.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "auditor-sensor@.service"
EXAMPLE = ROOT / "systemd" / "auditor.toml.example"
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def unit_entries(path: Path) -> dict[str, list[str]]:
    """Return 'Section.Key' -> every value assigned, in order (a unit may repeat a key)."""
    entries: dict[str, list[str]] = {}
    section = ""
    # a line ending in a backslash continues on the next one (systemd joins them with a space)
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


ENTRIES = unit_entries(UNIT)


def _one(key: str) -> str:
    values = ENTRIES.get(f"Service.{key}") or ENTRIES.get(f"Unit.{key}") or []
    assert len(values) == 1, f"{key}: expected one assignment, found {values}"
    return values[0]


def _words(key: str) -> set[str]:
    """The set a list setting ends up with (an empty assignment resets it)."""
    words: set[str] = set()
    for value in ENTRIES.get(f"Service.{key}", []):
        words = set() if not value else words | set(value.split())
    return words


def _with_stubs(folder: Path, text: str) -> str:
    """Return the unit text with ExecStart / ExecReload pointing at stub executables in `folder`:
    verify checks that each command exists, and the real ones are not installed on a test machine."""
    for name in ("auditor", "kill"):
        stub = folder / name
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        stub.chmod(0o755)
    text, n_start = re.subn(r"(?m)^ExecStart=/usr/local/bin/auditor ", f"ExecStart={folder}/auditor ", text)
    text, n_reload = re.subn(r"(?m)^ExecReload=/bin/kill ", f"ExecReload={folder}/kill ", text)
    assert (n_start, n_reload) == (1, 1), "the unit's ExecStart/ExecReload changed: update this test"
    return text


def _verify(folder: Path, text: str, instance: str) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze verify on `instance` of the template `text`, looked up in `folder` only."""
    (folder / UNIT.name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env["SYSTEMD_UNIT_PATH"] = f"{folder}:"  # the trailing colon keeps the system's units (sysinit.target, ...)
    assert ANALYZE is not None
    # cwd matters: verify also searches the working directory, which must not hold another copy
    return subprocess.run([ANALYZE, "verify", "--man=no", f"auditor-sensor@{instance}.service"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False)


@needs_analyze
@pytest.mark.parametrize("instance", ["eth1", r"br\x2dspan"], ids=["eth1", "escaped-dash"])
def test_unit_verifies_without_a_message(tmp_path: Path, instance: str) -> None:
    result = _verify(tmp_path, _with_stubs(tmp_path, UNIT.read_text(encoding="utf-8")), instance)
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


@needs_analyze
def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: an unknown key is reported on stderr (while the exit code stays 0)."""
    text = _with_stubs(tmp_path, UNIT.read_text(encoding="utf-8"))
    broken = text.replace("\nMemoryMax=1G\n", "\nMemoryMax=1G\nFrobnicateSockets=yes\n")
    assert broken != text
    result = _verify(tmp_path, broken, "eth1")
    assert "FrobnicateSockets" in result.stderr


@needs_analyze
def test_exposure_is_low() -> None:
    assert ANALYZE is not None
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, f"no exposure figure in:\n{result.stdout}\n{result.stderr}"
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_capabilities_are_exactly_raw_capture() -> None:
    wanted = {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert _words("CapabilityBoundingSet") == wanted
    assert _words("AmbientCapabilities") == wanted


def test_unit_hardening() -> None:
    assert _one("Type") == "notify"
    assert _one("NotifyAccess") == "main"
    assert _one("WatchdogSec") not in ("", "0", "infinity")
    assert _one("Restart") == "on-failure"
    assert _one("NoNewPrivileges") == "yes"
    assert _one("ProtectSystem") == "strict"
    assert _one("User") not in ("", "root", "0")
    assert _one("MemoryMax")
    assert _one("IPAddressDeny") == "any"
    families = _words("RestrictAddressFamilies")
    assert "AF_PACKET" in families
    assert not any(f.startswith("~") for f in families), "must be an allow-list"
    assert not families & {"AF_INET", "AF_INET6"}
    # the first SystemCallFilter is an allow-list, so everything not named is refused
    assert ENTRIES["Service.SystemCallFilter"][0] == "@system-service"


def test_unit_binds_the_interface_and_its_own_state_folder() -> None:
    assert _one("BindsTo") == _one("After") == "sys-subsystem-net-devices-%i.device"
    command = _one("ExecStart").split()
    assert command[1:4] == ["sense", "--interface", "%I"]
    assert "/etc/auditor/auditor.toml" in command
    # STATE_DIRECTORY = shared folder : this instance's folder (the sensor writes into the last)
    assert _one("StateDirectory").split() == ["auditor", "auditor/%I"]
    assert _one("ConfigurationDirectory") == "auditor"
    assert "-HUP" in _one("ExecReload")


# ---------------------------------------------------------------------------------- example config

OPTIONAL = re.compile(r"(?m)^# (geoip_country|geoip_asn) = ")
"""Keys the example leaves commented out (their files may not exist); the tests uncomment them."""


def _example_text(uncomment: bool) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    return OPTIONAL.sub(r"\1 = ", text) if uncomment else text


def _sensor_accepted() -> bool:
    return "sensor" in {f.name for f in dataclasses.fields(Settings)}


def test_example_is_toml_and_names_every_setting() -> None:
    tomllib.loads(_example_text(uncomment=False))
    data = tomllib.loads(_example_text(uncomment=True))
    assert {"geoip_country", "geoip_asn"} <= data.keys()

    def missing(model: type, table: dict[str, object], prefix: str) -> list[str]:
        out = []
        for f in dataclasses.fields(model):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if f.name not in table:
                out.append(prefix + f.name)
            elif dataclasses.is_dataclass(default):
                sub = table[f.name]
                assert isinstance(sub, dict)
                out += missing(type(default), sub, f"{prefix}{f.name}.")
        return out

    assert missing(Settings, data, "") == [], "document every setting in systemd/auditor.toml.example"


def test_example_loads_and_shows_the_defaults(tmp_path: Path) -> None:
    if not _sensor_accepted():
        pytest.skip("auditor.config.Settings has no [sensor] table yet (being added with `auditor sense`)")
    settings = load_settings(EXAMPLE)
    assert settings == Settings(), "the example's values are the defaults: update it with the code"
    assert settings.sensor.snaplen == 65_535 and settings.sensor.promiscuous

    uncommented = tmp_path / "auditor.toml"
    uncommented.write_text(_example_text(uncomment=True), encoding="utf-8")
    settings = load_settings(uncommented)
    assert settings.geoip_country == "/var/lib/GeoIP/GeoLite2-Country.mmdb"
    assert settings.geoip_asn == "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
