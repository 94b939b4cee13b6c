"""Run a writer in a forked child process, so formatting output overlaps with packet work.

On a 2-core sensor the flow engine keeps one core busy; turning flow records into JSON is the
other big cost, and it needs nothing but the records. The child inherits the already-open output
streams through fork, receives each record batch over a pipe (numpy columns pickle cheaply), and
calls the same sink the parent would have called. Order is kept (one child, one pipe).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from auditor.errors import OutputError
from auditor.runtime import yield_cpu

logger = logging.getLogger(__name__)

T = TypeVar("T")
_DONE = "__done__"


class BackgroundSink(Generic[T]):
    """Calls `sink(item)` in a forked child for every item given; `close()` waits and re-raises."""

    def __init__(self, sink: Callable[[T], None], on_close: Callable[[], None] | None = None) -> None:
        ctx = multiprocessing.get_context("fork")
        self._recv, self._send = ctx.Pipe(duplex=False)
        self._errors_recv, errors_send = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=_child_main,
            args=(sink, on_close, self._recv, errors_send, (self._send, self._errors_recv)),
            daemon=True,
        )
        self._child.start()
        self._recv.close()
        errors_send.close()
        _widen_pipe(self._send.fileno())
        self._closed = False
        self._error: str | None = None

    def __call__(self, item: T) -> None:
        if self._closed:
            raise OutputError(f"output writer already closed{': ' + self._error if self._error else ''}")
        try:
            self._send.send(item)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._stop_sending()
            raise OutputError(f"output writer stopped: {self._child_error(wait=True) or exc}") from exc

    @property
    def alive(self) -> bool:
        """False once the writer process has ended (or was killed) before close()."""
        return self._child.is_alive()

    def close(self) -> None:
        """Finish writing: wait for the child; raise OutputError if it failed (again on each call)."""
        if not self._closed:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                self._send.send(_DONE)
            self._stop_sending()
        # read the child's report before joining: a report larger than the pipe would block it
        error = self._child_error(wait=True)
        self._child.join()
        if error or self._child.exitcode != 0:
            raise OutputError(f"output writer failed: {error or f'exit code {self._child.exitcode}'}")

    def _stop_sending(self) -> None:
        self._closed = True
        self._send.close()

    def _child_error(self, wait: bool = False) -> str | None:
        """Return the child's error report (kept once read); with `wait`, until the child says or ends."""
        if self._error is None and not self._errors_recv.closed and (wait or self._errors_recv.poll()):
            try:
                self._error = str(self._errors_recv.recv())
            except (EOFError, OSError):  # the child ended without a report: it succeeded or was killed
                self._errors_recv.close()
        return self._error


MAX_REPORT_CHARS = 8192


F_SETPIPE_SZ = 1031  # fcntl.h (Linux): resize a pipe's kernel buffer
PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size allows 1 MiB to unprivileged processes by default


def _widen_pipe(fd: int) -> None:
    """Give the pipe room for several record batches, so the engine rarely waits on the writer."""
    with contextlib.suppress(OSError, ImportError):
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)


def _child_main(
    sink: Callable[[Any], None], on_close: Callable[[], None] | None, recv: Any, errors: Any, parents: tuple[Any, ...]
) -> None:
    # Close the parent's pipe ends inherited through fork: otherwise, if the parent dies, this
    # child never sees end-of-file and waits forever.
    for conn in parents:
        conn.close()
    # Stopping is the parent's to decide: a Ctrl-C or systemd's SIGTERM reaches the whole process
    # group, and a writer killed by it would lose the records the parent is still flushing to it.
    # The parent ends it by closing the pipe (or the child sees end-of-file if the parent dies).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    yield_cpu()
    try:
        while True:
            item = recv.recv()
            if isinstance(item, str) and item == _DONE:
                break
            sink(item)
        if on_close is not None:
            on_close()
    except BaseException as exc:  # report any failure to the parent, which turns it into OutputError
        report = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        if len(report) > MAX_REPORT_CHARS:  # keep it well inside a pipe buffer
            report = report[: MAX_REPORT_CHARS // 2] + "\n[...]\n" + report[-MAX_REPORT_CHARS // 2 :]
        errors.send(report)
        errors.close()
        os._exit(1)
    errors.close()
    os._exit(0)  # skip the parent's atexit handlers and buffered objects inherited through fork
