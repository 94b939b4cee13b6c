"""Oracle: our flows' Community IDs and per-ID packet/byte totals equal tshark's, on every real capture.

tshark is run with IP reassembly off, so each frame is judged alone. One difference is by design
and is reproduced here from tshark's own fields rather than hidden:

* Later IP fragments carry no ports, so tshark gives them no Community ID. We count each later
  fragment into the flow of its datagram's first fragment (same addresses, protocol and IP id);
  a later fragment whose first fragment is not in the capture goes to a flow of its addresses
  and protocol with ports 0. The test attributes tshark's fragment frames by the same rule,
  using tshark's ip.id / ipv6.fraghdr.ident and the `communityid` package for orphans.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import communityid  # type: ignore[import-untyped]
import pytest

from tests.conftest import corpus_files, run_engine

FIELDS = (
    "communityid", "frame.len", "ip.src", "ip.dst", "ip.id", "ip.proto", "ip.frag_offset",
    "ipv6.src", "ipv6.dst", "ipv6.fraghdr.ident", "ipv6.fraghdr.nxt", "ipv6.fraghdr.offset",
)

pytestmark = pytest.mark.oracle


def _tshark_totals(tshark: str, path: Path) -> tuple[Counter[str], Counter[str]]:
    cmd = [tshark, "-n", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "--enable-protocol", "communityid", "-T", "fields", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    # tshark exits non-zero on a cut-short file after printing every frame it could read
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300).stdout
    packets: Counter[str] = Counter()
    octets: Counter[str] = Counter()
    first_fragment: dict[tuple[str, str, str], str] = {}
    later: list[tuple[tuple[str, str, str], str, int]] = []
    for line in out.splitlines():
        row = dict(zip(FIELDS, line.split("\t"), strict=True))
        length = int(row["frame.len"])
        if row["ipv6.fraghdr.ident"]:
            frag = (row["ipv6.src"], row["ipv6.dst"], row["ipv6.fraghdr.ident"])
            offset, proto = int(row["ipv6.fraghdr.offset"]), row["ipv6.fraghdr.nxt"]
        elif row["ip.frag_offset"] and row["ip.src"]:
            frag = (row["ip.src"], row["ip.dst"], row["ip.id"])
            offset, proto = int(row["ip.frag_offset"]), row["ip.proto"]
        else:
            frag, offset, proto = None, 0, ""
        cid = row["communityid"]
        if frag is not None and offset == 0 and cid:
            first_fragment[frag] = cid
        if frag is not None and offset > 0:
            later.append((frag, proto, length))
        elif cid:
            packets[cid] += 1
            octets[cid] += length
    for frag, proto, length in later:
        cid = first_fragment.get(frag) or _portless_id(frag[0], frag[1], int(proto))
        packets[cid] += 1
        octets[cid] += length
    return packets, octets


def _portless_id(src: str, dst: str, proto: int) -> str:
    cid = communityid.CommunityID()
    if proto in (6, 17, 132):
        maker = {6: communityid.FlowTuple.make_tcp, 17: communityid.FlowTuple.make_udp,
                 132: communityid.FlowTuple.make_sctp}[proto]
        return str(cid.calc(maker(src, dst, 0, 0)))
    return str(cid.calc(communityid.FlowTuple(proto, src, dst)))


DEMO = Path(__file__).resolve().parents[1] / "pcaps" / "demo-site.pcap"


@pytest.mark.parametrize("path", [DEMO, *corpus_files()], ids=lambda p: p.name)
def test_community_ids_and_totals_equal_tshark(path: Path, tshark: str) -> None:
    flows, _ = run_engine([path])
    packets: Counter[str] = Counter()
    octets: Counter[str] = Counter()
    for batch in flows:
        for i, cid in enumerate(batch.community_id):
            packets[cid] += int(batch.src_packets[i] + batch.dst_packets[i])
            octets[cid] += int(batch.src_bytes[i] + batch.dst_bytes[i])
    want_packets, want_octets = _tshark_totals(tshark, path)
    assert set(packets) == set(want_packets)
    assert packets == want_packets
    assert octets == want_octets
