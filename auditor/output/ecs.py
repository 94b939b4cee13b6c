"""Flows as Elastic Common Schema (ECS 8.x) documents, one dict per flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

import numpy as np
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
from auditor.output._text import ip_texts, iso_times, mac_text, mac_texts, per_distinct

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


__all__ = ["ECS_VERSION", "flow_documents", "flow_json_block", "flow_json_lines", "tcp_flag_text"]


def flow_json_lines(flows: FlowRecords, observer: dict[str, Any] | None = None,
                    geo: GeoLookup | None = None, geo_databases: list[dict[str, str]] | None = None) -> list[bytes]:
    """Return the documents of flow_documents as JSON lines, byte for byte, without building dicts.

    Every string in a flow record is one we formatted (addresses, MACs, times, Community IDs,
    fixed names), except the names from the wire and the AS organisations, which go through
    orjson; a test checks that the output equals orjson.dumps of flow_documents.
    """
    return [line.encode() for line in _flow_json_texts(flows, observer, geo, geo_databases)]


def flow_json_block(flows: FlowRecords, observer: dict[str, Any] | None = None,
                    geo: GeoLookup | None = None, geo_databases: list[dict[str, str]] | None = None) -> bytes:
    """Return the lines of flow_json_lines as one block, each ended by a newline (b"" for no flows):
    what a writer appends, without encoding and joining line by line."""
    texts = _flow_json_texts(flows, observer, geo, geo_databases)
    return ("\n".join(texts) + "\n").encode() if texts else b""


_PORT_PARTS: list[str] = []


def _port_parts() -> list[str]:
    """',"port":N' for every port, built once: ports repeat, and a lookup beats formatting per flow."""
    if not _PORT_PARTS:
        _PORT_PARTS.extend(f',"port":{p}' for p in range(65_536))
    return _PORT_PARTS


def _mac_part(mac: int) -> str:
    return f',"mac":"{mac_text(mac)}"' if mac else ""


def _flow_json_texts(flows: FlowRecords, observer: dict[str, Any] | None,
                     geo: GeoLookup | None, geo_databases: list[dict[str, str]] | None) -> list[str]:
    # One f-string per flow (a single allocation); every part that repeats across flows (addresses,
    # MACs, ports, flags, protocol, VLANs) is formatted once per distinct value before the loop.
    # At a sensor's stop every open flow goes through here: this loop decides how long SIGTERM takes.
    n = len(flows)
    if not n:
        return []
    if flows.community_id is None:
        raise ValueError("flow records need their Community IDs (flows.community_id.with_community_ids)")
    tail = ',"observer":' + orjson.dumps(observer).decode() + "}" if observer else "}"
    geoip = ',"geoip":' + orjson.dumps(geo_databases).decode() if geo_databases else ""
    starts, ends = iso_times(flows.first_ns), iso_times(flows.last_ns)
    sips = ip_texts(flows.ip_version, flows.src_hi, flows.src_lo)
    dips = ip_texts(flows.ip_version, flows.dst_hi, flows.dst_lo)
    smacs = per_distinct(flows.src_mac, _mac_part)
    dmacs = per_distinct(flows.dst_mac, _mac_part)
    ports = _port_parts()
    ported = np.isin(flows.ip_proto, list(PORTED))
    sports = [ports[p] if ok else "" for p, ok in zip(flows.src_port.tolist(), ported.tolist(), strict=True)]
    dports = [ports[p] if ok else "" for p, ok in zip(flows.dst_port.tolist(), ported.tolist(), strict=True)]
    # network's fixed head per (version, protocol) and its tail per (protocol, outer VLAN, inner VLAN)
    protos = per_distinct(
        flows.ip_proto.astype(np.uint16) | (flows.ip_version.astype(np.uint16) << 8),
        lambda k: f'"network":{{"type":"{"ipv4" if k >> 8 == 4 else "ipv6"}","iana_number":"{k & 0xFF}"',
    )
    net_tails = per_distinct(
        (flows.ip_proto.astype(np.uint64) << 32) | (flows.vlan_outer.astype(np.uint64) << 16)
        | flows.vlan_inner.astype(np.uint64),
        _network_tail,
    )
    flags = per_distinct(
        np.where(flows.ip_proto == 6, (flows.src_tcp_flags.astype(np.int32) << 8) | flows.dst_tcp_flags, -1),
        lambda k: f',"tcp_flags":{{"source":"{_FLAG_TEXT[k >> 8]}","destination":"{_FLAG_TEXT[k & 0xFF]}"}}'
        if k >= 0 else "",
    )
    directions = [f',"direction":"{d}"' for d in _DIRECTION]
    ends_text = [f',"end_reason":"{e}"' for e in _END]
    names = flows.domain if flows.domain is not None else repeat(None, n)
    sources = flows.name_source.tolist() if flows.name_source is not None else repeat(None, n)
    mismatches = flows.name_mismatch if flows.name_mismatch is not None else repeat(None, n)
    direction_col = flows.direction.tolist()
    # GeoIP answers and their text, once per address and per answer in this call (remote sides repeat)
    geo_parts: dict[GeoInfo, str] = {}
    looked_up: dict[str, GeoInfo] = {}

    def cached_geo(ip: str) -> GeoInfo:
        info = looked_up.get(ip)
        if info is None:
            assert geo is not None
            info = looked_up[ip] = geo(ip)
        return info

    lines: list[str] = []
    append = lines.append
    for (start, end, duration, sip, dip, smac, dmac, sport, dport, proto_part, net_tail, sp, dp, sb, db, flag_part,
         flow_id, end_reason, direction, cid, name, name_source, mismatch, swapped) in zip(
            starts, ends, (flows.last_ns - flows.first_ns).tolist(), sips, dips, smacs, dmacs, sports, dports, protos,
            net_tails, flows.src_packets.tolist(), flows.dst_packets.tolist(), flows.src_bytes.tolist(),
            flows.dst_bytes.tolist(), flags, flows.flow_id.tolist(), flows.end_reason.tolist(), direction_col,
            flows.community_id, names, sources, mismatches, midstream_inbound(flows).tolist(), strict=True):
        src_extra = dst_extra = extra = ""
        if name:
            if swapped:
                src_extra = ',"domain":' + orjson.dumps(name).decode()
            else:
                dst_extra = ',"domain":' + orjson.dumps(name).decode()
        placed = ""
        if geo is not None:
            side, info = _remote_geo(cached_geo, direction, sip, dip)
            if side and info is not None:
                placed = geo_parts.get(info, "")
                if info not in geo_parts:
                    fields = geo_fields(info)
                    placed = geo_parts[info] = "," + orjson.dumps(fields).decode()[1:-1] if fields else ""
                if side == "source":
                    src_extra += placed
                else:
                    dst_extra += placed
        if name_source is not None:
            extra = f',"name_source":"{NAME_SOURCES[name_source]}"'
            if mismatch:
                extra += ',"dns_name":' + orjson.dumps(mismatch).decode()
        if placed:
            extra += geoip
        append(
            f'{{"@timestamp":"{start}{_EVENT_HEAD}{start}","end":"{end}","duration":{duration}}},'
            f'"source":{{"ip":"{sip}"{sport}{smac},"packets":{sp},"bytes":{sb}{src_extra}}},'
            f'"destination":{{"ip":"{dip}"{dport}{dmac},"packets":{dp},"bytes":{db}{dst_extra}}},'
            f'{proto_part},"community_id":"{cid}"{directions[direction]},"packets":{sp + dp},"bytes":{sb + db}'
            f'{net_tail}}},"auditor":{{"flow_id":{flow_id}{ends_text[end_reason]}{flag_part}{extra}}}{tail}'
        )
    return lines


_EVENT_HEAD = (
    '","ecs":{"version":"' + ECS_VERSION + '"},"event":{"kind":"event","category":["network"],'
    '"type":["connection","end"],"dataset":"auditor.flow","start":"'
)


def _network_tail(key: int) -> str:
    """',"transport":...' and the VLAN ids of network, from (protocol << 32 | outer << 16 | inner)."""
    proto, vlan, inner = key >> 32, (key >> 16) & 0xFFFF, key & 0xFFFF
    transport = TRANSPORT_NAMES.get(proto)
    text = f',"transport":"{transport}"' if transport else ""
    if vlan != NO_VLAN:
        text += f',"vlan":{{"id":"{vlan}"}}'
        if inner != NO_VLAN:
            text += f',"inner":{{"vlan":{{"id":"{inner}"}}}}'
    return text
