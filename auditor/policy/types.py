"""Records the policy stage produces: alerts (findings), one per device x destination x rule."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.devices.types import VendorVerdict

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
"""In rising order: failing on 'high' also fails on 'critical'."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason behind an alert: what was seen or matched, and where."""

    source: str
    """'oui-pin', 'org-pattern' (vendor attribution), 'policy-group' (why the device is in the rule's
    group), 'policy-allow' (why the destination is not approved), 'policy-deny' (the deny entry it
    matched), 'waiver' or 'waiver-expired'."""
    field: str
    value: str
    detail: str | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """Flows a grouped device started toward a destination its policy does not approve, summed."""

    alert_id: str
    """Stable across runs: a hash of ruleset, rule, device and destination."""
    rule_id: str
    rule_name: str
    ruleset: str
    rule_description: str | None
    rule_reference: str
    """Where the rule is written: 'rules/policies/default.yaml:12'."""
    severity: str
    """One of SEVERITIES."""
    device_mac: int
    """The initiator's MAC; 0 on links without MACs (the device is then its source address)."""
    vendor: VendorVerdict | None
    source_ips: tuple[str, ...]
    """Addresses the device sent these flows from (capped)."""
    destination_ip: str
    destination_local: bool
    services: tuple[tuple[int, int], ...]
    """(IP protocol, destination port) pairs seen, port 0 for protocols without ports (capped)."""
    vlans: tuple[int, ...]
    flows: int
    source_packets: int
    source_bytes: int
    destination_packets: int
    destination_bytes: int
    first_ns: int
    last_ns: int
    community_ids: tuple[str, ...]
    """Community IDs of the first flows (capped): the same flows in flows.jsonl, Zeek or Suricata."""
    evidence: tuple[Evidence, ...]
    destination_domain: str | None = None
    """The name the destination was known by (wire text: escape it where shown), None if never named."""
    name_source: str | None = None
    """Where that name came from: sni, quic, http-host, dns, dhcp or mdns (names.types.NAME_SOURCES)."""
    status: str = "open"
    """'open', or 'waived' when an unexpired waiver covers these flows (no longer counted as a finding)."""
    waiver_id: str | None = None
    """The waiver that covers these flows, or covered them before it expired."""

    @property
    def severity_rank(self) -> int:
        """Return 0 (low) .. 3 (critical)."""
        return SEVERITIES.index(self.severity)
