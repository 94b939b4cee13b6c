"""Flows as Elastic Common Schema (ECS 8.x) documents, one dict per flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from auditor.flows.types import DIRECTION_NAMES, END_REASONS, FlowRecords
from auditor.output._text import ip_texts, iso_times, mac_texts

ECS_VERSION = "8.17.0"
NO_VLAN = 0xFFFF

# IANA protocol keywords, lower-cased, as ECS network.transport expects
TRANSPORT_NAMES = {
    1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp", 51: "ah",
    58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}
PORTED = (6, 17, 132)
TCP_FLAG_LETTERS = "FSRPAUEC"  # bit 0 FIN .. bit 7 CWR, as in Zeek's history / tcpdump


def tcp_flag_text(flags: int) -> str:
    """Return the TCP flags as letters, e.g. 'SA' for SYN+ACK (FSRPAUEC order)."""
    return "".join(letter for bit, letter in enumerate(TCP_FLAG_LETTERS) if flags >> bit & 1)


def flow_documents(flows: FlowRecords, observer: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one ECS document per flow, oriented from initiator (source) to responder (destination)."""
    n = len(flows)
    if not n:
        return
    src_ip = ip_texts(flows.ip_version, flows.src_hi, flows.src_lo)
    dst_ip = ip_texts(flows.ip_version, flows.dst_hi, flows.dst_lo)
    src_mac = mac_texts(flows.src_mac)
    dst_mac = mac_texts(flows.dst_mac)
    start = iso_times(flows.first_ns)
    end = iso_times(flows.last_ns)
    cols = {
        name: getattr(flows, name).tolist()
        for name in (
            "flow_id", "ip_version", "ip_proto", "src_port", "dst_port", "vlan_outer", "vlan_inner",
            "src_packets", "dst_packets", "src_bytes", "dst_bytes", "src_tcp_flags", "dst_tcp_flags",
            "first_ns", "last_ns", "end_reason",
        )
    }
    dir_list = flows.direction.tolist()
    for i in range(n):
        proto = cols["ip_proto"][i]
        ported = proto in PORTED
        source: dict[str, Any] = {"ip": src_ip[i]}
        destination: dict[str, Any] = {"ip": dst_ip[i]}
        if ported:
            source["port"] = cols["src_port"][i]
            destination["port"] = cols["dst_port"][i]
        if src_mac[i]:
            source["mac"] = src_mac[i]
        if dst_mac[i]:
            destination["mac"] = dst_mac[i]
        sp, dp = cols["src_packets"][i], cols["dst_packets"][i]
        sb, db = cols["src_bytes"][i], cols["dst_bytes"][i]
        source["packets"], source["bytes"] = sp, sb
        destination["packets"], destination["bytes"] = dp, db
        network: dict[str, Any] = {
            "type": "ipv4" if cols["ip_version"][i] == 4 else "ipv6",
            "iana_number": str(proto),
            "community_id": flows.community_id[i],
            "direction": DIRECTION_NAMES[dir_list[i]],
            "packets": sp + dp,
            "bytes": sb + db,
        }
        transport = TRANSPORT_NAMES.get(proto)
        if transport:
            network["transport"] = transport
        if cols["vlan_outer"][i] != NO_VLAN:
            network["vlan"] = {"id": str(cols["vlan_outer"][i])}
            if cols["vlan_inner"][i] != NO_VLAN:
                network["inner"] = {"vlan": {"id": str(cols["vlan_inner"][i])}}
        auditor: dict[str, Any] = {"flow_id": cols["flow_id"][i], "end_reason": END_REASONS[cols["end_reason"][i]]}
        if proto == 6:
            auditor["tcp_flags"] = {
                "source": tcp_flag_text(cols["src_tcp_flags"][i]),
                "destination": tcp_flag_text(cols["dst_tcp_flags"][i]),
            }
        doc: dict[str, Any] = {
            "@timestamp": start[i],
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": ["connection", "end"],
                "dataset": "auditor.flow",
                "start": start[i],
                "end": end[i],
                "duration": cols["last_ns"][i] - cols["first_ns"][i],
            },
            "source": source,
            "destination": destination,
            "network": network,
            "auditor": auditor,
        }
        if observer:
            doc["observer"] = observer
        yield doc


__all__ = ["ECS_VERSION", "flow_documents", "tcp_flag_text"]
