"""Alerts as ECS documents (alerts.jsonl): fields, severities, and untrusted names kept as data."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from auditor.devices.types import ListEntry, VendorVerdict
from auditor.output.alerts import SEVERITY_NUMBERS, alert_documents, service_text, write_alerts_jsonl
from auditor.output.ecs import ECS_VERSION
from auditor.policy.types import SEVERITIES, Alert, Evidence

T0 = 1_793_610_000_000_000_000  # 2026-11-02T09:00:00Z
HOSTILE = 'Evil "Corp"\nLtd\r\n<script>alert(\'x\')</script>\\ \u2028 \x00 \u00e9'

VERDICT = VendorVerdict(
    vendor_id="hikvision",
    name="Hikvision",
    device_class="camera",
    how="oui-pin",
    detail="4C-BD-8F/24",
    confidence=0.95,
    lists=(ListEntry("ndaa-889", "NDAA FY2019 section 889", "(a)(1)(B)", "2019-08-13"),
           ListEntry("fcc-covered", "FCC Covered List", "47 CFR 1.50002", "2021-03-12", note="video only")),
)
EVIDENCE = (
    Evidence("oui-pin", "source.mac", "4C-BD-8F/24", "Hikvision", 0.95),
    Evidence("policy-group", "devices[0]", "lists: ndaa-889", "rules/site.yaml:4: policy 'listed' governs this device"),
    Evidence("policy-allow", "allow", "203.0.113.50 tcp/443", "not local; approved: local"),
)


def _alert(**overrides: object) -> Alert:
    base: dict[str, object] = dict(
        alert_id="0123456789abcdef0123456789abcdef",
        rule_id="listed",
        rule_name="Listed vendors reach only local networks",
        ruleset="site",
        rule_description="No data off site.",
        rule_reference="rules/site.yaml:4",
        severity="high",
        device_mac=0x4CBD8F112233,
        vendor=VERDICT,
        source_ips=("192.168.10.21",),
        destination_ip="203.0.113.50",
        destination_local=False,
        services=((6, 443),),
        vlans=(20,),
        flows=3,
        source_packets=14,
        source_bytes=1360,
        destination_packets=10,
        destination_bytes=9200,
        first_ns=T0 + 1_234,  # sub-microsecond: cut, not rounded
        last_ns=T0 + 9_000_999_999,
        community_ids=("1:abc=", "1:def="),
        evidence=EVIDENCE,
    )
    base.update(overrides)
    return Alert(**base)  # type: ignore[arg-type]


def test_alert_documents_shape_an_alert_as_ecs() -> None:
    (doc,) = list(alert_documents([_alert()]))
    assert doc == {
        "@timestamp": "2026-11-02T09:00:00.000001Z",
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "alert",
            "category": ["network"],
            "type": ["connection"],
            "dataset": "auditor.alert",
            "id": "0123456789abcdef0123456789abcdef",
            "severity": 73,
            "start": "2026-11-02T09:00:00.000001Z",
            "end": "2026-11-02T09:00:09.000999Z",
        },
        "rule": {"id": "listed", "name": "Listed vendors reach only local networks", "ruleset": "site",
                 "reference": "rules/site.yaml:4", "description": "No data off site."},
        "source": {"ip": "192.168.10.21", "mac": "4C-BD-8F-11-22-33", "packets": 14, "bytes": 1360},
        "destination": {"ip": "203.0.113.50", "port": 443, "packets": 10, "bytes": 9200},
        "network": {"type": "ipv4", "direction": "outbound", "packets": 24, "bytes": 10560, "transport": "tcp",
                    "vlan": {"id": "20"}},
        "device": {"id": "4C-BD-8F-11-22-33", "manufacturer": "Hikvision"},
        "labels": {"ndaa-889": "(a)(1)(B)", "fcc-covered": "47 CFR 1.50002"},
        "auditor": {
            "severity": "high",
            "status": "open",
            "name_source": "none",
            "flows": 3,
            "services": ["tcp/443"],
            "source_ips": ["192.168.10.21"],
            "community_ids": ["1:abc=", "1:def="],
            "evidence": [
                {"source": "oui-pin", "field": "source.mac", "value": "4C-BD-8F/24", "detail": "Hikvision",
                 "confidence": 0.95},
                {"source": "policy-group", "field": "devices[0]", "value": "lists: ndaa-889",
                 "detail": "rules/site.yaml:4: policy 'listed' governs this device"},
                {"source": "policy-allow", "field": "allow", "value": "203.0.113.50 tcp/443",
                 "detail": "not local; approved: local"},
            ],
            "vendor": {"id": "hikvision", "class": "camera", "confidence": 0.95,
                       "lists": [{"id": "ndaa-889", "name": "NDAA FY2019 section 889", "clause": "(a)(1)(B)",
                                  "since": "2019-08-13"},
                                 {"id": "fcc-covered", "name": "FCC Covered List", "clause": "47 CFR 1.50002",
                                  "since": "2021-03-12"}]},
        },
    }


@pytest.mark.parametrize(("severity", "number"), [("low", 21), ("medium", 47), ("high", 73), ("critical", 99)])
def test_alert_documents_give_ecs_numeric_severity_and_the_word(severity: str, number: int) -> None:
    (doc,) = list(alert_documents([_alert(severity=severity)]))
    assert (doc["event"]["severity"], doc["auditor"]["severity"]) == (number, severity)


def test_severity_numbers_cover_every_severity_in_rising_order() -> None:
    assert list(SEVERITY_NUMBERS) == list(SEVERITIES)
    assert [SEVERITY_NUMBERS[s] for s in SEVERITIES] == [21, 47, 73, 99]


@pytest.mark.parametrize(
    ("services", "port", "transport"),
    [
        (((6, 443),), 443, "tcp"),
        (((17, 123),), 123, "udp"),
        (((132, 38412),), 38412, "sctp"),
        (((6, 443), (6, 8443)), None, "tcp"),  # two ports: no single destination.port
        (((6, 443), (17, 443)), None, None),  # two transports
        (((1, 0),), None, "icmp"),  # no port at all
        (((1, 0), (6, 443)), None, None),
    ],
)
def test_alert_documents_give_destination_port_only_for_one_ported_service(
    services: tuple[tuple[int, int], ...], port: int | None, transport: str | None
) -> None:
    (doc,) = list(alert_documents([_alert(services=services)]))
    assert doc["destination"].get("port") == port
    assert ("port" in doc["destination"]) == (port is not None)
    assert doc["network"].get("transport") == transport
    assert ("transport" in doc["network"]) == (transport is not None)


def test_alert_documents_write_every_service_as_text() -> None:
    services = ((1, 0), (6, 443), (17, 123), (47, 0), (58, 0), (132, 5060), (253, 0))
    (doc,) = list(alert_documents([_alert(services=services)]))
    assert doc["auditor"]["services"] == ["icmp", "tcp/443", "udp/123", "gre", "ipv6-icmp", "sctp/5060", "253"]
    assert [service_text(p, q) for p, q in ((6, 0), (17, 65535), (1, 8))] == ["tcp/0", "udp/65535", "icmp"]


@pytest.mark.parametrize(("local", "direction"), [(True, "internal"), (False, "outbound")])
def test_alert_documents_give_direction_by_destination_locality(local: bool, direction: str) -> None:
    (doc,) = list(alert_documents([_alert(destination_local=local, destination_ip="192.168.10.5")]))
    assert doc["network"]["direction"] == direction


def test_alert_documents_of_ipv6_and_several_vlans() -> None:
    (doc,) = list(alert_documents([_alert(destination_ip="2001:db8::1", source_ips=("fd00::5", "fd00::6"),
                                          vlans=(10, 20))]))
    assert doc["network"]["type"] == "ipv6"
    assert "vlan" not in doc["network"]
    assert doc["auditor"]["vlans"] == [10, 20]
    assert doc["source"]["ip"] == "fd00::5"
    assert doc["auditor"]["source_ips"] == ["fd00::5", "fd00::6"]
    (one,) = list(alert_documents([_alert(vlans=())]))
    assert "vlan" not in one["network"]
    assert "vlans" not in one["auditor"]


def test_alert_documents_of_a_device_without_mac_name_it_by_address() -> None:
    (doc,) = list(alert_documents([_alert(device_mac=0, vendor=None, source_ips=("10.1.2.3",),
                                          evidence=EVIDENCE[1:])]))
    assert doc["source"] == {"ip": "10.1.2.3", "packets": 14, "bytes": 1360}
    assert doc["device"] == {"id": "10.1.2.3"}
    assert "labels" not in doc
    assert "vendor" not in doc["auditor"]
    assert [e["source"] for e in doc["auditor"]["evidence"]] == ["policy-group", "policy-allow"]


def test_alert_documents_of_a_vendor_on_no_list_have_no_labels() -> None:
    vendor = dataclasses.replace(VERDICT, vendor_id="axis", name="Axis", lists=())
    (doc,) = list(alert_documents([_alert(vendor=vendor, rule_description=None)]))
    assert doc["device"] == {"id": "4C-BD-8F-11-22-33", "manufacturer": "Axis"}
    assert "labels" not in doc
    assert doc["auditor"]["vendor"]["lists"] == []
    assert "description" not in doc["rule"]


def test_alert_documents_add_the_observer_when_given() -> None:
    observer = {"hostname": "sensor-1", "type": "sensor"}
    (doc,) = list(alert_documents([_alert()], observer))
    assert doc["observer"] == observer
    assert list(doc)[-1] == "observer"


def test_write_alerts_jsonl_keeps_hostile_names_as_data_one_line_each() -> None:
    vendor = dataclasses.replace(VERDICT, name=HOSTILE, lists=(ListEntry("ndaa-889", HOSTILE, HOSTILE, "x"),))
    evidence = (Evidence("oui-pin", "source.mac", HOSTILE, HOSTILE, 0.5),)
    alerts = [_alert(vendor=vendor, rule_name=HOSTILE, rule_description=HOSTILE, evidence=evidence),
              _alert(device_mac=0, vendor=None, rule_name=HOSTILE, alert_id="f" * 32)]
    out = io.BytesIO()
    assert write_alerts_jsonl(alerts, out) == 2
    raw = out.getvalue()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["device"]["manufacturer"] == HOSTILE
    assert first["rule"]["name"] == first["rule"]["description"] == HOSTILE
    assert first["labels"] == {"ndaa-889": HOSTILE}
    assert first["auditor"]["evidence"] == [{"source": "oui-pin", "field": "source.mac", "value": HOSTILE,
                                             "detail": HOSTILE, "confidence": 0.5}]
    assert (second["rule"]["name"], second["event"]["id"], second["device"]["id"]) == (
        HOSTILE, "f" * 32, "192.168.10.21")
    assert first == next(alert_documents([alerts[0]]))


def test_write_alerts_jsonl_writes_nothing_for_no_alerts() -> None:
    out = io.BytesIO()
    assert write_alerts_jsonl([], out) == 0
    assert out.getvalue() == b""
