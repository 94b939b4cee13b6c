"""`auditor status` on status.json files written here by hand (shaped like Sensor.metric()), and the
parts of `auditor sense` that need no capture privilege: its help and a refused interface."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.output._text import iso_time

runner = CliRunner()


def status_record(
    iface: str = "eth1",
    *,
    state: str = "running",
    age_s: float = 1.0,
    flush_interval_s: float = 60.0,
    received: int = 12_345,
    dropped: int = 0,
    interface_dropped: int = 0,
    active: int = 17,
    alerts: int = 3,
    findings: int = 5,
    skipped: dict[str, int] | None = None,
    last_error: str | None = None,
) -> dict[str, Any]:
    """A status record as Sensor.metric() writes it, reported `age_s` seconds ago."""
    now = time.time()
    skipped = skipped or {}
    return {
        "@timestamp": iso_time(int((now - age_s) * 1e9)),
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "metric",
            "category": ["network"],
            "type": ["info"],
            "dataset": "auditor.sensor",
            "start": iso_time(int((now - age_s - 3600) * 1e9)),
        },
        "observer": {
            "hostname": "sensor1",
            "type": "sensor",
            "product": "span-auditor",
            "version": "0.1.0",
            "ingress": {"interface": {"name": iface}},
        },
        "auditor": {
            "state": state,
            "pid": 4242,
            "uptime_s": 3600.0,
            "packets": {
                "received": received,
                "dropped": dropped,
                "interface_dropped": interface_dropped,
                "processed": received,
                "bytes": received * 100,
                "ip": received,
                "arp": 0,
                "other_l2": 0,
            },
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "flows": {"active": active, "ended": 40, "ended_by_reason": {"idle": 40}},
            "devices": 9,
            "flows_judged": 57,
            "findings": findings,
            "alerts": alerts,
            "worst_finding": 0,
            "rules": [{"path": "/etc/auditor/policies/site.yaml", "sha256": "0" * 64}],
            "rule_reloads": 2,
            "rule_reload_failures": 1,
            "last_error": last_error,
            "flush_interval_s": flush_interval_s,
        },
    }


def write_status(base: Path, record: dict[str, Any], folder: str | None = None) -> Path:
    name = folder or record["observer"]["ingress"]["interface"]["name"]
    path = base / name / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return path


def status(base: Path, *args: str) -> Any:
    return runner.invoke(app, ["status", "--state-dir", str(base), *args])


def test_a_fresh_sensor_without_drops_is_fine(tmp_path: Path) -> None:
    write_status(
        tmp_path,
        status_record(
            received=12_345, active=17, alerts=3, findings=5, skipped={"truncated-ipv4": 2, "bad-ip-version": 1}
        ),
    )
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith("eth1: running, reported ")
    assert "STALE" not in line
    assert "packets received 12,345" in line
    assert "dropped 0 (kernel) 0 (interface)" in line
    assert "skipped 3" in line
    assert "flows active 17" in line
    assert "findings 5" in line
    assert "alerts 3" in line
    assert "rule reloads 2 (failed 1)" in line
    assert "last error" not in result.stdout


def test_the_age_is_shown_in_seconds(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(age_s=42))
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    assert "reported 42 s ago" in result.stdout or "reported 43 s ago" in result.stdout


def test_a_running_sensor_silent_for_three_intervals_is_stale(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(age_s=3 * 10 + 5, flush_interval_s=10))
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "eth1: running STALE" in result.stdout


def test_a_running_sensor_within_three_intervals_is_not_stale(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(age_s=3 * 10 - 5, flush_interval_s=10))
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    assert "STALE" not in result.stdout


def test_a_stopped_sensor_with_an_old_report_is_not_stale(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(state="stopped", age_s=86_400, flush_interval_s=10))
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("eth1: stopped, reported 86,4")
    assert "STALE" not in result.stdout


@pytest.mark.parametrize(("dropped", "interface_dropped", "code"), [(7, 0, 1), (0, 3, 0), (2, 2, 1)])
def test_kernel_drops_fail_the_check(tmp_path: Path, dropped: int, interface_dropped: int, code: int) -> None:
    # the interface's count (Linux rx_dropped) also holds frames the host stack ignored after the capture
    # saw them (VLAN-tagged or IPv6 frames on a bare mirror port): shown, but no failure on its own
    write_status(tmp_path, status_record(dropped=dropped, interface_dropped=interface_dropped))
    result = status(tmp_path)
    assert result.exit_code == code
    assert f"dropped {dropped} (kernel) {interface_dropped} (interface)" in result.stdout
    assert "STALE" not in result.stdout


def test_a_stopped_sensor_that_dropped_still_fails(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(state="stopped", dropped=1, age_s=10_000))
    assert status(tmp_path).exit_code == 1


def test_one_line_per_sensor_and_any_bad_one_fails(tmp_path: Path) -> None:
    write_status(tmp_path, status_record("eth1"))
    write_status(tmp_path, status_record("eth2", age_s=1_000, flush_interval_s=60))
    result = status(tmp_path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("eth1: running, reported")
    assert lines[1].startswith("eth2: running STALE")


def test_json_prints_the_records(tmp_path: Path) -> None:
    records = [status_record("eth1"), status_record("eth2", state="stopped", age_s=500)]
    for r in records:
        write_status(tmp_path, r)
    result = status(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == records
    assert "packets received" not in result.stdout


def test_json_keeps_the_exit_code(tmp_path: Path) -> None:
    write_status(tmp_path, status_record(dropped=5))
    result = status(tmp_path, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["auditor"]["packets"]["dropped"] == 5


def test_no_status_files(tmp_path: Path) -> None:
    (tmp_path / "eth1").mkdir()  # a sensor folder, but nothing reported yet
    result = status(tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no sensor status under" in result.stderr


def test_a_missing_state_dir(tmp_path: Path) -> None:
    result = status(tmp_path / "absent")
    assert result.exit_code == 2
    assert "no sensor status under" in result.stderr


def test_garbage_status_is_a_warning_and_the_others_are_shown(tmp_path: Path) -> None:
    write_status(tmp_path, status_record("eth1"))
    bad = tmp_path / "eth0" / "status.json"
    bad.parent.mkdir()
    bad.write_text('{"@timestamp": "2026-')  # cut short
    binary = tmp_path / "eth9" / "status.json"
    binary.parent.mkdir()
    binary.write_bytes(b"\xff\xfe\x00garbage")  # not even UTF-8
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2
    assert all(w.startswith("warning: ") and "unreadable" in w for w in warnings)
    assert str(bad) in result.stderr and str(binary) in result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("eth1: running")


def test_only_garbage_is_no_status(tmp_path: Path) -> None:
    bad = tmp_path / "eth0" / "status.json"
    bad.parent.mkdir()
    bad.write_text("not json")
    result = status(tmp_path)
    assert result.exit_code == 2
    assert "warning:" in result.stderr and "no sensor status under" in result.stderr


def test_a_status_that_is_json_but_not_an_object_is_a_warning(tmp_path: Path) -> None:
    write_status(tmp_path, status_record("eth1"))
    odd = tmp_path / "eth0" / "status.json"
    odd.parent.mkdir()
    odd.write_text("null")
    result = status(tmp_path)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0
    assert "warning:" in result.stderr
    assert result.stdout.startswith("eth1: running")


def test_last_error_is_printed(tmp_path: Path) -> None:
    msg = "rule reload refused, the previous rules stay in force: site.yaml:3: unknown key 'alow'"
    write_status(tmp_path, status_record(last_error=msg))
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[1] == f"  last error: {msg}"


def test_a_missing_timestamp_on_a_running_sensor_is_stale(tmp_path: Path) -> None:
    record = status_record()
    del record["@timestamp"]
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "STALE" in result.stdout


def test_the_interface_name_comes_from_the_record(tmp_path: Path) -> None:
    write_status(tmp_path, status_record("enp3s0.100"), folder="enp3s0_100")
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("enp3s0.100: running")


# -- auditor sense ---------------------------------------------------------------------------------


def test_sense_help_lists_its_options() -> None:
    result = runner.invoke(app, ["sense", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--interface", "-i", "--bpf", "--config", "--rules", "--out", "--flush-interval", "--duration"):
        assert option in result.stdout


def test_sense_help_shows_the_config_section() -> None:
    result = runner.invoke(app, ["sense", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    assert "[sensor] bpf" in result.stdout


def test_sense_on_a_missing_interface_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["sense", "-i", "no-such-if0", "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: no-such-if0: cannot capture")
    assert not (out / "status.json").exists()  # nothing was reported for a capture that never started
    assert not (out / "flows.jsonl").exists()


def test_sense_on_a_missing_interface_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    result = runner.invoke(app, ["sense", "-i", "no-such-if0", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Bad file descriptor" not in result.stderr


# found by review: a sensor that stopped on an error, or reached a limit, must not look healthy


def test_a_failed_sensor_fails_the_check_and_its_error_is_shown_inert(tmp_path: Path) -> None:
    record = status_record(state="failed", age_s=10_000)
    record["auditor"]["last_error"] = "stopped on an error: vb: the interface went down\x1b[2J"
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "last error: stopped on an error: vb: the interface went down\\x1b[2J" in result.stdout
    assert "\x1b" not in result.stdout


def test_a_reached_limit_fails_the_check_and_is_named(tmp_path: Path) -> None:
    record = status_record()
    record["auditor"]["limits"] = {"findings_not_summed": 12, "devices_not_tracked": 0}
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "limits reached (something is no longer tracked): findings_not_summed 12" in result.stdout
    record["auditor"]["limits"] = {"findings_not_summed": 0}
    write_status(tmp_path, record)
    assert status(tmp_path).exit_code == 0


# -- the store feed (issue 7): its line in `auditor status` ----------------------------------------


def store_section(*, age_s: float | None = 5.0, last_error: str | None = None, **extra: Any) -> dict[str, Any]:
    """The "store" part of a status record, as Sensor.metric() writes it (store_feed.StoreFeed.status())."""
    last = None if age_s is None else iso_time(int((time.time() - age_s) * 1e9))
    return {"target": "/var/lib/auditor/auditor.sqlite", "process": "running", "last_step": last, "steps": 12,
            "failed_steps": 0, "last_error": last_error, "restarts": 0, "run_id": 3, "flows": 1_234,
            "flow_files_lost": 0, "flow_lines_lost": None, **extra}


def test_a_working_store_feed_is_shown_and_passes(tmp_path: Path) -> None:
    record = status_record()
    record["auditor"]["store"] = store_section()
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[1]
    assert line.startswith("  store /var/lib/auditor/auditor.sqlite: last step 5 s ago, 1,234 flows stored (run 3)")
    assert "failed steps 0" in line and "LATE" not in line


def test_a_sensor_without_a_store_shows_no_store_line(tmp_path: Path) -> None:
    record = status_record()
    record["auditor"]["store"] = None
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 0 and "store" not in result.stdout


def test_a_failing_store_fails_the_check_with_its_error_inert(tmp_path: Path) -> None:
    record = status_record()
    record["auditor"]["store"] = store_section(last_error="cannot write: database is locked\x1b[2J", failed_steps=4)
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "failed steps 4" in result.stdout
    assert "  store error: cannot write: database is locked\\x1b[2J" in result.stdout and "\x1b" not in result.stdout


@pytest.mark.parametrize(("age_s", "state", "code"), [(200.0, "running", 1), (None, "running", 1),
                                                      (200.0, "stopped", 0), (100.0, "running", 0)])
def test_a_store_without_a_step_for_three_intervals_is_late(tmp_path: Path, age_s: float | None, state: str,
                                                            code: int) -> None:
    record = status_record(state=state, flush_interval_s=60.0)
    record["auditor"]["store"] = store_section(age_s=age_s)  # no step yet: counted from the sensor's start
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == code, result.output
    assert ("LATE" in result.stdout) == bool(code)


def test_flows_the_store_lost_fail_the_check_and_are_named(tmp_path: Path) -> None:
    record = status_record(state="stopped")
    record["auditor"]["store"] = store_section(flow_files_lost=1, flow_lines_lost=250, process="stopped")
    write_status(tmp_path, record)
    result = status(tmp_path)
    assert result.exit_code == 1
    assert "  store lost: flow files lost 1, flow lines lost 250" in result.stdout


def test_sense_help_names_the_store_option() -> None:
    result = runner.invoke(app, ["sense", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert "--db" in result.stdout and "[sensor] store" in result.stdout


def test_a_sensor_that_cannot_start_creates_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    db = tmp_path / "store.sqlite"
    result = runner.invoke(app, ["sense", "-i", "no-such-if0", "-o", str(tmp_path / "out"), "--db", str(db)])
    assert result.exit_code == 2
    assert not db.exists()  # the feed starts only once the capture is open
