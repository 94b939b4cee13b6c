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


def default_rules_dir() -> Path | None:
    """Return where the shipped rule files are: $CONFIGURATION_DIRECTORY, else the source tree's rules/."""
    given = os.environ.get("CONFIGURATION_DIRECTORY")
    if given:
        return Path(given.split(":")[0])
    tree = Path(__file__).resolve().parents[1] / "rules"
    return tree if tree.is_dir() else None
