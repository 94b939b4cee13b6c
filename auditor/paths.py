"""Where the auditor keeps state: systemd's $STATE_DIRECTORY, else /var/lib/auditor (root) or XDG."""

from __future__ import annotations

import os
import site
import sys
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


SHARE_RULES = Path("share") / "span-auditor" / "rules"
"""Where a wheel installs the shipped rules/, under the installation prefix (pyproject data-files)."""


def shipped_rules_dir() -> Path | None:
    """Return the shipped rules/: the source tree's (a checkout, an editable install), else the installed
    copy (under the prefix, or the user base for `pip install --user`); None when there is none."""
    candidates = [
        Path(__file__).resolve().parents[1] / "rules",
        Path(sys.prefix) / SHARE_RULES,
        Path(site.getuserbase()) / SHARE_RULES,
    ]
    # the vendor catalog marks the real thing: a bare site-packages/rules (another package's) is not ours
    return next((c for c in candidates if (c / "vendors.yaml").is_file()), None)


def rule_path(name: str) -> Path | None:
    """Return rule file or folder `name`: from $CONFIGURATION_DIRECTORY when it has it, else the shipped one."""
    given = os.environ.get("CONFIGURATION_DIRECTORY")
    bases = [Path(given.split(":")[0])] if given else []
    shipped = shipped_rules_dir()
    if shipped is not None:
        bases.append(shipped)
    for base in bases:
        if (base / name).exists():
            return base / name
    return None
