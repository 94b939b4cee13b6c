"""NameStage.annotate looks names up only for the rows that can have one (`_may_be_named`, decided once
per distinct client/server pair): it must name exactly what a look-up for every row names."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.flows.types import FlowRecords
from auditor.names.stage import SOURCE_SNI, NameStage
from auditor.names.types import DnsName
from tests.policy.test_evaluate import SECOND, T0, _address, _flow, _records

CLIENTS = ["192.168.1.10", "192.168.1.11", "fd00::10"]
SERVERS = ["93.184.216.34", "198.51.100.7", "192.168.1.20", "2001:db8::443", "fd00::20"]


def _annotate_every_row(stage: NameStage, flows: FlowRecords) -> FlowRecords:
    """The reference: the same stage with the pre-filter turned off (every row is looked up)."""
    stage._may_be_named = lambda f, *_: np.arange(len(f))  # type: ignore[method-assign]
    return stage.annotate(flows)


@st.composite
def _case(draw: st.DrawFn) -> tuple[NameStage, FlowRecords]:
    stage = NameStage()
    flows = []
    for _ in range(draw(st.integers(1, 30))):
        a, b = draw(st.sampled_from(CLIENTS)), draw(st.sampled_from(SERVERS))
        if (":" in a) != (":" in b):
            b = "2001:db8::443" if ":" in a else "93.184.216.34"
        src, dst = (b, a) if draw(st.booleans()) else (a, b)  # some flows start from the server side
        flows.append(_flow(src, dst, mac=1, proto=6, syn=draw(st.booleans()),
                           first=T0 + draw(st.integers(0, 600)) * SECOND))
    records = _records(flows)
    for _ in range(draw(st.integers(0, 12))):  # DNS bindings, some valid at the flows' times, some not
        client, server = _address(draw(st.sampled_from(CLIENTS))), _address(draw(st.sampled_from(SERVERS)))
        seen = T0 + draw(st.integers(-900, 600)) * SECOND
        name = draw(st.sampled_from(["a.example", "b.example", "cdn.example"]))
        stage.dns._bind(client, server, DnsName(name, (name,), seen, seen + draw(st.integers(0, 300)) * SECOND))
    for server in draw(st.lists(st.sampled_from(SERVERS), max_size=3)):  # local names (DHCP)
        stage.local._put(_address(server), "printer", "dhcp", T0)
    for fid in draw(st.lists(st.sampled_from(records.flow_id.tolist()), max_size=5)):  # SNIs seen on flows
        stage._name_flow(int(fid), "sni.example", SOURCE_SNI)
    return stage, records


@settings(max_examples=300, deadline=None)
@given(_case())
def test_prefiltered_annotate_names_what_a_look_up_of_every_row_names(case: tuple[NameStage, FlowRecords]) -> None:
    stage, records = case
    reference_stage = copy.deepcopy(stage)
    got = stage.annotate(records)
    want = _annotate_every_row(reference_stage, records)
    assert got.domain == want.domain
    assert got.name_source is not None and want.name_source is not None
    assert got.name_source.tolist() == want.name_source.tolist()
    assert got.name_mismatch == want.name_mismatch
    assert stage._flow_names == reference_stage._flow_names  # held names of ended flows are let go alike


def test_prefilter_skips_rows_nothing_can_name() -> None:
    stage = NameStage()
    records = _records([_flow("192.168.1.10", "93.184.216.34", mac=1, proto=6) for _ in range(5)])
    assert stage._may_be_named(records, np.zeros(5, bool), np.zeros(5, bool), np.zeros(5, bool)).size == 0
    stage.dns._bind(_address("192.168.1.10"), _address("93.184.216.34"), DnsName("a.example", ("a.example",), T0,
                                                                                T0 + 300 * SECOND))
    assert stage._may_be_named(records, np.zeros(5, bool), np.zeros(5, bool), np.zeros(5, bool)).tolist() == [
        0, 1, 2, 3, 4]
