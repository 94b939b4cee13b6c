"""Build a store from the demo capture once (analyze --db with the demo GeoIP databases), for the report tests."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from auditor.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "pcaps" / "demo-site.pcap"
EXAMPLES = ROOT / "rules" / "examples"
NOW = "2026-11-03T00:00:00Z"  # the demo capture is 2026-11-02T09:00Z
HOUR_NS = 3_600 * 10**9
WEEK_NS = 7 * 24 * HOUR_NS
HOSTILE = '<script>alert(1)</script>'
FORMULA = '=HYPERLINK("http://x")'


def build_demo_store(tmp: Path) -> Path:
    """Return a store holding the demo run (10 devices, 29 flows, 6 open findings and 1 waived)."""
    spec = importlib.util.spec_from_file_location("make_demo_geoip", ROOT / "pcaps" / "make_demo_geoip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    country, asn = module.build(tmp / "geoip")
    db = tmp / "demo.sqlite"
    result = CliRunner().invoke(app, [
        "analyze", str(DEMO), "--rules", str(EXAMPLES), "--out", str(tmp / "out"), "--db", str(db), "--quiet",
        "--geoip-country", str(country), "--geoip-asn", str(asn),
    ])
    assert result.exit_code == 0, result.output
    return db


def copy_store(db: Path, tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copy(db, target)
    return target


def add_hostile_device(db: Path) -> None:
    """A device whose wire strings (model from a DHCP host name, brand from an SSDP SERVER) carry markup and a
    spreadsheet formula, with a finding to a destination named the same way."""
    conn = sqlite3.connect(db)
    with conn:
        t0 = conn.execute("SELECT started_ns FROM runs").fetchone()[0]
        conn.execute(
            "INSERT INTO devices (mac, first_ns, last_ns, maker, brand, class, model, firmware, confidence, how, "
            "lists) VALUES ('02-00-00-00-00-66', ?, ?, ?, ?, 'camera', ?, ?, 0.5, 'protocol', ?)",
            (t0, t0 + 10**9, FORMULA, HOSTILE, HOSTILE + "|`x`\nnext", "-1+2",
             '[{"id": "x", "name": "<b>list</b>", "clause": "@SUM(A1)"}]'),
        )
        conn.execute(
            "INSERT INTO findings (alert_id, rule_id, rule_name, severity, device, dst_ip, dst_domain, country, asn, "
            "services, first_ns, last_ns, flows, bytes, status, first_run_id, last_run_id) "
            "VALUES ('hostile1', '+rule', ?, 'high', '02-00-00-00-00-66', '192.0.2.9', ?, 'CN', 1, '[\"tcp/443\"]', "
            "?, ?, 1, 10, 'new', 1, 1)", (HOSTILE, FORMULA, t0, t0),
        )
        conn.execute("INSERT INTO finding_runs (alert_id, run_id, first_ns, last_ns, flows, bytes, alert_status) "
                     "VALUES ('hostile1', 1, ?, ?, 1, 10, 'open')", (t0, t0))
    conn.close()


def add_previous_week(db: Path) -> None:
    """Copy the demo run one week earlier as run 2 (all its flows; the findings of the EZVIZ camera and the
    scanner), plus a listed device seen only then (gone this week)."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO runs (id, run_key, kind, sensor, interface, started_ns, ended_ns, packets, drops, flows, "
            "skipped_lines, auditor_version, databases, counters, ingested_ns) "
            "SELECT 2, 'previous-week', kind, 'sensor-a', 'eth1', started_ns - ?, ended_ns - ?, 100, 3, flows, 0, "
            "auditor_version, databases, counters, ingested_ns FROM runs WHERE id = 1", (WEEK_NS, WEEK_NS))
        conn.execute("INSERT INTO run_files SELECT 2, 'old.pcap', 'ab' || sha256, size_bytes, frames FROM run_files")
        conn.execute("INSERT INTO run_rules SELECT 2, path, sha256, ruleset FROM run_rules")
        conn.execute(
            "INSERT INTO flows_hourly SELECT 2, hour - 168, src_mac, src_ip, dst_ip, dst_domain, country, asn, "
            "protocol, port, direction, flows, bytes_out, bytes_in, packets_out, packets_in, first_ns - ?, "
            "last_ns - ? FROM flows_hourly WHERE run_id = 1", (WEEK_NS, WEEK_NS))
        conn.execute(
            "INSERT INTO finding_runs SELECT alert_id, 2, first_ns - ?, last_ns - ?, flows, bytes, alert_status "
            "FROM finding_runs WHERE run_id = 1 AND alert_id IN (SELECT alert_id FROM findings WHERE device IN "
            "('58-8F-CF-40-10-40', 'C0-9B-F4-B1-02-15'))", (WEEK_NS, WEEK_NS))
        conn.execute("UPDATE findings SET first_ns = (SELECT min(first_ns) FROM finding_runs r WHERE "
                     "r.alert_id = findings.alert_id)")
        conn.execute("UPDATE devices SET first_ns = first_ns - ? WHERE mac IN (SELECT src_mac FROM flows_hourly)",
                     (WEEK_NS,))
        t = conn.execute("SELECT started_ns FROM runs WHERE id = 2").fetchone()[0]
        conn.execute("INSERT INTO devices (mac, first_ns, last_ns, maker, class, lists) VALUES "
                     "('02-00-00-00-00-77', ?, ?, 'Old Maker', 'camera', '[{\"id\": \"ndaa-889\"}]')", (t, t + 10**9))
    conn.close()


# A device name that would fetch three ways if it were markup; escaped, it is text and nothing is fetched.
FETCHING = ('<img src="http://192.0.2.1/x.png"><link rel="stylesheet" href="http://192.0.2.1/x.css">'
            '<style>@import url(http://192.0.2.1/y.css);</style>')
# Unbroken strings a table cell must wrap: a 203-character host name (three 63-character labels) and a model.
LONG_NAME = ".".join(c * 63 for c in "abc") + ".example.com"
LONG_MODEL = "M" * 120


def add_long_device(db: Path) -> None:
    """A device whose maker is FETCHING and whose brand and model are long unbroken strings, with a finding to
    LONG_NAME; for layout (wrapping) and fetch tests."""
    conn = sqlite3.connect(db)
    with conn:
        t0 = conn.execute("SELECT started_ns FROM runs").fetchone()[0]
        conn.execute(
            "INSERT INTO devices (mac, first_ns, last_ns, maker, brand, class, model, firmware, confidence, how, "
            "lists) VALUES ('02-00-00-00-00-68', ?, ?, ?, ?, 'camera', ?, NULL, 0.5, 'protocol', '[]')",
            (t0, t0 + 10**9, FETCHING, LONG_NAME, LONG_MODEL),
        )
        conn.execute(
            "INSERT INTO findings (alert_id, rule_id, rule_name, severity, device, dst_ip, dst_domain, country, asn, "
            "services, first_ns, last_ns, flows, bytes, status, first_run_id, last_run_id) "
            "VALUES ('long1', 'long-rule', ?, 'medium', '02-00-00-00-00-68', '2001:db8:ffff:ffff:ffff:ffff:ffff:1', "
            "?, 'CN', 1, '[\"tcp/443\"]', ?, ?, 1, 10, 'new', 1, 1)", (FETCHING, LONG_NAME, t0, t0),
        )
        conn.execute("INSERT INTO finding_runs (alert_id, run_id, first_ns, last_ns, flows, bytes, alert_status) "
                     "VALUES ('long1', 1, ?, ?, 1, 10, 'open')", (t0, t0))
    conn.close()
