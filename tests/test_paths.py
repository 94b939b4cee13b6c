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
