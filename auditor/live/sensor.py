"""`auditor sense`: the flow engine on a live interface, for months, under systemd.

The loop polls the capture (never blocking longer than a quarter second), runs each batch through
the same Engine as `analyze`, appends alerts to alerts.jsonl as they fire, and at every flush
interval ends idle flows by the wall clock, rewrites the device inventory and the current alert
sums, and writes a metric record (packets received and dropped, skipped per reason, active flows,
findings). SIGHUP reloads the rule files (a bad file is logged and the old rules stay); SIGTERM and
SIGINT end every flow, write everything and return 0.

Outputs, in the sensor's folder (the state directory's <interface>/): flows.jsonl (rotated by
size), alerts.jsonl (appended as alerts fire), alerts-current.jsonl (every alert with its sums so
far), devices.json and devices.csv, metrics.jsonl (one metric record per interval) and status.json
(the last one, for `auditor status`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from auditor import __version__
from auditor.capture.live import LiveSource
from auditor.config import Settings
from auditor.devices.evidence import EvidenceTable
from auditor.devices.oui import OuiRegistry
from auditor.devices.signatures import SignatureSet
from auditor.devices.table import DeviceTable
from auditor.devices.vendors import VendorCatalog
from auditor.devices.verdicts import DeviceVerdicts, iter_device_records
from auditor.errors import AuditorError, OutputError
from auditor.flows.community_id import with_community_ids
from auditor.flows.localnet import LocalNetworks
from auditor.flows.types import FlowRecords
from auditor.live.notify import Notifier
from auditor.live.store_feed import start_feed
from auditor.names.stage import NameStage
from auditor.output._text import iso_time
from auditor.output.alerts import alert_documents, write_alerts_jsonl
from auditor.output.background import BackgroundSink
from auditor.output.devices import write_devices
from auditor.output.ecs import ECS_VERSION, flow_json_block
from auditor.output.files import replacing
from auditor.output.rotating import RotatingJsonl, file_stamp
from auditor.pipeline import Engine, RunStats, fingerprint_payloads
from auditor.policy.evaluate import GeoLookup, PolicyJudge
from auditor.policy.load import RuleSet
from auditor.policy.types import Alert

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GC_THRESHOLDS = (50_000, 50, 100)
"""gc.set_threshold for the capture loop (CPython's default is 700, 10, 10)."""
MAX_REMEMBERED_ALERTS = 200_000
MAX_UNWRITTEN_ALERTS = 10_000
STOP_PART_FLOWS = 25_000
"""At a stop the open flows are ended, named, judged and handed to the writer in parts of this many, so
the writer formats one part while the sensor judges the next."""
STOP_WRITER_BEHIND = 1
"""...and when this many parts already wait for the writer, the sensor formats the next part itself (handing
the writer ready lines), so both cores format: the writer also appends every line to disk, which costs this
VM about 2 s of system time per 700 MB (a million flows). bench/stop.py, 1 M open flows on 2 cores: a fixed
40 % formatted here 6.3 s, this rule 3.3 s (4.2 s with GeoIP databases)."""
STOP_PARTS_QUEUED = 8
"""Parts waiting for the writer at most (each about 3 MB of records or 18 MB of lines)."""


@dataclass(frozen=True, slots=True)
class SensorInputs:
    """What the command line prepared: every file is read and checked before capture starts."""

    interface: str
    settings: Settings
    out_dir: Path
    catalog: VendorCatalog | None
    signatures: SignatureSet
    registry: OuiRegistry
    load_rules: Callable[[], RuleSet]
    """Reads the rule files (again on SIGHUP); raises AuditorError for a bad one."""
    geo: GeoLookup | None = None
    geo_databases: tuple[dict[str, str], ...] = ()
    rule_warnings: Callable[[RuleSet], list[str]] | None = None
    """Warnings about a rule set beyond its own (e.g. a GeoIP database its entries need is missing)."""


class Sensor:
    """Owns the capture, the engine and the outputs of one interface; run() until a stop signal."""

    def __init__(self, inputs: SensorInputs, source: Any = None, notifier: Notifier | None = None) -> None:
        self.inputs = inputs
        s = inputs.settings.sensor
        self.out = inputs.out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.rules = inputs.load_rules()
        self._warn_rules(self.rules)
        _keep_previous(self.out, s.keep_rotated)  # a restart must not wipe the last run's inventory
        self._geo_lookup = inputs.geo.lookup if inputs.geo is not None else None
        self._flow_writer = _FlowWriter(self.out / "flows.jsonl", s.rotate_mib * 1024 * 1024, s.keep_rotated,
                                        self._geo_lookup, list(inputs.geo_databases))
        # the writer process is forked before the capture opens, so it holds no capture ring
        self._background: BackgroundSink[FlowRecords | bytes] | None = BackgroundSink(self._flow_writer,
                                                                             on_close=self._flow_writer.close)
        self._sync_flows: _FlowWriter | None = None
        try:
            self.source = source if source is not None else LiveSource(
                inputs.interface, s.bpf, s.snaplen, s.promiscuous, s.buffer_mib)
        except BaseException:
            self._background.close()  # no capture: let the writer end quietly before the error is told
            raise
        self.notify = notifier or Notifier()
        local = LocalNetworks(inputs.settings.local_networks)
        self.devices = DeviceTable(local.contains)
        self.evidence = EvidenceTable(inputs.signatures)
        self.names = NameStage()
        payloads = fingerprint_payloads(self.evidence, None, local, self.names)
        self.verdicts = DeviceVerdicts(inputs.registry, inputs.catalog, self.evidence, self.rules.pins)
        self.judge = self._judge(self.rules)
        self.stats = RunStats()
        self.engine = Engine(inputs.settings, self._write_flows, payloads, self.devices, self.judge, self.names,
                             self.stats)
        self._alerts = RotatingJsonl(self.out / "alerts.jsonl", s.rotate_mib * 1024 * 1024, s.keep_rotated)
        self._fired = _fired_ids(self.out / "alerts.jsonl")
        """Ids of the alerts already in alerts.jsonl: each is written once, across reloads and restarts."""
        self._unwritten: list[Alert] = []
        self._metrics = RotatingJsonl(self.out / "metrics.jsonl", s.rotate_mib * 1024 * 1024, s.keep_rotated)
        self._stop = False
        self._reload = False
        self.reloads = 0
        self.reload_failures = 0
        self.alerts_written = 0
        self._before_reload = {"flows_judged": 0, "findings": 0}
        """Counters of the judges that earlier rule files had: the metrics stay cumulative."""
        self._current_written_at = -1
        self._dropped_logged = 0
        self.started = time.time()
        self.last_error: str | None = None
        # issue 7: a process of its own follows this folder into the store ([sensor] store; None when unset)
        self._store_feed = start_feed(inputs, self.started)

    def _judge(self, rules: RuleSet) -> PolicyJudge:
        return PolicyJudge(rules, self.verdicts, geo=self.inputs.geo, mud_url_of=self.verdicts.mud_url)

    def _warn_rules(self, rules: RuleSet) -> None:
        extra = self.inputs.rule_warnings(rules) if self.inputs.rule_warnings else []
        for warning in (*rules.warnings, *extra):
            logger.warning("%s", warning)

    def _write_flows(self, records: FlowRecords | bytes) -> None:
        """Hand ended flows (or their lines, ready) to the writer process; should it die, write them here
        from then on."""
        if self._background is not None:
            try:
                self._background(records)
                return
            except AuditorError as exc:
                self._writer_died(exc)
        assert self._sync_flows is not None
        self._sync_flows(records)

    def _writer_died(self, why: object) -> None:
        self.last_error = f"the flow writer process stopped ({why}); flows are written by the sensor itself now"
        logger.error("%s; flows it had not written yet are lost", self.last_error)
        self._background = None
        w = self._flow_writer
        self._sync_flows = _FlowWriter(w.path, w.max_bytes, w.keep, w.geo, w.databases)

    def _check_writer(self) -> None:
        if self._background is not None and not self._background.alive:
            self._writer_died("it exited")

    # -- the loop -------------------------------------------------------------------------------

    def run(self, max_seconds: float | None = None) -> int:
        """Capture until SIGTERM or SIGINT (or max_seconds); flush everything; return the exit code 0."""
        # a full garbage collection over months of state (evidence, names, flows) can pause the loop long
        # enough for the kernel ring to overflow: keep what start-up built out of it, and collect the
        # young generations more rarely (the data path makes few reference cycles)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        previous = {sig: signal.signal(sig, self._on_stop) for sig in STOP_SIGNALS}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        interval = self.inputs.settings.sensor.flush_interval_s
        deadline = time.monotonic() + max_seconds if max_seconds else None
        next_flush = time.monotonic() + interval
        self._write_status(self.metric())  # `auditor status` sees the sensor from its first second
        self.notify.ready(f"capturing on {self.inputs.interface}")
        logger.info("capturing on %s; writing to %s", self.inputs.interface, self.out)
        code = 0
        try:
            while not self._stop:
                batch = self.source.poll()
                if len(batch):
                    self.engine.process(batch)
                    self.stats.frames += len(batch)
                    self.stats.bytes += int(batch.wirelen.sum())
                else:
                    self.engine.expire(time.time_ns())  # an idle link: time passes all the same
                self._write_new_alerts()
                self._check_writer()
                self.notify.watchdog()
                if self._reload:
                    self._reload_rules()
                now = time.monotonic()
                if now >= next_flush:
                    self.engine.expire(time.time_ns())
                    self.flush_outputs()
                    next_flush = now + interval
                if deadline is not None and now >= deadline:
                    break
        except Exception as exc:
            # the capture failed (the interface went away), an output cannot be written (a full disk), or
            # a bug: say so, keep what can be kept, and exit non-zero so that systemd restarts the sensor
            code = 1
            self.last_error = f"stopped on an error: {type(exc).__name__}: {exc}"
            logger.exception("%s", self.last_error)
        finally:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload racing the stop must not kill it
            previous.pop(signal.SIGHUP)
            self.notify.stopping()
            try:
                self.shutdown()
            except Exception as exc:
                code = 1
                logger.error("could not write every output while stopping: %s", exc)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def _reload_rules(self) -> None:
        """Read the rule files again; a bad one is logged and the rules in force stay."""
        self._reload = False
        self.notify.reloading()
        try:
            rules = self.inputs.load_rules()
        except AuditorError as exc:
            self.reload_failures += 1
            self.last_error = f"rule reload refused, the previous rules stay in force: {exc}"
            logger.error("%s", self.last_error)
            self.notify.send("READY=1", "STATUS=rule reload failed; previous rules in force")
            return
        self._warn_rules(rules)
        self._write_new_alerts()
        # the old rules' alerts as they stood, kept beside the new ones (alerts.jsonl has each once)
        self._write_current_alerts(force=True)
        with contextlib.suppress(OSError):
            os.replace(self.out / "alerts-current.jsonl", self.out / f"alerts-current-{file_stamp()}.jsonl")
        self._before_reload["flows_judged"] += self.judge.flows_judged
        self._before_reload["findings"] += self.judge.findings
        self.rules = rules
        self.verdicts.set_pins(rules.pins)
        self.judge = self.engine.policy = self._judge(rules)
        self._current_written_at = -1
        self.reloads += 1
        self.last_error = None
        logger.info("rule files reloaded: %d policies from %d files", len(rules.policies), len(rules.sources))
        self.notify.send("READY=1", f"STATUS=capturing on {self.inputs.interface}; rules reloaded")

    # -- outputs --------------------------------------------------------------------------------

    def _write_new_alerts(self) -> None:
        """Append the alerts that fired since the last call; kept for the next call if the write fails."""
        new = [a for a in self.judge.drain_new() if a.alert_id not in self._fired]
        pending = self._unwritten + new
        if not pending:
            return
        lines = [orjson.dumps(doc) for doc in alert_documents(pending, geo=self._geo_lookup,
                                                              geo_databases=list(self.inputs.geo_databases))]
        try:
            self._alerts.write_lines(lines)
        except OSError as exc:
            self._unwritten = pending[-MAX_UNWRITTEN_ALERTS:]
            raise OutputError(f"{self.out / 'alerts.jsonl'}: cannot append: {exc.strerror or exc}") from exc
        self._unwritten = []
        self.alerts_written += len(pending)
        if len(self._fired) >= MAX_REMEMBERED_ALERTS:
            self._fired.clear()
        self._fired.update(a.alert_id for a in pending)

    def _write_current_alerts(self, force: bool = False) -> None:
        """Rewrite alerts-current.jsonl when a finding changed its sums since the last time."""
        if not force and self.judge.findings == self._current_written_at:
            return
        with replacing(self.out / "alerts-current.jsonl", "wb") as fh:
            write_alerts_jsonl(self.judge.iter_alerts(), fh, self._geo_lookup, list(self.inputs.geo_databases))
        self._current_written_at = self.judge.findings

    def flush_outputs(self) -> dict[str, Any]:
        """Append a metric record and rewrite status.json, then the device inventory and the current
        alerts; return the metric. The status goes first, so a full disk still shows in it."""
        metric = self.metric()
        self._write_status(metric)
        self._metrics.write_lines([orjson.dumps(metric)])
        with replacing(self.out / "devices.json", "wb") as fj, replacing(self.out / "devices.csv", "w") as fc:
            write_devices(iter_device_records(self.devices, self.verdicts), fj, fc)
        self._write_current_alerts()
        packets = metric["auditor"]["packets"]
        self.notify.status(f"capturing on {self.inputs.interface}: {packets['received']:,} received, "
                           f"{packets['dropped']:,} dropped, {metric['auditor']['flows']['active']:,} active flows, "
                           f"{metric['auditor']['alerts']:,} alerts")
        dropped = packets["dropped"]
        if dropped > self._dropped_logged:
            # frames the kernel had to drop because the engine fell behind: never silent
            logger.warning("capture lost %d frames so far (kernel buffer full; %d since the last report)",
                           dropped, dropped - self._dropped_logged)
            self._dropped_logged = dropped
        if self._store_feed is not None:
            self._store_feed.nudge()  # issue 7: this interval's files are written: the store may read them
        return metric

    def _write_status(self, metric: dict[str, Any]) -> None:
        with replacing(self.out / "status.json", "wb") as fh:
            fh.write(orjson.dumps(metric, option=orjson.OPT_INDENT_2))

    def metric(self, state: str = "running") -> dict[str, Any]:
        """Return an ECS metric record of the counters so far."""
        counters = self.source.counters()
        stats, judge = self.stats, self.judge
        now = time.time()
        return {
            "@timestamp": iso_time(int(now * 1e9)),
            "ecs": {"version": ECS_VERSION},
            "event": {"kind": "metric", "category": ["network"], "type": ["info"], "dataset": "auditor.sensor",
                      "start": iso_time(int(self.started * 1e9))},
            "observer": {"hostname": socket.gethostname(), "type": "sensor", "product": "span-auditor",
                         "version": __version__, "ingress": {"interface": {"name": self.inputs.interface}}},
            "auditor": {
                "state": state,
                "pid": os.getpid(),
                "uptime_s": round(now - self.started, 3),
                "packets": {"received": counters.received, "dropped": counters.dropped,
                            "interface_dropped": counters.interface_dropped, "processed": stats.frames,
                            "bytes": stats.bytes, "ip": stats.ip_packets, "arp": stats.arp_frames,
                            "other_l2": stats.other_l2_frames},
                "skipped": dict(sorted(stats.skipped.items())),
                "skipped_total": sum(stats.skipped.values()),
                "flows": {"active": self.engine.table.active, "ended": stats.flows,
                          "ended_by_reason": dict(sorted(stats.flows_by_end.items()))},
                "devices": len(self.devices.devices),
                "flows_judged": self._before_reload["flows_judged"] + judge.flows_judged,
                "findings": self._before_reload["findings"] + judge.findings,
                "alerts": self.alerts_written,
                "worst_finding": judge.worst_rank,
                # limits reached: each means something is no longer tracked, so none may stay silent
                "limits": {
                    "findings_not_summed": judge.dropped_findings,
                    "devices_not_tracked": self.devices.dropped_devices,
                    "evidence_devices_not_kept": self.evidence.dropped_devices,
                    "payload_handler_crashes": sum(self.engine.payloads.crashed.values())
                    if self.engine.payloads is not None else 0,
                },
                "flow_writer": "process" if self._background is not None else "in-process (the writer process died)",
                "rules": [{"path": r.path, "sha256": r.sha256} for r in self.rules.sources],
                "rule_reloads": self.reloads,
                "rule_reload_failures": self.reload_failures,
                "last_error": self.last_error,
                "flush_interval_s": self.inputs.settings.sensor.flush_interval_s,
                "store": self._store_feed.status() if self._store_feed is not None else None,  # issue 7
            },
        }

    def _flush_open_flows(self) -> None:
        """End every open flow, in parts (see STOP_PART_FLOWS), formatting some parts here. A thread hands
        the parts to the writer, so the sensor goes on judging and formatting while a send waits for the
        writer to take the previous part."""
        sink = self.engine.sink
        parts: queue.Queue[FlowRecords | bytes | None] = queue.Queue(maxsize=STOP_PARTS_QUEUED)
        failed: list[BaseException] = []

        def send() -> None:
            while (item := parts.get()) is not None:
                if not failed:
                    try:
                        self._write_flows(item)
                    except BaseException as exc:  # told by the stopping thread, after the join
                        failed.append(exc)

        def hand_on(records: FlowRecords) -> None:
            if failed:
                raise failed[0]
            # parts already waiting mean the writer is behind: this one is formatted here (self-balancing,
            # whatever the judging, GeoIP and disk cost on either side)
            if self._background is not None and parts.qsize() >= STOP_WRITER_BEHIND:
                parts.put(self._flow_writer.format(records))
            else:
                parts.put(records)

        sender = threading.Thread(target=send, name="stop-sender", daemon=True)
        sender.start()
        self.engine.sink = hand_on
        try:
            self.engine.flush(STOP_PART_FLOWS)
        finally:
            self.engine.sink = sink
            parts.put(None)
            sender.join()
        if failed:
            raise failed[0]

    def shutdown(self) -> None:
        """End every flow, write every output, close the capture (the stop path; also after errors).

        The alerts, the inventory and the status are written before waiting for the flow writer, whose
        backlog is the slow part: if the stop is cut short, the cheap outputs are already whole."""
        failure: Exception | None = None
        try:
            self._flush_open_flows()  # every open flow ends now and goes to the writer
            self.engine.finish()
        except Exception as exc:
            failure = exc
        try:
            self._write_new_alerts()
            self.flush_outputs()
        except Exception as exc:
            failure = failure or exc
        try:
            if self._background is not None:
                self._background.close()  # waits for the writer: flows.jsonl is whole once this returns
            if self._sync_flows is not None:
                self._sync_flows.close()
        except Exception as exc:
            failure = failure or exc
        if self._store_feed is not None:
            self._store_feed.finish()  # issue 7: the last step, once flows.jsonl is whole (never raises)
        if failure is not None and self.last_error is None:
            self.last_error = f"stopped on an error: {type(failure).__name__}: {failure}"
        try:
            self._write_status(self.metric(state="stopped" if self.last_error is None else "failed"))
        finally:
            self._alerts.close()
            self._metrics.close()
            self.source.close()
        logger.info("stopped: %d frames, %d flows, %d alerts", self.stats.frames, self.stats.flows,
                    self.alerts_written)
        if failure is not None:
            raise failure


class _FlowWriter:
    """Writes flow records as JSON lines to a rotating file, opened on first use (in whichever process
    writes: the writer child normally, the sensor itself if the child dies)."""

    def __init__(self, path: Path, max_bytes: int, keep: int, geo: Any, databases: list[dict[str, str]]) -> None:
        self.path, self.max_bytes, self.keep, self.geo, self.databases = path, max_bytes, keep, geo, databases
        self._file: RotatingJsonl | None = None

    def __call__(self, records: FlowRecords | bytes) -> None:
        if self._file is None:
            self._file = RotatingJsonl(self.path, self.max_bytes, self.keep)
        block = records if isinstance(records, bytes) else self.format(records)
        self._file.write_block(block, block.count(b"\n"))

    def format(self, records: FlowRecords) -> bytes:
        """Return the flows' JSON lines as one block."""
        return flow_json_block(with_community_ids(records), geo=self.geo, geo_databases=self.databases)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


PREVIOUS_OUTPUTS = ("devices.json", "devices.csv", "alerts-current.jsonl")


def _keep_previous(out: Path, keep: int) -> None:
    """Move the last run's snapshots aside (name-<time>.ext), keeping `keep` of each."""
    stamp = file_stamp()
    for name in PREVIOUS_OUTPUTS:
        path = out / name
        if path.is_file() and path.stat().st_size:
            with contextlib.suppress(OSError):
                os.replace(path, path.with_name(f"{path.stem}-{stamp}{path.suffix}"))
        kept = sorted(out.glob(f"{path.stem}-*{path.suffix}"))
        for old in kept[: max(len(kept) - keep, 0)]:
            old.unlink(missing_ok=True)


def _fired_ids(path: Path) -> set[str]:
    """Return the alert ids already in alerts.jsonl (a restart must not write them again)."""
    ids: set[str] = set()
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        for line in fh:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                ids.add(orjson.loads(line)["event"]["id"])
            if len(ids) >= MAX_REMEMBERED_ALERTS:
                break
    return ids
