"""RotatingJsonl: append-only JSON lines, flushed per write, rotated by size, old rotations pruned."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from auditor.output.rotating import RotatingJsonl

STAMPED = re.compile(r"^flows-(\d{8}T\d{6}\.\d{6})Z\.jsonl$")


def rotated(folder: Path) -> list[Path]:
    """The rotated files beside flows.jsonl, oldest first (by name)."""
    return sorted(p for p in folder.iterdir() if STAMPED.match(p.name))


def line(i: int, width: int = 20) -> bytes:
    """A JSON line of exactly `width` bytes (without its newline)."""
    head = b'{"i":%d,"p":"' % i
    return head + b"x" * (width - len(head) - 2) + b'"}'


def test_appends_and_flushes_each_write(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=1 << 20, keep=3)
    try:
        assert out.write_lines([b'{"a":1}', b'{"b":2}']) == 2
        assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'  # another reader sees it before close
        assert out.write_lines([b'{"c":3}']) == 1
        with open(path, "rb") as reader:
            assert reader.read().splitlines() == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
        assert out.written == 3
    finally:
        out.close()
    assert rotated(tmp_path) == []


def test_empty_write_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=10, keep=3)
    try:
        out.write_lines([b"x" * 8])  # 9 of 10 bytes
        assert out.write_lines([]) == 0
        assert path.read_bytes() == b"x" * 8 + b"\n"
        assert out.written == 1
        assert rotated(tmp_path) == []
    finally:
        out.close()


def test_creates_an_empty_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=100, keep=3)
    out.close()
    assert path.exists() and path.read_bytes() == b""


def test_rotates_when_the_next_write_would_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=63, keep=5)  # three 21-byte lines fit exactly
    try:
        before = datetime.datetime.now(datetime.UTC)
        out.write_lines([line(1), line(2)])
        out.write_lines([line(3)])  # 63 bytes: at the limit, not past it
        assert rotated(tmp_path) == []
        out.write_lines([line(4)])  # 84 > 63: rotate first
        after = datetime.datetime.now(datetime.UTC)
        (old,) = rotated(tmp_path)
        assert old.read_bytes().splitlines() == [line(1), line(2), line(3)]
        assert path.read_bytes().splitlines() == [line(4)]
        m = STAMPED.match(old.name)
        assert m is not None
        stamp = datetime.datetime.strptime(m[1], "%Y%m%dT%H%M%S.%f").replace(tzinfo=datetime.UTC)
        assert before <= stamp <= after  # UTC, not local time
        assert out.written == 4
    finally:
        out.close()


def test_a_batch_is_never_split_across_files(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=50, keep=5)
    try:
        out.write_lines([line(1)])
        out.write_lines([line(2), line(3)])  # 21 + 42 > 50: both go to the new file
        (old,) = rotated(tmp_path)
        assert old.read_bytes().splitlines() == [line(1)]
        assert path.read_bytes().splitlines() == [line(2), line(3)]
    finally:
        out.close()


def test_an_oversized_write_on_an_empty_file_goes_in_whole(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=10, keep=5)
    try:
        big = line(1, width=100)
        assert out.write_lines([big]) == 1
        assert path.read_bytes() == big + b"\n"
        assert rotated(tmp_path) == []  # no rotation of an empty file, no endless loop
        assert out.write_lines([big]) == 1  # the file is full: rotate once, then write
        (old,) = rotated(tmp_path)
        assert old.read_bytes() == big + b"\n"
        assert path.read_bytes() == big + b"\n"
    finally:
        out.close()


def test_keep_prunes_the_oldest_rotations(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=21, keep=2)  # one line per file
    try:
        for i in range(6):
            out.write_lines([line(i)])
        files = rotated(tmp_path)
        assert len(files) == 2
        # the names sort in creation order (microseconds in the stamp): the newest two are kept
        assert [f.read_bytes().splitlines() for f in files] == [[line(3)], [line(4)]]
        assert path.read_bytes().splitlines() == [line(5)]
        assert out.written == 6
    finally:
        out.close()


def test_rotation_stamps_sort_in_creation_order(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=21, keep=100)
    try:
        made = []
        for i in range(20):
            out.write_lines([line(i)])
            moved = out.rotate()
            assert moved is not None
            made.append(moved)
        assert len(set(made)) == 20  # distinct names, even created back to back
        assert rotated(tmp_path) == made  # name order == creation order
        assert [p.read_bytes() for p in made] == [line(i) + b"\n" for i in range(20)]
    finally:
        out.close()


def test_keep_zero_keeps_no_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=21, keep=0)
    try:
        for i in range(3):
            out.write_lines([line(i)])
        assert rotated(tmp_path) == []
        assert path.read_bytes().splitlines() == [line(2)]
    finally:
        out.close()


def test_rotate_of_an_empty_file_moves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    out = RotatingJsonl(path, max_bytes=100, keep=3)
    try:
        assert out.rotate() is None
        assert rotated(tmp_path) == []
        out.write_lines([b"{}"])
        assert path.read_bytes() == b"{}\n"
    finally:
        out.close()


def test_pruning_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    neighbours = ["alerts.jsonl", "alerts-current.jsonl", "metrics.jsonl", "flows.json", "flows-notes.txt"]
    for name in neighbours:
        (tmp_path / name).write_text("keep me\n")
    out = RotatingJsonl(path, max_bytes=21, keep=1)
    try:
        for i in range(4):
            out.write_lines([line(i)])
    finally:
        out.close()
    assert len(rotated(tmp_path)) == 1
    for name in neighbours:
        assert (tmp_path / name).read_text() == "keep me\n"


def test_reopening_appends_and_counts_the_existing_size(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    first = RotatingJsonl(path, max_bytes=63, keep=5)
    first.write_lines([line(1), line(2)])  # 42 bytes
    first.close()

    again = RotatingJsonl(path, max_bytes=63, keep=5)
    try:
        again.write_lines([line(3)])  # 63: still fits
        assert path.read_bytes().splitlines() == [line(1), line(2), line(3)]
        assert rotated(tmp_path) == []
        again.write_lines([line(4)])  # the size carried over: this one rotates
        (old,) = rotated(tmp_path)
        assert old.read_bytes().splitlines() == [line(1), line(2), line(3)]
        assert path.read_bytes().splitlines() == [line(4)]
        assert again.written == 2  # lines written by this object
    finally:
        again.close()


def test_reopening_a_file_already_over_the_limit_rotates_on_the_first_write(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_bytes(line(0, width=99) + b"\n")
    out = RotatingJsonl(path, max_bytes=50, keep=5)
    try:
        out.write_lines([line(1)])
        (old,) = rotated(tmp_path)
        assert old.read_bytes() == line(0, width=99) + b"\n"
        assert path.read_bytes() == line(1) + b"\n"
    finally:
        out.close()


@pytest.mark.parametrize("keep", [1, 3])
def test_existing_rotations_count_towards_keep(tmp_path: Path, keep: int) -> None:
    old_names = [f"flows-2020010{d}T000000.000000Z.jsonl" for d in range(1, 5)]
    for name in old_names:
        (tmp_path / name).write_text("old\n")
    out = RotatingJsonl(tmp_path / "flows.jsonl", max_bytes=21, keep=keep)
    try:
        out.write_lines([line(1)])
        out.write_lines([line(2)])  # rotates: the 2020 files are the oldest
    finally:
        out.close()
    files = rotated(tmp_path)
    assert len(files) == keep
    assert files[-1].read_bytes() == line(1) + b"\n"
    assert [f.name for f in files[:-1]] == old_names[len(old_names) - keep + 1 :]


# found by review: a killed writer or a full disk must not leave half lines behind


def test_a_torn_last_line_is_cut_when_the_file_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "flows.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')  # the last writer was killed mid-line
    writer = RotatingJsonl(path, 1 << 20, 3)
    writer.write_lines([b'{"d":4}'])
    writer.close()
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n{"d":4}\n'


def test_a_failed_write_leaves_only_whole_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flows.jsonl"
    writer = RotatingJsonl(path, 1 << 20, 3)
    writer.write_lines([b'{"a":1}'])

    class Full:
        """A file that takes part of the bytes, then says the disk is full."""

        def __init__(self, real: object) -> None:
            self.real = real

        def write(self, data: bytes) -> int:
            self.real.write(data[:5])  # type: ignore[attr-defined]
            self.real.flush()  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            return None

        def close(self) -> None:
            self.real.close()  # type: ignore[attr-defined]

    monkeypatch.setattr(writer, "_fh", Full(writer._fh))
    with pytest.raises(OSError):
        writer.write_lines([b'{"b":2}', b'{"c":3}'])
    writer.write_lines([b'{"d":4}'])  # the disk has room again
    writer.close()
    assert path.read_bytes() == b'{"a":1}\n{"d":4}\n'
