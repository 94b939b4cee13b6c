#!/usr/bin/env python3
"""Time `auditor analyze` against tshark on a synthetic capture and on one `--scale` times larger.

    .venv/bin/python bench/run.py [--packets 2000000] [--scale 4] [--keep DIR] [--repeat N] [--json]

Captures come from bench/make_capture.py and are kept in DIR (default /tmp/auditor-bench); a
capture whose sidecar .json matches the wanted parameters is reused. For each capture and tool it
prints wall time, packets/s and the peak RSS of that child process alone (os.wait4), then
auditor/tshark time ratios and whether the auditor's peak RSS stayed flat as the capture grew.
This script prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "make_capture.py"
FLAT_RSS_RATIO = 1.25  # "flat": the larger capture needs at most this much more peak memory
STDERR_TAIL = 800


@dataclass(frozen=True)
class Capture:
    """A generated capture and the figures its generator stated in the sidecar."""

    path: Path
    packets: int
    flows: int
    bytes: int


@dataclass(frozen=True)
class Run:
    """One timed run of one tool on one capture."""

    tool: str
    capture: str
    wall_s: float
    packets_per_s: float
    peak_rss_mb: float
    exit_code: int
    error: str | None = None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_capture(workdir: Path, packets: int, flows: int, seed: int) -> Capture:
    """Return the capture for these parameters, generating it unless a matching one is present."""
    path = workdir / f"bench-{packets}p-{flows}f-s{seed}.pcap"
    sidecar = Path(f"{path}.json")
    gen_version = _generator_version()
    if path.exists() and sidecar.exists():
        meta = json.loads(sidecar.read_text())
        if (
            meta.get("generator") == gen_version
            and meta.get("packets") == packets
            and meta.get("flows") == flows
            and meta.get("seed") == seed
            and meta.get("bytes") == path.stat().st_size
        ):
            log(f"reusing {path} ({meta['bytes'] / 1e6:,.0f} MB)")
            return Capture(path, packets, flows, int(meta["bytes"]))
    log(f"generating {path} ...")
    cmd = [
        sys.executable,
        str(GENERATOR),
        str(path),
        "--packets",
        str(packets),
        "--flows",
        str(flows),
        "--seed",
        str(seed),
    ]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    meta = json.loads(sidecar.read_text())
    return Capture(path, int(meta["packets"]), int(meta["flows"]), int(meta["bytes"]))


def _generator_version() -> str:
    for line in GENERATOR.read_text().splitlines():
        if line.startswith("GENERATOR ="):
            return line.split('"')[1]
    raise SystemExit(f"error: no GENERATOR line in {GENERATOR}")


def auditor_command() -> list[str]:
    """Return the command that starts the auditor CLI from this interpreter's environment."""
    script = Path(sys.executable).parent / "auditor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "auditor.cli"]


def warm(path: Path) -> float:
    """Read the file once so both tools start from the page cache; return how long the read took.

    Measured on the 2-core bench machine: its page cache holds ~1.7 GB at most, so a capture read
    cold is disk-bound (~1-2 GB/s) and the first tool timed would pay for the disk, not the second.
    A capture larger than the cache cannot be warmed: then both tools are partly disk-bound.
    """
    began = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(16 << 20):
            pass
    return time.perf_counter() - began


def timed(tool: str, cmd: list[str], cap: Capture) -> Run:
    """Run cmd once (after warming the capture); return its wall time and the peak RSS of that child alone."""
    warm(cap.path)
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        tail = err.read().decode(errors="replace")[-STDERR_TAIL:].strip()
    return Run(
        tool=tool,
        capture=cap.path.name,
        wall_s=wall,
        packets_per_s=cap.packets / wall,
        peak_rss_mb=usage.ru_maxrss / 1024,  # Linux reports KiB
        exit_code=code,
        error=tail if code != 0 else None,
    )


def bench_capture(cap: Capture, workdir: Path, repeat: int, tshark: str | None) -> list[Run]:
    """Return every run of every tool on cap."""
    runs: list[Run] = []
    outdir = workdir / f"out-{cap.path.stem}"
    for i in range(repeat):
        shutil.rmtree(outdir, ignore_errors=True)
        log(f"[{i + 1}/{repeat}] auditor analyze {cap.path.name}")
        runs.append(timed("auditor", [*auditor_command(), "analyze", str(cap.path), "--out", str(outdir)], cap))
        if runs[-1].error:
            log(f"  auditor exited {runs[-1].exit_code}: {runs[-1].error}")
        if tshark:
            log(f"[{i + 1}/{repeat}] tshark conv,tcp conv,udp {cap.path.name}")
            runs.append(timed("tshark", [tshark, "-q", "-r", str(cap.path), "-z", "conv,tcp", "-z", "conv,udp"], cap))
            if runs[-1].error:
                log(f"  tshark exited {runs[-1].exit_code}: {runs[-1].error}")
    return runs


def best(runs: list[Run], tool: str, capture: Capture) -> Run | None:
    """Return the fastest successful run of tool on capture, with the highest peak RSS seen."""
    mine = [r for r in runs if r.tool == tool and r.capture == capture.path.name and r.exit_code == 0]
    if not mine:
        return None
    fastest = min(mine, key=lambda r: r.wall_s)
    return Run(**{**asdict(fastest), "peak_rss_mb": max(r.peak_rss_mb for r in mine)})


def summarise(caps: list[Capture], runs: list[Run]) -> dict[str, Any]:
    """Return the figures: per capture and tool, ratios auditor/tshark, and RSS flatness."""
    rows, ratios = [], []
    for cap in caps:
        per_tool = {tool: best(runs, tool, cap) for tool in ("auditor", "tshark")}
        for tool, r in per_tool.items():
            failed = [x for x in runs if x.tool == tool and x.capture == cap.path.name and x.exit_code != 0]
            if r or failed:
                rows.append(
                    {
                        "capture": cap.path.name,
                        "tool": tool,
                        "packets": cap.packets,
                        "wall_s": r.wall_s if r else None,
                        "packets_per_s": r.packets_per_s if r else None,
                        "peak_rss_mb": r.peak_rss_mb if r else None,
                        "failed_runs": len(failed),
                        "error": failed[-1].error if failed else None,
                    }
                )
        a, t = per_tool["auditor"], per_tool["tshark"]
        if a and t:
            ratios.append(
                {
                    "capture": cap.path.name,
                    "time_ratio": a.wall_s / t.wall_s,
                    "rss_ratio": a.peak_rss_mb / t.peak_rss_mb,
                }
            )
    flat: dict[str, Any] = {}
    for tool in ("auditor", "tshark"):
        small, large = (best(runs, tool, cap) for cap in (caps[0], caps[-1]))
        if small and large and len(caps) > 1:
            ratio = large.peak_rss_mb / small.peak_rss_mb
            flat[tool] = {
                "small_mb": small.peak_rss_mb,
                "large_mb": large.peak_rss_mb,
                "ratio": ratio,
                "flat": ratio <= FLAT_RSS_RATIO,
            }
    return {
        "captures": [{"path": str(c.path), "packets": c.packets, "flows": c.flows, "bytes": c.bytes} for c in caps],
        "results": rows,
        "auditor_vs_tshark": ratios,
        "peak_rss_growth": flat,
        "runs": [asdict(r) for r in runs],
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(fig: dict[str, Any]) -> None:
    """Print the figures for a person."""
    print(f"{'capture':<34} {'tool':<8} {'packets':>11} {'wall s':>9} {'packets/s':>12} {'peak RSS MB':>12}")
    for r in fig["results"]:
        print(
            f"{r['capture']:<34} {r['tool']:<8} {r['packets']:>11,} {_fmt(r['wall_s'], '.2f'):>9} "
            f"{_fmt(r['packets_per_s'], ',.0f'):>12} {_fmt(r['peak_rss_mb'], ',.1f'):>12}"
            + (
                f"  ({r['failed_runs']} failed run(s): {r['error'].splitlines()[-1] if r['error'] else '?'})"
                if r["failed_runs"]
                else ""
            )
        )
    print()
    for q in fig["auditor_vs_tshark"]:
        word = "faster" if q["time_ratio"] < 1 else "slower"
        speed = 1 / q["time_ratio"] if q["time_ratio"] < 1 else q["time_ratio"]
        print(
            f"{q['capture']}: auditor/tshark time {q['time_ratio']:.2f} (auditor {speed:.1f}x {word}), "
            f"peak RSS {q['rss_ratio']:.2f}"
        )
    for tool, g in fig["peak_rss_growth"].items():
        verdict = "flat" if g["flat"] else "GROWS"
        print(
            f"{tool} peak RSS: {g['small_mb']:,.1f} MB -> {g['large_mb']:,.1f} MB on the larger capture "
            f"(x{g['ratio']:.2f}, {verdict}; flat means <= x{FLAT_RSS_RATIO})"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=2_000_000, help="packets in the base capture")
    ap.add_argument("--flows", type=int, default=None, help="flows in the base capture (default packets/20)")
    ap.add_argument("--scale", type=int, default=4, help="the second capture is this many times larger")
    ap.add_argument(
        "--keep",
        type=Path,
        default=Path("/tmp/auditor-bench"),
        metavar="DIR",
        help="folder that keeps the captures (reused across runs) and auditor outputs",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and capture; the fastest is reported")
    ap.add_argument("--no-tshark", action="store_true", help="time the auditor only")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    flows = args.flows if args.flows is not None else max(100, args.packets // 20)
    args.keep.mkdir(parents=True, exist_ok=True)

    caps = [ensure_capture(args.keep, args.packets, flows, args.seed)]
    if args.scale > 1:
        caps.append(ensure_capture(args.keep, args.packets * args.scale, flows * args.scale, args.seed))
    tshark = None if args.no_tshark else shutil.which("tshark")
    if tshark is None and not args.no_tshark:
        log("tshark not found: timing the auditor only (apt-get install tshark)")
    runs: list[Run] = []
    for cap in caps:
        runs += bench_capture(cap, args.keep, max(1, args.repeat), tshark)

    fig = summarise(caps, runs)
    if args.json:
        print(json.dumps(fig, indent=2))
    else:
        print_table(fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
