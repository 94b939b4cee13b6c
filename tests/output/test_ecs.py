from __future__ import annotations

import io

import numpy as np
import orjson

from auditor.flows.types import DIRECTION_OUTBOUND, END_TCP_CLOSE, FlowRecords
from auditor.output.ecs import flow_documents, tcp_flag_text
from auditor.output.jsonl import JsonLinesWriter

NO_VLAN = 0xFFFF


def _records(**overrides: object) -> FlowRecords:
    base: dict[str, object] = dict(
        flow_id=np.array([7], dtype=np.uint64),
        ip_version=np.array([4], dtype=np.uint8),
        ip_proto=np.array([6], dtype=np.uint8),
        src_hi=np.zeros(1, dtype=np.uint64),
        src_lo=np.array([0xC0A80A15], dtype=np.uint64),  # 192.168.10.21
        dst_hi=np.zeros(1, dtype=np.uint64),
        dst_lo=np.array([0xCB007132], dtype=np.uint64),  # 203.0.113.50
        src_port=np.array([40001], dtype=np.uint16),
        dst_port=np.array([443], dtype=np.uint16),
        vlan_outer=np.array([20], dtype=np.uint16),
        vlan_inner=np.array([NO_VLAN], dtype=np.uint16),
        src_mac=np.array([0x4CBD8F112233], dtype=np.uint64),
        dst_mac=np.array([0], dtype=np.uint64),
        src_packets=np.array([6], dtype=np.uint64),
        dst_packets=np.array([5], dtype=np.uint64),
        src_bytes=np.array([740], dtype=np.uint64),
        dst_bytes=np.array([5120], dtype=np.uint64),
        src_tcp_flags=np.array([0x1B], dtype=np.uint8),  # FIN SYN PSH ACK
        dst_tcp_flags=np.array([0x12], dtype=np.uint8),  # SYN ACK
        first_ns=np.array([1_793_610_000_000_000_000], dtype=np.int64),
        last_ns=np.array([1_793_610_001_500_000_000], dtype=np.int64),
        end_reason=np.array([END_TCP_CLOSE], dtype=np.uint8),
        direction=np.array([DIRECTION_OUTBOUND], dtype=np.uint8),
        community_id=["1:abc="],
    )
    base.update(overrides)
    return FlowRecords(**base)  # type: ignore[arg-type]


def test_flow_documents_shape_a_tcp_flow_as_ecs() -> None:
    (doc,) = list(flow_documents(_records()))
    assert doc["@timestamp"] == "2026-11-02T09:00:00.000000Z"
    assert doc["event"]["start"] == "2026-11-02T09:00:00.000000Z"
    assert doc["event"]["end"] == "2026-11-02T09:00:01.500000Z"
    assert doc["event"]["duration"] == 1_500_000_000
    assert doc["event"]["kind"] == "event"
    assert doc["source"] == {"ip": "192.168.10.21", "port": 40001, "mac": "4C-BD-8F-11-22-33",
                             "packets": 6, "bytes": 740}
    assert doc["destination"] == {"ip": "203.0.113.50", "port": 443, "packets": 5, "bytes": 5120}
    net = doc["network"]
    assert net["transport"] == "tcp"
    assert net["type"] == "ipv4"
    assert net["iana_number"] == "6"
    assert net["community_id"] == "1:abc="
    assert net["direction"] == "outbound"
    assert net["vlan"] == {"id": "20"}
    assert "inner" not in net
    assert (net["packets"], net["bytes"]) == (11, 5860)
    assert doc["auditor"] == {"flow_id": 7, "end_reason": "tcp-close",
                              "tcp_flags": {"source": "FSPA", "destination": "SA"}}


def test_flow_documents_omit_ports_for_portless_protocols_and_show_inner_vlan() -> None:
    recs = _records(ip_proto=np.array([1], dtype=np.uint8), vlan_inner=np.array([10], dtype=np.uint16))
    (doc,) = list(flow_documents(recs))
    assert "port" not in doc["source"]
    assert "port" not in doc["destination"]
    assert doc["network"]["transport"] == "icmp"
    assert doc["network"]["inner"] == {"vlan": {"id": "10"}}
    assert "tcp_flags" not in doc["auditor"]


def test_tcp_flag_text_orders_letters_by_bit() -> None:
    assert tcp_flag_text(0) == ""
    assert tcp_flag_text(0xFF) == "FSRPAUEC"
    assert tcp_flag_text(0x04) == "R"


def test_jsonl_writer_writes_one_line_per_document() -> None:
    stream = io.BytesIO()
    writer = JsonLinesWriter(stream)
    assert writer.write(flow_documents(_records())) == 1
    assert writer.write([]) == 0
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert orjson.loads(lines[0])["network"]["community_id"] == "1:abc="
    assert writer.written == 1
