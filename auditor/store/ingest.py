"""Open the store (a SQLite file or a PostgreSQL URL) and ingest one `auditor analyze --out DIR` run into it.

An ingest is ONE transaction: a crash or kill -9 part-way leaves the store as it was before.
It is idempotent: a run is keyed by its kind and the set of sha256s of its capture files, so the same
captures ingested again (with the same or other rules) replace that run's contribution instead of
adding to it. Per-run rows (flows_hourly, finding_runs, device_history, run_files, run_rules) are
deleted and written again; per-MAC and per-finding rows are merged (earliest first seen, latest last
seen) and finding totals are recomputed from finding_runs. A finding's status is a person's decision:
re-ingest never turns 'acknowledged' back into 'new'; an alert that says waived makes it 'waived'.
Two ingests at once take turns (conn.transaction() holds the store's write lock), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from auditor.errors import ConfigError, StoreError
from auditor.store.backend import StoreConnection, connect, describe
from auditor.store.runfiles import (
    BATCH,
    AlertRow,
    DeviceRow,
    FlowRow,
    ReadStats,
    RunSummary,
    file_sha256,
    iter_alerts,
    iter_flows,
    read_devices,
    read_summary,
)
from auditor.store.schema import migrate

logger = logging.getLogger(__name__)

HOUR_NS = 3_600 * 10**9
KINDS = ("analyze", "sense")


@dataclass(slots=True)
class IngestResult:
    """What one ingest wrote."""

    run_id: int
    run_key: str
    replaced: bool
    """True when the same captures were already in the store and their run was replaced."""
    devices: int = 0
    flows: int = 0
    """Flow lines read from flows.jsonl (all directions)."""
    flow_rows: int = 0
    """Rows of flows_hourly the run's flows were aggregated into."""
    alerts: int = 0
    findings_new: int = 0
    """Findings the store had never seen before this ingest."""
    skipped_lines: int = 0
    problems: list[str] = field(default_factory=list)


def open_store(target: Path | str) -> StoreConnection:
    """Return a connection to the store at `target` with its schema migrated: a SQLite path (created if absent; WAL,
    foreign keys on, a busy timeout) or a postgresql:// URL (the database must exist). StoreError when it cannot be
    opened or is too new, ConfigError for a URL without the 'postgres' extra installed."""
    conn = connect(target)
    try:
        migrate(conn)
    except StoreError as exc:
        conn.close()
        raise StoreError(f"{conn.target}: {exc}") from None
    except conn.errors as exc:
        conn.close()
        raise StoreError(f"{conn.target}: cannot open the store: {describe(exc)}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def run_key(kind: str, capture_sha256s: Iterable[str]) -> str:
    """Return the key of a run: the same kind and the same set of capture files give the same key."""
    text = "\n".join([kind, *sorted(set(capture_sha256s))])
    return hashlib.sha256(text.encode()).hexdigest()


def ingest_run(
    conn: StoreConnection,
    out_dir: Path,
    capture_paths: Sequence[Path] | None = None,
    *,
    kind: str = "analyze",
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Write the run in `out_dir` to the store in one transaction and return what was written.
    `capture_paths` default to the file names in summary.json (relative to the working directory);
    ConfigError when a capture file cannot be read, StoreError when the database cannot be written.
    `progress` is called with the number of flow lines read so far after each batch."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    summary = read_summary(out_dir)
    paths = list(capture_paths) if capture_paths else [Path(name) for name, _, _ in summary.files]
    if not paths:
        raise ConfigError(f"{out_dir / 'summary.json'}: names no capture file; give them with --capture")
    frames = {name: count for name, _, count in summary.files}
    files: list[tuple[str, str, int, int | None]] = []
    for path in paths:
        try:
            digest, size = file_sha256(path), path.stat().st_size
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the capture file to hash it ({exc.strerror or exc}); "
                              "give its location with --capture") from None
        files.append((str(path), digest, size, frames.get(str(path), frames.get(path.name))))
    key = run_key(kind, (digest for _, digest, _, _ in files))
    stats = ReadStats()
    if conn.in_transaction:  # never commit or roll back a transaction the caller opened
        raise StoreError("ingest_run needs a connection outside a transaction (open it with open_store)")
    try:
        with conn.transaction():
            result = _write(conn, out_dir, kind, key, summary, files, stats, batch, progress)
    except conn.errors as exc:
        raise StoreError(f"cannot write the run in {out_dir} to the store: {describe(exc)}") from exc
    logger.info("ingested %s as run %d (%s)", out_dir, result.run_id, "replaced" if result.replaced else "new")
    return result


def _write(
    conn: StoreConnection, out_dir: Path, kind: str, key: str, summary: RunSummary,
    files: list[tuple[str, str, int, int | None]], stats: ReadStats, batch: int,
    progress: Callable[[int], None] | None,
) -> IngestResult:
    now_ns = time.time_ns()
    found = conn.execute("SELECT id FROM runs WHERE run_key = ?", (key,)).fetchone()
    run_values = (kind, summary.sensor, summary.interface, summary.packets, summary.drops, summary.auditor_version,
                  orjson.dumps(summary.databases).decode(), orjson.dumps(summary.counters).decode(), now_ns)
    previous_alerts: set[str] = set()
    if found is not None:
        run_id = int(found[0])
        previous_alerts = {r[0] for r in conn.execute("SELECT alert_id FROM finding_runs WHERE run_id = ?", (run_id,))}
        for table in ("flows_hourly", "finding_runs", "device_history", "run_files", "run_rules"):
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # fixed table names
        conn.execute("UPDATE runs SET kind = ?, sensor = ?, interface = ?, packets = ?, drops = ?, "
                     "auditor_version = ?, databases = ?, counters = ?, ingested_ns = ? WHERE id = ?",
                     (*run_values, run_id))
    else:
        run_id = int(conn.execute("INSERT INTO runs (kind, sensor, interface, packets, drops, auditor_version, "
                                  "databases, counters, ingested_ns, run_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                  "RETURNING id", (*run_values, key)).fetchone()[0])
    result = IngestResult(run_id=run_id, run_key=key, replaced=found is not None)
    conn.executemany("INSERT INTO run_files (run_id, name, sha256, size_bytes, frames) VALUES (?, ?, ?, ?, ?)",
                     [(run_id, *f) for f in {f[0]: f for f in files}.values()])
    conn.executemany("INSERT INTO run_rules (run_id, path, sha256, ruleset) VALUES (?, ?, ?, ?) ON CONFLICT "
                     "(run_id, path) DO UPDATE SET sha256 = excluded.sha256, ruleset = excluded.ruleset",
                     [(run_id, *r) for r in summary.rules])

    span: list[int] = []
    devices = read_devices(out_dir / "devices.json", stats)
    for device in devices:
        _write_device(conn, run_id, device)
        span += (device.first_ns, device.last_ns)
    for rows in iter_flows(out_dir / "flows.jsonl", stats, batch):
        span += _write_flows(conn, run_id, rows)
        if progress is not None:
            progress(stats.flows)
    touched = set(previous_alerts)
    for alert in iter_alerts(out_dir / "alerts.jsonl", stats):
        result.findings_new += _write_finding(conn, run_id, alert)
        touched.add(alert.alert_id)
    _total_findings(conn, touched)

    conn.execute("UPDATE runs SET started_ns = ?, ended_ns = ?, flows = ?, skipped_lines = ? WHERE id = ?",
                 (min(span) if span else None, max(span) if span else None, stats.flows, stats.skipped_lines, run_id))
    result.devices, result.flows, result.alerts = stats.devices, stats.flows, stats.alerts
    result.skipped_lines, result.problems = stats.skipped_lines, list(stats.problems)
    result.flow_rows = int(conn.execute("SELECT COUNT(*) FROM flows_hourly WHERE run_id = ?", (run_id,)).fetchone()[0])
    return result


def _write_device(conn: StoreConnection, run_id: int, d: DeviceRow) -> None:
    verdict = (d.vendor_id, d.maker, d.brand, d.device_class, d.model, d.firmware, d.confidence, d.how, d.oem_relabel,
               orjson.dumps(d.lists).decode())
    conn.execute(
        "INSERT INTO devices (mac, first_ns, last_ns, oui_organization, vendor_id, maker, brand, class, model, "
        "firmware, confidence, how, oem_relabel, lists, verdict_run_id, verdict_ns) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (mac) DO UPDATE SET first_ns = min(devices.first_ns, excluded.first_ns), "
        "last_ns = max(devices.last_ns, excluded.last_ns), oui_organization = coalesce(excluded.oui_organization, "
        "devices.oui_organization)",
        (d.mac, d.first_ns, d.last_ns, d.oui_organization, *verdict, run_id, d.last_ns),
    )
    # the current verdict is the one of the run that saw the device last, whatever the order of ingest
    conn.execute(
        "UPDATE devices SET vendor_id = ?, maker = ?, brand = ?, class = ?, model = ?, firmware = ?, confidence = ?, "
        "how = ?, oem_relabel = ?, lists = ?, verdict_run_id = ?, verdict_ns = ? "
        "WHERE mac = ? AND (verdict_ns IS NULL OR verdict_ns <= ?)",
        (*verdict, run_id, d.last_ns, d.mac, d.last_ns),
    )
    conn.executemany(
        "INSERT INTO device_addresses (mac, ip, first_ns, last_ns) VALUES (?, ?, ?, ?) ON CONFLICT (mac, ip) "
        "DO UPDATE SET first_ns = min(device_addresses.first_ns, excluded.first_ns), "
        "last_ns = max(device_addresses.last_ns, excluded.last_ns)",
        [(d.mac, ip, first, last) for ip, first, last in d.ips],
    )
    history = (d.vendor_id, d.maker, d.device_class, d.model, d.firmware, d.confidence)
    before = conn.execute(
        "SELECT vendor_id, maker, class, model, firmware, confidence FROM device_history "
        "WHERE mac = ? AND seen_ns <= ? ORDER BY seen_ns DESC, run_id DESC LIMIT 1", (d.mac, d.last_ns),
    ).fetchone()
    if before is None or tuple(before) != history:
        conn.execute("INSERT INTO device_history (mac, run_id, seen_ns, vendor_id, maker, class, model, firmware, "
                     "confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (d.mac, run_id, d.last_ns, *history))


_FLOW_UPSERT = (
    "INSERT INTO flows_hourly AS f (run_id, hour, src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, "
    "direction, flows, bytes_out, bytes_in, packets_out, packets_in, first_ns, last_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, hour, src_mac, src_ip, dst_ip, dst_domain, country, asn, protocol, port, direction) "
    "DO UPDATE SET flows = f.flows + excluded.flows, bytes_out = f.bytes_out + excluded.bytes_out, "
    "bytes_in = f.bytes_in + excluded.bytes_in, packets_out = f.packets_out + excluded.packets_out, "
    "packets_in = f.packets_in + excluded.packets_in, first_ns = min(f.first_ns, excluded.first_ns), "
    "last_ns = max(f.last_ns, excluded.last_ns)"
)


def _write_flows(conn: StoreConnection, run_id: int, rows: list[FlowRow]) -> tuple[int, int]:
    """Aggregate one batch per hourly key, upsert it, and return the batch's (first, last) ns."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for r in rows:
        key = (r.start_ns // HOUR_NS, r.src_mac, r.src_ip, r.dst_ip, r.dst_domain, r.country, r.asn, r.protocol,
               r.port, r.direction)
        g = groups.get(key)
        if g is None:
            groups[key] = [1, r.bytes_out, r.bytes_in, r.packets_out, r.packets_in, r.start_ns, r.end_ns]
        else:
            g[0] += 1
            g[1] += r.bytes_out
            g[2] += r.bytes_in
            g[3] += r.packets_out
            g[4] += r.packets_in
            g[5] = min(g[5], r.start_ns)
            g[6] = max(g[6], r.end_ns)
    conn.executemany(_FLOW_UPSERT, [(run_id, *k, *v) for k, v in groups.items()])
    return min(r.start_ns for r in rows), max(r.end_ns for r in rows)


def _write_finding(conn: StoreConnection, run_id: int, a: AlertRow) -> int:
    """Upsert one alert's finding and its per-run row; return 1 when the finding is new to the store."""
    described = (a.rule_id, a.rule_name, a.ruleset, a.severity, a.device, a.src_ip, a.dst_ip, a.dst_domain, a.country,
                 a.asn, orjson.dumps(a.services).decode(), orjson.dumps(a.community_ids).decode(),
                 orjson.dumps(a.evidence).decode())
    found = conn.execute("SELECT status, last_ns, waiver_id FROM findings WHERE alert_id = ?", (a.alert_id,)).fetchone()
    new = found is None
    if new:
        conn.execute(
            "INSERT INTO findings (alert_id, rule_id, rule_name, ruleset, severity, device, src_ip, dst_ip, "
            "dst_domain, country, asn, services, community_ids, evidence, first_ns, last_ns, flows, bytes, status, "
            "waiver_id, first_run_id, last_run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (a.alert_id, *described, a.first_ns, a.last_ns, a.flows, a.bytes, "waived" if a.waived else "new",
             a.waiver_id if a.waived else None, run_id, run_id),
        )
    else:
        status, latest, waiver = str(found[0]), a.last_ns >= int(found[1]), found[2]
        if a.waived:
            status, waiver = "waived", a.waiver_id
        elif status == "waived" and latest:
            status, waiver = "new", None  # the waiver expired or was removed: the finding is open again
        conn.execute("UPDATE findings SET status = ?, waiver_id = ? WHERE alert_id = ?", (status, waiver, a.alert_id))
        if latest:  # describe the finding as its latest run saw it
            conn.execute(
                "UPDATE findings SET rule_id = ?, rule_name = ?, ruleset = ?, severity = ?, device = ?, src_ip = ?, "
                "dst_ip = ?, dst_domain = ?, country = ?, asn = ?, services = ?, community_ids = ?, evidence = ? "
                "WHERE alert_id = ?", (*described, a.alert_id),
            )
    conn.execute(
        "INSERT INTO finding_runs AS r (alert_id, run_id, first_ns, last_ns, flows, bytes, alert_status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id, run_id) DO UPDATE SET first_ns = min(r.first_ns, "
        "excluded.first_ns), last_ns = max(r.last_ns, excluded.last_ns), flows = r.flows + excluded.flows, "
        "bytes = r.bytes + excluded.bytes, alert_status = excluded.alert_status",
        (a.alert_id, run_id, a.first_ns, a.last_ns, a.flows, a.bytes, "waived" if a.waived else "open"),
    )
    return int(new)


def _total_findings(conn: StoreConnection, alert_ids: set[str]) -> None:
    """Recompute each finding's totals from its per-run rows; drop a finding no run raises any more (its only
    run was re-ingested under rules that no longer raise it)."""
    for alert_id in sorted(alert_ids):
        totals = conn.execute(
            "SELECT min(first_ns), max(last_ns), sum(flows), sum(bytes), count(*) FROM finding_runs WHERE alert_id = ?",
            (alert_id,),
        ).fetchone()
        if not totals[4]:
            conn.execute("DELETE FROM findings WHERE alert_id = ?", (alert_id,))
            continue
        first_run = conn.execute("SELECT run_id FROM finding_runs WHERE alert_id = ? ORDER BY first_ns, run_id LIMIT 1",
                                 (alert_id,)).fetchone()[0]
        last_run = conn.execute("SELECT run_id FROM finding_runs WHERE alert_id = ? ORDER BY last_ns DESC, run_id DESC "
                                "LIMIT 1", (alert_id,)).fetchone()[0]
        conn.execute("UPDATE findings SET first_ns = ?, last_ns = ?, flows = ?, bytes = ?, first_run_id = ?, "
                     "last_run_id = ? WHERE alert_id = ?", (*totals[:4], first_run, last_run, alert_id))
