"""Time the flow writer's work per flow: Community IDs and ECS JSON lines, on real flow records.

    .venv/bin/python bench/flow_output.py [CAPTURE] [--repeat 3]

The flows come from running the engine over CAPTURE (default: the bench's 300 k-packet live mix,
made by bench/make_capture.py when absent). Prints µs per flow for with_community_ids and for
flow_json_lines, best of --repeat. This is the cost the sensor's writer pays for every ended flow,
and what its SIGTERM path pays for every flow still open.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from auditor.config import Settings
from auditor.flows.community_id import with_community_ids
from auditor.flows.types import FlowRecords
from auditor.output.ecs import flow_json_lines
from auditor.pipeline import analyze_files

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path("/tmp/auditor-bench/live-300000p.pcap")


def collect(capture: Path) -> list[FlowRecords]:
    parts: list[FlowRecords] = []
    analyze_files([capture], Settings(), parts.append, prefetch=False)
    return parts


def best(repeat: int, work: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.capture.exists():
        args.capture.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_capture.py"), str(args.capture),
                        "--packets", "300000", "--flows", "15000", "--seed", "1"], check=True)
    parts = collect(args.capture)
    flows = sum(len(p) for p in parts)
    with_ids = [with_community_ids(p) for p in parts]
    t_ids = best(args.repeat, lambda: [with_community_ids(p) for p in parts])
    t_json = best(args.repeat, lambda: [flow_json_lines(p) for p in with_ids])
    print(f"{args.capture.name}: {flows:,} flows in {len(parts)} batches")
    print(f"with_community_ids  {t_ids / flows * 1e6:6.2f} µs/flow")
    print(f"flow_json_lines     {t_json / flows * 1e6:6.2f} µs/flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
