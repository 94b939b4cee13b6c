"""A wheel installs every shipped rule file (pyproject data-files), so installed runs find them all."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_data_files_ship_every_rule_file_under_share() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data_files: dict[str, list[str]] = config["tool"]["setuptools"]["data-files"]
    shipped = {}
    for target, patterns in data_files.items():
        assert target.startswith("share/span-auditor/rules")
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                shipped[path.relative_to(ROOT).as_posix()] = target
    wanted = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rules").rglob("*") if p.is_file()}
    assert set(shipped) == wanted
    # each file keeps its place under rules/ (paths.shipped_rules_dir looks for the same layout)
    for source, target in shipped.items():
        assert "share/span-auditor/" + str(Path(source).parent) == target
