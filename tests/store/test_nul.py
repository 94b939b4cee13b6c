"""A NUL from the wire (a DHIP firmware string, a domain, an alert's text) must not wedge the store:
PostgreSQL's text type refuses NUL, so one such value failed every write of a run and a sensor's follower
never moved past it. Both backends store U+FFFD in its place."""

from __future__ import annotations

from pathlib import Path

from auditor.store import open_store
from auditor.store.backend import NUL_STANDIN
from tests.store import alert_doc, flow_doc
from tests.store.test_follow import FakeSensor, device_doc


def test_nul_in_a_device_a_flow_and_an_alert_is_stored_as_a_replacement_character(target: str,
                                                                                 tmp_path: Path) -> None:
    sensor = FakeSensor(tmp_path / "eth1")
    sensor.write([flow_doc(i, domain="cam\x00.example") for i in range(10)])
    sensor.status()
    device = device_doc("00-11-22-33-44-55", "IPC-X")
    device["vendor"]["firmware"] = "2.800\x00evil"
    sensor.devices(device)
    sensor.alerts(alert_doc("a1", domain="cam\x00.example"))
    conn = open_store(target)
    try:
        result = sensor.follower(conn).step()
        assert result.flows == 10
        firmware = conn.execute("SELECT firmware FROM devices").fetchone()[0]
        domains = {r[0] for r in conn.execute("SELECT dst_domain FROM flows_hourly")}
        finding = conn.execute("SELECT dst_domain FROM findings").fetchone()[0]
    finally:
        conn.close()
    assert firmware == f"2.800{NUL_STANDIN}evil"
    assert domains == {f"cam{NUL_STANDIN}.example"}
    assert finding == f"cam{NUL_STANDIN}.example"
