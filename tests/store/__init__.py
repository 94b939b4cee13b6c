"""Helpers for the store tests: the demo run's output folder, and small synthetic runs written by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from auditor.store import StoreConnection

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo-site.pcap"
EXAMPLES = ROOT / "rules" / "examples"
TABLES = ("runs", "run_files", "run_rules", "devices", "device_history", "device_addresses", "flows_hourly",
          "findings", "finding_runs", "run_cursors", "reports", "report_findings")


_BUILT: list[Path] = []


def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return an `auditor analyze` output folder of the demo capture under rules/examples with the demo
    GeoIP databases (as `make demo` makes it), built once per session. Capture names in it are absolute."""
    from typer.testing import CliRunner

    from auditor.cli import app

    if _BUILT:
        return _BUILT[0]
    base = tmp_path_factory.mktemp("store-demo")
    spec = importlib.util.spec_from_file_location("make_demo_geoip", ROOT / "pcaps" / "make_demo_geoip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    country, asn = module.build(base / "geoip")
    out = base / "out"
    result = CliRunner().invoke(app, ["analyze", str(DEMO), "--rules", str(EXAMPLES), "--out", str(out), "-q",
                                      "--geoip-country", str(country), "--geoip-asn", str(asn)])
    assert result.exit_code in (0, 1), result.output
    _BUILT.append(out)
    return out


def table_contents(conn: StoreConnection, *, volatile: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table, sorted; without runs.ingested_ns unless `volatile`."""
    contents = {}
    for table in TABLES:
        rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        if table == "runs" and not volatile:
            names = [d[0] for d in conn.execute("SELECT * FROM runs LIMIT 0").description]
            drop = names.index("ingested_ns")
            rows = [tuple(v for i, v in enumerate(r) if i != drop) for r in rows]
        contents[table] = sorted(rows, key=repr)
    return contents


def flow_doc(n: int, *, src_mac: str = "AA-BB-CC-00-00-01", dst_ip: str = "203.0.113.9", domain: str | None = None,
             start: str = "2026-11-02T09:00:00.000000Z", end: str | None = None, bytes_out: int = 100,
             bytes_in: int = 50, port: int = 443) -> dict[str, Any]:
    """Return a flow document as flows.jsonl holds it (only the fields the store reads, plus a few)."""
    destination: dict[str, Any] = {"ip": dst_ip, "port": port, "packets": 1, "bytes": bytes_in,
                                   "geo": {"country_iso_code": "CN"}, "as": {"number": 64498}}
    if domain is not None:
        destination["domain"] = domain
    return {
        "event": {"start": start, "end": end or start},
        "source": {"ip": "192.168.1.10", "port": 40000 + n % 20000, "mac": src_mac, "packets": 2, "bytes": bytes_out},
        "destination": destination,
        "network": {"iana_number": "6", "direction": "outbound", "transport": "tcp"},
        "auditor": {"flow_id": n, "end_reason": "end-of-capture", "name_source": "none"},
    }


def alert_doc(alert_id: str, *, status: str = "open", waiver: str | None = None, start: str = "2026-11-02T09:00:00Z",
              domain: str | None = None) -> dict[str, Any]:
    """Return an alert document as alerts.jsonl holds it."""
    aud: dict[str, Any] = {"severity": "high", "status": status, "flows": 1, "services": ["tcp/443"],
                           "community_ids": ["1:x"], "evidence": []}
    if waiver:
        aud["waiver"] = waiver
    destination: dict[str, Any] = {"ip": "203.0.113.9", "port": 443}
    if domain is not None:
        destination["domain"] = domain
    return {"@timestamp": start, "event": {"id": alert_id, "start": start, "end": start},
            "rule": {"id": "r1", "name": "rule one", "ruleset": "site"}, "source": {"mac": "AA-BB-CC-00-00-01"},
            "destination": destination, "network": {"bytes": 150}, "device": {"id": "AA-BB-CC-00-00-01"},
            "auditor": aud}


def write_run(out: Path, capture: Path, *, flows: list[dict[str, Any]] | None = None,
              alerts: list[dict[str, Any]] | None = None, devices: list[dict[str, Any]] | None = None,
              extra_flow_lines: list[bytes] | None = None, rules_sha: str = "ab" * 32) -> Path:
    """Write a small synthetic `analyze --out` folder whose summary names `capture` (created if absent)."""
    out.mkdir(parents=True, exist_ok=True)
    if not capture.exists():
        capture.write_bytes(b"not really a pcap: only its sha256 matters to the store " + capture.name.encode())
    summary = {"auditor_version": "test", "files": [{"name": str(capture), "frames": 1, "bytes": 1}], "packets": 7,
               "rules": [{"path": "site.yaml", "sha256": rules_sha, "ruleset": "site"}],
               "geoip": [{"database_type": "GeoLite2-Country", "build_date": "2026-11-22", "path": "c.mmdb"}]}
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "devices.json").write_text(json.dumps({"devices": devices or []}))
    with open(out / "flows.jsonl", "wb") as fh:
        for doc in flows or []:
            fh.write(json.dumps(doc).encode() + b"\n")
        for line in extra_flow_lines or []:
            fh.write(line + b"\n")
    (out / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts or []))
    return out
