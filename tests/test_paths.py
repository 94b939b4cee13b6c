from __future__ import annotations

from pathlib import Path

import pytest

from auditor.paths import state_dir


def test_state_dir_honours_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/auditor/eth1:/var/lib/auditor")
    assert state_dir() == Path("/var/lib/auditor/eth1")


def test_state_dir_without_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert state_dir() == tmp_path / "auditor"
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert state_dir() == Path("/var/lib/auditor")


def test_rule_path_prefers_the_configuration_directory_then_the_shipped_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from auditor.paths import rule_path, shipped_rules_dir

    shipped = shipped_rules_dir()
    assert shipped is not None and (shipped / "vendors.yaml").is_file()
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path))
    assert rule_path("policies") == shipped / "policies"  # the configuration directory has none
    (tmp_path / "policies").mkdir()
    assert rule_path("policies") == tmp_path / "policies"
    assert rule_path("no-such-thing") is None


def test_shipped_rules_need_the_vendor_catalog_to_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import auditor.paths as paths

    fake_pkg = tmp_path / "site-packages" / "auditor"
    fake_pkg.mkdir(parents=True)
    (tmp_path / "site-packages" / "rules").mkdir()  # another package's rules/: no vendors.yaml
    monkeypatch.setattr(paths, "__file__", str(fake_pkg / "paths.py"))
    monkeypatch.setattr(paths.sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.setattr(paths.site, "getuserbase", lambda: str(tmp_path / "user"))
    assert paths.shipped_rules_dir() is None
    installed = tmp_path / "user" / paths.SHARE_RULES
    installed.mkdir(parents=True)
    (installed / "vendors.yaml").write_text("version: 1\n")
    assert paths.shipped_rules_dir() == installed
