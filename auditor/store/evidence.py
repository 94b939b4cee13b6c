"""Evidence for a finding: the packets of its flows, read back from the very capture files that raised it.

A finding keeps the Community IDs of its first flows (up to 5) and the runs that raised it; each run keeps
its capture files with their sha256. `write_finding_evidence` finds those files (where they were given to
analyze, or among `--capture` files matched by content), refuses a file whose content changed since the
ingest, streams each file batch by batch, computes each IP packet's Community ID exactly as the flow table
does (later fragments take their first fragment's ports), and writes the packets whose ID is the finding's
and whose time lies in the finding's span to a classic pcap with nanosecond timestamps, so Wireshark shows
the same frames, in file order, byte for byte.

A Community ID names a 5-tuple, not one connection: a later flow reusing the tuple has the same ID. The time
window (the finding's first and last seen, widened by `slack_ns`) keeps such flows out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
from numpy.typing import NDArray

from auditor.capture.files import open_capture
from auditor.capture.types import Batch
from auditor.decode import decode
from auditor.decode.types import KIND_IP
from auditor.errors import ConfigError, OutputError, StoreError
from auditor.flows.community_id import community_ids as community_id_texts
from auditor.flows.community_id import flow_tuple
from auditor.flows.fragments import FragmentTracker
from auditor.store.backend import StoreConnection, describe
from auditor.store.runfiles import file_sha256

logger = logging.getLogger(__name__)

DEFAULT_SLACK_NS = 2 * 10**9
"""How far outside the finding's first/last seen a packet may lie: alert times are kept to the microsecond
and a flow's first packet may precede its recorded start by the rounding."""
MIN_PREFIX = 6
"""Shortest finding-id prefix accepted in place of the whole id."""

# pcap-savefile(5): magic, version 2.4, thiszone, sigfigs, snaplen, linktype; then per record ts_sec,
# ts_frac, incl_len, orig_len. The nanosecond magic keeps our ns timestamps exact.
PCAP_MAGIC_NS = 0xA1B23C4D
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
PCAP_SNAPLEN = 262_144  # libpcap MAXIMUM_SNAPLEN
_RECORD = np.dtype([("sec", "<u4"), ("frac", "<u4"), ("incl", "<u4"), ("orig", "<u4")])
_RECORD_BYTES = 16
_U32_MAX = 2**32 - 1
_NS = 10**9


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """One capture file a run behind the finding read, as the store recorded it."""

    name: str
    """The path as it was given to analyze (relative ones are relative to where analyze ran)."""
    sha256: str
    size_bytes: int | None


@dataclass(frozen=True, slots=True)
class FindingFlows:
    """What the store knows to select a finding's packets."""

    alert_id: str
    community_ids: tuple[str, ...]
    """Community IDs of the finding's first flows (up to 5), as its latest run recorded them."""
    first_ns: int
    last_ns: int
    captures: tuple[CaptureFile, ...]
    """Capture files of every run that raised the finding, each content (sha256) once: run by run in ingest order,
    a run's files by name (neither store keeps the order they were given in; rotated captures are named by time,
    so name order is their time order)."""

    def window(self, slack_ns: int = DEFAULT_SLACK_NS) -> tuple[int, int]:
        """Return the (first, last) packet time, ns, that can belong to the finding's flows."""
        return self.first_ns - slack_ns, self.last_ns + slack_ns


@dataclass(slots=True)
class EvidenceResult:
    """What writing the evidence pcap did."""

    packets: int = 0
    """Packets written (no file is written when this is 0)."""
    files_read: list[str] = field(default_factory=list)
    """Capture files read, in order."""
    missing: list[str] = field(default_factory=list)
    """Community IDs asked for that no packet in the window had."""
    linktype: int | None = None
    """Link type of the pcap written."""
    warnings: list[str] = field(default_factory=list)
    """What the capture readers reported about the files (a truncated tail ...)."""


def finding_flows(conn: StoreConnection, alert_id: str) -> FindingFlows:
    """Return the Community IDs, time span and capture files of finding `alert_id` (its whole id or a unique
    prefix of at least MIN_PREFIX characters); ConfigError when the store has no such finding."""
    try:
        rows = conn.execute("SELECT alert_id, community_ids, first_ns, last_ns FROM findings WHERE alert_id = ?",
                            (alert_id,)).fetchall()
        if not rows and len(alert_id) >= MIN_PREFIX:
            rows = conn.execute("SELECT alert_id, community_ids, first_ns, last_ns FROM findings "
                                "WHERE substr(alert_id, 1, ?) = ? ORDER BY alert_id LIMIT 2",
                                (len(alert_id), alert_id)).fetchall()
        if len(rows) != 1:
            what = "is ambiguous (give more of it)" if rows else "is not in the store (see `auditor report`)"
            raise ConfigError(f"finding {alert_id!r} {what}")
        found, ids_text, first_ns, last_ns = rows[0]
        files = conn.execute(
            "SELECT f.name, f.sha256, f.size_bytes FROM finding_runs r JOIN run_files f ON f.run_id = r.run_id "
            "WHERE r.alert_id = ? ORDER BY r.run_id, f.name", (found,),
        ).fetchall()
    except conn.errors as exc:
        raise StoreError(f"cannot read finding {alert_id!r} from the store: {describe(exc)}") from exc
    try:
        ids = orjson.loads(ids_text)
    except orjson.JSONDecodeError:
        ids = []
    seen: set[str] = set()
    captures = []
    for name, sha, size in files:
        if sha not in seen:
            seen.add(sha)
            captures.append(CaptureFile(str(name), str(sha), None if size is None else int(size)))
    return FindingFlows(
        alert_id=str(found), community_ids=tuple(str(i) for i in ids if isinstance(i, str) and i),
        first_ns=int(first_ns), last_ns=int(last_ns), captures=tuple(captures),
    )


def locate_captures(captures: Sequence[CaptureFile], given: Sequence[Path] = ()) -> list[Path]:
    """Return where each of `captures` is now: a `given` file with its sha256, else its recorded path when its
    content is unchanged; ConfigError naming the files that changed or cannot be found."""
    by_sha: dict[str, Path] = {}
    for path in given:
        try:
            by_sha.setdefault(file_sha256(path), path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the --capture file ({exc.strerror or exc})") from None
    found: list[Path] = []
    changed: list[str] = []
    missing: list[str] = []
    for capture in captures:
        if capture.sha256 in by_sha:
            found.append(by_sha[capture.sha256])
            continue
        path = Path(capture.name)
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            missing.append(capture.name)
            continue
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the capture file ({exc.strerror or exc}); give a copy with "
                              "--capture") from None
        if digest != capture.sha256:
            changed.append(f"{capture.name} (sha256 {digest[:12]}..., the store has {capture.sha256[:12]}...)")
            continue
        found.append(path)
    if changed:
        raise ConfigError(f"capture file changed since it was ingested: {'; '.join(changed)}; the evidence must "
                          "come from the very file: give the original with --capture")
    if missing:
        raise ConfigError(f"capture file not found: {', '.join(missing)}; give its location with --capture "
                          "(matched by content)")
    return found


def write_evidence(
    captures: Sequence[Path],
    community_ids: Iterable[str],
    out_path: Path,
    window_ns: tuple[int, int] | None = None,
) -> EvidenceResult:
    """Write the packets of `captures` whose Community ID is in `community_ids` (and whose time is within
    `window_ns`, inclusive) to the pcap `out_path`, in file order, and return what was written. No file is
    written when no packet matches. ConfigError when the packets have more than one link type (a classic
    pcap holds one), CaptureError when a capture cannot be read, OutputError when `out_path` cannot be
    written."""
    wanted = frozenset(community_ids)
    for capture in captures:
        with contextlib.suppress(OSError):
            if out_path.exists() and os.path.samefile(out_path, capture):
                raise ConfigError(f"{out_path}: is one of the capture files; write the evidence elsewhere")
    result = EvidenceResult()
    if not wanted:
        return result
    seen: set[str] = set()
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    out: BinaryIO | None = None
    try:
        for capture in captures:
            result.files_read.append(str(capture))
            with open_capture(capture) as source:
                tracker = FragmentTracker()  # fragments are matched within one file, as the flow table does
                for batch in source.batches():
                    picked = _pick(batch, tracker, wanted, window_ns, seen)
                    if not picked.size:
                        continue
                    out = _write_batch(out, tmp, out_path, batch, picked, result)
                result.warnings.extend(source.stats.warnings)
        if out is not None:
            try:
                out.close()
                out = None
                os.replace(tmp, out_path)
            except OSError as exc:
                raise _output_error(out_path, exc) from exc
    finally:
        if out is not None:
            out.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    result.missing = sorted(wanted - seen)
    logger.info("wrote %d packets of %d flows to %s", result.packets, len(seen), out_path)
    return result


def write_finding_evidence(
    conn: StoreConnection,
    alert_id: str,
    out_path: Path,
    given: Sequence[Path] = (),
    slack_ns: int = DEFAULT_SLACK_NS,
) -> EvidenceResult:
    """Write the packets of finding `alert_id`'s flows to the pcap `out_path` and return what was written;
    ConfigError when the finding is unknown, records no Community ID, or its capture files changed or are
    missing (see locate_captures)."""
    flows = finding_flows(conn, alert_id)
    if not flows.community_ids:
        raise ConfigError(f"finding {flows.alert_id} records no Community ID, so its packets cannot be selected")
    if not flows.captures:
        raise ConfigError(f"finding {flows.alert_id}: the store names no capture file for its runs")
    paths = locate_captures(flows.captures, given)
    return write_evidence(paths, flows.community_ids, out_path, flows.window(slack_ns))


def _pick(
    batch: Batch, tracker: FragmentTracker, wanted: frozenset[str], window_ns: tuple[int, int] | None,
    seen: set[str],
) -> NDArray[np.int64]:
    """Return the frames of `batch` that belong to the wanted flows, in order; add their IDs to `seen`."""
    ts = batch.ts_ns
    in_window = np.ones(len(batch), dtype=bool) if window_ns is None else (ts >= window_ns[0]) & (ts <= window_ns[1])
    if not in_window.any():
        return np.empty(0, dtype=np.int64)
    h = decode(batch)
    rows = np.flatnonzero((h.kind == KIND_IP) & in_window)  # non-IP frames have no Community ID
    if not rows.size:
        return rows
    # the flow table's per-packet ports: later fragments take their first fragment's (flows/table.py)
    sport, dport = tracker.resolve(h, rows)
    version, proto = h.ip_version[rows], h.ip_proto[rows]
    ft = flow_tuple(version, proto, h.src_hi[rows], h.src_lo[rows], h.dst_hi[rows], h.dst_lo[rows], sport, dport)
    ids = community_id_texts(version, proto, ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo, ft.port_a, ft.port_b)
    hit: NDArray[np.bool_] = np.fromiter(map(wanted.__contains__, ids), dtype=np.bool_, count=len(ids))
    picked: NDArray[np.int64] = rows[hit]
    if picked.size:
        seen.update(i for i, h_ in zip(ids, hit.tolist(), strict=True) if h_)
    return picked


def _write_batch(
    out: BinaryIO | None, tmp: Path, out_path: Path, batch: Batch, picked: NDArray[np.int64], result: EvidenceResult,
) -> BinaryIO:
    """Append the `picked` frames of `batch` as pcap records, opening the file at the first; return it."""
    linktypes = np.unique(batch.linktype[picked])
    if result.linktype is None:
        result.linktype = int(linktypes[0])
    others = sorted({int(t) for t in linktypes.tolist()} - {result.linktype})
    if others:
        raise ConfigError(f"the finding's packets have link types {result.linktype} and {others[0]}; a pcap file "
                          "holds one: give the captures of one link type with --capture")
    ts = batch.ts_ns[picked]
    if int(ts.min()) < 0 or int(ts.max()) // _NS > _U32_MAX:
        raise OutputError(f"{out_path}: a packet time lies outside what a pcap file can hold (1970..2106)")
    try:
        if out is None:
            out = open(tmp, "wb")  # noqa: SIM115 (closed by write_evidence)
            out.write(_GLOBAL_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, PCAP_SNAPLEN, result.linktype))
        out.write(_records(batch, picked, ts))
    except OSError as exc:
        raise _output_error(out_path, exc) from exc
    result.packets += int(picked.shape[0])
    return out


def _output_error(out_path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{out_path}: cannot write the evidence pcap: {exc.strerror or exc}")


def _records(batch: Batch, picked: NDArray[np.int64], ts: NDArray[np.int64]) -> bytes:
    """Return the `picked` frames of `batch` as pcap records (16-byte header, then the frame's bytes)."""
    caplen = batch.caplen[picked].astype(np.int64)
    k = int(picked.shape[0])
    records = np.empty(k, dtype=_RECORD)
    records["sec"] = ts // _NS
    records["frac"] = ts % _NS
    records["incl"] = batch.caplen[picked]
    records["orig"] = batch.wirelen[picked]
    # one gather: record i is its 16-byte header then its frame, at out_start[i] in one buffer
    sizes = caplen + _RECORD_BYTES
    out_start = np.zeros(k, dtype=np.int64)
    np.cumsum(sizes[:-1], out=out_start[1:])
    buf = np.empty(int(sizes.sum()), dtype=np.uint8)
    buf[(out_start[:, None] + np.arange(_RECORD_BYTES)).ravel()] = records.view(np.uint8)
    total = int(caplen.sum())
    if total:
        before = np.zeros(k, dtype=np.int64)
        np.cumsum(caplen[:-1], out=before[1:])
        within = np.arange(total, dtype=np.int64) - np.repeat(before, caplen)
        src = np.repeat(batch.offset[picked], caplen) + within
        dst = np.repeat(out_start + _RECORD_BYTES, caplen) + within
        buf[dst] = batch.data[src]
    return buf.tobytes()
