"""One offline run: capture files -> decode -> flows (-> payload hand-off) -> flow sink, with statistics."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from auditor import __version__
from auditor.capture.files import open_capture
from auditor.capture.prefetch import PrefetchSource
from auditor.capture.types import DEFAULT_BATCH_FRAMES, Batch, PacketSource
from auditor.config import Settings
from auditor.decode import decode
from auditor.decode.types import KIND_ARP, KIND_IP, KIND_OTHER_L2
from auditor.devices.evidence import EvidenceTable
from auditor.devices.oui import mac_text
from auditor.devices.table import DeviceTable
from auditor.errors import CaptureError
from auditor.flows.localnet import LocalNetworks
from auditor.flows.payloads import PayloadRegistry
from auditor.flows.table import FlowOptions, FlowTable
from auditor.flows.types import END_REASONS, FlowRecords, Payload
from auditor.names.stage import NameStage
from auditor.policy.evaluate import PolicyJudge
from auditor.protocols import (
    ETHERTYPE_PARSERS,
    FLOW_HEAD_FIRST_BYTES,
    FLOW_HEAD_PACKETS,
    PORT_PARSERS,
    QUERY_ONLY,
    Parser,
    parse_flow_head,
)

logger = logging.getLogger(__name__)

FlowSink = Callable[[FlowRecords], None]


class Reporter(Protocol):
    """Progress of a run, for a progress bar; the pipeline never prints."""

    def file_started(self, name: str, size_bytes: int | None) -> None: ...

    def advanced(self, bytes_read: int) -> None: ...

    def file_finished(self, name: str) -> None: ...


class SilentReporter:
    """A Reporter that reports nothing (pipes, systemd, tests)."""

    def file_started(self, name: str, size_bytes: int | None) -> None:
        return None

    def advanced(self, bytes_read: int) -> None:
        return None

    def file_finished(self, name: str) -> None:
        return None


@dataclass(slots=True)
class FileStats:
    """What one capture file gave."""

    name: str
    frames: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class RunStats:
    """Counters of one run: what was read, what became flows, what was skipped and why."""

    files: list[FileStats] = field(default_factory=list)
    frames: int = 0
    bytes: int = 0
    ip_packets: int = 0
    arp_frames: int = 0
    other_l2_frames: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    flows: int = 0
    flows_by_end: Counter[str] = field(default_factory=Counter)
    orphan_fragments: int = 0
    key_collisions: int = 0
    payloads: Counter[str] = field(default_factory=Counter)
    payload_crashes: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    run_warnings: list[str] = field(default_factory=list)
    """Warnings about the run as a whole (not about one file), e.g. a limit that was reached."""

    @property
    def warnings(self) -> list[str]:
        """Return every file's warnings, in order, then the run's."""
        return [w for f in self.files for w in f.warnings] + self.run_warnings

    @property
    def errors(self) -> list[str]:
        """Return one line per file that could not be read at all."""
        return [f.error for f in self.files if f.error]

    def to_dict(self) -> dict[str, Any]:
        """Return the run summary as plain JSON-ready data."""
        return {
            "auditor_version": __version__,
            "files": [
                {"name": f.name, "frames": f.frames, "bytes": f.bytes, "warnings": f.warnings, "error": f.error}
                for f in self.files
            ],
            "packets": self.frames,
            "bytes": self.bytes,
            "ip_packets": self.ip_packets,
            "arp_frames": self.arp_frames,
            "other_l2_frames": self.other_l2_frames,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "flows": self.flows,
            "flows_by_end_reason": dict(sorted(self.flows_by_end.items())),
            "orphan_fragments": self.orphan_fragments,
            "flow_key_collisions": self.key_collisions,
            "payloads": dict(sorted(self.payloads.items())),
            "payload_handler_crashes": dict(sorted(self.payload_crashes.items())),
            "warnings": self.warnings,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 3),
            "packets_per_s": round(self.frames / self.elapsed_s) if self.elapsed_s > 0 else None,
        }


def fingerprint_payloads(
    evidence: EvidenceTable, rejected: Counter[str] | None = None, local: LocalNetworks | None = None,
    names: NameStage | None = None,
) -> PayloadRegistry:
    """Return the payload hand-off that feeds the protocol parsers (protocols/) into `evidence`.

    Discovery and service ports are parsed in both directions, every non-IP SADP frame, and the
    first payload packets of every TCP flow on any port (TLS, HTTP/RTSP and DVRIP are recognised
    by their first bytes). Each record's facts are kept under the sending MAC. Payloads a parser
    refuses are counted per parser in `rejected`.

    With `local`, only payloads sent from local addresses count: a remote web server's banner or
    certificate arrives with the router's MAC and says nothing about the router.

    With `names`, the parsed records also go to the names stage (SNI, HTTP Host, DHCP host names),
    which adds its own wants (DNS and mDNS answers, QUIC Initials).
    """
    registry = PayloadRegistry(senders=local.contains if local is not None else None)
    refused = rejected if rejected is not None else Counter()
    hellos = _HelloJoiner()

    def feeding(name: str, parse: Parser) -> Callable[[Payload], None]:
        joins = name == "tcp-head"

        def handle(payload: Payload) -> None:
            data = hellos.joined(payload) if joins else payload.data
            if data is None:
                return  # not the rest of a message we hold: nothing to parse
            record = parse(data)
            if record is None:
                refused[name] += 1
                return
            if joins:
                hellos.hold_if_cut(payload, data, record)
            if names is not None:
                names.record(payload, record)
            if not _about_sender(record, payload):
                refused[name] += 1  # parsed, but it speaks for another machine: counted with the refusals
                return
            evidence.observe(payload.src_mac, payload.ts_ns, record.protocol, record.facts())
        return handle

    for name, proto, port, parse in PORT_PARSERS:
        registry.by_port(name, proto, port, feeding(name, parse), to_port_only=name in QUERY_ONLY)
    for name, ethertype, parse in ETHERTYPE_PARSERS:
        registry.by_ethertype(name, ethertype, feeding(name, parse))
    registry.by_flow_head("tcp-head", FLOW_HEAD_PACKETS, feeding("tcp-head", parse_flow_head),
                          first_bytes=FLOW_HEAD_FIRST_BYTES, also_flows=hellos.flow_ids)
    if names is not None:
        names.register(registry)
    return registry


MAX_HELLO_BYTES = 16_384
"""A ClientHello is joined across TCP segments up to this size (post-quantum key shares make ~1.8 KB
hellos that span two segments, and a shuffled extension order may put the SNI in the second)."""
MAX_HELD_HELLOS = 10_000


class _HelloJoiner:
    """Holds the start of a TLS ClientHello cut by a TCP segment's end, per flow, so the next segments
    of that flow's head (handed over whatever their first byte, see flow_ids) complete it."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[bool, bytes]] = {}
        self._ids = np.empty(0, dtype=np.uint64)
        self._stale = False

    def flow_ids(self) -> NDArray[np.uint64]:
        """Return the flows whose hello is held (their next head packets must be handed over)."""
        if self._stale:
            self._ids = np.fromiter(self._held, dtype=np.uint64, count=len(self._held))
            self._stale = False
        return self._ids

    def joined(self, payload: Payload) -> bytes | None:
        """Return the bytes to parse: the held start plus this segment when it continues a held hello
        (same direction), the segment alone when none is held, None for other traffic of a held flow."""
        held = self._held.get(payload.flow_id)
        if held is None:
            return payload.data
        if held[0] != payload.from_initiator:
            return None  # the server's answer arrives between the client's segments: keep waiting
        del self._held[payload.flow_id]
        self._stale = True
        return held[1] + payload.data

    def hold_if_cut(self, payload: Payload, data: bytes, record: object) -> None:
        """Keep a ClientHello cut by the segment's end, to join with the flow's next segment."""
        if (getattr(record, "protocol", "") == "tls" and getattr(record, "handshake", "") == "client_hello"
                and not getattr(record, "complete", True) and len(data) < MAX_HELLO_BYTES and payload.flow_id):
            if len(self._held) >= MAX_HELD_HELLOS:
                self._held.clear()
            self._held[payload.flow_id] = (payload.from_initiator, data)
            self._stale = True


def _about_sender(record: object, payload: Payload) -> bool:
    """False for a record that speaks for another machine than its sender: a DHCP request relayed by a
    router (giaddr set) carries the client's host name and vendor class, not the router's."""
    chaddr = getattr(record, "chaddr", None)
    if getattr(record, "protocol", "") == "dhcp" and getattr(record, "op", 0) == 1 and chaddr:
        return bool(chaddr == mac_text(payload.src_mac))
    return True


def flow_options(settings: Settings) -> FlowOptions:
    """Turn the people-facing settings into the flow table's options."""
    f = settings.flows
    return FlowOptions(
        udp_idle_timeout_s=f.udp_idle_timeout_s,
        tcp_idle_timeout_s=f.tcp_idle_timeout_s,
        tcp_close_linger_s=f.tcp_close_linger_s,
        max_flows=f.max_flows,
        local_networks=LocalNetworks(settings.local_networks),
    )


class Engine:
    """One flow table and the stages after it, fed batch by batch: the same engine for capture files
    (analyze_files) and a live interface (live/sensor.py).

    Each batch is decoded, its IP packets join their flows, the payloads later stages asked for are
    handed over, devices learn from it, and flows that ended are named, judged and sunk, in that order.
    """

    def __init__(
        self,
        settings: Settings,
        sink: FlowSink,
        payloads: PayloadRegistry | None = None,
        devices: DeviceTable | None = None,
        policy: PolicyJudge | None = None,
        names: NameStage | None = None,
        stats: RunStats | None = None,
    ) -> None:
        self.table = FlowTable(flow_options(settings))
        self.sink = sink
        self.payloads = payloads
        self.devices = devices
        self.policy = policy
        self.names = names
        self.stats = stats if stats is not None else RunStats()
        self._want_index = payloads is not None and payloads.needs_payload_index

    def process(self, batch: Batch) -> None:
        """Run one batch of frames through every stage."""
        h = decode(batch)
        flows, ended = self.table.process(h, payload_index=self._want_index)
        if self.payloads is not None and len(self.payloads):
            self.payloads.dispatch(h, flows)
        if self.devices is not None:
            self.devices.update(h)
        self.emit(ended)
        stats = self.stats
        kinds = np.bincount(h.kind, minlength=4)
        stats.ip_packets += int(kinds[KIND_IP])
        stats.arp_frames += int(kinds[KIND_ARP])
        stats.other_l2_frames += int(kinds[KIND_OTHER_L2])
        stats.skipped.update(h.skip_counts())

    def expire(self, now_ns: int) -> None:
        """End the flows idle at `now_ns` (a live link's clock: no packet may come to advance time)."""
        self.emit(self.table.expire(now_ns))

    def flush(self, part_flows: int | None = None) -> None:
        """End every flow still open (end of capture, or the sensor stopping); with `part_flows`, in
        parts of that many, each named, judged and handed to the sink before the next is ended."""
        while (records := self.table.flush(part_flows)) is not None:
            self.emit(records)
            if part_flows is None:
                break

    def emit(self, records: FlowRecords | None) -> None:
        """Hand ended flows on: named, counted, to the device table, judged, then to the sink."""
        if records is None or not len(records):
            return
        if self.names is not None:
            records = self.names.annotate(records)
        stats = self.stats
        stats.flows += len(records)
        stats.flows_by_end.update(
            {END_REASONS[i]: int(c) for i, c in enumerate(np.bincount(records.end_reason)) if c}
        )
        if self.devices is not None:
            self.devices.add_flows(records)
        if self.policy is not None:
            self.policy.judge(records)
        self.sink(records)

    def finish(self) -> RunStats:
        """Copy the end-of-run counters into the stats and return them."""
        stats = self.stats
        stats.orphan_fragments = self.table.fragments.orphans
        stats.key_collisions = self.table.collisions
        if self.payloads is not None:
            stats.payloads.clear()
            stats.payloads.update(self.payloads.delivered)
            stats.payload_crashes.clear()
            stats.payload_crashes.update(self.payloads.crashed)
        return stats


def analyze_files(
    paths: Sequence[str | os.PathLike[str]],
    settings: Settings,
    sink: FlowSink,
    payloads: PayloadRegistry | None = None,
    reporter: Reporter | None = None,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    prefetch: bool = True,
    devices: DeviceTable | None = None,
    policy: PolicyJudge | None = None,
    names: NameStage | None = None,
) -> RunStats:
    """Read the capture files in order through one flow table; hand finished flows to `sink`.

    Files share the table, so a flow that spans two consecutive files of a rotated capture stays
    one flow. A file that cannot be read is recorded in the stats and the next one still runs.
    With `prefetch`, each file is read by a forked child process (capture.prefetch). With
    `devices`, finished flows and non-IP frames also update that device table; with `policy`,
    finished flows are judged against the rule files as they end; with `names`, each finished flow
    is named first (names/), so the policy and the sink see its destination's name.
    """
    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    engine = Engine(settings, sink, payloads, devices, policy, names)
    stats = engine.stats
    for path in paths:
        name = os.fspath(path)
        fstats = FileStats(name=name)
        stats.files.append(fstats)
        try:
            size: int | None = os.path.getsize(name)
        except OSError:
            size = None
        try:
            source: PacketSource = open_capture(name)
            if prefetch:  # read in a child process, beside the packet work (one core each)
                source = PrefetchSource(source, batch_frames)
        except CaptureError as exc:
            fstats.error = str(exc)
            continue
        reporter.file_started(name, size)
        with source:
            for batch in source.batches(batch_frames):
                engine.process(batch)
                fstats.frames += len(batch)
                fstats.bytes += int(batch.wirelen.sum(dtype=np.uint64))
                reporter.advanced(source.stats.bytes_read)
            fstats.warnings.extend(source.stats.warnings)
            stats.skipped.update(source.stats.skipped)
        reporter.file_finished(name)
        stats.frames += fstats.frames
        stats.bytes += fstats.bytes

    engine.flush()
    engine.finish()
    stats.elapsed_s = time.perf_counter() - started
    return stats
