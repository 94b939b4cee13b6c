"""BackgroundSink: a forked child calls the sink for each item, in order; failures come back as OutputError."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from auditor.errors import OutputError
from auditor.output.background import BackgroundSink
from tests.conftest import finishes_within


def line_writer(f: BinaryIO) -> Callable[[object], None]:
    def write(item: object) -> None:
        f.write(f"{item}\n".encode())

    return write


def raise_on(bad: object, message: str = "disk on fire") -> Callable[[object], None]:
    def sink(item: object) -> None:
        if item == bad:
            raise ValueError(message)

    return sink


def call_until_refused(sink: BackgroundSink[object], seconds: float = 5.0) -> OutputError:
    """Keep sending items until the sink raises OutputError (its child is gone); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        try:
            sink(i)
        except OutputError as exc:
            return exc
        i += 1
        time.sleep(0.001)
    pytest.fail("the sink never refused an item after its child stopped")


# --- delivery ------------------------------------------------------------------------------------


def test_background_sink_delivers_every_item_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "wb") as f:  # opened before the fork, like the CLI's flows.jsonl
        sink = BackgroundSink(line_writer(f), on_close=f.flush)
        for i in range(3000):
            sink(i)
        sink.close()
    assert path.read_text().splitlines() == [str(i) for i in range(3000)]


def test_background_sink_calls_on_close_once_in_the_child_after_the_items(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "wb") as f:

        def on_close() -> None:
            f.write(f"closed by {os.getpid()}\n".encode())
            f.flush()

        sink = BackgroundSink(line_writer(f), on_close=on_close)
        sink("a")
        sink("b")
        sink.close()
        child = sink._child.pid
    lines = path.read_text().splitlines()
    assert lines == ["a", "b", f"closed by {child}"]
    assert child != os.getpid()


def test_background_sink_passes_large_numpy_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 2**62, 512 * 1024, dtype=np.int64) for _ in range(3)]  # 4 MiB each
    arrays.append(np.arange(10, dtype=np.uint16).reshape(2, 5))
    path = tmp_path / "hashes.txt"
    with open(path, "wb") as f:

        def sink(a: np.ndarray) -> None:
            f.write(f"{a.dtype.str} {a.shape} {hashlib.sha256(a.tobytes()).hexdigest()}\n".encode())

        bg = BackgroundSink(sink, on_close=f.flush)
        for a in arrays:
            bg(a)
        bg.close()
    want = [f"{a.dtype.str} {a.shape} {hashlib.sha256(a.tobytes()).hexdigest()}" for a in arrays]
    assert path.read_text().splitlines() == want


def test_background_sink_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "wb") as f:
        sink = BackgroundSink(line_writer(f), on_close=f.flush)
        sink(1)
        sink.close()
        sink.close()
    assert sink._child.exitcode == 0
    assert path.read_text() == "1\n"


def test_background_sink_without_items_closes_cleanly() -> None:
    calls: list[int] = []
    sink = BackgroundSink(calls.append, on_close=lambda: None)
    done, raised = finishes_within(10, sink.close)
    assert done and raised is None
    assert sink._child.exitcode == 0


# --- failures ------------------------------------------------------------------------------------


def test_background_sink_error_makes_close_raise_output_error(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "wb") as f:

        def on_close() -> None:
            f.write(b"closed\n")
            f.flush()

        sink = BackgroundSink(raise_on("x"), on_close=on_close)
        sink("x")
        with pytest.raises(OutputError, match="ValueError: disk on fire") as info:
            sink.close()
    assert "output writer failed" in str(info.value)
    assert sink._child.exitcode == 1
    assert path.read_bytes() == b""  # on_close is not called after a failure


def test_background_sink_call_after_sink_raised_reports_the_error() -> None:
    sink = BackgroundSink(raise_on(0))
    exc = call_until_refused(sink)
    assert "output writer stopped" in str(exc)
    assert "ValueError: disk on fire" in str(exc)
    with pytest.raises(OutputError):
        sink.close()


def test_background_sink_close_after_refused_call_still_reports_the_error() -> None:
    sink = BackgroundSink(raise_on(0))
    call_until_refused(sink)
    with pytest.raises(OutputError, match="ValueError: disk on fire"):
        sink.close()


def test_background_sink_close_twice_after_failure_repeats_the_error() -> None:
    sink = BackgroundSink(raise_on("x"))
    sink("x")
    with pytest.raises(OutputError, match="disk on fire"):
        sink.close()
    with pytest.raises(OutputError, match="disk on fire"):
        sink.close()


def test_background_sink_call_after_child_was_killed_raises_instead_of_hanging() -> None:
    sink = BackgroundSink(lambda item: None)
    sink(1)
    os.kill(sink._child.pid, signal.SIGKILL)
    sink._child.join(10)
    assert sink._child.exitcode == -signal.SIGKILL

    def call() -> None:
        sink(2)

    done, raised = finishes_within(10, call)
    assert done
    assert isinstance(raised, OutputError)
    assert "output writer stopped" in str(raised)
    with pytest.raises(OutputError, match="exit code -9"):
        sink.close()


def test_background_sink_long_error_message_does_not_hang_close() -> None:
    sink = BackgroundSink(raise_on("x", message="y" * 200_000))
    sink("x")
    done, raised = finishes_within(2, sink.close)
    if not done:  # unblock the stuck child so the test run goes on
        os.kill(sink._child.pid, signal.SIGKILL)
        finishes_within(10, lambda: sink._child.join())
    assert done
    assert isinstance(raised, OutputError) and "yyyy" in str(raised)
