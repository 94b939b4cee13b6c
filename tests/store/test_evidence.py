"""Evidence pcaps: a finding's packets read back from the very capture files that raised it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapReader, wrpcap

from auditor.errors import ConfigError
from auditor.flows.community_id import community_ids, flow_tuple
from auditor.store import StoreConnection, ingest_run, open_store
from auditor.store.evidence import (
    PCAP_MAGIC_NS,
    CaptureFile,
    finding_flows,
    locate_captures,
    write_evidence,
    write_finding_evidence,
)
from auditor.store.runfiles import file_sha256
from tests.store import DEMO, demo_out, write_run

SCANNER_DST = "203.0.113.80"
SCANNER_PORT = 8080
NS = 10**9


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_out(tmp_path_factory)


def demo_store(tmp_path: Path, demo: Path, capture: Path | None = None) -> StoreConnection:
    """Return a store holding the demo run (its capture hashed at `capture` when given)."""
    conn = open_store(tmp_path / "s.sqlite")
    ingest_run(conn, demo, [capture] if capture else None)
    return conn


def scanner_finding(conn: StoreConnection) -> str:
    """Return the id of the scanner's critical finding (destination 203.0.113.80 tcp/8080)."""
    rows = conn.execute("SELECT alert_id FROM findings WHERE severity = 'critical' AND dst_ip = ?",
                        (SCANNER_DST,)).fetchall()
    assert len(rows) == 1
    return str(rows[0][0])


def frames(path: Path) -> list[tuple[bytes, int, int]]:
    """Return (bytes, time ns, wire length) of every frame of a pcap, read by scapy."""
    with PcapReader(str(path)) as reader:
        return [(bytes(p), int(p.time * NS), int(p.wirelen or len(p))) for p in reader]


def is_scanner_connection(p: Packet) -> bool:
    return IP in p and TCP in p and SCANNER_DST in (p[IP].src, p[IP].dst) and SCANNER_PORT in (p[TCP].sport,
                                                                                                  p[TCP].dport)


def cid(src: str, dst: str, proto: int, sport: int, dport: int) -> str:
    """Return the Community ID of one IPv4 packet (ICMP: sport/dport are type and code)."""
    s, d = (int.from_bytes(bytes(map(int, a.split("."))), "big") for a in (src, dst))
    cols = [np.array([v]) for v in (4, proto, 0, s, 0, d, sport, dport)]
    ft = flow_tuple(*cols)
    return community_ids(cols[0], cols[1], ft.a_hi, ft.a_lo, ft.b_hi, ft.b_lo, ft.port_a, ft.port_b)[0]


def at(packet: Packet, t: float) -> Packet:
    packet.time = t
    return packet


ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
CLIENT, SERVER = "192.168.1.10", "203.0.113.9"


def tcp(t: float, flags: str, *, back: bool = False, payload: bytes = b"") -> Packet:
    ip = IP(src=SERVER, dst=CLIENT) if back else IP(src=CLIENT, dst=SERVER)
    ports = TCP(sport=443, dport=40000, flags=flags) if back else TCP(sport=40000, dport=443, flags=flags)
    return at(ETH / ip / ports / Raw(payload), t)


def connection(t: float) -> list[Packet]:
    """A short TCP connection 192.168.1.10:40000 -> 203.0.113.9:443 starting at t."""
    return [tcp(t, "S"), tcp(t + 0.05, "SA", back=True), tcp(t + 0.1, "A"), tcp(t + 0.2, "PA", payload=b"x" * 50),
            tcp(t + 0.3, "FA"), tcp(t + 0.35, "FA", back=True), tcp(t + 0.4, "A")]


CONNECTION_ID = cid(CLIENT, SERVER, 6, 40000, 443)


# --- the demo finding -------------------------------------------------------------------------------------

def test_write_finding_evidence_holds_exactly_the_scanner_connection(tmp_path: Path, demo: Path) -> None:
    conn = demo_store(tmp_path, demo)
    out = tmp_path / "e.pcap"
    result = write_finding_evidence(conn, scanner_finding(conn), out)
    with PcapReader(str(DEMO)) as reader:
        expected = [(bytes(p), int(p.time * NS), int(p.wirelen or len(p))) for p in reader if is_scanner_connection(p)]
    assert expected and result.packets == len(expected)
    assert frames(out) == expected  # same frames, same order, same times, byte for byte
    assert result.missing == [] and result.files_read == [str(DEMO)] and result.linktype == 1
    assert int.from_bytes(out.read_bytes()[:4], "little") == PCAP_MAGIC_NS


@pytest.mark.oracle
def test_write_finding_evidence_matches_tshark_filter(tmp_path: Path, demo: Path, tshark: str) -> None:
    conn = demo_store(tmp_path, demo)
    out = tmp_path / "e.pcap"
    result = write_finding_evidence(conn, scanner_finding(conn), out)
    wanted = subprocess.run([tshark, "-r", str(DEMO), "-Y", f"ip.addr=={SCANNER_DST} && tcp.port=={SCANNER_PORT}",
                             "-T", "fields", "-e", "frame.len"], capture_output=True, text=True, check=True)
    read = subprocess.run([tshark, "-r", str(out), "-T", "fields", "-e", "frame.len"], capture_output=True,
                          text=True)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == wanted.stdout.split()
    assert result.packets == len(wanted.stdout.split())


def test_finding_flows_reads_ids_span_and_files(tmp_path: Path, demo: Path) -> None:
    conn = demo_store(tmp_path, demo)
    alert_id = scanner_finding(conn)
    flows = finding_flows(conn, alert_id)
    assert flows.alert_id == alert_id and len(flows.community_ids) == 1
    assert [c.name for c in flows.captures] == [str(DEMO)] and len(flows.captures[0].sha256) == 64
    assert flows.first_ns <= flows.last_ns
    assert finding_flows(conn, alert_id[:8]) == flows  # a unique prefix will do


def test_finding_flows_unknown_id_is_a_config_error(tmp_path: Path, demo: Path) -> None:
    conn = demo_store(tmp_path, demo)
    with pytest.raises(ConfigError, match="'feedface' is not in the store"):
        finding_flows(conn, "feedface")
    with pytest.raises(ConfigError, match="not in the store"):
        finding_flows(conn, "9")  # too short to be taken as a prefix


def test_write_finding_evidence_refuses_a_capture_changed_after_ingest(tmp_path: Path, demo: Path) -> None:
    copy = tmp_path / "copy.pcap"
    shutil.copy(DEMO, copy)
    conn = demo_store(tmp_path, demo, copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    out = tmp_path / "e.pcap"
    with pytest.raises(ConfigError, match=r"changed since it was ingested: \S*copy\.pcap .*--capture") as info:
        write_finding_evidence(conn, scanner_finding(conn), out)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_write_finding_evidence_finds_a_moved_capture_by_content(tmp_path: Path, demo: Path) -> None:
    copy = tmp_path / "copy.pcap"
    shutil.copy(DEMO, copy)
    conn = demo_store(tmp_path, demo, copy)
    moved = tmp_path / "elsewhere" / "renamed.pcap"
    moved.parent.mkdir()
    copy.rename(moved)
    out = tmp_path / "e.pcap"
    with pytest.raises(ConfigError, match=r"not found: .*copy\.pcap; give its location with --capture"):
        write_finding_evidence(conn, scanner_finding(conn), out)
    result = write_finding_evidence(conn, scanner_finding(conn), out, [tmp_path / "s.sqlite", moved])
    assert result.files_read == [str(moved)] and result.packets == 12


def test_locate_captures_prefers_given_file_with_the_recorded_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(b"one")
    b.write_bytes(b"one")
    wanted = CaptureFile(str(a), file_sha256(a), 3)
    assert locate_captures([wanted]) == [a]
    assert locate_captures([wanted], [b]) == [b]


# --- selection ------------------------------------------------------------------------------------------

def test_write_evidence_window_excludes_a_later_flow_reusing_the_tuple(tmp_path: Path) -> None:
    first, later = connection(1000.0), connection(5000.0)
    other = [at(ETH / IP(src=CLIENT, dst=SERVER) / TCP(sport=40001, dport=443, flags="S"), 1000.15)]
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [*first[:3], *other, *first[3:], *later])
    out = tmp_path / "e.pcap"
    everything = write_evidence([capture], [CONNECTION_ID], out)
    assert everything.packets == len(first) + len(later)  # the same Community ID: the tuple was reused
    result = write_evidence([capture], [CONNECTION_ID], out, (999 * NS, 1001 * NS))
    assert result.packets == len(first)
    assert [f[0] for f in frames(out)] == [bytes(p) for p in first]


def test_write_finding_evidence_uses_the_findings_span(tmp_path: Path) -> None:
    """End to end through the store: the finding's first/last seen bound the packets."""
    first, later = connection(1_790_000_000.0), connection(1_790_003_600.0)
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [*first, *later])
    alert = {"@timestamp": "2026-09-21T14:13:20Z",
             "event": {"id": "a" * 32, "start": "2026-09-21T14:13:20.000000Z", "end": "2026-09-21T14:13:20.400000Z"},
             "rule": {"id": "r1"}, "source": {"mac": "02-00-00-00-00-01"}, "destination": {"ip": SERVER},
             "auditor": {"flows": 1, "community_ids": [CONNECTION_ID]}}
    run = write_run(tmp_path / "o", capture, alerts=[alert])
    conn = open_store(tmp_path / "s.sqlite")
    ingest_run(conn, run)
    out = tmp_path / "e.pcap"
    result = write_finding_evidence(conn, "a" * 32, out)
    assert result.packets == len(first)
    assert frames(out) == frames(capture)[: len(first)]


def test_write_evidence_keeps_both_directions_of_icmp_echo_and_skips_non_ip(tmp_path: Path) -> None:
    request = at(ETH / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=7, seq=1), 1.0)
    reply = at(ETH / IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=7, seq=1), 1.1)
    arp = at(ETH / ARP(psrc=CLIENT, pdst=SERVER), 1.05)
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [request, arp, reply])
    out = tmp_path / "e.pcap"
    result = write_evidence([capture], [cid(CLIENT, SERVER, 1, 8, 0)], out)
    assert result.packets == 2
    assert [f[0] for f in frames(out)] == [bytes(request), bytes(reply)]


def test_write_evidence_keeps_later_fragments_of_a_datagram(tmp_path: Path) -> None:
    datagram = ETH / IP(src=CLIENT, dst=SERVER, id=99) / UDP(sport=5000, dport=6000) / Raw(b"y" * 3000)
    pieces = [at(ETH / f, 2.0 + i / 100) for i, f in enumerate(fragment(datagram[IP], fragsize=1000))]
    assert len(pieces) > 1
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), pieces)
    result = write_evidence([capture], [cid(CLIENT, SERVER, 17, 5000, 6000)], tmp_path / "e.pcap")
    assert result.packets == len(pieces)


def test_write_evidence_writes_no_file_when_nothing_matches(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), connection(10.0))
    out = tmp_path / "e.pcap"
    result = write_evidence([capture], ["1:not-a-flow-of-this-file="], out)
    assert result.packets == 0 and result.missing == ["1:not-a-flow-of-this-file="]
    assert not out.exists() and list(tmp_path.iterdir()) == [capture]


def test_write_evidence_refuses_mixed_link_types(tmp_path: Path) -> None:
    ethernet, raw = tmp_path / "eth.pcap", tmp_path / "raw.pcap"
    wrpcap(str(ethernet), connection(10.0))
    wrpcap(str(raw), [at(p[IP], 20.0) for p in connection(20.0)], linktype=101)
    out = tmp_path / "e.pcap"
    with pytest.raises(ConfigError, match="link types 1 and 101"):
        write_evidence([ethernet, raw], [CONNECTION_ID], out)
    assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_write_evidence_refuses_to_overwrite_a_capture(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), connection(10.0))
    before = capture.read_bytes()
    with pytest.raises(ConfigError, match="is one of the capture files"):
        write_evidence([capture], [CONNECTION_ID], capture)
    assert capture.read_bytes() == before


def test_write_evidence_streams_across_batches(tmp_path: Path) -> None:
    """The packets of one flow split over many batches come out whole and in order."""
    capture = tmp_path / "c.pcap"
    packets = connection(10.0)
    noise = [at(ETH / IP(src=CLIENT, dst=SERVER) / UDP(sport=1000 + i, dport=53), 10.0 + i / 1000) for i in range(300)]
    wrpcap(str(capture), sorted([*packets, *noise], key=lambda p: float(p.time)))
    from auditor.store import evidence

    with pytest.MonkeyPatch.context() as mp:
        real = evidence.open_capture

        class Small:
            def __init__(self, path: Path) -> None:
                self.source = real(path)
                self.stats = self.source.stats

            def __enter__(self) -> Small:
                return self

            def __exit__(self, *exc: object) -> None:
                self.source.close()

            def batches(self) -> object:
                return self.source.batches(max_frames=16)

        mp.setattr(evidence, "open_capture", Small)
        result = write_evidence([capture], [CONNECTION_ID], tmp_path / "e.pcap")
    assert result.packets == len(packets)
    assert [f[0] for f in frames(tmp_path / "e.pcap")] == [bytes(p) for p in packets]


def test_demo_summary_names_the_capture_absolutely(demo: Path) -> None:
    """The fixture's premise: the demo run names its capture by absolute path, so the store finds it."""
    names = [f["name"] for f in json.loads((demo / "summary.json").read_text())["files"]]
    assert names == [str(DEMO)]
