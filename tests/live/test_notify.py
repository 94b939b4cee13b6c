"""Notifier: systemd's notify protocol (sd_notify(3)) against a datagram socket this test binds."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.live.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """An AF_UNIX datagram socket bound in tmp_path (what systemd listens on) and its path."""
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2)
        yield sock, path


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on `sock`, decoded (none waiting: an empty list)."""
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return out


def test_ready_sends_ready_and_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("capturing on eth1") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=capturing on eth1"


def test_status_stopping_reloading(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    assert n.status("12 received, 0 dropped") is True
    assert n.stopping() is True
    assert n.reloading() is True
    assert n.send("READY=1", "STATUS=rules reloaded") is True
    assert [sock.recv(4096).decode() for _ in range(4)] == [
        "STATUS=12 received, 0 dropped",
        "STOPPING=1\nSTATUS=stopping: flushing flows and alerts",
        "RELOADING=1\nSTATUS=reloading rule files",
        "READY=1\nSTATUS=rules reloaded",
    ]


def test_status_text_is_sent_as_utf8(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert Notifier(environ={"NOTIFY_SOCKET": path}).status("1 234 reçus") is True
    assert sock.recv(4096).decode("utf-8") == "STATUS=1 234 reçus"


def test_abstract_namespace_address() -> None:
    name = f"auditor-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        n = Notifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert n.enabled
        assert n.ready("up") is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    n = Notifier(environ={})
    assert n.enabled is False
    assert n.send("READY=1") is False
    assert n.ready("x") is False
    assert n.status("x") is False
    assert n.stopping() is False
    assert n.reloading() is False
    assert n.watchdog() is False


def test_empty_notify_socket_is_disabled() -> None:
    n = Notifier(environ={"NOTIFY_SOCKET": "", "WATCHDOG_USEC": "200000"})
    assert n.enabled is False
    assert n.ready("x") is False
    assert n.watchdog() is False  # the interval is known, but there is nowhere to send


def test_reads_os_environ_by_default(listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    n = Notifier()
    assert n.enabled and n.watchdog_interval_s is None
    assert n.status("hello") is True
    assert sock.recv(4096) == b"STATUS=hello"


def test_missing_socket_path_fails_quietly(tmp_path: Path) -> None:
    n = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})
    assert n.enabled  # configured, but the send fails
    assert n.ready("x") is False
    assert n.status("x") is False
    assert n.stopping() is False


def test_missing_abstract_socket_fails_quietly() -> None:
    n = Notifier(environ={"NOTIFY_SOCKET": f"@auditor-absent-{uuid.uuid4().hex}"})
    assert n.ready("x") is False


def test_socket_path_that_is_a_regular_file_fails_quietly(tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("")
    assert Notifier(environ={"NOTIFY_SOCKET": str(path)}).ready("x") is False


# -- the watchdog ---------------------------------------------------------------------------------


def test_watchdog_pings_at_half_the_timeout(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert n.watchdog_interval_s == pytest.approx(0.1)
    assert n.watchdog() is True  # the first call pings
    assert n.watchdog() is False  # too soon
    assert received(sock) == ["WATCHDOG=1"]
    time.sleep(0.12)
    assert n.watchdog() is True
    assert n.watchdog() is False
    assert received(sock) == ["WATCHDOG=1"]


def test_watchdog_for_this_pid(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval_s == pytest.approx(15.0)
    assert n.watchdog() is True
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_watchdog_for_another_pid_is_disabled(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval_s is None
    assert n.watchdog() is False
    assert received(sock) == []
    assert n.status("still sends status") is True  # only the watchdog is off


@pytest.mark.parametrize("usec", [None, "", "0", "00", "garbage", "-200000", "2e5", " 200000", "200000.5", "0x10"])
def test_watchdog_disabled_without_a_valid_timeout(listener: tuple[socket.socket, str], usec: str | None) -> None:
    sock, path = listener
    env = {"NOTIFY_SOCKET": path}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    n = Notifier(environ=env)
    assert n.watchdog_interval_s is None
    assert n.watchdog() is False
    assert received(sock) == []


def test_watchdog_unicode_digit_garbage_is_disabled(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "²"})
    assert n.watchdog_interval_s is None
