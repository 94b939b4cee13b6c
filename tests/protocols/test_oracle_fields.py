"""Header fields our parsers read, against tshark's on the same corpus frames: SSDP SERVER/LOCATION, HTTP Host.

DHCP options 12/55/60 are compared in test_dhcp.py, TLS SNI in test_tls.py, and the HTTP User-Agent and
Server in test_http.py; this file covers the fields those leave out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from auditor.protocols import _wire, http, ssdp

MAX_FRAMES = 20_000
"""Frames read per capture, by tshark and by scapy, so the run stays fast on a large file."""

SSDP_FILES = (
    "iotsentinel__D-LinkDayCam_Setup-C-1.pcap",
    "iotsentinel__EdimaxCam2_Setup-C-2.pcap",
    "ndpi__android.pcap",
    "suricata-verify__sip-ssdp-pm_ssdp.pcap",
    "zeek__igmp_home-multicast-short.pcap",
)
"""Corpus files where tshark decodes SSDP on UDP 1900 (`tshark -Y ssdp`; ndpi__ssdp-m-search.pcap uses udp/32412)."""

HTTP_FILES = (
    "ndpi__android.pcap",
    "ndpi__ipp.pcap",
    "suricata-verify__decode-sll2-02.pcap",
    "zeek__http-vlan-0.pcap",
    "zeek__mixed-vlan-mpls.pcap",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Corpus files where tshark decodes an HTTP request over TCP (`tshark -Y 'http.request and tcp'`)."""

HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1")
"""Request versions our parser reads; it refuses HTTP/0.9 ('GET /' alone, zeek__mixed-vlan-mpls.pcap frame 37)
by design, which tshark still shows as a request."""


def _tshark_fields(tshark: str, path: Path, shown: str, fields: tuple[str, ...]) -> dict[int, tuple[str | None, ...]]:
    """Return {frame number: first occurrence of each field, None when absent} for the frames `shown` selects."""
    cmd = [tshark, "-r", str(path), "-c", str(MAX_FRAMES), "-Y", shown, "-T", "fields"]
    cmd += ["-E", "separator=/t", "-E", "occurrence=f", "-e", "frame.number"]
    cmd += [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {int(r[0]): tuple(v or None for v in r[1:]) for r in rows if r and r[0]}


def _payloads(path: Path, frames: set[int], layer: str) -> dict[int, bytes]:
    """Return {frame number (1-based, as tshark numbers them): UDP or TCP payload} for the wanted frames."""
    from scapy.layers.inet import TCP, UDP
    from scapy.utils import PcapReader

    proto = UDP if layer == "udp" else TCP
    out: dict[int, bytes] = {}
    last = max(frames, default=0)
    with PcapReader(str(path)) as reader:
        for number, pkt in enumerate(reader, 1):
            if number > min(last, MAX_FRAMES):
                break
            if number in frames and proto in pkt:
                out[number] = bytes(pkt[proto].payload)
    return out


def _comparable(ours: str | None, theirs: str | None) -> bool:
    """Whether both sides print a value alike: tshark escapes bytes that are not printable ASCII (as \\xNN)
    and our parser decodes them as UTF-8 with U+FFFD, so only ASCII values are compared."""
    return all(v is None or (v.isascii() and v.isprintable() and "\\" not in v) for v in (ours, theirs))


def _capped(value: str | None) -> str | None:
    """tshark's value as our parser keeps it: stripped and capped at _wire.MAX_TEXT characters."""
    return None if value is None else value.strip()[: _wire.MAX_TEXT] or None


@pytest.mark.oracle
@pytest.mark.corpus
def test_ssdp_server_and_location_agree_with_tshark(corpus: Path, tshark: str) -> None:
    # tshark 4.0 dissects SSDP with its HTTP dissector: the headers are http.* fields
    packets = values = 0
    wrong: list[tuple[str, int, str, str | None, str | None]] = []
    for name in SSDP_FILES:
        expected = _tshark_fields(tshark, corpus / name, "ssdp and udp.port == 1900", ("http.server", "http.location"))
        assert expected, f"tshark found no SSDP in {name}"
        payloads = _payloads(corpus / name, set(expected), "udp")
        for number, (server, location) in sorted(expected.items()):
            record = ssdp.parse(payloads[number])
            assert record is not None, f"{name} frame {number}"
            packets += 1
            for field, ours, theirs in (("server", record.server, server), ("location", record.location, location)):
                if not _comparable(ours, theirs):
                    continue
                values += theirs is not None
                if ours != _capped(theirs):
                    wrong.append((name, number, field, ours, theirs))
    assert not wrong, wrong
    assert packets and values  # 42 datagrams, 44 SERVER or LOCATION values


@pytest.mark.oracle
@pytest.mark.corpus
def test_http_host_agrees_with_tshark(corpus: Path, tshark: str) -> None:
    # tshark shows a request head that spans segments in the frame that completes it; tcp.segment's first
    # occurrence names the frame it starts in, which is the one payload our parser sees
    fields = ("tcp.segment", "http.request.version", "http.host")
    packets = hosts = 0
    wrong: list[tuple[str, int, str | None, str | None]] = []
    for name in HTTP_FILES:
        expected = _tshark_fields(tshark, corpus / name, "http.request and tcp", fields)
        requests = {
            int(first) if first else number: host
            for number, (first, version, host) in expected.items()
            if version in HTTP_VERSIONS
        }
        assert requests, f"tshark found no HTTP/1.x request in {name}"
        payloads = _payloads(corpus / name, set(requests), "tcp")
        for number, host in sorted(requests.items()):
            payload = payloads[number]
            if b"\r\n\r\n" not in payload[: http.MAX_PAYLOAD]:
                continue  # the head goes on in the next segment: the Host line may not be in this packet
            record = http.parse(payload)
            assert record is not None and record.kind == "request", f"{name} frame {number}"
            if not _comparable(record.host, host):
                continue
            packets += 1
            hosts += host is not None
            if record.host != _capped(host):
                wrong.append((name, number, record.host, host))
    assert not wrong, wrong
    assert packets and hosts
