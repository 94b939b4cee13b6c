"""The scheduled-report units: auditor-report@.service (daily / weekly instances) and its two timers.

systemd-analyze accepts them without a message, the service's exposure stays low, the calendars fire
when they should (the weekly one on Mondays), the service has no capabilities and no network, and its
shell command picks the right period and leaves a complete, dated report.

systemd-analyze verify exits 0 even when it reports errors (an unknown key, a bad value), so the
verify tests fail on any stderr output instead of looking at the exit code.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.test_systemd import ANALYZE, needs_analyze, unit_entries

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "systemd"
SERVICE = SYSTEMD / "auditor-report@.service"
DAILY = SYSTEMD / "auditor-report-daily.timer"
WEEKLY = SYSTEMD / "auditor-report-weekly.timer"
SENSOR = SYSTEMD / "auditor-sensor@.service"
MAX_EXPOSURE = 1.5
AUDITOR = "/usr/local/bin/auditor"
STATE = "/var/lib/auditor"

SVC = unit_entries(SERVICE)
TIMERS = {"daily": unit_entries(DAILY), "weekly": unit_entries(WEEKLY)}


def _one(entries: dict[str, list[str]], key: str) -> str:
    values = entries.get(key, [])
    assert len(values) == 1, f"{key}: expected one assignment, found {values}"
    return values[0]


def _svc(key: str) -> str:
    return _one(SVC, f"Service.{key}")


def _words(key: str) -> set[str]:
    """The set a list setting of the service ends up with (an empty assignment resets it)."""
    words: set[str] = set()
    for value in SVC.get(f"Service.{key}", []):
        words = set() if not value else words | set(value.split())
    return words


def _script() -> str:
    """The shell script ExecStart hands to /bin/sh, as written in the unit (systemd escapes not applied)."""
    argv = shlex.split(_svc("ExecStart"))
    assert argv[:2] == ["/bin/sh", "-euc"] and len(argv) == 3, argv
    return argv[2]


# ------------------------------------------------------------------------------------- systemd-analyze

def _install(folder: Path, service_text: str | None = None, timer_edit: tuple[str, str] | None = None) -> None:
    """Copy the three units into `folder`, the service's command pointing at a stub `auditor` there:
    verify checks that each command exists, and the real one is not installed on a test machine."""
    stub = folder / "auditor"
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    text = SERVICE.read_text(encoding="utf-8") if service_text is None else service_text
    text, n = re.subn(re.escape(AUDITOR + " "), f"{folder}/auditor ", text)
    assert n == 1, "the service's ExecStart changed: update this test"
    (folder / SERVICE.name).write_text(text, encoding="utf-8")
    for timer in (DAILY, WEEKLY):
        timer_text = timer.read_text(encoding="utf-8")
        if timer_edit is not None and timer is DAILY:
            timer_text = timer_text.replace(*timer_edit)
        (folder / timer.name).write_text(timer_text, encoding="utf-8")


def _analyze(folder: Path, *args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze in `folder`, with units looked up there first (then the system's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env["SYSTEMD_UNIT_PATH"] = f"{folder}:"  # the trailing colon keeps the system's units (sysinit.target, ...)
    env["LC_ALL"] = "C"
    if debug:
        env["SYSTEMD_LOG_LEVEL"] = "debug"
    assert ANALYZE is not None
    # cwd matters: verify also searches the working directory, which must not hold another copy
    return subprocess.run([ANALYZE, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


UNITS = ["auditor-report@daily.service", "auditor-report@weekly.service", DAILY.name, WEEKLY.name]


@needs_analyze
def test_units_verify_without_a_message(tmp_path: Path) -> None:
    _install(tmp_path)
    result = _analyze(tmp_path, "verify", "--man=no", *UNITS)
    assert result.stderr == "", result.stderr
    assert result.returncode == 0


@needs_analyze
@pytest.mark.parametrize("broken", ["service", "timer"])
def test_verify_reports_a_broken_unit(tmp_path: Path, broken: str) -> None:
    """The check above can fail: an unknown key is reported on stderr (while the exit code stays 0)."""
    text = SERVICE.read_text(encoding="utf-8")
    if broken == "service":
        bad = text.replace("\nMemoryMax=1G\n", "\nMemoryMax=1G\nFrobnicateSockets=yes\n")
        assert bad != text
        _install(tmp_path, service_text=bad)
    else:
        _install(tmp_path, timer_edit=("\nPersistent=true\n", "\nPersistent=true\nFrobnicateSockets=yes\n"))
        assert "Frobnicate" in (tmp_path / DAILY.name).read_text(encoding="utf-8")
    result = _analyze(tmp_path, "verify", "--man=no", *UNITS)
    assert "FrobnicateSockets" in result.stderr


@needs_analyze
def test_exposure_is_low(tmp_path: Path) -> None:
    _install(tmp_path)
    result = _analyze(tmp_path, "security", "--offline=true", "--no-pager", str(tmp_path / SERVICE.name))
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, f"no exposure figure in:\n{result.stdout}\n{result.stderr}"
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


@needs_analyze
@pytest.mark.parametrize("period", ["daily", "weekly"])
def test_calendar(tmp_path: Path, period: str) -> None:
    """The OnCalendar expression parses, and its next runs fall at the right time (on Mondays, weekly)."""
    spec = _one(TIMERS[period], "Timer.OnCalendar")
    result = _analyze(tmp_path, "calendar", "--iterations=8", spec)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): (\w{3}) (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)", result.stdout)
    assert len(elapses) == 8, result.stdout
    days = [dt.date.fromisoformat(day) for _, day, _ in elapses]
    if period == "weekly":
        assert {name for name, _, _ in elapses} == {"Mon"}, result.stdout
        assert all(d.weekday() == 0 for d in days)
        assert all((b - a).days == 7 for a, b in itertools.pairwise(days))
        assert {t for _, _, t in elapses} == {"06:30:00"}
    else:
        assert all((b - a).days == 1 for a, b in itertools.pairwise(days))
        assert {t for _, _, t in elapses} == {"06:00:00"}


@needs_analyze
def test_systemd_expands_the_instance_into_the_script(tmp_path: Path) -> None:
    """What _run_script() below assumes systemd does at load time: %i -> the instance, %% -> %, and $$
    left alone (it becomes $ when the command is run). Read from verify's debug dump of the unit."""
    _install(tmp_path)
    result = _analyze(tmp_path, "verify", "--man=no", "auditor-report@weekly.service", debug=True)
    dump = result.stdout + result.stderr  # the unit dump goes to stdout, log lines to stderr
    lines = [line for line in dump.splitlines() if "Command Line:" in line and "-euc" in line]
    if not lines:
        pytest.skip("this systemd-analyze prints no command line in its debug dump")
    line = lines[0].replace("\\$", "$")
    assert "${SINCE_weekly:?" in line
    assert 'weekly-$$(date +%F).html' in line
    assert "%i" not in line


# ----------------------------------------------------------------------------------- the unit's settings

def test_timers_are_persistent_and_start_their_instance() -> None:
    for period, timer in TIMERS.items():
        assert _one(timer, "Timer.Persistent") == "true"
        assert _one(timer, "Timer.RandomizedDelaySec") == "10min"
        assert _one(timer, "Timer.Unit") == f"auditor-report@{period}.service"
        assert _one(timer, "Install.WantedBy") == "timers.target"
    assert _one(TIMERS["daily"], "Timer.OnCalendar") == "*-*-* 06:00:00"
    assert _one(TIMERS["weekly"], "Timer.OnCalendar") == "Mon *-*-* 06:30:00"


def test_no_capabilities() -> None:
    # one empty assignment each: the sets are empty, not merely left at the default (everything)
    assert SVC["Service.CapabilityBoundingSet"] == [""]
    assert SVC["Service.AmbientCapabilities"] == [""]
    assert _svc("NoNewPrivileges") == "yes"
    assert _svc("User") == _svc("Group") == "auditor"


def test_no_network() -> None:
    assert _svc("PrivateNetwork") == "yes"
    assert _words("RestrictAddressFamilies") == {"AF_UNIX"}
    assert _svc("IPAddressDeny") == "any"


def test_oneshot_background_job() -> None:
    assert _svc("Type") == "oneshot"
    assert _svc("TimeoutStartSec") not in ("", "0", "infinity")
    assert _svc("IOSchedulingClass") == "idle"
    assert int(_svc("Nice")) > 0
    assert _svc("MemoryMax")


def test_hardening() -> None:
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
                "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
                "MemoryDenyWriteExecute"):
        assert _svc(key) == "yes", key
    assert _svc("ProtectSystem") == "strict"
    assert _svc("ProtectProc") == "invisible"
    assert _svc("ProcSubset") == "pid"
    assert _svc("SystemCallArchitectures") == "native"
    # the first SystemCallFilter is an allow-list, so everything not named is refused
    assert SVC["Service.SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert _svc("SystemCallErrorNumber") == "EPERM"  # numpy's mbind() must fail, not kill


def test_shares_the_sensor_state_directory() -> None:
    """Same user and folder as the sensor, and the same mode: systemd re-applies StateDirectoryMode to
    /var/lib/auditor whenever either unit starts, so a different one would flip it back and forth."""
    sensor = unit_entries(SENSOR)
    assert _svc("StateDirectory").split() == ["auditor", "auditor/reports"]
    for key in ("StateDirectoryMode", "User", "Group", "UMask"):
        assert _svc(key) == _one(sensor, f"Service.{key}"), key
    assert _svc("UMask") == "0027"


# ------------------------------------------------------------------------------- the command it runs

def _systemd_expand(script: str, instance: str) -> str:
    """Apply what systemd does to this script: specifiers at load time (only %i and %% are used), $$ -> $
    when it runs the command."""
    assert re.findall(r"%[^%]", script.replace("%%", "")) == ["%i"] * script.replace("%%", "").count("%i"), \
        "a specifier other than %i in ExecStart: update this test"
    assert not re.search(r"(?<!\$)\$(?!\$)", script.replace("$$", "")), "a $ systemd would expand itself"
    return script.replace("%i", instance).replace("%%", "%").replace("$$", "$")


def _run_script(tmp_path: Path, instance: str, fail: bool = False) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ExecStart's script as systemd would for `instance`, with /var/lib/auditor moved into tmp_path
    and a stub auditor that records its arguments and writes the --out file (or fails with status 3)."""
    state = tmp_path / "state"
    (state / "reports").mkdir(parents=True)
    log = tmp_path / "argv"
    stub = tmp_path / "auditor"
    stub.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{log}"\n'
        'while [ "$#" -gt 0 ]; do [ "$1" = --out ] && out="$2"; shift; done\n'
        + ('exit 3\n' if fail else 'echo "<html>report</html>" > "$out"\n'),
        encoding="utf-8",
    )
    stub.chmod(0o755)
    script = _systemd_expand(_script(), instance).replace(AUDITOR, str(stub)).replace(STATE, str(state))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    for assignment in _svc("Environment").split():  # systemd passes Environment= to the process
        key, _, value = assignment.partition("=")
        env[key] = value
    result = subprocess.run(["/bin/sh", "-euc", script], env=env, capture_output=True, text=True, timeout=30,
                            check=False)
    return result, state


@pytest.mark.parametrize(("instance", "since"), [("daily", "1d"), ("weekly", "7d")])
def test_script_runs_the_report_for_the_period(tmp_path: Path, instance: str, since: str) -> None:
    before = dt.date.today()
    result, state = _run_script(tmp_path, instance)
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "argv").read_text(encoding="utf-8").splitlines()
    assert argv[:7] == ["report", "--db", f"{state}/auditor.sqlite", "--since", since, "--format", "html"]
    reports = sorted(p.name for p in (state / "reports").iterdir())
    # dated with the local date of the run (a run across midnight may take either)
    assert reports in ([f"{instance}-{d.isoformat()}.html"] for d in {before, dt.date.today()}), reports


def test_script_fails_when_the_report_fails(tmp_path: Path) -> None:
    """The report's exit status is the unit's (the shell execs it), so systemd records the failure."""
    result, _ = _run_script(tmp_path, "weekly", fail=True)
    assert result.returncode == 3


def test_script_refuses_an_unknown_period(tmp_path: Path) -> None:
    result, _ = _run_script(tmp_path, "monthly")
    assert result.returncode != 0
    assert "no such report period" in result.stderr
    assert not (tmp_path / "argv").exists()
