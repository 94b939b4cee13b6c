"""Header decoding: a Batch of raw frames in, numpy columns of L2-L4 fields out (see types.Headers)."""

from __future__ import annotations

import numpy as np

from auditor.capture.types import Batch
from auditor.decode._state import DecodeState
from auditor.decode._view import FrameView
from auditor.decode.link import decode_link
from auditor.decode.network import decode_network
from auditor.decode.transport import decode_transport
from auditor.decode.types import KIND_OTHER_L2, KIND_SKIPPED, Headers

__all__ = ["Headers", "decode"]


def decode(batch: Batch) -> Headers:
    """Return the header columns of every frame in `batch`; bad frames are masked, never raised."""
    n = len(batch)
    st = DecodeState.empty(FrameView(batch), n)
    decode_link(st, batch.linktype)
    decode_network(st)
    decode_transport(st)
    # Well-formed frames that are neither IP nor IPv4 ARP (LLDP, EAPOL, STP, IPX, ...).
    other = (st.kind == KIND_SKIPPED) & (st.skip_reason == 0)
    st.kind[other] = KIND_OTHER_L2
    st.kind[st.skip_reason != 0] = KIND_SKIPPED
    return Headers(
        batch=batch,
        kind=st.kind,
        skip_reason=st.skip_reason,
        src_mac=st.src_mac,
        dst_mac=st.dst_mac,
        vlan_outer=st.vlan_outer,
        vlan_inner=st.vlan_inner,
        ethertype=st.ethertype,
        ip_version=st.ip_version,
        ip_proto=st.ip_proto,
        src_hi=st.src_hi,
        src_lo=st.src_lo,
        dst_hi=st.dst_hi,
        dst_lo=st.dst_lo,
        sport=st.sport,
        dport=st.dport,
        has_ports=st.has_ports,
        tcp_flags=st.tcp_flags,
        is_fragment=st.is_fragment,
        frag_offset=st.frag_offset,
        frag_id=st.frag_id,
        l3_off=st.l3_off.astype(np.int32),
        payload_off=st.payload_off.astype(np.int32),
        payload_len=st.payload_len.astype(np.int32),
        arp_op=st.arp_op,
    )
