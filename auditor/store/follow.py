"""Follow a running sensor's folder into the store: each `SensorFollower.step()` is ONE transaction.

A live sensor (`auditor sense`) writes, in its folder: flows.jsonl (appended by its writer process, rotated
by size into flows-<UTC stamp>.jsonl, of which only the newest `keep_rotated` are kept), devices.json and
alerts-current.jsonl (replaced whole at each flush interval; a rule reload moves alerts-current.jsonl aside
as alerts-current-<stamp>.jsonl) and status.json. One step upserts the session's run (kind 'sense'), adds
the flow lines written since the last step to flows_hourly, writes the inventory and the findings' sums so
far, and moves the cursor in run_cursors, all in one transaction: a step cut short (kill -9, a locked
database, a full disk, a server gone) leaves the store and the cursor as they were, and the next step reads
the same lines again, so every flow line is counted exactly once.

A flow file is known by device and inode (a rotation renames it, which keeps the inode) plus a hash of its
first line (a deleted file's inode is reused), and placed in time by its rotation stamp; flows.jsonl comes
after every rotated file. The follower keeps the files it has not finished open between steps, so a
rotated file that keep_rotated deletes is still read to its end. Data is lost only when a new follower
(the feed process restarted) finds its cursor's file already deleted: counted and warned, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from auditor.errors import StoreError
from auditor.output.reread import to_ns
from auditor.store.backend import StoreConnection, describe
from auditor.store.ingest import _total_findings, _write_device, _write_finding, _write_flows, run_key
from auditor.store.runfiles import BATCH, AlertRow, FlowRow, ReadStats, alert_lines, flow_row, read_devices, read_row

logger = logging.getLogger(__name__)

FLOWS = "flows.jsonl"
ROTATED_PREFIX = "flows-"
SNAPSHOT_PREFIX = "alerts-current-"
SUFFIX = ".jsonl"
ALERTS_CURRENT = "alerts-current.jsonl"
SOURCE_FLOWS = "flows"
"""run_cursors.source of the flow files (one cursor per run and source)."""
HEAD_BYTES = 65_536
"""A file's identity hashes its first line, or this many bytes of a longer one."""
READ_CHUNK = 1 << 20
LINE_CHUNK = 4_096
"""Read past the step's budget only this much at a time, until one whole line is in."""
MAX_LINE_BYTES = 16 << 20
"""A 'line' longer than this without a newline is damage, skipped rather than held in memory."""
MAX_STEP_BYTES = 64 << 20
"""Flow bytes one step reads at most: a backlog (a store down for hours) is caught up in several bounded
transactions, so no step holds the store's write lock for long."""
MAX_DELETED_HELD = 2
"""Deleted flow files kept open while steps fail: beyond this, the oldest is let go (its disk space freed,
its unread rest counted as lost), so a store that is down for days cannot fill the disk."""
SNAPSHOT_TRIES = 3

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def file_time(ns: int) -> str:
    """Return a time as the sensor's file names carry it (output.rotating.file_stamp): 20261122T103000.123456Z."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).strftime("%Y%m%dT%H%M%S.%fZ")


@dataclass(frozen=True, slots=True)
class SensorSession:
    """One run of a sensor on one interface: a restart is a new session, so a new run."""

    folder: Path
    sensor: str
    """The sensor's host name (status.json observer.hostname)."""
    interface: str
    started_ns: int
    """When the session started (status.json event.start): it tells this session's status.json apart."""
    auditor_version: str | None = None
    databases: Mapping[str, Any] = field(default_factory=dict)
    """GeoIP and vendor catalog versions, as JSON-able data (runs.databases)."""

    @property
    def run_key(self) -> str:
        """The run's key: kind 'sense' and this sensor, interface and start time."""
        return run_key("sense", [f"{self.sensor}\n{self.interface}\n{self.started_ns}"])


@dataclass(frozen=True, slots=True)
class FileCursor:
    """How far the flow files are read: a byte offset in one file, known by its identity."""

    dev: int
    ino: int
    """Device and inode of the file; 0, 0 when there was no file (nothing read yet)."""
    head: str
    """Hash of the file's first line ('' while it has none): an inode number is reused after a delete."""
    order: str
    """The file's place in time (a rotation stamp; for flows.jsonl, a time it was still current): every
    rotated file with a later stamp is unread."""
    offset: int

    @property
    def key(self) -> str:
        """run_cursors.file_key: 'dev:ino:head:order'."""
        return f"{self.dev}:{self.ino}:{self.head}:{self.order}"

    @classmethod
    def from_key(cls, key: str, offset: int) -> FileCursor:
        """Return the cursor stored as `key` and `offset`; StoreError for a key this code did not write."""
        try:
            dev, ino, head, order = key.split(":")
            return cls(int(dev), int(ino), head, order, int(offset))
        except ValueError:
            raise StoreError(f"run_cursors: {key!r} is not a flow file cursor; refusing to guess where to "
                             "resume (that would count flows twice or lose them)") from None


def start_cursor(folder: Path, started_ns: int) -> FileCursor:
    """Return the cursor of a session starting now: after the last whole line of flows.jsonl (the sensor's
    writer cuts a torn last line before appending), rotated files of earlier sessions left behind."""
    order = file_time(started_ns)
    try:
        fh = open(folder / FLOWS, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return FileCursor(0, 0, "", order, 0)
    with fh:
        st = os.fstat(fh.fileno())
        offset = _whole_lines_end(fh, st.st_size)
        return FileCursor(st.st_dev, st.st_ino, _head(fh) if offset else "", order, offset)


def _whole_lines_end(fh: IO[bytes], size: int) -> int:
    """Return the offset after the last newline, as RotatingJsonl._cut_torn_tail cuts a file."""
    if not size:
        return 0
    fh.seek(max(size - 65_536, 0))
    tail = fh.read(size - max(size - 65_536, 0))
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    return size - len(tail) + cut + 1 if cut >= 0 else max(size - len(tail), 0)


def _head(fh: IO[bytes]) -> str:
    """Return the identity hash of a file's first line ('' while the first line is incomplete)."""
    data = os.pread(fh.fileno(), HEAD_BYTES, 0)
    end = data.find(b"\n")
    if end >= 0:
        data = data[: end + 1]
    elif len(data) < HEAD_BYTES:
        return ""
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(slots=True)
class StepResult:
    """What one step wrote."""

    run_id: int
    flows: int = 0
    """Flow lines read in this step."""
    skipped_lines: int = 0
    """Damaged flow lines this step, plus damaged devices.json / alerts-current entries."""
    devices: int = 0
    alerts: int = 0
    findings_new: int = 0
    lost_files: int = 0
    """Flow files whose unread rest was deleted before this step could read it."""
    lines_lost: int | None = None
    """On the final step: flows the sensor ended that never reached the store (None before)."""
    more: bool = False
    """The step stopped at MAX_STEP_BYTES: step again to catch up."""
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CatchUpRun:
    """What a catch-up stored for one earlier run."""

    run_id: int
    flows: int = 0
    skipped_lines: int = 0
    lost_files: int = 0
    finished: bool = False
    """The run is marked finished (follow.final in runs.counters)."""


@dataclass(slots=True)
class CatchUp:
    """What SensorFollower.catch_up() did."""

    runs: list[CatchUpRun] = field(default_factory=list)
    done: bool = True
    """Every earlier run is finished; False when the deadline stopped it (call again)."""


@dataclass(slots=True)
class _FlowFile:
    dev: int
    ino: int
    order: str
    name: str
    current: bool = False
    fh: IO[bytes] | None = None

    @property
    def ident(self) -> tuple[int, int]:
        return self.dev, self.ino


@dataclass(slots=True)
class _FlowRead:
    cursor: FileCursor
    lines: int = 0
    lost_files: int = 0
    more: bool = False
    keep: list[_FlowFile] = field(default_factory=list)
    """Files to hold open after a commit: the cursor's and the unread ones after it."""


class SensorFollower:
    """Writes a sensor session's folder into the store, one transaction per step().

    `conn` is a connection from open_store (outside a transaction); it may be replaced between steps
    (a reconnect after an error) without losing the files held open."""

    def __init__(self, conn: StoreConnection, session: SensorSession, start: FileCursor, *, batch: int = BATCH,
                 max_step_bytes: int = MAX_STEP_BYTES, max_deleted_held: int = MAX_DELETED_HELD) -> None:
        self.conn = conn
        self.session = session
        self.start = start
        """Where the session began in flows.jsonl; used until the first step commits a cursor."""
        self.batch = batch
        self.max_step_bytes = max_step_bytes
        self.max_deleted_held = max_deleted_held
        self._held: dict[tuple[int, int], _FlowFile] = {}

    def step(self, *, final: bool = False) -> StepResult:
        """Write what the sensor wrote since the last step, in one transaction, and return what was written.
        `final`: the sensor has stopped and its flow writer is done, so status.json's count of ended flows
        is final and any flow it ended that no file holds is counted as lost. StoreError when the store
        cannot be written (nothing was then written and the cursor did not move)."""
        conn = self.conn
        now_ns = time.time_ns()
        status = self._status()
        opened: dict[tuple[int, int], _FlowFile] = {}
        try:
            with conn.transaction():  # StoreError when the caller has one open: never commit theirs
                result, read = self._write(now_ns, status, final, opened)
        except BaseException as exc:
            self._hold_after_failure(opened)
            if isinstance(exc, conn.errors):
                raise StoreError(f"cannot write the sensor's folder {self.session.folder} to the store: "
                                 f"{describe(exc)}") from exc
            raise
        self._hold_after_commit(opened, read.keep)
        for problem in result.problems:
            logger.warning("%s", problem)
        return result

    def catch_up(self, *, deadline: float | None = None) -> CatchUp:
        """Store what earlier sessions of this sensor and interface wrote after their last committed cursor
        when their final step never completed (the store unreachable at the stop, the stop's deadline passed,
        the sensor killed): each such run, oldest first, gets its flow lines up to where the next session began
        (for the last, this session's start cursor: none of this session's lines), exactly as a step adds them
        (one transaction per MAX_STEP_BYTES, with its cursor), and is then marked finished. Devices and alerts
        are not read again: the files now hold a later session's. `deadline` (time.monotonic()): stop between
        transactions once it passed (CatchUp.done False: call again). StoreError when the store cannot be
        read or written; what was committed stays, the rest is taken up by the next call."""
        conn, s = self.conn, self.session
        out = CatchUp()
        try:
            rows = conn.execute(
                "SELECT id, run_key, started_ns, counters FROM runs WHERE kind = 'sense' AND sensor = ? AND "
                "interface = ? AND started_ns < ? ORDER BY started_ns, id",
                (s.sensor, s.interface, s.started_ns)).fetchall()
        except conn.errors as exc:
            raise StoreError(f"cannot read the earlier runs of {s.sensor} {s.interface} to catch up: "
                             f"{describe(exc)}") from exc
        runs: list[tuple[int, int, dict[str, Any]]] = []
        for run_id, key, started_ns, counters in rows:
            follow = _json_object(_json_object(counters).get("follow"))
            folder = follow.get("folder")
            if str(key) == s.run_key or (isinstance(folder, str) and folder != str(s.folder)):
                continue  # another folder's files are not these
            runs.append((int(run_id), int(started_ns), follow))
        for index, (run_id, started_ns, follow) in enumerate(runs):
            if follow.get("final") is True:
                continue
            if index + 1 < len(runs):  # where the next session began: none of its lines for this run
                nxt_started, nxt = runs[index + 1][1], runs[index + 1][2]
                start = _json_object(nxt.get("start"))
                until = (FileCursor.from_key(str(start["key"]), int(start["offset"])) if "key" in start
                         else FileCursor(0, 0, "", file_time(nxt_started), 0))  # a run older than this code
            else:
                until = self.start
            earlier = SensorFollower(conn, SensorSession(s.folder, s.sensor, s.interface, started_ns),
                                     self.start, batch=self.batch, max_step_bytes=self.max_step_bytes,
                                     max_deleted_held=self.max_deleted_held)
            run = CatchUpRun(run_id)
            out.runs.append(run)
            try:
                while not run.finished:
                    if deadline is not None and time.monotonic() >= deadline:
                        out.done = False
                        return out
                    earlier._catch_up_step(run, until)
            finally:
                earlier.close()
            if run.flows or run.lost_files or run.skipped_lines:
                logger.warning("%s: caught up run %s, whose final step never completed: %s flow lines stored, "
                               "%s damaged, %s flow files lost", s.folder, run_id, f"{run.flows:,}",
                               f"{run.skipped_lines:,}", run.lost_files)
        return out

    def _catch_up_step(self, run: CatchUpRun, until: FileCursor) -> None:
        conn = self.conn
        opened: dict[tuple[int, int], _FlowFile] = {}
        problems: list[str] = []
        try:
            with conn.transaction():
                read = self._catch_up_write(run, until, opened, problems)
        except BaseException as exc:
            self._hold_after_failure(opened)
            if isinstance(exc, conn.errors):
                raise StoreError(f"cannot catch up run {run.run_id} from the sensor's folder {self.session.folder}: "
                                 f"{describe(exc)}") from exc
            raise
        self._hold_after_commit(opened, read.keep)
        for problem in problems:
            logger.warning("%s", problem)

    def _catch_up_write(self, run: CatchUpRun, until: FileCursor, opened: dict[tuple[int, int], _FlowFile],
                        problems: list[str]) -> _FlowRead:
        conn, run_id, now_ns = self.conn, run.run_id, time.time_ns()
        row = conn.execute("SELECT counters FROM runs WHERE id = ?", (run_id,)).fetchone()
        follow = _json_object(_json_object(row[0]).get("follow")) if row is not None else {}
        found = conn.execute("SELECT file_key, offset_bytes FROM run_cursors WHERE run_id = ? AND source = ?",
                             (run_id, SOURCE_FLOWS)).fetchone()
        if row is None or follow.get("final") is True or found is None:
            run.finished = True  # deleted, or finished meanwhile by its own final step; or nothing to resume from
            return _FlowRead(cursor=until)
        counters = _json_object(row[0])
        cursor = FileCursor.from_key(str(found[0]), int(found[1]))
        stats = ReadStats()
        if "folder" not in follow and not any(self._is_cursor_file(f, cursor, opened)
                                              for f in self._flow_files(opened)):
            read = _FlowRead(cursor=cursor)  # a run older than this code whose file is not here: leave it be
        else:
            read = self._read_flows(run_id, cursor, stats, opened, problems, until=until)
        run.flows += read.lines
        run.skipped_lines += stats.skipped_lines
        run.lost_files += read.lost_files
        problems[:0] = stats.problems
        for name, value in (("flow_lines", read.lines), ("flow_lines_skipped", stats.skipped_lines),
                            ("flow_files_lost", read.lost_files), ("caught_up_lines", read.lines),
                            ("caught_up_lines_skipped", stats.skipped_lines),
                            ("caught_up_files_lost", read.lost_files)):
            follow[name] = _count(follow.get(name)) + value
        if not read.more:
            follow["final"] = run.finished = True
            follow["caught_up_ns"] = now_ns
        counters["follow"] = follow
        conn.execute("UPDATE runs SET flows = ?, skipped_lines = skipped_lines + ?, counters = ?, ingested_ns = ? "
                     "WHERE id = ?", (follow["flow_lines"], stats.skipped_lines, orjson.dumps(counters).decode(),
                                      now_ns, run_id))
        conn.execute("UPDATE run_cursors SET file_key = ?, offset_bytes = ?, updated_ns = ? WHERE run_id = ? AND "
                     "source = ?", (read.cursor.key, read.cursor.offset, now_ns, run_id, SOURCE_FLOWS))
        return read

    def close(self) -> None:
        """Close the flow files held open."""
        for f in self._held.values():
            _close(f)
        self._held.clear()

    # -- one transaction --------------------------------------------------------------------------------------

    def _write(self, now_ns: int, status: dict[str, Any], final: bool,
               opened: dict[tuple[int, int], _FlowFile]) -> tuple[StepResult, _FlowRead]:
        conn, s = self.conn, self.session
        key = s.run_key
        # transaction() holds the store's write lock: two followers of one run (a restarted feed beside an
        # old one) take turns, and each reads the cursor the other committed
        conn.execute("INSERT INTO runs (run_key, kind, ingested_ns) VALUES (?, 'sense', ?) "
                     "ON CONFLICT (run_key) DO NOTHING", (key, now_ns))
        run_id, counters_text = conn.execute("SELECT id, counters FROM runs WHERE run_key = ?", (key,)).fetchone()
        run_id = int(run_id)
        counters = _json_object(counters_text)
        follow: dict[str, Any] = {"steps": 0, "flow_lines": 0, "flow_lines_skipped": 0, "flow_files_lost": 0,
                                  "flow_lines_lost": None, **_json_object(counters.get("follow"))}
        found = conn.execute("SELECT file_key, offset_bytes FROM run_cursors WHERE run_id = ? AND source = ?",
                             (run_id, SOURCE_FLOWS)).fetchone()
        cursor = self.start if found is None else FileCursor.from_key(str(found[0]), int(found[1]))
        result = StepResult(run_id=run_id)
        if follow.get("final") is True:
            # finished: its final step (or a later session's catch-up) took every line up to where the next
            # session began; what the folder holds now is another session's
            lost = follow.get("flow_lines_lost")
            result.lines_lost = lost if isinstance(lost, int) else None
            return result, _FlowRead(cursor=cursor)
        follow.setdefault("start", {"key": self.start.key, "offset": self.start.offset})
        follow.setdefault("folder", str(s.folder))

        flow_stats = ReadStats()
        read = self._read_flows(run_id, cursor, flow_stats, opened, result.problems)
        result.flows, result.lost_files, result.more = read.lines, read.lost_files, read.more

        snapshot_stats = ReadStats()
        # the run has one history row per device (its latest verdict), as an analyze run has
        conn.execute("DELETE FROM device_history WHERE run_id = ?", (run_id,))
        for device in read_devices(s.folder / "devices.json", snapshot_stats):
            _write_device(conn, run_id, device)
        # alerts-current holds each alert's sums since the session started (a reload's kept copies, the
        # sums under the earlier rules): they replace the run's rows rather than add to them. The sensor
        # rewrites it only when a sum changed: unchanged files (same inodes, sizes, times) are not written again
        signature, alerts = self._session_alerts(snapshot_stats)
        if signature != follow.get("alerts_read"):
            before = {str(r[0]) for r in conn.execute("SELECT alert_id FROM finding_runs WHERE run_id = ?",
                                                      (run_id,))}
            conn.execute("DELETE FROM finding_runs WHERE run_id = ?", (run_id,))
            touched = set(before)
            for alert in alerts:
                result.findings_new += _write_finding(conn, run_id, alert)
                touched.add(alert.alert_id)
            _total_findings(conn, touched)
            follow["alerts_read"] = signature
        result.devices, result.alerts = snapshot_stats.devices, snapshot_stats.alerts

        follow["steps"] = int(follow["steps"]) + 1
        follow["flow_lines"] = int(follow["flow_lines"]) + read.lines
        follow["flow_lines_skipped"] = int(follow["flow_lines_skipped"]) + flow_stats.skipped_lines
        follow["flow_files_lost"] = int(follow["flow_files_lost"]) + read.lost_files
        ended = _dig(status, "auditor", "flows", "ended")
        if final and not read.more:
            follow["final"] = True  # FINISHED: no later session's catch-up reads for this run
        if final and not read.more and isinstance(ended, int):
            lost = max(ended - follow["flow_lines"] - follow["flow_lines_skipped"], 0)
            follow["flow_lines_lost"] = result.lines_lost = lost
            if lost:
                result.problems.append(f"{s.folder}: {lost:,} flows the sensor ended never reached the store "
                                       "(their flow file was deleted before it was read, or never written)")
        result.skipped_lines = flow_stats.skipped_lines + snapshot_stats.skipped_lines
        result.problems[:0] = flow_stats.problems + snapshot_stats.problems

        if status:  # this session's status.json: the capture's counters and the rules in force
            counters["status"] = status
            packets = _dig(status, "auditor", "packets")
            packets = packets if isinstance(packets, dict) else {}
            conn.execute("UPDATE runs SET packets = ?, drops = ? WHERE id = ?",
                         (_count(packets.get("received")), _count(packets.get("dropped")), run_id))
            rules = {str(r["path"]): str(r["sha256"]) for r in _dig(status, "auditor", "rules") or ()
                     if isinstance(r, dict) and r.get("path") and r.get("sha256")}
            conn.execute("DELETE FROM run_rules WHERE run_id = ?", (run_id,))
            conn.executemany("INSERT INTO run_rules (run_id, path, sha256, ruleset) VALUES (?, ?, ?, ?)",
                             [(run_id, path, sha, None) for path, sha in sorted(rules.items())])
        counters["follow"] = follow
        stamp = status.get("@timestamp")
        reported = _time_ns(stamp) if isinstance(stamp, str) else None
        conn.execute(
            "UPDATE runs SET sensor = ?, interface = ?, started_ns = ?, ended_ns = ?, flows = ?, skipped_lines = ?, "
            "auditor_version = ?, databases = ?, counters = ?, ingested_ns = ? WHERE id = ?",
            (s.sensor, s.interface, s.started_ns, max(reported or now_ns, s.started_ns), follow["flow_lines"],
             follow["flow_lines_skipped"] + snapshot_stats.skipped_lines, s.auditor_version,
             orjson.dumps(dict(s.databases)).decode(), orjson.dumps(counters).decode(), now_ns, run_id),
        )
        conn.execute(
            "INSERT INTO run_cursors (run_id, source, file_key, offset_bytes, updated_ns) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, source) DO UPDATE SET file_key = excluded.file_key, "
            "offset_bytes = excluded.offset_bytes, updated_ns = excluded.updated_ns",
            (run_id, SOURCE_FLOWS, read.cursor.key, read.cursor.offset, now_ns),
        )
        return result, read

    def _status(self) -> dict[str, Any]:
        """Return this session's status.json; {} when absent, damaged, or an earlier session's (a new sensor
        writes its own only once it runs)."""
        try:
            data = orjson.loads((self.session.folder / "status.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        start = _dig(data, "event", "start")
        ours = isinstance(start, str) and (_time_ns(start) or 0) // 1000 == self.session.started_ns // 1000
        return data if ours and isinstance(data, dict) else {}

    # -- flow files -------------------------------------------------------------------------------------------

    def _flow_files(self, opened: dict[tuple[int, int], _FlowFile]) -> list[_FlowFile]:
        """Return the flow files in time order: rotated ones by stamp (those held open though deleted by
        the stamp or time they last had), then flows.jsonl."""
        folder = self.session.folder
        files: dict[tuple[int, int], _FlowFile] = {}
        current: _FlowFile | None = None
        # flows.jsonl first: a rotation while the folder is listed then shows it under its new name, same inode
        with contextlib.suppress(FileNotFoundError):
            fh = open(folder / FLOWS, "rb")  # noqa: SIM115 - held, closed by _close
            st = os.fstat(fh.fileno())
            current = self._adopt(st.st_dev, st.st_ino, "", FLOWS, fh, opened)
        for path in folder.glob(f"{ROTATED_PREFIX}*{SUFFIX}"):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            f = self._adopt(st.st_dev, st.st_ino, path.name[len(ROTATED_PREFIX): -len(SUFFIX)], path.name, None,
                            opened)
            f.current = False
            files[f.ident] = f
        if current is not None and current.ident not in files:
            current.order, current.name, current.current = file_time(time.time_ns()), FLOWS, True
            files[current.ident] = current
        for f in self._held.values():  # deleted since, but still open: readable to the end
            if f.ident not in files:
                f.current = False
                files[f.ident] = f
        return sorted(files.values(), key=lambda f: (f.current, f.order))

    def _adopt(self, dev: int, ino: int, order: str, name: str, fh: IO[bytes] | None,
               opened: dict[tuple[int, int], _FlowFile]) -> _FlowFile:
        f = self._held.get((dev, ino)) or opened.get((dev, ino))
        if f is None:
            f = _FlowFile(dev, ino, order, name)
        elif order:
            f.order, f.name = order, name
        if f.fh is None:
            f.fh = fh
        elif fh is not None:
            fh.close()
        if f.fh is not None:
            opened[f.ident] = f
        return f

    def _open(self, f: _FlowFile, opened: dict[tuple[int, int], _FlowFile]) -> IO[bytes] | None:
        """Return the file open (None when it was deleted before it could be opened)."""
        if f.fh is None:
            try:
                fh = open(self.session.folder / f.name, "rb")  # noqa: SIM115 - held, closed by _close
            except FileNotFoundError:
                return None
            st = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino) != f.ident:  # replaced under that name since it was listed
                fh.close()
                return None
            f.fh = fh
            opened[f.ident] = f
        return f.fh

    def _read_flows(self, run_id: int, cursor: FileCursor, stats: ReadStats,
                    opened: dict[tuple[int, int], _FlowFile], problems: list[str],
                    until: FileCursor | None = None) -> _FlowRead:
        """Read the flow lines after `cursor`: to the end of flows.jsonl, or with `until` (a later session's
        start cursor) only up to it, never past it."""
        files = everything = self._flow_files(opened)
        ends: dict[tuple[int, int], int] = {}
        if until is not None:
            files, ends = self._before(everything, until, opened)
        at = next((i for i, f in enumerate(files) if self._is_cursor_file(f, cursor, opened)), None)
        read = _FlowRead(cursor=cursor)
        if at is None and until is not None and any(self._is_cursor_file(f, cursor, opened) for f in everything):
            return read  # the cursor's file is past the boundary: nothing before it is left to read
        if at is not None:
            plan = [(files[at], cursor.offset), *((f, 0) for f in files[at + 1:])]
        else:
            plan = [(f, 0) for f in files if f.current or f.order > cursor.order]
            if cursor.dev or cursor.ino:
                read.lost_files += 1
                problems.append(f"{self.session.folder}: the flow file the store had read up to byte "
                                f"{cursor.offset:,} was deleted (keep_rotated) before the rest was read; "
                                "those flows are not in the store")
            read.cursor = FileCursor(0, 0, "", cursor.order, 0)  # nothing left of it: newer files are unread
        budget = self.max_step_bytes
        rows: list[FlowRow] = []
        for index, (f, offset) in enumerate(plan):
            fh = self._open(f, opened)
            if fh is None:
                read.lost_files += 1
                problems.append(f"{self.session.folder}: {f.name} was deleted before the store could read it")
                continue
            end = ends.get(f.ident)
            last = end is not None if until is not None else index == len(plan) - 1
            pos, budget = self._read_file(f, fh, offset, last, budget, rows, stats, run_id, end)
            read.cursor = FileCursor(f.dev, f.ino, _head(fh) if pos else "", f.order, pos)
            read.keep = [f for f, _ in plan[index:]]
            if budget <= 0 and (index < len(plan) - 1 or pos < (os.fstat(fh.fileno()).st_size if end is None
                                                                else end)):
                read.more = True
                break
        if rows:
            _write_flows(self.conn, run_id, rows)
        read.lines = stats.flows
        return read

    def _before(self, files: list[_FlowFile], until: FileCursor,
                opened: dict[tuple[int, int], _FlowFile]) -> tuple[list[_FlowFile], dict[tuple[int, int], int]]:
        """Return the files (and where to stop in the last) that hold lines written before `until`: up to its
        file when that is still there, else the files rotated before it was taken."""
        if until.offset and (until.dev or until.ino):
            at = next((i for i, f in enumerate(files) if self._is_cursor_file(f, until, opened)), None)
            if at is not None:
                return files[: at + 1], {files[at].ident: until.offset}
        # no flows.jsonl (or an empty one) when it was taken, or its file deleted since: only files rotated
        # before it hold earlier lines (a later rotation's stamp is later)
        return [f for f in files if not f.current and f.order < until.order], {}

    def _is_cursor_file(self, f: _FlowFile, cursor: FileCursor, opened: dict[tuple[int, int], _FlowFile]) -> bool:
        if not (cursor.dev or cursor.ino) or f.ident != (cursor.dev, cursor.ino):
            return False
        if not cursor.head:
            return True
        fh = self._open(f, opened)
        return fh is not None and _head(fh) == cursor.head

    def _read_file(self, f: _FlowFile, fh: IO[bytes], offset: int, last: bool, budget: int, rows: list[FlowRow],
                   stats: ReadStats, run_id: int, end: int | None = None) -> tuple[int, int]:
        """Read the whole lines of one file from `offset` within `budget` bytes (and before byte `end`); return
        (the offset after the last line read, the budget left). A torn last line waits for the next step, unless
        the file is finished (rotated, with newer files after it): then it is damage, counted."""
        size = os.fstat(fh.fileno()).st_size
        if end is not None:
            if offset >= end:
                return offset, budget
            size = min(size, end)
        if offset > size:  # cut below what was read (a full disk's partial write removed): go on from its end
            stats.skip(f"{f.name}@{offset}", ValueError(f"file cut to {size} bytes below the cursor"))
            offset = size
        fh.seek(offset)
        pos, pending, long_line, got = offset, b"", False, offset
        while budget > 0 or pos == offset:  # past the budget only to read one line: every step moves on
            want = min(READ_CHUNK, budget) if budget > 0 else LINE_CHUNK
            if end is not None:
                want = min(want, end - got)
                if want <= 0:
                    break
            chunk = fh.read(want)
            if not chunk:
                break
            got += len(chunk)
            budget -= len(chunk)
            data = pending + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                pending = data
                if len(pending) > MAX_LINE_BYTES:  # damage: count it once, drop it, resume after its newline
                    if not long_line:
                        stats.skip(f"{f.name}@{pos}", ValueError(f"a line longer than {MAX_LINE_BYTES} bytes"))
                    pos, pending, long_line = pos + len(pending), b"", True
                continue
            line_at = pos
            for line in data[:cut].split(b"\n"):
                where = line_at
                line_at += len(line) + 1
                if long_line:
                    long_line = False
                    continue
                row = read_row(line, flow_row, stats, f"{f.name}@{where}")
                if row is None:
                    continue
                rows.append(row)
                stats.flows += 1
                if len(rows) >= self.batch:
                    _write_flows(self.conn, run_id, rows)
                    rows.clear()
            pos += cut + 1
            pending = data[cut + 1:]
        if not last and budget > 0 and pos < size:  # a finished file's torn last line never completes
            stats.skip(f"{f.name}@{pos}", ValueError("torn last line of a rotated file"))
            pos = size
        return pos, budget

    def _hold_after_commit(self, opened: dict[tuple[int, int], _FlowFile], keep: list[_FlowFile]) -> None:
        wanted = {f.ident for f in keep}
        for f in {**self._held, **opened}.values():
            if f.ident not in wanted:
                _close(f)
        self._held = {f.ident: f for f in keep if f.fh is not None}

    def _hold_after_failure(self, opened: dict[tuple[int, int], _FlowFile]) -> None:
        """Keep every file this step opened: it is read again next step, even if deleted meanwhile. Only the
        newest few deleted ones stay open, so a long outage cannot fill the disk with them."""
        held = {**self._held, **opened}
        deleted = sorted((f for f in held.values() if f.fh is not None and os.fstat(f.fh.fileno()).st_nlink == 0),
                         key=lambda f: f.order)
        for f in deleted[: max(len(deleted) - self.max_deleted_held, 0)]:
            _close(f)
            del held[f.ident]
        self._held = {k: f for k, f in held.items() if f.fh is not None}

    # -- alert sums -------------------------------------------------------------------------------------------

    def _session_alerts(self, stats: ReadStats) -> tuple[str, list[AlertRow]]:
        """Return the alerts of this session (the copies a rule reload kept aside, then alerts-current.jsonl)
        and a signature of the files read. Read again when the sensor replaced alerts-current.jsonl meanwhile,
        so no sum is counted twice."""
        folder, since = self.session.folder, file_time(self.session.started_ns)
        rows: list[AlertRow] = []
        attempt = ReadStats()
        files: list[str] = []
        for tries_left in range(SNAPSHOT_TRIES - 1, -1, -1):
            attempt = ReadStats()
            rows, files = [], []
            current: IO[bytes] | None = None
            with contextlib.suppress(FileNotFoundError):
                current = open(folder / ALERTS_CURRENT, "rb")  # noqa: SIM115 - closed below
            try:
                seen = {_ident(current)} if current is not None else set()
                for path in sorted(folder.glob(f"{SNAPSHOT_PREFIX}*{SUFFIX}")):
                    if path.name[len(SNAPSHOT_PREFIX): -len(SUFFIX)] <= since:
                        continue  # an earlier session's
                    with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
                        if _ident(fh) not in seen:
                            seen.add(_ident(fh))
                            files.append(_signature(fh, path.name))
                            rows += alert_lines(fh, path.name, attempt)
                # still the live file, so consistent with the copies listed (else a reload moved it meanwhile)
                if current is None or os.fstat(current.fileno()).st_nlink > 0 or not tries_left:
                    if current is not None:
                        files.append(_signature(current, ALERTS_CURRENT))
                        rows += alert_lines(current, ALERTS_CURRENT, attempt)
                    break
            finally:
                if current is not None:
                    current.close()
        stats.alerts += attempt.alerts
        stats.skipped_lines += attempt.skipped_lines
        stats.problems += attempt.problems
        return ";".join(files), rows


def _signature(fh: IO[bytes], name: str) -> str:
    st = os.fstat(fh.fileno())
    return f"{name}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _ident(fh: IO[bytes]) -> tuple[int, int]:
    st = os.fstat(fh.fileno())
    return st.st_dev, st.st_ino


def _close(f: _FlowFile) -> None:
    if f.fh is not None:
        with contextlib.suppress(OSError):
            f.fh.close()
        f.fh = None


def _json_object(value: object) -> dict[str, Any]:
    """Return a JSON object given as text or dict; {} for anything else (damage is not worth a failed step)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def _dig(data: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62 else 0


def _time_ns(text: str) -> int | None:
    try:
        return to_ns(text)
    except (ValueError, OverflowError):
        return None
