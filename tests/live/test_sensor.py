"""`auditor sense` on a real interface: a veth pair inside a network namespace this test creates, with
the demo capture replayed into one end by tcpreplay. Traffic never leaves that namespace.

Needs root (CI runs as root), iproute2 and tcpreplay; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo-site.pcap"
AUDITOR = Path(sys.executable).with_name("auditor")
pytestmark = pytest.mark.live


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tcpreplay", "setpriv"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace holding a veth pair va <-> vb, up, without IPv6 (no ND noise)."""
    why = _missing()
    if why:
        pytest.skip(why)
    name = f"audtest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run([*run, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"], check=True)
        for dev in ("va", "vb"):
            subprocess.run([*run, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=True)
            subprocess.run([*run, "ip", "link", "set", dev, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def geo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """auditor.toml naming the demo's GeoIP databases (built as `make demo` builds them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_demo_geoip", ROOT / "pcaps" / "make_demo_geoip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("geoip")
    country, asn = module.build(folder)
    config = folder / "auditor.toml"
    config.write_text(f'geoip_country = "{country}"\ngeoip_asn = "{asn}"\n', encoding="utf-8")
    os.chmod(folder, 0o755)
    for path in folder.iterdir():
        os.chmod(path, 0o644)
    return config


class Sensor:
    """An `auditor sense` process in the namespace, capturing on vb."""

    def __init__(self, ns: str, out: Path, *args: str, env: dict[str, str] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.out = out
        self.log = out.parent / f"{out.name}.log"
        cmd = ["ip", "netns", "exec", ns, *prefix, str(AUDITOR), "sense", "-i", "vb", "-o", str(out),
               "--flush-interval", "0.5", *args]
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def wait_status(self, check: object = None, timeout: float = 20.0) -> dict:  # type: ignore[type-arg]
        """Wait for status.json (and for `check(status)` to hold); return it."""
        deadline = time.monotonic() + timeout
        path = self.out / "status.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sensor exited {self.proc.returncode}: {self.log.read_text()}")
            if path.is_file():
                try:
                    status = json.loads(path.read_text())
                except ValueError:
                    status = None
                if status is not None and (check is None or check(status)):  # type: ignore[operator]
                    return status  # type: ignore[no-any-return]
            time.sleep(0.1)
        raise AssertionError(f"no such status in {timeout} s: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """Send `sig`; return the exit code and how long the sensor took to exit."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code, time.monotonic() - started


def replay(ns: str, pcap: Path = DEMO) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", "va", "--topspeed", str(pcap)],
                   check=True, capture_output=True)


def _received(n: int) -> object:
    return lambda s: s["auditor"]["packets"]["received"] >= n


def _jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _analyze(tmp_path: Path, config: Path, *args: str) -> Path:
    out = tmp_path / "analyze"
    subprocess.run([str(AUDITOR), "analyze", str(DEMO), "-o", str(out), "-q", "--config", str(config), *args],
                   check=True)
    return out


def _findings(alerts: list[dict]) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return sorted((a["rule"]["id"], a["source"]["mac"], a["destination"]["ip"], a["destination"].get("domain"),
                   tuple(a["auditor"]["services"]), a["auditor"]["flows"], a["source"]["packets"],
                   a["auditor"]["status"]) for a in alerts)


def _devices(path: Path) -> dict[str, tuple[object, ...]]:
    out = {}
    for d in json.loads(path.read_text())["devices"]:
        v = d["vendor"] or {}
        out[d["mac"]] = (d["role"], v.get("id"), v.get("class"), v.get("model"), v.get("brand"),
                         tuple(e["id"] for e in v.get("lists", [])), tuple(a["ip"] for a in d["ips"]))
    return out


def test_live_capture_gives_the_same_devices_and_findings_as_analyze(
        netns: str, tmp_path: Path, geo_config: Path) -> None:
    sensor = Sensor(netns, tmp_path / "live", "--config", str(geo_config), "--rules", str(ROOT / "rules/policies"))
    sensor.wait_status()
    replay(netns)
    sensor.wait_status(_received(217))
    code, _ = sensor.stop()
    assert code == 0
    live = tmp_path / "live"
    reference = _analyze(tmp_path, geo_config, "--rules", str(ROOT / "rules/policies"))
    assert _devices(live / "devices.json") == _devices(reference / "devices.json")
    want = _findings(_jsonl(reference / "alerts.jsonl"))
    assert len(want) == 6
    assert _findings(_jsonl(live / "alerts-current.jsonl")) == want
    # alerts.jsonl got each alert as it fired (one line each: its first flows), the same set
    fired = _jsonl(live / "alerts.jsonl")
    reference_ids = sorted(a["event"]["id"] for a in _jsonl(reference / "alerts.jsonl"))
    assert sorted(a["event"]["id"] for a in fired) == reference_ids
    flows = _jsonl(live / "flows.jsonl")
    assert len(flows) == 29
    assert {f["destination"].get("domain") for f in flows} >= {"time.ys7.com", "litedev.hik-connect.com"}
    status = json.loads((live / "status.json").read_text())["auditor"]
    assert status["state"] == "stopped"
    assert status["packets"]["received"] == 217 and status["packets"]["dropped"] == 0
    assert status["flows"] == {"active": 0, "ended": 29, "ended_by_reason": {"end-of-capture": 29}}
    metrics = _jsonl(live / "metrics.jsonl")
    assert metrics and all(m["event"]["kind"] == "metric" for m in metrics)


def test_sigterm_flushes_open_flows_and_exits_0_within_5_s(netns: str, tmp_path: Path) -> None:
    sensor = Sensor(netns, tmp_path / "live", "--flush-interval", "3600")  # no periodic flush to lean on
    sensor.wait_status(lambda s: True)
    replay(netns)
    time.sleep(1.0)
    code, took = sensor.stop(signal.SIGTERM)
    assert code == 0 and took < 5.0
    # every flow was still open (none idles out in a second): all written at the stop, none lost
    flows = _jsonl(tmp_path / "live" / "flows.jsonl")
    assert len(flows) == 29
    assert {f["auditor"]["end_reason"] for f in flows} <= {"end-of-capture", "tcp-close"}
    assert json.loads((tmp_path / "live" / "status.json").read_text())["auditor"]["state"] == "stopped"


def test_sigint_stops_as_cleanly(netns: str, tmp_path: Path) -> None:
    sensor = Sensor(netns, tmp_path / "live")
    sensor.wait_status()
    code, took = sensor.stop(signal.SIGINT)
    assert code == 0 and took < 5.0


def test_sighup_reloads_good_rules_and_keeps_the_old_ones_on_a_bad_file(netns: str, tmp_path: Path) -> None:
    rules = tmp_path / "site.yaml"
    shutil.copy(ROOT / "rules" / "policies" / "default.yaml", rules)
    sensor = Sensor(netns, tmp_path / "live", "--rules", str(rules))
    first = sensor.wait_status()["auditor"]["rules"]
    rules.write_text("version: 1\npolicies: [\n", encoding="utf-8")  # broken YAML
    sensor.proc.send_signal(signal.SIGHUP)
    refused = sensor.wait_status(lambda s: s["auditor"]["rule_reload_failures"] == 1)["auditor"]
    assert refused["rules"] == first  # the old rules stay in force
    assert "rule reload refused" in refused["last_error"] and "site.yaml" in refused["last_error"]
    # a good file: everything from the listed vendors becomes critical
    rules.write_text((ROOT / "rules" / "policies" / "default.yaml").read_text().replace(
        "      - local: true\n    severity: high", "      - local: true\n    severity: critical"), encoding="utf-8")
    sensor.proc.send_signal(signal.SIGHUP)
    reloaded = sensor.wait_status(lambda s: s["auditor"]["rule_reloads"] == 1)["auditor"]
    assert reloaded["rules"][0]["sha256"] != first[0]["sha256"] and reloaded["last_error"] is None
    replay(sensor_ns := netns)
    sensor.wait_status(_received(217))
    assert sensor_ns
    code, _ = sensor.stop()
    assert code == 0
    alerts = _jsonl(tmp_path / "live" / "alerts-current.jsonl")
    assert {a["auditor"]["severity"] for a in alerts} == {"critical"}  # judged by the reloaded rules
    assert "rule reload refused" in sensor.log.read_text()


def test_ready_status_and_watchdog_reach_the_notify_socket(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.2)
    try:
        sensor = Sensor(netns, tmp_path / "live", env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "600000"})
        messages: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                continue
        code, _ = sensor.stop()
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        listener.close()
    assert code == 0
    assert any(m.startswith("READY=1") and "STATUS=capturing on vb" in m for m in messages)
    assert sum(m == "WATCHDOG=1" for m in messages) >= 3  # pinged from the loop, even with no traffic
    assert any("STATUS=" in m and "received" in m for m in messages)  # periodic status lines
    assert any(m.startswith("STOPPING=1") for m in messages)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder user 65534 can write: pytest's tmp_path sits under a root-only (0700) folder."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="audtest-"))
    os.chmod(base, 0o755)
    out = base / "live"
    out.mkdir()
    os.chmod(out, 0o777)
    try:
        yield out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_unprivileged_user_with_only_net_raw_and_net_admin_captures(netns: str, open_dir: Path) -> None:
    out = open_dir
    caps = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+net_raw,+net_admin",
            "--ambient-caps=-all,+net_raw,+net_admin", "--bounding-set=-all,+net_raw,+net_admin")
    sensor = Sensor(netns, out, env={"STATE_DIRECTORY": str(out), "HOME": str(out)}, prefix=caps)
    status = sensor.wait_status()
    assert status["auditor"]["pid"] == sensor.proc.pid or status["auditor"]["pid"] > 0
    replay(netns)
    sensor.wait_status(_received(217))
    code, _ = sensor.stop()
    assert code == 0
    assert len(_jsonl(out / "flows.jsonl")) == 29
    assert (out / "flows.jsonl").stat().st_uid == 65534  # written as that user, not root


def test_without_the_capabilities_the_sensor_refuses_with_one_line(netns: str, open_dir: Path) -> None:
    out = open_dir
    cmd = ["ip", "netns", "exec", netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           "--inh-caps=-all", "--bounding-set=-all", str(AUDITOR), "sense", "-i", "vb", "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "STATE_DIRECTORY": str(out), "HOME": str(out)})
    assert result.returncode == 2
    assert "error: vb: cannot capture" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_interface_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run([str(AUDITOR), "sense", "-i", "no-such-if0", "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "error: no-such-if0: cannot capture" in result.stderr
    assert "Traceback" not in result.stderr


def test_when_the_interface_goes_away_the_sensor_keeps_its_outputs_and_exits_non_zero(
        netns: str, tmp_path: Path) -> None:
    sensor = Sensor(netns, tmp_path / "live", "--flush-interval", "3600")
    sensor.wait_status()
    replay(netns)
    time.sleep(1.0)  # the frames are in the ring; status.json is written only at the (hour-long) interval
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "del", "va"], check=True)  # takes vb with it
    code = sensor.proc.wait(timeout=30)
    sensor._log.close()
    assert code == 1  # systemd's Restart=on-failure brings it back
    status = json.loads((tmp_path / "live" / "status.json").read_text())["auditor"]
    assert status["state"] == "failed" and "vb" in status["last_error"]
    assert len(_jsonl(tmp_path / "live" / "flows.jsonl")) == 29  # the open flows were written on the way out
    assert "stopped on an error" in sensor.log.read_text()


# --- found by review -----------------------------------------------------------------------------------------


def _child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_a_reload_writes_no_alert_twice_and_keeps_the_counters(netns: str, tmp_path: Path) -> None:
    rules = tmp_path / "site.yaml"
    shutil.copy(ROOT / "rules" / "policies" / "default.yaml", rules)
    settings = tmp_path / "fast.toml"  # flows end quickly, so the second replay makes new flows
    settings.write_text("[flows]\nudp_idle_timeout_s = 1\ntcp_idle_timeout_s = 1\ntcp_close_linger_s = 1\n")
    sensor = Sensor(netns, tmp_path / "live", "--rules", str(rules), "--config", str(settings))
    sensor.wait_status()
    replay(netns)
    first = sensor.wait_status(lambda s: s["auditor"]["alerts"] >= 6)["auditor"]
    sensor.proc.send_signal(signal.SIGHUP)
    sensor.wait_status(lambda s: s["auditor"]["rule_reloads"] == 1)
    time.sleep(2.5)  # the first replay's flows have ended
    replay(netns)
    sensor.wait_status(_received(2 * 217))
    code, _ = sensor.stop()
    assert code == 0
    fired = _jsonl(tmp_path / "live" / "alerts.jsonl")
    assert len(fired) == len({a["event"]["id"] for a in fired}) == 6  # each alert once, across the reload
    final = json.loads((tmp_path / "live" / "status.json").read_text())["auditor"]
    assert final["findings"] >= 2 * first["findings"] > 0  # cumulative over both judges
    assert list((tmp_path / "live").glob("alerts-current-*.jsonl"))  # the old rules' alerts kept aside


def test_a_restart_keeps_the_previous_inventory(netns: str, tmp_path: Path) -> None:
    out = tmp_path / "live"
    sensor = Sensor(netns, out)
    sensor.wait_status()
    replay(netns)
    sensor.wait_status(_received(217))
    assert sensor.stop()[0] == 0
    devices = json.loads((out / "devices.json").read_text())["devices"]
    assert len(devices) == 10
    again = Sensor(netns, out)
    again.wait_status(lambda s: s["auditor"]["pid"] == again.proc.pid and s["auditor"]["state"] == "running")
    assert again.stop()[0] == 0
    (kept,) = out.glob("devices-*.json")  # the first run's inventory, moved aside, not overwritten
    assert json.loads(kept.read_text())["devices"] == devices


def test_when_the_writer_process_dies_the_sensor_writes_the_flows_itself(netns: str, tmp_path: Path) -> None:
    sensor = Sensor(netns, tmp_path / "live")
    sensor.wait_status()
    (writer,) = _child_pids(sensor.proc.pid)
    os.kill(writer, signal.SIGKILL)
    time.sleep(0.5)
    replay(netns)
    sensor.wait_status(_received(217))
    code, _ = sensor.stop()
    assert code == 0  # it carried on
    assert len(_jsonl(tmp_path / "live" / "flows.jsonl")) == 29
    status = json.loads((tmp_path / "live" / "status.json").read_text())["auditor"]
    assert status["flow_writer"].startswith("in-process") and "writer process stopped" in status["last_error"]
