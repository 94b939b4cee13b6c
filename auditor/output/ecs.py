"""Flows as Elastic Common Schema (ECS 8.x) documents, one dict per flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

import orjson

from auditor.flows.types import (
    DIRECTION_INBOUND,
    DIRECTION_NAMES,
    DIRECTION_OUTBOUND,
    END_REASONS,
    PORTED_PROTOCOLS,
    TRANSPORT_NAMES,
    FlowRecords,
    midstream_inbound,
)
from auditor.geo.types import GeoInfo
from auditor.names.types import NAME_SOURCES
from auditor.output._text import ip_texts, iso_times, mac_texts

GeoLookup = Callable[[str], GeoInfo]

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
        flows.domain if flows.domain is not None else repeat(None, len(flows)),
        flows.name_source.tolist() if flows.name_source is not None else repeat(None, len(flows)),
        flows.name_mismatch if flows.name_mismatch is not None else repeat(None, len(flows)),
        midstream_inbound(flows).tolist(),
        strict=True,
    )


def _remote_geo(geo: GeoLookup | None, direction: int, sip: str, dip: str) -> tuple[str, GeoInfo | None]:
    """Return which side is remote ('source' or 'destination', '' for none) and its GeoIP answer."""
    if geo is None:
        return "", None
    if direction == DIRECTION_OUTBOUND or direction == 0:  # 0: external, both remote: the destination
        return "destination", geo(dip)
    if direction == DIRECTION_INBOUND:
        return "source", geo(sip)
    return "", None


def geo_fields(info: GeoInfo | None) -> dict[str, Any]:
    """Return the ECS geo.country_iso_code and as.number / as.organization.name of an address, as known."""
    out: dict[str, Any] = {}
    if info is None:
        return out
    if info.country:
        out["geo"] = {"country_iso_code": info.country}
    if info.asn is not None:
        out["as"] = {"number": info.asn}
        if info.as_org:
            out["as"]["organization"] = {"name": info.as_org}
    return out


def flow_documents(flows: FlowRecords, observer: dict[str, Any] | None = None,
                   geo: GeoLookup | None = None,
                   geo_databases: list[dict[str, str]] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one ECS document per flow, oriented from initiator (source) to responder (destination).

    With names (names/), the responder's name is destination.domain and auditor.name_source says
    where it came from; a TCP connection whose SYN was missed and looks inbound is named from its
    local side, so its name is the source's (source.domain). With `geo`, the remote side carries
    geo.country_iso_code and as.number / as.organization.name, and auditor.geoip says which
    databases (`geo_databases`: type and build date) gave them.
    """
    if not len(flows):
        return
    if flows.community_id is None:
        raise ValueError("flow records need their Community IDs (flows.community_id.with_community_ids)")
    # Column-wise conversions first (each distinct address/MAC formatted once); the loop below
    # only assembles dicts, since it runs once per flow on captures with millions of flows.
    columns = _columns(flows)
    ecs = {"version": ECS_VERSION}
    for (start, end, duration, sip, dip, smac, dmac, version, proto, sport, dport, vlan, inner,
         sp, dp, sb, db, sflags, dflags, flow_id, end_reason, direction, cid, name, name_source, mismatch,
         swapped) in columns:
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
        if name:
            (source if swapped else destination)["domain"] = name
        side, info = _remote_geo(geo, direction, sip, dip)
        placed = geo_fields(info) if side else {}
        if placed:
            (source if side == "source" else destination).update(placed)
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
        if name_source is not None:
            auditor["name_source"] = NAME_SOURCES[name_source]
        if mismatch:
            auditor["dns_name"] = mismatch
        if placed and geo_databases:
            auditor["geoip"] = geo_databases
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


def flow_json_lines(flows: FlowRecords, observer: dict[str, Any] | None = None,
                    geo: GeoLookup | None = None, geo_databases: list[dict[str, str]] | None = None) -> list[bytes]:
    """Return the documents of flow_documents as JSON lines, byte for byte, without building dicts.

    Every string in a flow record is one we formatted (addresses, MACs, times, Community IDs,
    fixed names), except the names from the wire and the AS organisations, which go through
    orjson; a test checks that the output equals orjson.dumps of flow_documents.
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
    geoip = ',"geoip":' + orjson.dumps(geo_databases).decode() if geo_databases else ""
    lines: list[bytes] = []
    append = lines.append
    for (start, end, duration, sip, dip, smac, dmac, version, proto, sport, dport, vlan, inner,
         sp, dp, sb, db, sflags, dflags, flow_id, end_reason, direction, cid, name, name_source, mismatch,
         swapped) in _columns(flows):
        ported = proto in PORTED
        side, info = _remote_geo(geo, direction, sip, dip)
        src_extra = dst_extra = ""
        if name:
            named = ',"domain":' + orjson.dumps(name).decode()
            if swapped:
                src_extra = named
            else:
                dst_extra = named
        fields = geo_fields(info) if side else {}
        if fields:
            placed = "," + orjson.dumps(fields).decode()[1:-1]
            if side == "source":
                src_extra += placed
            else:
                dst_extra += placed
        names = ""
        if name_source is not None:
            names = f',"name_source":"{NAME_SOURCES[name_source]}"'
            if mismatch:
                names += ',"dns_name":' + orjson.dumps(mismatch).decode()
        if fields:
            names += geoip
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
                + f',"packets":{sp},"bytes":{sb}{src_extra}}},"destination":{{"ip":"{dip}"'
                + (f',"port":{dport}' if ported else "")
                + (f',"mac":"{dmac}"' if dmac else "")
                + f',"packets":{dp},"bytes":{db}{dst_extra}}},'
                f'"network":{{"type":"{"ipv4" if version == 4 else "ipv6"}",'
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
                + names
                + "}"
                + tail
                + "}"
            ).encode()
        )
    return lines
