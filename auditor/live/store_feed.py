"""Feed a running sensor's outputs into the store, from a process of its own (issue 7).

The capture loop keeps one core busy at 300 k packets/s, so the store's work (reading new flow lines, SQL,
waiting on a locked database or a slow server) must not take a moment of it. `StoreFeed` starts
`python -m auditor.live.store_feed`, a fresh interpreter rather than a fork: it inherits neither the capture
socket and its ring nor, when it is started again months later, the sensor's heap (which copy-on-write
would slowly duplicate under MemoryMax). They talk over two pipes: the sensor writes `step` once each flush
interval's files are written (never blocking: a nudge the pipe cannot take is dropped, the child is busy
anyway) and `final` once its flow writer is done; the child answers each step with one JSON report line,
which the sensor reads into its status.

The child ignores SIGINT, SIGTERM and SIGHUP and runs in a session of its own: stopping is the sensor's to
decide (Ctrl-C and systemd's KillMode=mixed reach the sensor, which then asks for the final step). Should
the sensor die, the child reads end-of-file, takes a last step and exits. A store error (a locked database,
a full disk, PostgreSQL down) fails one step: logged (once until it changes), counted in status, and retried
at the next interval from the same cursor, so nothing is lost. A child that dies is logged and started again.

The final step has no next interval: the child retries it (FINAL_RETRY_FIRST_S doubling to FINAL_RETRY_MAX_S)
until a little before the stop's deadline, then the sensor tries again itself in the time left. Should the
store stay unreachable past it, the flow lines it does not hold are counted, logged as an ERROR and shown in
the status (`unstored_at_stop`): they remain in the sensor's flows*.jsonl files, from the run's last cursor.
The next session's feed stores them (follow.SensorFollower.catch_up): before each of its steps until done,
best-effort (a failure is logged and retried at the next interval, never holding up the session's own step),
it adds to each earlier run of the sensor and interface whose final step never completed its lines up to where
the next session began, and marks it finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from auditor import __version__
from auditor.output._text import iso_time
from auditor.runtime import yield_cpu

if TYPE_CHECKING:
    from auditor.live.sensor import SensorInputs
    from auditor.store.backend import StoreConnection
    from auditor.store.follow import SensorFollower

logger = logging.getLogger(__name__)

FINAL_TIMEOUT_S = 30.0
"""How long the stop waits for the last step (systemd's TimeoutStopSec is 60 s, the flow writer's drain first)."""
FINAL_RETRY_FIRST_S = 0.2
FINAL_RETRY_MAX_S = 2.0
"""A failed final step is retried after 0.2, 0.4, 0.8 ... s, at most this long apart."""
FINAL_MARGIN_S = 2.0
"""The feed process stops retrying the final step this long (at most a fifth of the wait) before finish()'s
deadline, which leaves the sensor the time to read its report and try once more itself."""
CATCH_UP_BUDGET_S = 5.0
"""How long one interval spends at most catching up earlier sessions' unstored lines before its own step
(a large backlog is taken over several intervals)."""
MAX_RESTART_DELAY_INTERVALS = 32
"""A child that keeps dying is started again after 1, 2, 4 ... flush intervals, at most this many."""
STEP, FINAL = b"step", b"final"


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """What the feed process needs, sent as the first line of its stdin (not in argv: a PostgreSQL URL may
    carry a password, and argv is visible to every user in ps)."""

    target: str
    """The store: a SQLite path or a postgresql:// URL."""
    folder: str
    sensor: str
    interface: str
    started_ns: int
    start_key: str
    start_offset: int
    """Where the session began in flows.jsonl (follow.FileCursor)."""
    auditor_version: str | None = None
    databases: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        """Return the config as one JSON line's text (no newline)."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> FeedConfig:
        """Return the config to_json() wrote."""
        return cls(**orjson.loads(data))


def start_feed(inputs: SensorInputs, started: float) -> StoreFeed | None:
    """Return a running feed of the sensor's folder into the store [sensor] store names; None when none does.
    Call it before the sensor's flow writer appends anything: it takes where this session begins."""
    s = inputs.settings.sensor
    if not s.store:
        return None
    import socket
    from pathlib import Path

    from auditor.store.follow import start_cursor  # the store is loaded only when one is set

    started_ns = int(started * 1e9)
    start = start_cursor(inputs.out_dir, started_ns)
    target = s.store if "://" in s.store else str(Path(s.store).expanduser().resolve())  # the child's cwd may differ
    catalog = inputs.catalog.source if inputs.catalog is not None else None
    config = FeedConfig(target=target, folder=str(inputs.out_dir.resolve()), sensor=socket.gethostname(),
                        interface=inputs.interface, started_ns=started_ns, start_key=start.key,
                        start_offset=start.offset, auditor_version=__version__,
                        databases={"geoip": [dict(g) for g in inputs.geo_databases], "vendor_catalog": catalog})
    return StoreFeed(config, interval_s=s.flush_interval_s)


class StoreFeed:
    """The sensor's side: starts the feed process, nudges it, reads its reports, and starts it again if it
    dies. No method blocks the capture loop (finish() waits, at the stop) and none raises."""

    def __init__(self, config: FeedConfig, *, interval_s: float, command: Sequence[str] | None = None) -> None:
        from auditor.store.backend import display_target  # the store is loaded only when one is set

        self.config = config
        self.interval_s = interval_s
        self.shown_target = display_target(config.target)
        """The store as status and logs show it (a URL's password masked)."""
        self._command = list(command or (sys.executable, "-m", "auditor.live.store_feed"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = b""
        self._finished = False
        self.steps = 0
        self.failed_steps = 0
        self.restarts = 0
        self.last_step_ns: int | None = None
        """When the last successful step committed."""
        self.last_error: str | None = None
        """The last step's failure; None once a step succeeds again."""
        self.run_id: int | None = None
        self.flows = 0
        self.files_lost = 0
        self.lines_lost: int | None = None
        self.cursor: dict[str, Any] | None = None
        """The flow files' cursor the store holds after the last successful step ({"key", "offset"})."""
        self.stored_lines: int | None = None
        """Flow lines the store holds for this run (read or skipped as damaged) after the last successful step."""
        self.unstored_at_stop: dict[str, Any] | None = None
        """Set when the final step failed until the stop's deadline: what the store does not hold, and where."""
        self._delay = 1
        self._restart_at = 0.0
        self._spawn()

    # -- the process ------------------------------------------------------------------------------------------

    def _spawn(self) -> None:
        try:
            proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                                    start_new_session=True)
        except OSError as exc:
            self.last_error = f"cannot start the store feed process: {exc}"
            logger.error("%s", self.last_error)
            return
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # a child that died at once is seen at the next nudge
            proc.stdin.write(self.config.to_json() + b"\n")
            proc.stdin.flush()
        os.set_blocking(proc.stdin.fileno(), False)
        os.set_blocking(proc.stdout.fileno(), False)
        self._proc, self._out = proc, b""

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _replace(self) -> None:
        """Log a child that ended and start another, after a delay that doubles while they keep dying."""
        if self._proc is not None:
            self._collect()
            code = self._proc.returncode
            self.last_error = f"the store feed process ended (exit code {code}); another is started"
            logger.error("%s", self.last_error)
            self._close_pipes()
            self._proc = None
            self._restart_at = time.monotonic() + (self._delay - 1) * self.interval_s
            self._delay = min(self._delay * 2, MAX_RESTART_DELAY_INTERVALS)
        if time.monotonic() >= self._restart_at:
            self.restarts += 1
            self._spawn()

    def _send(self, command: bytes) -> None:
        if self._proc is None or self._proc.stdin is None or self._proc.stdin.closed:
            return
        # a full pipe means the child has nudges waiting already; a broken one, that it died (seen at poll)
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(self._proc.stdin.fileno(), command + b"\n")

    def _collect(self) -> None:
        """Read the reports the child has written so far, without waiting."""
        proc = self._proc
        if proc is None or proc.stdout is None or proc.stdout.closed:
            return
        while True:
            try:
                data = os.read(proc.stdout.fileno(), 65_536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not data:
                break
            self._out += data
        *lines, self._out = self._out.split(b"\n")
        for line in lines:
            try:
                report = orjson.loads(line)
            except orjson.JSONDecodeError:
                logger.warning("store feed: not a report: %r", line[:200])
                continue
            if isinstance(report, dict):
                self._apply(report)

    def _apply(self, report: dict[str, Any]) -> None:
        if report.get("ok"):
            self.steps += 1
            self.last_step_ns = int(report.get("at_ns") or time.time_ns())
            self.last_error = None
            self.run_id = report.get("run_id", self.run_id)
            self.flows += int(report.get("flows") or 0)
            self.files_lost += int(report.get("lost_files") or 0)
            if report.get("lines_lost") is not None:
                self.lines_lost = int(report["lines_lost"])
            if isinstance(report.get("cursor"), dict):
                self.cursor = report["cursor"]
            if report.get("stored_lines") is not None:
                self.stored_lines = int(report["stored_lines"])
            self._delay = 1  # a child that works resets the restart delay
            if report.get("final"):
                self._finished = True  # only a final step that succeeded: a failed one is retried
        else:
            self.failed_steps += 1
            self.last_error = str(report.get("error") or "the step failed")

    def _close_pipes(self) -> None:
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # -- what the sensor calls --------------------------------------------------------------------------------

    def nudge(self) -> None:
        """Ask for a step (this interval's files are written); start the process again if it died."""
        try:
            self._collect()
            if not self._alive():
                self._replace()
                return
            self._send(STEP)
        except Exception:  # the sensor must outlive any fault of its store feed
            logger.exception("store feed: unexpected error; the sensor carries on")

    def finish(self, timeout_s: float = FINAL_TIMEOUT_S) -> None:
        """Ask for the final step (the flow writer is done) and wait for it, at most `timeout_s`; when the process
        is gone, take the step here (the capture is over: nothing to compete with)."""
        try:
            self._finish(timeout_s)
        except Exception:
            logger.exception("store feed: unexpected error at the stop")

    def _finish(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._collect()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # the child retries a failed final step until a little before our deadline, then we try here
            self._send(FINAL + b" %.3f" % max(timeout_s - min(FINAL_MARGIN_S, timeout_s / 5), 0.0))
            self._close_stdin()
            while proc.poll() is None and time.monotonic() < deadline:
                assert proc.stdout is not None
                with contextlib.suppress(OSError, ValueError):
                    select.select([proc.stdout], [], [], min(deadline - time.monotonic(), 0.5))
                self._collect()
            if proc.poll() is None:
                logger.warning("the store feed is still writing after %.0f s; it finishes on its own", timeout_s)
                return
            self._collect()
            self._close_pipes()
            if self._finished:
                return
            if time.monotonic() < deadline:
                logger.info("taking the store's final step in the sensor's process (its feed process failed it)")
        else:
            logger.info("taking the store's final step in the sensor's process (its feed process is gone)")
        if time.monotonic() < deadline:
            runner = FeedRunner(self.config)
            try:
                self._apply(final_step(runner, deadline, self._apply))
            finally:
                runner.close()
        if not self._finished:
            self._unstored(timeout_s)

    def _unstored(self, timeout_s: float) -> None:
        """Log, as an ERROR, and record in the status what the store does not hold after a final step that
        failed until the stop's deadline."""
        ended = _ended_flows(Path(self.config.folder), self.config.started_ns)
        stored = self.stored_lines or 0
        lines = max(ended - stored, 0) if ended is not None else None
        cursor = self.cursor or {"key": self.config.start_key, "offset": self.config.start_offset}
        self.unstored_at_stop = {"flow_lines": lines, "run_id": self.run_id, "cursor_key": cursor.get("key"),
                                 "cursor_offset": cursor.get("offset"), "folder": self.config.folder,
                                 "error": self.last_error}
        count = f"{lines:,}" if lines is not None else "an unknown number of"
        logger.error(
            "store %s: the final step failed for %.0f s (%s); %s flow lines the sensor wrote are NOT in the store. "
            "They remain in %s/flows*.jsonl (flows.jsonl and its rotated files), from the store's cursor of run %s "
            "(run_cursors file_key %s, offset_bytes %s) on; they are lost once keep_rotated deletes those files",
            self.shown_target, timeout_s, self.last_error, count, self.config.folder,
            self.run_id if self.run_id is not None else "(none: the store was never written)",
            cursor.get("key"), cursor.get("offset"))

    def _close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

    def status(self) -> dict[str, Any]:
        """Return the feed's state for the sensor's status record."""
        with contextlib.suppress(Exception):
            self._collect()
        if self._finished:
            process = "stopped"
        elif self._alive():
            process = "running"
        else:
            process = "restarting"
        return {
            "target": self.shown_target,
            "process": process,
            "last_step": iso_time(self.last_step_ns) if self.last_step_ns is not None else None,
            "steps": self.steps,
            "failed_steps": self.failed_steps,
            "last_error": self.last_error,
            "restarts": self.restarts,
            "run_id": self.run_id,
            "flows": self.flows,
            "flow_files_lost": self.files_lost,
            "flow_lines_lost": self.lines_lost,
            "unstored_at_stop": self.unstored_at_stop,
        }

    @property
    def pid(self) -> int | None:
        """The feed process's id (None when there is none)."""
        return self._proc.pid if self._alive() and self._proc is not None else None


class FeedRunner:
    """Steps a SensorFollower, opening the store again after an error; returns a report dict per step."""

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self._conn: StoreConnection | None = None
        self._follower: SensorFollower | None = None
        self._failing: str | None = None
        self._caught_up = False
        """Every earlier run of the sensor and interface is finished (see _catch_up)."""
        self._catch_up_failing: str | None = None

    def step(self, *, final: bool = False) -> dict[str, Any]:
        """Take steps until the flow backlog is read (each its own transaction) and return the report."""
        from auditor.store import open_store
        from auditor.store.follow import FileCursor, SensorFollower, SensorSession

        c = self.config
        report: dict[str, Any] = {"ok": True, "final": final, "flows": 0, "skipped_lines": 0, "lost_files": 0,
                                  "lines_lost": None}
        try:
            if self._conn is None:
                self._conn = open_store(c.target)
            if self._follower is None:
                from pathlib import Path

                session = SensorSession(Path(c.folder), c.sensor, c.interface, c.started_ns, c.auditor_version,
                                        c.databases or {})
                self._follower = SensorFollower(self._conn, session, FileCursor.from_key(c.start_key, c.start_offset))
            self._follower.conn = self._conn
            if not final and not self._caught_up:
                report["caught_up_flows"] = self._catch_up(self._follower)
            while True:
                result = self._follower.step(final=final)
                report["run_id"] = result.run_id
                report["flows"] += result.flows
                report["skipped_lines"] += result.skipped_lines
                report["lost_files"] += result.lost_files
                report["lines_lost"] = result.lines_lost
                if not result.more:
                    break
            report.update(self._committed(report.get("run_id")))
        except Exception as exc:
            self._drop_connection()  # a server that went away, a file that was replaced: start afresh
            from auditor.errors import AuditorError

            message = str(exc) if isinstance(exc, AuditorError) else f"{type(exc).__name__}: {exc}"
            if message != self._failing:  # once per distinct failure, not once a minute
                retried = ("the final step, retried until the stop's deadline" if final
                           else "retried at the next interval; nothing is lost")
                if isinstance(exc, AuditorError):
                    logger.error("store: %s (%s)", message, retried)
                else:
                    logger.exception("store: step failed (%s)", retried)
            self._failing = message
            return {"ok": False, "final": final, "error": message, "at_ns": time.time_ns()}
        if self._failing is not None:
            logger.info("store: writing again (run %s)", report.get("run_id"))
            self._failing = None
        report["at_ns"] = time.time_ns()
        return report

    def _catch_up(self, follower: SensorFollower) -> int:
        """Store what earlier sessions left unstored (their final step never completed), for at most
        CATCH_UP_BUDGET_S; return the flow lines stored. Best-effort: a failure is logged (once until it
        changes) and retried at the next step, which goes on all the same."""
        from auditor.errors import AuditorError

        try:
            result = follower.catch_up(deadline=time.monotonic() + CATCH_UP_BUDGET_S)
        except Exception as exc:
            message = str(exc) if isinstance(exc, AuditorError) else f"{type(exc).__name__}: {exc}"
            if message != self._catch_up_failing:
                logger.error("store: cannot catch up the earlier sessions' unstored flow lines: %s (retried at "
                             "the next interval)", message, exc_info=not isinstance(exc, AuditorError))
            self._catch_up_failing = message
            return 0
        self._catch_up_failing = None
        self._caught_up = result.done
        return sum(run.flows for run in result.runs)

    def _committed(self, run_id: object) -> dict[str, Any]:
        """Return where the store's cursor is and how many flow lines it holds for the run (read after the
        commit, for the count of what a failed final step leaves out); {} when it cannot be read."""
        from auditor.store.follow import SOURCE_FLOWS, _json_object

        if self._conn is None or not isinstance(run_id, int):
            return {}
        try:
            found = self._conn.execute("SELECT file_key, offset_bytes FROM run_cursors WHERE run_id = ? AND "
                                       "source = ?", (run_id, SOURCE_FLOWS)).fetchone()
            row = self._conn.execute("SELECT counters FROM runs WHERE id = ?", (run_id,)).fetchone()
            follow = _json_object(_json_object(row[0] if row is not None else None).get("follow"))
        except Exception:  # the step committed: a count it cannot give is no failure
            logger.debug("store: cannot read the run's cursor", exc_info=True)
            return {}
        out: dict[str, Any] = {}
        if found is not None:
            out["cursor"] = {"key": str(found[0]), "offset": int(found[1])}
        if row is not None:
            out["stored_lines"] = int(follow.get("flow_lines") or 0) + int(follow.get("flow_lines_skipped") or 0)
        return out

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        """Close the store connection and the flow files held open."""
        self._drop_connection()
        if self._follower is not None:
            self._follower.close()


def _read_commands(fd: int, buffered: bytes) -> tuple[set[bytes], bool, bytes]:
    """Wait for at least one command line (or end-of-file) and return every command waiting, whether the
    sensor closed the pipe, and any partial line. Nudges that queued up during a long step become one."""
    *lines, buffered = buffered.split(b"\n")
    commands = {line.strip() for line in lines if line.strip()}
    eof = False
    wait = not commands
    while True:
        if not wait and not select.select([fd], [], [], 0)[0]:
            break
        data = os.read(fd, 4096)
        if not data:
            eof = True
            break
        buffered += data
        *lines, buffered = buffered.split(b"\n")
        commands.update(line.strip() for line in lines if line.strip())
        wait = not commands
    return commands, eof, buffered


def final_step(runner: FeedRunner, deadline: float,
               on_failure: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Take the final step, retrying a failure after FINAL_RETRY_FIRST_S doubling to FINAL_RETRY_MAX_S while a
    retry can start before `deadline` (time.monotonic()); pass each failure but the last to `on_failure` and
    return the last report."""
    delay = FINAL_RETRY_FIRST_S
    while True:
        report = runner.step(final=True)
        left = deadline - time.monotonic()
        if report.get("ok") or left <= delay:
            return report
        on_failure(report)
        time.sleep(delay)
        delay = min(delay * 2, FINAL_RETRY_MAX_S)


def _ended_flows(folder: Path, started_ns: int) -> int | None:
    """Return the flows this session's sensor ended, from its status.json (None when it does not say)."""
    try:
        data = orjson.loads((folder / "status.json").read_bytes())
        start = data["event"]["start"]
        ended = data["auditor"]["flows"]["ended"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    from auditor.store.follow import _time_ns

    if not isinstance(start, str) or (_time_ns(start) or 0) // 1000 != started_ns // 1000:
        return None  # an earlier session's
    return ended if isinstance(ended, int) else None


def _final_budget(commands: set[bytes]) -> float | None:
    """Return the seconds the sensor gives the final step when one of `commands` asks for it, else None."""
    for command in commands:
        word, _, budget = command.partition(b" ")
        if word == FINAL:
            try:
                return float(budget) if budget else FINAL_TIMEOUT_S - FINAL_MARGIN_S
            except ValueError:
                return FINAL_TIMEOUT_S - FINAL_MARGIN_S
    return None


def _report(fd: int, report: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the sensor is gone: the step was taken all the same
        os.write(fd, orjson.dumps(report) + b"\n")


def main() -> int:
    """The feed process: read the config line, take a first step, then one per `step` until `final` or
    end-of-file."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    yield_cpu()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    buffered = b""
    while b"\n" not in buffered:
        data = os.read(stdin, 65_536)
        if not data:
            logger.error("store feed: no configuration on stdin")
            return 2
        buffered += data
    line, buffered = buffered.split(b"\n", 1)
    runner = FeedRunner(FeedConfig.from_json(line))
    try:
        _report(stdout, runner.step())  # at once: the run appears, and a store that cannot be opened shows
        while True:
            commands, eof, buffered = _read_commands(stdin, buffered)
            budget = _final_budget(commands)
            if budget is not None:
                deadline = time.monotonic() + budget
                report = final_step(runner, deadline, lambda failed: _report(stdout, failed))
                _report(stdout, report)
                return 0 if report.get("ok") else 1
            _report(stdout, runner.step())
            if eof:  # the sensor died: what its files hold is stored, then this process ends too
                return 0
    finally:
        runner.close()


if __name__ == "__main__":
    sys.exit(main())
