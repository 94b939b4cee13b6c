"""Alerts as Elastic Common Schema documents (alerts.jsonl), one line per alert.

source/destination carry the same fields as flows.jsonl, summed over the alert's flows;
rule.* names the policy (a deny entry's finding: rule.id 'policy/deny-N'); destination.domain is
the destination's name and auditor.name_source where it came from; auditor.status is 'open', or
'waived' while a waiver (auditor.waiver) accepts the finding; event.severity is numeric as ECS
wants it (Elastic Security's scale: 21 low, 47 medium, 73 high, 99 critical) with the word in
auditor.severity; labels carry one
key per restriction list the device's vendor is on (value: the clause).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import orjson

from auditor.flows.types import PORTED_PROTOCOLS, TRANSPORT_NAMES, service_text
from auditor.geo.types import GeoInfo
from auditor.output._text import iso_time, mac_text
from auditor.output.ecs import ECS_VERSION, geo_fields
from auditor.policy.types import Alert

GeoLookup = Callable[[str], GeoInfo]

SEVERITY_NUMBERS = {"low": 21, "medium": 47, "high": 73, "critical": 99}


def alert_documents(
    alerts: Iterable[Alert], observer: dict[str, Any] | None = None, geo: GeoLookup | None = None,
    geo_databases: list[dict[str, str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one ECS document per alert; with `geo`, the destination's country and AS where known, and
    with `geo_databases` which databases (type and build date) said so, in auditor.geoip."""
    for a in alerts:
        start, end = iso_time(a.first_ns), iso_time(a.last_ns)
        source: dict[str, Any] = {"ip": a.source_ips[0] if a.source_ips else None}
        if a.device_mac:
            source["mac"] = mac_text(a.device_mac)
        source["packets"] = a.source_packets
        source["bytes"] = a.source_bytes
        destination: dict[str, Any] = {"ip": a.destination_ip}
        if a.destination_domain:
            destination["domain"] = a.destination_domain
        if len(a.services) == 1 and a.services[0][0] in PORTED_PROTOCOLS:
            destination["port"] = a.services[0][1]
        destination["packets"] = a.destination_packets
        destination["bytes"] = a.destination_bytes
        if geo is not None:
            destination.update(geo_fields(geo(a.destination_ip)))
        network: dict[str, Any] = {
            "type": "ipv6" if ":" in a.destination_ip else "ipv4",
            "direction": "internal" if a.destination_local else "outbound",
            "packets": a.source_packets + a.destination_packets,
            "bytes": a.source_bytes + a.destination_bytes,
        }
        transports = sorted({TRANSPORT_NAMES.get(p, str(p)) for p, _ in a.services})
        if len(transports) == 1:
            network["transport"] = transports[0]
        if len(a.vlans) == 1:
            network["vlan"] = {"id": str(a.vlans[0])}
        device: dict[str, Any] = {"id": mac_text(a.device_mac) if a.device_mac else a.source_ips[0]}
        labels: dict[str, str] = {}
        if a.vendor is not None:
            if a.vendor.name:
                device["manufacturer"] = a.vendor.name
            for entry in a.vendor.lists:
                labels[entry.list_id] = entry.clause
        rule: dict[str, Any] = {"id": a.rule_id, "name": a.rule_name, "ruleset": a.ruleset,
                                "reference": a.rule_reference}
        if a.rule_description:
            rule["description"] = a.rule_description
        auditor: dict[str, Any] = {
            "severity": a.severity,
            "status": a.status,
            "name_source": a.name_source or "none",
            "flows": a.flows,
            "services": [service_text(p, q) for p, q in a.services],
            "source_ips": list(a.source_ips),
            "community_ids": list(a.community_ids),
            "evidence": [_evidence(e) for e in a.evidence],
        }
        if a.vendor is not None:
            auditor["vendor"] = {"id": a.vendor.vendor_id, "class": a.vendor.device_class,
                                 "confidence": a.vendor.confidence,
                                 "lists": [{"id": e.list_id, "name": e.list_name, "clause": e.clause,
                                            "since": e.since} for e in a.vendor.lists]}
        if len(a.vlans) > 1:
            auditor["vlans"] = list(a.vlans)
        if a.waiver_id is not None:
            auditor["waiver"] = a.waiver_id
        if geo is not None and geo_databases:
            auditor["geoip"] = geo_databases
        doc: dict[str, Any] = {
            "@timestamp": start,
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "alert",
                "category": ["network"],
                "type": ["connection"],  # seen, not blocked: the auditor is passive
                "dataset": "auditor.alert",
                "id": a.alert_id,
                "severity": SEVERITY_NUMBERS[a.severity],
                "start": start,
                "end": end,
            },
            "rule": rule,
            "source": source,
            "destination": destination,
            "network": network,
            "device": device,
        }
        if labels:
            doc["labels"] = labels
        doc["auditor"] = auditor
        if observer:
            doc["observer"] = observer
        yield doc


def _evidence(e: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"source": e.source, "field": e.field, "value": e.value}
    if e.detail is not None:
        out["detail"] = e.detail
    if e.confidence is not None:
        out["confidence"] = e.confidence
    return out


def write_alerts_jsonl(alerts: Iterable[Alert], out: BinaryIO, geo: GeoLookup | None = None,
                       geo_databases: list[dict[str, str]] | None = None) -> int:
    """Write alerts as JSON lines to `out`; return how many were written."""
    n = 0
    for doc in alert_documents(alerts, geo=geo, geo_databases=geo_databases):
        out.write(orjson.dumps(doc) + b"\n")
        n += 1
    return n
