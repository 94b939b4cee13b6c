"""Flow stage: packets grouped into bidirectional flows with counters, timeouts and Community IDs."""

from __future__ import annotations

from auditor.flows.community_id import community_ids, flow_tuple, with_community_ids
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS, LocalNetworks
from auditor.flows.payloads import PayloadRegistry
from auditor.flows.table import BatchFlows, FlowOptions, FlowTable
from auditor.flows.types import DIRECTION_NAMES, END_REASONS, FlowRecords, Payload

__all__ = [
    "DEFAULT_LOCAL_NETWORKS",
    "DIRECTION_NAMES",
    "END_REASONS",
    "BatchFlows",
    "FlowOptions",
    "FlowRecords",
    "FlowTable",
    "LocalNetworks",
    "Payload",
    "PayloadRegistry",
    "community_ids",
    "flow_tuple",
    "with_community_ids",
]
