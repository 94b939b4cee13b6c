"""Flows as Elastic Common Schema (ECS 8.x) documents, one dict per flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from auditor.flows.types import DIRECTION_NAMES, END_REASONS, PORTED_PROTOCOLS, TRANSPORT_NAMES, FlowRecords
from auditor.output._text import ip_texts, iso_times, mac_texts

ECS_VERSION = "8.17.0"
NO_VLAN = 0xFFFF

PORTED = PORTED_PROTOCOLS
TCP_FLAG_LETTERS = "FSRPAUEC"  # bit 0 FIN .. bit 7 CWR, as in Zeek's history / tcpdump


def tcp_flag_text(flags: int) -> str:
    """Return the TCP flags as letters, e.g. 'SA' for SYN+ACK (FSRPAUEC order)."""
    return "".join(letter for bit, letter in enumerate(TCP_FLAG_LETTERS) if flags >> bit & 1)


_FLAG_TEXT = [tcp_flag_text(i) for i in range(256)]
_DIRECTION = list(DIRECTION_NAMES)
_END = list(END_REASONS)


def _columns(flows: FlowRecords) -> Iterator[tuple[Any, ...]]:
    """Per-flow tuples of ready-to-print values; conversions are done column-wise (each distinct
    address or MAC formatted once), since the per-flow loops run once per flow on huge captures."""
    return zip(
        iso_times(flows.first_ns),
        iso_times(flows.last_ns),
        (flows.last_ns - flows.first_ns).tolist(),
        ip_texts(flows.ip_version, flows.src_hi, flows.src_lo),
        ip_texts(flows.ip_version, flows.dst_hi, flows.dst_lo),
        mac_texts(flows.src_mac),
        mac_texts(flows.dst_mac),
        flows.ip_version.tolist(),
        flows.ip_proto.tolist(),
        flows.src_port.tolist(),
        flows.dst_port.tolist(),
        flows.vlan_outer.tolist(),
        flows.vlan_inner.tolist(),
        flows.src_packets.tolist(),
        flows.dst_packets.tolist(),
        flows.src_bytes.tolist(),
        flows.dst_bytes.tolist(),
        flows.src_tcp_flags.tolist(),
        flows.dst_tcp_flags.tolist(),
        flows.flow_id.tolist(),
        flows.end_reason.tolist(),
        flows.direction.tolist(),
        flows.community_id or [],
        strict=True,
    )


def flow_documents(flows: FlowRecords, observer: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one ECS document per flow, oriented from initiator (source) to responder (destination)."""
    if not len(flows):
        return
    if flows.community_id is None:
        raise ValueError("flow records need their Community IDs (flows.community_id.with_community_ids)")
    # Column-wise conversions first (each distinct address/MAC formatted once); the loop below
    # only assembles dicts, since it runs once per flow on captures with millions of flows.
    columns = _columns(flows)
    ecs = {"version": ECS_VERSION}
    for (start, end, duration, sip, dip, smac, dmac, version, proto, sport, dport, vlan, inner,
         sp, dp, sb, db, sflags, dflags, flow_id, end_reason, direction, cid) in columns:
        source: dict[str, Any] = {"ip": sip}
        destination: dict[str, Any] = {"ip": dip}
        if proto in PORTED:
            source["port"] = sport
            destination["port"] = dport
        if smac:
            source["mac"] = smac
        if dmac:
            destination["mac"] = dmac
        source["packets"] = sp
        source["bytes"] = sb
        destination["packets"] = dp
        destination["bytes"] = db
        network: dict[str, Any] = {
            "type": "ipv4" if version == 4 else "ipv6",
            "iana_number": str(proto),
            "community_id": cid,
            "direction": _DIRECTION[direction],
            "packets": sp + dp,
            "bytes": sb + db,
        }
        transport = TRANSPORT_NAMES.get(proto)
        if transport:
            network["transport"] = transport
        if vlan != NO_VLAN:
            network["vlan"] = {"id": str(vlan)}
            if inner != NO_VLAN:
                network["inner"] = {"vlan": {"id": str(inner)}}
        auditor: dict[str, Any] = {"flow_id": flow_id, "end_reason": _END[end_reason]}
        if proto == 6:
            auditor["tcp_flags"] = {"source": _FLAG_TEXT[sflags], "destination": _FLAG_TEXT[dflags]}
        doc: dict[str, Any] = {
            "@timestamp": start,
            "ecs": ecs,
            "event": {
                "kind": "event",
                "category": ["network"],
                "type": ["connection", "end"],
                "dataset": "auditor.flow",
                "start": start,
                "end": end,
                "duration": duration,
            },
            "source": source,
            "destination": destination,
            "network": network,
            "auditor": auditor,
        }
        if observer:
            doc["observer"] = observer
        yield doc


__all__ = ["ECS_VERSION", "flow_documents", "flow_json_lines", "tcp_flag_text"]


def flow_json_lines(flows: FlowRecords, observer: dict[str, Any] | None = None) -> list[bytes]:
    """Return the documents of flow_documents as JSON lines, byte for byte, without building dicts.

    Every string in a flow record is one we formatted (addresses, MACs, times, Community IDs,
    fixed names), none taken from the wire, so no JSON escaping can be needed; a test checks
    that the output equals orjson.dumps of flow_documents. Records with wire strings (names,
    banners) must go through flow_documents and orjson instead.
    """
    if not len(flows):
        return []
    if flows.community_id is None:
        raise ValueError("flow records need their Community IDs (flows.community_id.with_community_ids)")
    tail = (b',"observer":' + orjson.dumps(observer)).decode() if observer else ""
    head = '{"@timestamp":"'
    event = (
        '","ecs":{"version":"' + ECS_VERSION + '"},"event":{"kind":"event","category":["network"],'
        '"type":["connection","end"],"dataset":"auditor.flow","start":"'
    )
    lines: list[bytes] = []
    append = lines.append
    for (start, end, duration, sip, dip, smac, dmac, version, proto, sport, dport, vlan, inner,
         sp, dp, sb, db, sflags, dflags, flow_id, end_reason, direction, cid) in _columns(flows):
        ported = proto in PORTED
        transport = TRANSPORT_NAMES.get(proto)
        if vlan != NO_VLAN:
            vlans = f',"vlan":{{"id":"{vlan}"}}'
            if inner != NO_VLAN:
                vlans += f',"inner":{{"vlan":{{"id":"{inner}"}}}}'
        else:
            vlans = ""
        append(
            (
                f"{head}{start}{event}{start}\",\"end\":\"{end}\",\"duration\":{duration}}},"
                f'"source":{{"ip":"{sip}"'
                + (f',"port":{sport}' if ported else "")
                + (f',"mac":"{smac}"' if smac else "")
                + f',"packets":{sp},"bytes":{sb}}},"destination":{{"ip":"{dip}"'
                + (f',"port":{dport}' if ported else "")
                + (f',"mac":"{dmac}"' if dmac else "")
                + f',"packets":{dp},"bytes":{db}}},"network":{{"type":"{"ipv4" if version == 4 else "ipv6"}",'
                f'"iana_number":"{proto}","community_id":"{cid}","direction":"{_DIRECTION[direction]}",'
                f'"packets":{sp + dp},"bytes":{sb + db}'
                + (f',"transport":"{transport}"' if transport else "")
                + vlans
                + f'}},"auditor":{{"flow_id":{flow_id},"end_reason":"{_END[end_reason]}"'
                + (
                    f',"tcp_flags":{{"source":"{_FLAG_TEXT[sflags]}","destination":"{_FLAG_TEXT[dflags]}"}}'
                    if proto == 6
                    else ""
                )
                + "}"
                + tail
                + "}"
            ).encode()
        )
    return lines
