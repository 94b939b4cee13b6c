"""systemd's notify protocol (sd_notify(3)) in a few lines of stdlib: READY, STATUS, WATCHDOG, STOPPING.

With Type=notify systemd waits for READY=1 before it calls the unit started, and with WatchdogSec
it restarts the sensor unless WATCHDOG=1 arrives in time. The watchdog is pinged only from the
capture loop, so a loop that is stuck (not merely idle) gets the sensor restarted. Outside systemd
($NOTIFY_SOCKET unset) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends state lines to $NOTIFY_SOCKET (an AF_UNIX datagram socket; '@' = the abstract namespace)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdecimal() and usec.isascii() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2e6 if watched else None
        """How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises."""
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *lines: str) -> bool:
        """Send state lines ('READY=1', 'STATUS=...'); False when there is no socket or it fails."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: flushing flows and alerts")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", "STATUS=reloading rule files")

    def watchdog(self) -> bool:
        """Ping the watchdog when half its timeout has passed since the last ping."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic()
        if now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")
