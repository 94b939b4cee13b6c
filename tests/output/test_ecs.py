from __future__ import annotations

import dataclasses
import io

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.flows.types import DIRECTION_OUTBOUND, END_REASONS, END_TCP_CLOSE, FlowRecords
from auditor.geo.types import GeoInfo
from auditor.names.types import NAME_SOURCES
from auditor.output.ecs import flow_documents, flow_json_lines, tcp_flag_text
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


def _random_records(draw: st.DrawFn) -> FlowRecords:
    n = draw(st.integers(1, 8))
    u64 = st.integers(0, 2**64 - 1)
    version = draw(st.lists(st.sampled_from([4, 6]), min_size=n, max_size=n))
    lo = [draw(st.integers(0, 2**32 - 1)) if v == 4 else draw(u64) for v in version]
    hi = [0 if v == 4 else draw(u64) for v in version]
    lo2 = [draw(st.integers(0, 2**32 - 1)) if v == 4 else draw(u64) for v in version]
    hi2 = [0 if v == 4 else draw(u64) for v in version]

    def col(strategy: st.SearchStrategy[int], dtype: type) -> np.ndarray:  # type: ignore[type-arg]
        return np.array(draw(st.lists(strategy, min_size=n, max_size=n)), dtype=dtype)

    first = col(st.integers(0, 2**62), np.int64)
    return FlowRecords(
        flow_id=col(st.integers(1, 2**40), np.uint64),
        ip_version=np.array(version, dtype=np.uint8),
        ip_proto=col(st.sampled_from([1, 6, 17, 47, 58, 132, 200]), np.uint8),
        src_hi=np.array(hi, dtype=np.uint64),
        src_lo=np.array(lo, dtype=np.uint64),
        dst_hi=np.array(hi2, dtype=np.uint64),
        dst_lo=np.array(lo2, dtype=np.uint64),
        src_port=col(st.integers(0, 65535), np.uint16),
        dst_port=col(st.integers(0, 65535), np.uint16),
        vlan_outer=col(st.sampled_from([0, 20, 4095, NO_VLAN]), np.uint16),
        vlan_inner=col(st.sampled_from([0, 7, NO_VLAN]), np.uint16),
        src_mac=col(st.sampled_from([0, 1, 0x4CBD8F112233, 2**48 - 1]), np.uint64),
        dst_mac=col(st.sampled_from([0, 0x00005E000101]), np.uint64),
        src_packets=col(st.integers(0, 2**40), np.uint64),
        dst_packets=col(st.integers(0, 2**40), np.uint64),
        src_bytes=col(st.integers(0, 2**50), np.uint64),
        dst_bytes=col(st.integers(0, 2**50), np.uint64),
        src_tcp_flags=col(st.integers(0, 255), np.uint8),
        dst_tcp_flags=col(st.integers(0, 255), np.uint8),
        first_ns=first,
        last_ns=first + col(st.integers(0, 10**12), np.int64),
        end_reason=col(st.integers(0, len(END_REASONS) - 1), np.uint8),
        direction=col(st.integers(0, 3), np.uint8),
        community_id=[f"1:{i}abc+/=" for i in range(n)],
    )


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from([None, {"hostname": "sensor-1", "type": "sensor"}]))
def test_flow_json_lines_equal_orjson_of_flow_documents(data: st.DataObject, observer: dict | None) -> None:
    records = data.draw(st.composite(_random_records)())
    want = [orjson.dumps(doc) for doc in flow_documents(records, observer)]
    assert flow_json_lines(records, observer) == want


def test_flow_json_lines_need_community_ids() -> None:
    with pytest.raises(ValueError, match="Community IDs"):
        flow_json_lines(_records(community_id=None))


def test_jsonl_writer_writes_ready_lines() -> None:
    stream = io.BytesIO()
    writer = JsonLinesWriter(stream)
    assert writer.write_lines([b'{"a":1}', b'{"b":2}']) == 2
    assert writer.write_lines([]) == 0
    assert stream.getvalue() == b'{"a":1}\n{"b":2}\n'


def _fake_geo(ip: str) -> GeoInfo:
    """A lookup that knows some addresses: by the last character, a country, an AS, both or nothing."""
    last = ip[-1]
    if last in "0123":
        return GeoInfo(country="CN", asn=64498, as_org='Demo "Cloud" \\ \u2028 CN')
    if last in "45":
        return GeoInfo(country="IE", asn=None, as_org=None)
    if last in "67":
        return GeoInfo(country=None, asn=7018, as_org=None)
    return GeoInfo(country=None, asn=None, as_org=None)


@settings(max_examples=150, deadline=None)
@given(st.data(), st.booleans())
def test_flow_json_lines_with_names_and_geo_equal_orjson_of_flow_documents(data: st.DataObject, with_geo: bool) -> None:
    records = data.draw(st.composite(_random_records)())
    n = len(records)
    wire_names = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(['a"b\\c', "\x1b[31mred", "x\ny"]))
    records = dataclasses.replace(
        records,
        domain=data.draw(st.lists(wire_names, min_size=n, max_size=n)),
        name_source=np.array(data.draw(st.lists(st.integers(0, len(NAME_SOURCES) - 1), min_size=n, max_size=n)),
                             dtype=np.uint8),
        name_mismatch=data.draw(st.lists(wire_names, min_size=n, max_size=n)),
    )
    geo = _fake_geo if with_geo else None
    databases = [{"type": "GeoLite2-Country", "build_date": "2026-11-01"}] if with_geo else None
    want = [orjson.dumps(doc) for doc in flow_documents(records, geo=geo, geo_databases=databases)]
    got = flow_json_lines(records, geo=geo, geo_databases=databases)
    assert got == want
    for line in got:  # wire text stays inside its JSON string: every line parses
        orjson.loads(line)
