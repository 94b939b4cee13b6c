"""Replay a capture into a veth pair at rising rates while `auditor sense` captures the other end;
print, per rate, what was sent, received and dropped, and the sensor's CPU use.

    sudo .venv/bin/python bench/live.py [--packets 600000] [--rates 50000,100000,...] [--keep DIR]

Needs root, iproute2 and tcpreplay. Everything happens inside a network namespace this script
creates and deletes: a veth pair va <-> vb, IPv6 off (no neighbour discovery noise). Each rate runs
a fresh sensor (`auditor sense -i vb`), replays the capture with `tcpreplay --pps RATE` (then
`--topspeed`), waits for the sensor to have read everything it will, and stops it with SIGTERM.
"Dropped" is what libpcap says the kernel dropped plus what never reached the sensor (sent minus
received). CPU is the sensor's user+system time, its flow-writer child included, over the replay's
sending time (tcpreplay's "Actual ... sent in" seconds; 100 % = one core). tcpreplay itself takes
about one of the machine's cores while it sends. The highest rate with zero drops and the CPU at 100 k packets/s are
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDITOR = Path(sys.executable).with_name("auditor")
DEFAULT_RATES = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its children that are alive (the flow writer)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        if int(entry.name) == pid or ppid == pid:
            total += (utime + stime) / CLK_TCK
    return total


class Namespace:
    def __init__(self) -> None:
        self.name = f"audbench-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Namespace:
        run = ["ip", "netns", "exec", self.name]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run([*run, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"], check=True)
        for dev in ("va", "vb"):
            subprocess.run([*run, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], check=True)
            # room for 1518-byte frames with VLAN tags: at the default 1500 tcpreplay cannot send them
            subprocess.run([*run, "ip", "link", "set", dev, "mtu", "9000", "up"], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def sensor_pid(wrapper: subprocess.Popen[bytes]) -> int:
    """`ip netns exec` execs the command, so the wrapper's pid is the sensor's."""
    return wrapper.pid


def status(out: Path) -> dict:  # type: ignore[type-arg]
    try:
        return json.loads((out / "status.json").read_text())["auditor"]  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError):
        return {}


def one_rate(ns: Namespace, capture: Path, packets: int, rate: int | None, work: Path,
             config: Path | None = None) -> dict:  # type: ignore[type-arg]
    out = work / f"out-{rate or 'top'}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["ip", "netns", "exec", ns.name, str(AUDITOR), "sense", "-i", "vb", "-o", str(out), "--flush-interval", "60"]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not status(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = sensor_pid(proc)
    replay = ["ip", "netns", "exec", ns.name, "tcpreplay", "-i", "va", "--preload-pcap"]
    replay += ["--topspeed"] if rate is None else [f"--pps={rate}"]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    result = subprocess.run([*replay, str(capture)], capture_output=True, text=True, check=True)
    wall = time.monotonic() - t0
    cpu1 = cpu_seconds(pid)
    # let the sensor drain its ring: wait until its received count stops moving
    last, still = -1, 0
    while still < 3:
        time.sleep(0.5)
        got = status(out).get("packets", {}).get("received", 0)
        still = still + 1 if got == last else 0
        last = got
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    final = status(out)
    pk = final.get("packets", {})
    achieved = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", result.stdout)
    # the CPU share over the sending time alone (tcpreplay first loads the capture into memory)
    sending = re.search(r"Actual: \d+ packets \(\d+ bytes\) sent in ([\d.]+) seconds", result.stdout)
    send_s = float(sending.group(1)) if sending else wall
    successful = re.search(r"Successful packets:\s+(\d+)", result.stdout)
    sent = int(successful.group(1)) if successful else packets
    received, kernel = int(pk.get("received", 0)), int(pk.get("dropped", 0))
    return {
        "rate": rate or "topspeed",
        "achieved_pps": float(achieved.group(1)) if achieved else None,
        "sent": sent,
        "received": received,
        "kernel_dropped": kernel,
        "lost": max(sent - received, 0) + kernel,
        "processed": int(pk.get("processed", 0)),
        "cpu_percent": round(100 * (cpu1 - cpu0) / send_s, 1) if send_s > 0 else None,
        "replay_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=600_000, help="packets in the replayed capture")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="packets/s, comma-separated")
    parser.add_argument("--keep", type=Path, default=Path("/tmp/auditor-bench"), help="capture cache folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--buffer-mib", type=int, default=None,
                        help="the sensor's capture buffer ([sensor] buffer_mib; default: the sensor's)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("tcpreplay") or not shutil.which("ip"):
        log("needs root, iproute2 and tcpreplay")
        return 2
    args.keep.mkdir(parents=True, exist_ok=True)
    capture = args.keep / f"live-{args.packets}p.pcap"
    if not capture.exists():
        log(f"writing {capture}")
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_capture.py"), str(capture), "--packets",
                        str(args.packets), "--seed", "1"], check=True, stdout=sys.stderr)
    rates: list[int | None] = [int(r) for r in args.rates.split(",") if r] + [None]
    rows = []
    with Namespace() as ns, tempfile.TemporaryDirectory() as tmp:
        config = None
        if args.buffer_mib is not None:
            config = Path(tmp) / "auditor.toml"
            config.write_text(f"[sensor]\nbuffer_mib = {args.buffer_mib}\n", encoding="utf-8")
        for rate in rates:
            log(f"replaying {args.packets:,} packets at {rate or 'top speed'} ...")
            rows.append(one_rate(ns, capture, args.packets, rate, Path(tmp), config))
            log(f"  {rows[-1]}")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'rate':>10} {'achieved':>10} {'sent':>10} {'received':>10} {'kernel drop':>11} {'lost':>8} {'CPU %':>6}")
    for r in rows:
        achieved = f"{r['achieved_pps']:,.0f}" if r["achieved_pps"] else "?"
        print(f"{r['rate']!s:>10} {achieved:>10} {r['sent']:>10,} {r['received']:>10,} {r['kernel_dropped']:>11,} "
              f"{r['lost']:>8,} {r['cpu_percent']!s:>6}")
    clean = [r for r in rows if r["lost"] == 0 and r["achieved_pps"]]
    best = max(clean, key=lambda r: r["achieved_pps"]) if clean else None
    print(f"highest rate with zero drops: {best['achieved_pps']:,.0f} packets/s" if best else
          "no rate was without drops")
    at_100k = next((r for r in rows if r["rate"] == 100_000), None)
    if at_100k:
        print(f"CPU at 100 k packets/s: {at_100k['cpu_percent']} % of one core (sensor and flow writer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
