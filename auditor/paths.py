"""Where the auditor keeps state: systemd's $STATE_DIRECTORY, else /var/lib/auditor (root) or XDG."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Return the state directory (not created here)."""
    given = os.environ.get("STATE_DIRECTORY")
    if given:
        return Path(given.split(":")[0])  # systemd passes several, colon-separated, for several names
    if os.geteuid() == 0:
        return Path("/var/lib/auditor")
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "auditor"
