"""Files replaced whole: never half a file, never a temporary copy left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.output.files import replacing


def test_a_replaced_file_appears_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("old", encoding="utf-8")
    with replacing(path, "w") as fh:
        fh.write("new")
        assert path.read_text() == "old"  # readers see the old one until the new one is whole
    assert path.read_text() == "new"
    assert list(tmp_path.iterdir()) == [path]


def test_a_failed_snapshot_leaves_the_old_file_and_no_temporary_copy(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(OSError), replacing(path, "w") as fh:
        fh.write("half of the new one")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # the half-written copy does not hold on to the space
