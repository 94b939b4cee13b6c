#!/usr/bin/env python3
"""Time the TLS, DNS and HTTP parsers on payloads taken from real-looking captures.

    .venv/bin/python bench/parsers.py [--capture PCAP] [--packets 300000] [--repeat 3]
                                      [--extra PCAP ...] [--no-demo] [--json]

The first `--packets` packets of the benchmark capture (default
/tmp/auditor-bench/bench-2000000p-100000f-s1.pcap, made by `bench/make_capture.py OUT --packets 2000000
--flows 100000 --seed 1`; skipped with a message when absent) are read with the project's own streaming
reader (auditor.capture.files.open_capture) and header decoder (auditor.decode.decode). The payloads are
picked the way the pipeline picks them: the first FLOW_HEAD_PACKETS payload packets of each TCP flow go to
tls.parse when they start with 0x16 and to http.parse when they start with an ASCII letter; every UDP
payload to or from port 53 goes to dns.parse. pcaps/demo-site.pcap (unless --no-demo) is read whole and
timed as a second set; the --extra captures (e.g. ../shared/pcaps/real/*) are read whole and timed
together as a third. For each set and parser the script prints the number of
payloads, how many gave a record, the best of `--repeat` timed passes as µs per payload and payloads per
second, and a short digest of the records' reprs, so that two versions of a parser can be compared for
identical output as well as for speed. It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from auditor.capture.files import open_capture  # noqa: E402
from auditor.decode import decode  # noqa: E402
from auditor.protocols import FLOW_HEAD_PACKETS, dns, http, tls  # noqa: E402
from auditor.protocols.types import Record  # noqa: E402

DEFAULT_CAPTURE = Path("/tmp/auditor-bench/bench-2000000p-100000f-s1.pcap")
DEMO_CAPTURE = REPO / "pcaps" / "demo-site.pcap"
TCP, UDP = 6, 17
DNS_PORT = 53
TLS_HANDSHAKE = 0x16

Parser = Callable[[bytes], Record | None]
PARSERS: tuple[tuple[str, Parser], ...] = (("tls", tls.parse), ("dns", dns.parse), ("http", http.parse))


@dataclass(frozen=True)
class Figure:
    """One timed parser on one set of payloads."""

    set: str
    parser: str
    payloads: int
    records: int
    best_s: float
    us_per_payload: float
    payloads_per_s: float
    digest: str


def _is_letter(first: int) -> bool:
    return 0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A


def read_payloads(path: Path, max_packets: int | None) -> dict[str, list[bytes]]:
    """Return {parser name: payloads} from the first `max_packets` packets of a capture (all if None)."""
    out: dict[str, list[bytes]] = {name: [] for name, _ in PARSERS}
    seen: dict[tuple[int, ...], int] = {}  # TCP flow (either direction) -> payload packets seen
    done = 0
    with open_capture(path) as source:
        for batch in source.batches():
            if max_packets is not None and done >= max_packets:
                break
            h = decode(batch)
            n = len(batch) if max_packets is None else min(len(batch), max_packets - done)
            done += n
            rows = np.flatnonzero(
                h.has_ports[:n]
                & (h.payload_len[:n] > 0)
                & (h.frag_offset[:n] == 0)
                & np.isin(h.ip_proto[:n], (TCP, UDP))
            )
            start = (batch.offset[rows] + h.payload_off[rows]).tolist()
            length = h.payload_len[rows].tolist()
            cols = (h.ip_proto, h.src_hi, h.src_lo, h.dst_hi, h.dst_lo, h.sport, h.dport)
            proto, shi, slo, dhi, dlo, sport, dport = (c[rows].tolist() for c in cols)
            data = batch.data
            for i, s in enumerate(start):
                payload = data[s : s + length[i]].tobytes()
                if proto[i] == UDP:
                    if DNS_PORT in (sport[i], dport[i]):
                        out["dns"].append(payload)
                    continue
                a, b = (shi[i], slo[i], sport[i]), (dhi[i], dlo[i], dport[i])
                key = (*a, *b) if a <= b else (*b, *a)
                count = seen.get(key, 0)
                if count >= FLOW_HEAD_PACKETS:
                    continue
                seen[key] = count + 1
                if payload[0] == TLS_HANDSHAKE:
                    out["tls"].append(payload)
                elif _is_letter(payload[0]):
                    out["http"].append(payload)
    return out


def time_parser(parse: Parser, payloads: list[bytes], repeat: int) -> tuple[float, int, str]:
    """Return (best seconds of `repeat` passes, records returned, digest of the records' reprs)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in payloads:
            parse(p)
        best = min(best, time.perf_counter() - t0)
    digest = hashlib.sha256()
    records = 0
    for p in payloads:
        rec = parse(p)
        records += rec is not None
        digest.update(repr(rec).encode("utf-8", "surrogatepass"))
        if rec is not None:
            digest.update(repr(list(rec.facts())).encode("utf-8", "surrogatepass"))
    return best, records, digest.hexdigest()[:12]


def run_set(name: str, payloads: dict[str, list[bytes]], repeat: int) -> Iterator[Figure]:
    """Time every parser on its payloads of one set."""
    for parser, parse in PARSERS:
        items = payloads[parser]
        if not items:
            continue
        best, records, digest = time_parser(parse, items, repeat)
        yield Figure(
            set=name,
            parser=parser,
            payloads=len(items),
            records=records,
            best_s=best,
            us_per_payload=best / len(items) * 1e6,
            payloads_per_s=len(items) / best if best else float("inf"),
            digest=digest,
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE, help="benchmark capture (default %(default)s)")
    ap.add_argument("--packets", type=int, default=300_000, help="packets read from --capture (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; the best is kept (default %(default)s)")
    ap.add_argument(
        "--extra", type=Path, nargs="*", default=[], help="more captures, read whole, timed together as one set"
    )
    ap.add_argument("--no-demo", action="store_true", help=f"leave out {DEMO_CAPTURE.relative_to(REPO)}")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON lines instead of a table")
    args = ap.parse_args()

    sets: list[tuple[str, list[Path], int | None]] = []
    if args.capture.exists():
        sets.append((f"{args.capture.stem}[:{args.packets}]", [args.capture], args.packets))
    else:
        print(f"{args.capture} is absent: make it with bench/make_capture.py (see --help)", file=sys.stderr)
    if not args.no_demo:
        sets.append((DEMO_CAPTURE.stem, [DEMO_CAPTURE], None))
    if args.extra:
        sets.append((f"extra ({len(args.extra)} captures)", args.extra, None))

    if not args.json:
        print(f"{'set':<40} {'parser':<6} {'payloads':>9} {'records':>8} {'µs/payload':>11} {'payloads/s':>11}  digest")
    for name, paths, limit in sets:
        t0 = time.perf_counter()
        payloads: dict[str, list[bytes]] = {parser: [] for parser, _ in PARSERS}
        for path in paths:
            for parser, items in read_payloads(path, limit).items():
                payloads[parser] += items
        print(f"read {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for fig in run_set(name, payloads, args.repeat):
            if args.json:
                print(json.dumps(fig.__dict__))
            else:
                print(
                    f"{fig.set:<40} {fig.parser:<6} {fig.payloads:>9,} {fig.records:>8,} "
                    f"{fig.us_per_payload:>11.2f} {fig.payloads_per_s:>11,.0f}  {fig.digest}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
