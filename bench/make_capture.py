#!/usr/bin/env python3
"""Write a large, seeded synthetic pcap of many interleaved TCP/UDP/ICMP flows for benchmarks.

    python bench/make_capture.py OUT.pcap --packets 2000000 --flows 100000 --seed 1

Frames are built as numpy columns a chunk at a time (no Python object per packet), so two million
packets take seconds and memory stays bounded however large --packets is. The same arguments give a
byte-identical file. A sidecar OUT.pcap.json records packets, flows and bytes for bench/run.py.

Traffic model (fractions of packets, roughly): 82 % TCP (SYN, SYN-ACK, data both ways with MSS-sized
frames, FIN or RST; a few refused connections), 15 % UDP (DNS query/answer pairs with real DNS
messages, RTP-like streams), 3 % ICMP/ICMPv6 echo. About 15 % of flows are IPv6, about 10 % of
clients sit on an 802.1Q VLAN and about 1 % behind QinQ. Clients have RFC 1918 / ULA addresses and
talk to local servers and to public ones (documentation ranges plus other public-looking prefixes);
public servers are reached through one gateway MAC. First client payloads to TLS/HTTP/RTSP ports
are real ClientHellos (with SNI), GET and DESCRIBE requests; other payload bytes are filler.
IPv4 header and ICMP/ICMPv6 checksums are correct; TCP/UDP checksums are zero.
"""

from __future__ import annotations

import argparse
import itertools
import json
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

GENERATOR = "make_capture/2"  # bump when the output for given arguments changes

CHUNK_PACKETS = 65_536  # flows are planned in groups of about this many packets
START_US = 1_793_606_400 * 1_000_000  # 2026-11-02T08:00:00Z
MIN_FRAME = 60  # Ethernet minimum without FCS; shorter frames get zero padding
LINKTYPE_ETHERNET = 1
SNAPLEN = 262_144

# flow kinds
TCP, REFUSED, DNS, STREAM, ICMP = 0, 1, 2, 3, 4
# per-packet layer-4 layouts and their header lengths (ICMP echo carries a fixed 56-byte payload)
L4_TCP, L4_TCP_SYNOPT, L4_UDP, L4_ICMP = 0, 1, 2, 3
L4_LEN = np.array([20, 40, 8, 64], dtype=np.int64)
L2_LEN = np.array([14, 18, 22], dtype=np.int64)  # untagged, 802.1Q, QinQ
ICMP_PAYLOAD = bytes(range(0x10, 0x48))  # 56 bytes, like iputils ping

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10

GATEWAY_MAC = 0x00005E000101  # VRRP virtual router MAC: routed traffic shows the router, not the server
CLIENT_OUIS = [0x3C970E, 0xF01898, 0x001422, 0xB827EB, 0x3CD92B, 0x4CBD8F, 0x3CEF8C, 0xACCC8E, 0x588FCF]
SERVER_OUIS = [0x001422, 0x0025B5, 0x000C29]
PUBLIC_V4_PREFIXES = [  # /16s that look like the public internet (CDNs, clouds)
    (23, 32),
    (34, 117),
    (52, 84),
    (104, 16),
    (142, 250),
    (151, 101),
    (13, 107),
    (17, 253),
    (31, 13),
    (157, 240),
    (185, 199),
    (93, 184),
    (20, 42),
    (35, 186),
    (172, 217),
    (216, 58),
]
DOC_V4_NETS = [(192 << 24) | (0 << 16) | (2 << 8), (198 << 24) | (51 << 16) | (100 << 8), (203 << 24) | (113 << 8)]
PUBLIC_V6_PREFIXES = [
    0x20010DB8F0000000,
    0x20010DB8F1000000,
    0x2A00145040010000,
    0x2606470000000000,
    0x262001EC00000000,
]
ULA_SITE = 0xFD123456789A0000  # fd12:3456:789a::/48, subnets in the low 16 bits
GUA_SITE = 0x20010DB85A170000  # 2001:db8:5a17::/48, the site's global prefix
LOCAL_DNS_V4 = (10 << 24) | 53
PUBLIC_DNS_V4 = (198 << 24) | (51 << 16) | (100 << 8) | 53
PUBLIC_DNS_V6 = (0x20010DB800530000, 0x53)

# server ports: (port, weight); TLS/HTTP/RTSP ports get a real first request
PUBLIC_TCP_PORTS = [(443, 72), (80, 14), (8443, 5), (8883, 4), (993, 3), (5223, 2)]
LOCAL_TCP_PORTS = [(443, 25), (80, 20), (554, 20), (8000, 10), (22, 10), (8080, 10), (9100, 5)]
TLS_PORTS, HTTP_PORTS, RTSP_PORTS = (443, 8443, 8883, 993, 5223), (80, 8000, 8080), (554,)

NAMES = [
    f"{h}.{d}"
    for d in ("example.com", "example.net", "example.org", "video.example.com", "cloud.example.net", "cdn.example.org")
    for h in (
        "www",
        "api",
        "cdn",
        "img",
        "static",
        "mail",
        "update",
        "login",
        "telemetry",
        "time",
        "ws",
        "assets",
        "media",
        "download",
        "push",
        "auth",
    )
]
NAMES += [
    "www.easy4ipcloud.com",
    "litedev.hik-connect.com",
    "litedev.ezvizlife.com",
    "time.ys7.com",
    "pool.ntp.org",
    "connectivitycheck.gstatic.com",
    "ocsp.digicert.com",
    "api.github.com",
]

SPEC = np.dtype(
    [
        ("ts", "<i8"),
        ("smac", "<u8"),
        ("dmac", "<u8"),
        ("s6hi", "<u8"),
        ("s6lo", "<u8"),
        ("d6hi", "<u8"),
        ("d6lo", "<u8"),
        ("s4", "<u4"),
        ("d4", "<u4"),
        ("seq", "<u4"),
        ("ack", "<u4"),
        ("tsval", "<u4"),
        ("sport", "<u2"),
        ("dport", "<u2"),
        ("ipid", "<u2"),
        ("win", "<u2"),
        ("plen", "<u2"),
        ("txid", "<u2"),
        ("tci1", "<u2"),
        ("tci2", "<u2"),
        ("icmpid", "<u2"),
        ("icmpseq", "<u2"),
        ("tmpl", "<i2"),
        ("l2", "u1"),
        ("v6", "u1"),
        ("l4", "u1"),
        ("flags", "u1"),
        ("ttl", "u1"),
        ("icmptype", "u1"),
        ("rtp", "u1"),
    ]
)
"""One row per packet to write: everything the frame builder needs, so rows can wait across chunks."""

U8 = NDArray[np.uint8]
I64 = NDArray[np.int64]


# ---------------------------------------------------------------- payload templates


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def _dns_pair(name: str, qtype: int, answer: bytes) -> tuple[bytes, bytes]:
    """Return a DNS query and its answer (RFC 1035 §4.1) with transaction id 0, patched in later."""
    question = _dns_name(name) + struct.pack(">HH", qtype, 1)
    edns = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)  # OPT pseudo-RR, RFC 6891 §6.1.2
    query = struct.pack(">6H", 0, 0x0120, 1, 0, 0, 1) + question + edns
    rr = struct.pack(">HHHIH", 0xC00C, qtype, 1, 300, len(answer)) + answer
    reply = struct.pack(">6H", 0, 0x8180, 1, 1, 0, 1) + question + rr + edns
    return query, reply


def _client_hello(name: str, rnd: bytes) -> bytes:
    """Return a TLS 1.3-style ClientHello record carrying SNI (RFC 8446 §4.1.2, RFC 6066 §3)."""
    sni = name.encode()
    ciphers = [
        0x1301,
        0x1302,
        0x1303,
        0xC02B,
        0xC02F,
        0xC02C,
        0xC030,
        0xCCA9,
        0xCCA8,
        0xC013,
        0xC014,
        0x009C,
        0x009D,
        0x002F,
        0x0035,
    ]
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    alpn = b"\x02h2\x08http/1.1"
    exts = b"".join(
        [
            struct.pack(">HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni,
            struct.pack(">HHH3H", 10, 8, 6, 0x001D, 0x0017, 0x0018),
            struct.pack(">HHBB", 11, 2, 1, 0),
            struct.pack(">HHH", 13, 2 + 2 * len(sigalgs), 2 * len(sigalgs))
            + struct.pack(f">{len(sigalgs)}H", *sigalgs),
            struct.pack(">HHH", 16, len(alpn) + 2, len(alpn)) + alpn,
            struct.pack(">HHBHH", 43, 5, 4, 0x0304, 0x0303),
            struct.pack(">HHBB", 45, 2, 1, 1),
            struct.pack(">HHHHH", 51, 38, 36, 0x001D, 32) + rnd[32:64],
        ]
    )
    body = (
        struct.pack(">H", 0x0303)
        + rnd[:32]
        + b"\x20"
        + rnd[64:96]
        + struct.pack(f">H{len(ciphers)}H", 2 * len(ciphers), *ciphers)
        + b"\x01\x00"
        + struct.pack(">H", len(exts))
        + exts
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


@dataclass(frozen=True)
class Templates:
    """Fixed payloads (DNS, TLS, HTTP, RTSP requests) back to back in one buffer."""

    pool: U8
    offset: I64
    length: I64
    is_dns: NDArray[np.bool_]
    dns_query: I64  # template index of query i; its answer is dns_query[i] + 1
    tls: I64
    http: I64
    rtsp: I64
    http_reply: I64
    rtsp_reply: I64


def build_templates(rng: np.random.Generator) -> Templates:
    """Return the payload templates, drawn deterministically from rng."""
    blobs: list[bytes] = []
    dns_flags: list[bool] = []
    dns_query, tls, http, rtsp, http_reply, rtsp_reply = [], [], [], [], [], []
    for i, name in enumerate(NAMES):
        if i % 3 == 2:
            answer = struct.pack(">QQ", 0x20010DB8F0000000 | i, int(rng.integers(1, 1 << 32)))
            q, r = _dns_pair(name, 28, answer)  # AAAA
        else:
            answer = struct.pack(">I", DOC_V4_NETS[i % 3] | (1 + i % 250))
            q, r = _dns_pair(name, 1, answer)  # A
        dns_query.append(len(blobs))
        blobs += [q, r]
        dns_flags += [True, True]
        tls.append(len(blobs))
        blobs.append(_client_hello(name, rng.integers(0, 256, 96, dtype=np.uint8).tobytes()))
        http.append(len(blobs))
        blobs.append(
            f"GET /v{i % 4}/status?id={i} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: Mozilla/5.0 "
            "(X11; Linux x86_64)\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n".encode()
        )
        dns_flags += [False, False]
    for i in range(8):
        rtsp.append(len(blobs))
        blobs.append(
            f"DESCRIBE rtsp://10.0.1.{10 + i}:554/Streaming/Channels/{101 + i} RTSP/1.0\r\n"
            f"CSeq: {2 + i}\r\nAccept: application/sdp\r\nUser-Agent: LibVLC/3.0.18\r\n\r\n".encode()
        )
        rtsp_reply.append(len(blobs))
        blobs.append(
            f"RTSP/1.0 200 OK\r\nCSeq: {2 + i}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n".encode()
        )
        http_reply.append(len(blobs))
        server = ("nginx/1.24.0", "Apache/2.4.57 (Debian)", "App-webs/", "lighttpd/1.4.69")[i % 4]
        blobs.append(
            f"HTTP/1.1 200 OK\r\nServer: {server}\r\nContent-Type: application/octet-stream\r\n"
            "Cache-Control: no-cache\r\nConnection: close\r\n\r\n".encode()
        )
        dns_flags += [False, False, False]
    length = np.array([len(b) for b in blobs], dtype=np.int64)
    return Templates(
        pool=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offset=np.cumsum(length) - length,
        length=length,
        is_dns=np.array(dns_flags),
        dns_query=np.array(dns_query, dtype=np.int64),
        tls=np.array(tls, dtype=np.int64),
        http=np.array(http, dtype=np.int64),
        rtsp=np.array(rtsp, dtype=np.int64),
        http_reply=np.array(http_reply, dtype=np.int64),
        rtsp_reply=np.array(rtsp_reply, dtype=np.int64),
    )


# ---------------------------------------------------------------- hosts


@dataclass(frozen=True)
class Hosts:
    """Address tables: local clients, local servers (index 0 is the site resolver), public servers."""

    c_mac: NDArray[np.uint64]
    c_ip4: NDArray[np.uint32]
    c_ula_hi: NDArray[np.uint64]
    c_gua_hi: NDArray[np.uint64]
    c_lo: NDArray[np.uint64]
    c_l2: NDArray[np.uint8]
    c_tci1: NDArray[np.uint16]
    c_tci2: NDArray[np.uint16]
    c_ttl: NDArray[np.uint8]
    c_port_base: I64
    c_opened: I64
    """Flows each client has opened so far (mutable): its n-th flow gets source port base + n."""
    l_mac: NDArray[np.uint64]
    l_ip4: NDArray[np.uint32]
    l_lo: NDArray[np.uint64]
    p_ip4: NDArray[np.uint32]
    p_hi: NDArray[np.uint64]
    p_lo: NDArray[np.uint64]


def build_hosts(rng: np.random.Generator, n_flows: int) -> Hosts:
    """Return address tables sized for n_flows (about 25 flows per client)."""
    nc = int(np.clip(n_flows // 25, 64, 20_000))
    i = np.arange(nc, dtype=np.uint64)
    block, h = i % 3, i // 3
    first = np.array([10 << 24 | 20 << 16, 172 << 24 | 16 << 16, 192 << 24 | 168 << 16], dtype=np.uint64)
    subnet = block * 256 + h // 250
    host = h % 250 + 10
    oui = np.array(CLIENT_OUIS, dtype=np.uint64)[rng.integers(0, len(CLIENT_OUIS), nc)]
    l2 = rng.choice(3, nc, p=[0.89, 0.10, 0.01]).astype(np.uint8)
    tci1 = np.where(l2 == 2, 300, rng.choice([20, 30, 40, 100], nc)).astype(np.uint16)
    nl, npub = 64, 4096
    j = np.arange(nl, dtype=np.uint64)
    l_ip4 = (10 << 24 | 1 << 8) + 10 + j  # 10.0.1.10 ...
    l_ip4[0] = LOCAL_DNS_V4
    l_lo = 10 + j
    l_lo[0] = 0x53
    k = np.arange(npub, dtype=np.uint64)
    doc = np.array(DOC_V4_NETS, dtype=np.uint64)[k % 3] | (1 + k % 254)
    pub16 = np.array([a << 24 | b << 16 for a, b in PUBLIC_V4_PREFIXES], dtype=np.uint64)
    pub = pub16[rng.integers(0, len(pub16), npub)] | rng.integers(256, 65_280, npub).astype(np.uint64)
    p_ip4 = np.where(rng.random(npub) < 0.4, doc, pub)
    p_ip4[0] = PUBLIC_DNS_V4
    p_hi = np.array(PUBLIC_V6_PREFIXES, dtype=np.uint64)[rng.integers(0, len(PUBLIC_V6_PREFIXES), npub)]
    p_hi |= rng.integers(0, 1 << 16, npub).astype(np.uint64)
    p_lo = rng.integers(1, 1 << 62, npub).astype(np.uint64)
    p_hi[0], p_lo[0] = PUBLIC_DNS_V6
    return Hosts(
        c_mac=(oui << np.uint64(24)) | ((i * np.uint64(2_654_435_761)) & np.uint64(0xFFFFFF)),
        c_ip4=(first[block] | (subnet % 256) << np.uint64(8) | host).astype(np.uint32),
        c_ula_hi=ULA_SITE | subnet,
        c_gua_hi=GUA_SITE | subnet,
        c_lo=host,
        c_l2=l2,
        c_tci1=tci1,
        c_tci2=rng.choice([20, 30, 40], nc).astype(np.uint16),
        c_ttl=np.where(rng.random(nc) < 0.7, 64, 128).astype(np.uint8),
        c_port_base=rng.integers(0, 1 << 16, nc),
        c_opened=np.zeros(nc, dtype=np.int64),
        l_mac=(np.array(SERVER_OUIS, dtype=np.uint64)[j % 3] << np.uint64(24)) | (0x100 + j),
        l_ip4=l_ip4.astype(np.uint32),
        l_lo=l_lo,
        p_ip4=p_ip4.astype(np.uint32),
        p_hi=p_hi,
        p_lo=p_lo,
    )


# ---------------------------------------------------------------- flow plan


def _split(rng: np.random.Generator, budget: int, k: int, minimum: int, sigma: float, cap: float) -> I64:
    """Return k heavy-tailed counts, each >= minimum, summing exactly to budget."""
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    w = np.minimum(rng.lognormal(0.0, sigma, k), cap)
    extra = budget - k * minimum
    edges = np.floor(np.cumsum(w) / w.sum() * extra).astype(np.int64)
    edges[-1] = extra  # exact total whatever the rounding
    return np.diff(edges, prepend=0) + minimum


def plan_flows(rng: np.random.Generator, n_packets: int, n_flows: int) -> tuple[NDArray[np.uint8], I64]:
    """Return each flow's kind and packet count, shuffled; counts sum to n_packets exactly."""
    f_dns, f_icmp, f_stream = round(0.40 * n_flows), round(0.05 * n_flows), round(0.05 * n_flows)
    f_tcp = n_flows - f_dns - f_icmp - f_stream
    f_refused = round(0.04 * f_tcp)
    f_tcp -= f_refused
    dns = np.where(rng.random(f_dns) < 0.03, 1, 2).astype(np.int64)  # a few queries go unanswered
    p_udp, p_icmp = round(0.15 * n_packets), round(0.03 * n_packets)
    p_stream = p_udp - int(dns.sum())
    p_tcp = n_packets - p_udp - p_icmp - 2 * f_refused
    if n_flows < 100 or p_stream < 2 * f_stream or p_icmp < 2 * f_icmp or p_tcp < 7 * f_tcp:
        raise SystemExit("error: need --flows >= 100 and at least 10 packets per flow")
    kinds = np.repeat(
        np.array([TCP, REFUSED, DNS, STREAM, ICMP], dtype=np.uint8), [f_tcp, f_refused, f_dns, f_stream, f_icmp]
    )
    counts = np.concatenate(
        [
            _split(rng, p_tcp, f_tcp, 7, 1.4, 150.0),
            np.full(f_refused, 2, dtype=np.int64),
            dns,
            _split(rng, p_stream, f_stream, 2, 1.0, 50.0),
            _split(rng, p_icmp, f_icmp, 2, 0.5, 5.0),
        ]
    )
    order = rng.permutation(n_flows)
    return kinds[order], counts[order]


def _pick(rng: np.random.Generator, table: list[tuple[int, int]], n: int) -> I64:
    ports = np.array([p for p, _ in table], dtype=np.int64)
    weights = np.array([w for _, w in table], dtype=np.float64)
    return ports[rng.choice(len(ports), n, p=weights / weights.sum())]


def _in_group_prefix(values: I64, starts: I64, counts: I64) -> I64:
    """Return, per element, the sum of the earlier elements of its group (groups are contiguous)."""
    c = np.cumsum(values) - values
    return c - np.repeat(c[starts], counts)


def gen_chunk(
    rng: np.random.Generator, hosts: Hosts, tm: Templates, kind: NDArray[np.uint8], npk: I64, t0_us: int, window_us: int
) -> NDArray[Any]:
    """Return SPEC rows (flow by flow, in order) for flows starting in [t0_us, t0_us + window_us)."""
    k = len(kind)
    is_tcp, is_ref, is_dns = kind == TCP, kind == REFUSED, kind == DNS
    is_stream, is_icmp = kind == STREAM, kind == ICMP
    anytcp = is_tcp | is_ref
    client = rng.integers(0, len(hosts.c_mac), k)
    v6 = rng.random(k) < 0.15
    local = rng.random(k) < np.select([anytcp, is_dns], [0.35, 0.75], 0.5)
    li = np.where(is_dns, 0, rng.integers(1, len(hosts.l_mac), k))
    pi = np.where(is_dns, 0, rng.integers(1, len(hosts.p_ip4), k))

    c_mac, s_mac = hosts.c_mac[client], np.where(local, hosts.l_mac[li], np.uint64(GATEWAY_MAC))
    c_ip4, s_ip4 = hosts.c_ip4[client], np.where(local, hosts.l_ip4[li], hosts.p_ip4[pi])
    c_hi = np.where(local, hosts.c_ula_hi[client], hosts.c_gua_hi[client])
    s_hi = np.where(local, np.uint64(ULA_SITE | 0xFF), hosts.p_hi[pi])
    c_lo, s_lo = hosts.c_lo[client], np.where(local, hosts.l_lo[li], hosts.p_lo[pi])
    # each client's flows get successive source ports / ICMP ids, so no 5-tuple is ever reused
    by_client = np.argsort(client, kind="stable")
    ranked = client[by_client]
    nth = np.empty(k, dtype=np.int64)
    nth[by_client] = np.arange(k) - np.searchsorted(ranked, ranked)
    nth += hosts.c_opened[client] + hosts.c_port_base[client]
    hosts.c_opened[:] += np.bincount(client, minlength=len(hosts.c_opened))
    rtp = rng.integers(8192, 16384, k) * 2
    c_port = np.where(is_stream, 16384 + 2 * (nth % 8192), 32768 + nth % 28232)  # Linux ephemeral range
    tcp_port = np.where(local, _pick(rng, LOCAL_TCP_PORTS, k), _pick(rng, PUBLIC_TCP_PORTS, k))
    s_port = np.select([anytcp, is_dns, is_stream], [tcp_port, 53, rtp + 2 * rng.integers(1, 500, k)], 0)
    c_ttl = hosts.c_ttl[client].astype(np.int64)
    s_ttl = np.where(local, 64, rng.choice([64, 128, 255], k) - rng.integers(6, 24, k))
    ipid = rng.integers(0, 65536, (2, k))
    isn = rng.integers(0, 1 << 32, (2, k))
    win = rng.choice([64240, 65535, 29200, 8192, 502], (2, k))
    heavy = np.where(is_stream, rng.random(k) < 0.5, rng.random(k) < 0.8).astype(np.int64)  # 1: server sends
    fin_close = rng.random(k) < 0.85
    closer = (rng.random(k) < 0.5).astype(np.int64)
    rtt = np.where(local, rng.integers(80, 1500, k), rng.integers(6000, 160000, k))
    mean_gap = np.select(
        [is_stream, is_icmp], [rng.integers(5000, 40000, k), 1_000_000], rng.lognormal(np.log(3000.0), 1.2, k)
    )
    start = t0_us + rng.integers(0, window_us, k)
    name = rng.integers(0, len(NAMES), k)
    req = np.select(
        [np.isin(tcp_port, TLS_PORTS), np.isin(tcp_port, HTTP_PORTS), np.isin(tcp_port, RTSP_PORTS)],
        [tm.tls[name], tm.http[name], tm.rtsp[name % len(tm.rtsp)]],
        -1,
    )
    req = np.where(is_tcp, req, -1)
    reply = np.select(
        [np.isin(tcp_port, HTTP_PORTS), np.isin(tcp_port, RTSP_PORTS)],
        [tm.http_reply[name % len(tm.http_reply)], tm.rtsp_reply[name % len(tm.rtsp_reply)]],
        -1,
    )
    reply = np.where(is_tcp, reply, -1)
    rtp_base = rng.integers(0, 1 << 32, (2, k))  # RTP sequence start, SSRC
    txid = rng.integers(0, 65536, k)
    icmp_id = 1 + nth % 65535
    mss = np.where(v6, 1440, 1460)

    # ---- per packet
    n_total = int(npk.sum())
    f = np.repeat(np.arange(k), npk)
    fstart = np.cumsum(npk) - npk
    pos = np.arange(n_total) - np.repeat(fstart, npk)
    n = npk[f]
    pk_tcp, pk_ref, pk_dns = is_tcp[f], is_ref[f], is_dns[f]
    pk_stream, pk_icmp = is_stream[f], is_icmp[f]
    r = rng.random((4, n_total))

    # TCP data region: the heavy side sends (mostly full) segments, the other side ACKs
    hv = heavy[f]
    sends = r[0] < 0.62
    direction = np.where(sends, hv, 1 - hv)
    m = mss[f]
    plen = np.where(
        sends,
        np.where(r[1] < 0.7, m, 32 + (r[2] * (m - 32)).astype(np.int64)),
        np.where(r[1] < 0.8, 0, 32 + (r[2] * 300).astype(np.int64)),
    )
    flags = np.where(plen == 0, ACK, np.where(plen < m, PSH | ACK, ACK))
    tmpl = np.full(n_total, -1, dtype=np.int64)
    last = pos == n - 1
    fc, cl = fin_close[f], closer[f]
    # handshake and first request
    for p, d, fl in ((0, 0, SYN), (1, 1, SYN | ACK), (2, 0, ACK), (3, 0, PSH | ACK)):
        at = pk_tcp & (pos == p)
        direction[at], flags[at], plen[at] = d, fl, 0
    at = pk_tcp & (pos == 3)
    rq = req[f]
    plen[at] = np.where(rq[at] >= 0, tm.length[np.maximum(rq[at], 0)], 40 + (r[3][at] * 560).astype(np.int64))
    tmpl[at] = rq[at]
    # close: FIN, FIN, ACK, or a single RST
    for back, side, fl in ((3, 0, FIN | ACK), (2, 1, FIN | ACK), (1, 0, ACK)):
        at = pk_tcp & fc & (pos == n - back)
        direction[at] = np.where(side == 0, cl[at], 1 - cl[at])
        flags[at], plen[at] = fl, 0
    at = pk_tcp & ~fc & last
    direction[at], flags[at], plen[at] = cl[at], RST | ACK, 0
    # the server's first data segment answers an HTTP or RTSP request with a response head
    rp = reply[f]
    cand = np.flatnonzero(pk_tcp & (pos > 3) & (direction == 1) & (plen > 0) & (rp >= 0))
    first = cand[np.unique(f[cand], return_index=True)[1]]
    tmpl[first], plen[first], flags[first] = rp[first], tm.length[rp[first]], PSH | ACK
    # refused: SYN, RST-ACK
    direction[pk_ref] = pos[pk_ref]
    flags[pk_ref] = np.where(pos[pk_ref] == 0, SYN, RST | ACK)
    plen[pk_ref] = 0
    syn = (flags & SYN) != 0
    l4 = np.where(syn, L4_TCP_SYNOPT, L4_TCP)
    # DNS: query, answer
    direction[pk_dns] = pos[pk_dns]
    dq = tm.dns_query[name[f[pk_dns]]] + pos[pk_dns]
    tmpl[pk_dns], plen[pk_dns], l4[pk_dns] = dq, tm.length[dq], L4_UDP
    # RTP-like stream: mostly one way, a little RTCP-sized traffic back
    ps = pk_stream
    direction[ps] = np.where(r[0][ps] < 0.92, hv[ps], 1 - hv[ps])
    plen[ps] = np.where(
        direction[ps] == hv[ps], 160 + (r[1][ps] * 1140).astype(np.int64), 40 + (r[2][ps] * 80).astype(np.int64)
    )
    l4[ps] = L4_UDP
    # echo request / reply
    direction[pk_icmp], plen[pk_icmp], l4[pk_icmp] = pos[pk_icmp] % 2, 0, L4_ICMP
    notcp = pk_dns | ps | pk_icmp
    flags[notcp] = 0

    # sequence numbers: SYN and FIN take one number each (RFC 9293 §3.4)
    used = plen + syn + ((flags & FIN) != 0)
    sent = [_in_group_prefix(np.where(direction == d, used, 0), fstart, npk) for d in (0, 1)]
    isn0, isn1 = isn[0][f], isn[1][f]
    seq = np.where(direction == 0, isn0 + sent[0], isn1 + sent[1])
    ack = np.where(direction == 0, isn1 + sent[1], isn0 + sent[0])
    ack = np.where((flags & ACK) != 0, ack, 0)
    seq = np.where(pk_ref & (pos == 1), 0, seq)  # a refusing stack answers seq 0 (RFC 9293 §3.10.7.1)
    # RTP header fields (RFC 3550 §5.1) ride in the seq (sequence number) and ack (SSRC) columns
    seq = np.where(ps, rtp_base[0][f] + pos, seq)
    ack = np.where(ps, rtp_base[1][f], ack)

    # timing: gaps inside each flow, squeezed so no flow outlasts the window
    gap = rng.exponential(1.0, n_total) * mean_gap[f]
    rt = rtt[f]
    gap = np.where((pk_tcp | pk_ref | pk_dns) & (pos == 1), rt, gap)
    gap = np.where(pk_tcp & (pos == 2), 30 + r[3] * 100, gap)
    gap = np.where(pk_tcp & (pos == 3), 100 + r[3] * 2000, gap)
    gap = np.where(pk_icmp, np.where(pos % 2 == 1, rt, 1_000_000 - rt), gap)
    gap = np.where(pos == 0, 0, gap).astype(np.int64)
    since = _in_group_prefix(gap, fstart, npk) + gap
    dur = since[fstart + npk - 1]
    scale = np.where(dur > window_us, window_us / np.maximum(dur, 1), 1.0)
    ts = start[f] + (since * scale[f]).astype(np.int64)

    out = np.zeros(n_total, dtype=SPEC)
    d0 = direction == 0
    out["ts"] = ts
    out["smac"] = np.where(d0, c_mac[f], s_mac[f])
    out["dmac"] = np.where(d0, s_mac[f], c_mac[f])
    out["s4"] = np.where(d0, c_ip4[f], s_ip4[f])
    out["d4"] = np.where(d0, s_ip4[f], c_ip4[f])
    out["s6hi"] = np.where(d0, c_hi[f], s_hi[f])
    out["s6lo"] = np.where(d0, c_lo[f], s_lo[f])
    out["d6hi"] = np.where(d0, s_hi[f], c_hi[f])
    out["d6lo"] = np.where(d0, s_lo[f], c_lo[f])
    out["sport"] = np.where(d0, c_port[f], s_port[f])
    out["dport"] = np.where(d0, s_port[f], c_port[f])
    out["seq"] = seq & 0xFFFFFFFF
    out["ack"] = ack & 0xFFFFFFFF
    out["tsval"] = np.where(ps, ts * 9 // 100, ts // 1000) & 0xFFFFFFFF  # RTP: 90 kHz clock
    out["ipid"] = (np.where(d0, ipid[0][f], ipid[1][f]) + pos) & 0xFFFF
    out["win"] = np.where(d0, win[0][f], win[1][f])
    out["ttl"] = np.where(d0, c_ttl[f], s_ttl[f])
    out["plen"] = plen
    out["tmpl"] = tmpl
    out["rtp"] = ps & (plen >= 12)
    out["txid"] = txid[f]
    out["l2"] = hosts.c_l2[client][f]
    out["tci1"] = hosts.c_tci1[client][f]
    out["tci2"] = hosts.c_tci2[client][f]
    out["v6"] = v6[f]
    out["l4"] = l4
    out["flags"] = flags
    out["icmptype"] = np.where(v6[f], np.where(d0, 128, 129), np.where(d0, 8, 0))
    out["icmpid"] = icmp_id[f]
    out["icmpseq"] = pos // 2 + 1
    return out


# ---------------------------------------------------------------- frames


def _put(h: U8, col: int, values: NDArray[Any], dtype: str) -> None:
    """Write values big-endian into columns col.. of every row of h."""
    width = np.dtype(dtype).itemsize
    h[:, col : col + width] = np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(-1, width)


def _checksum(words: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Return the Internet checksum (RFC 1071) of rows of 16-bit words summed along axis 1."""
    s = words.sum(axis=1, dtype=np.uint64)
    s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    return ~s & np.uint64(0xFFFF)


def _words(h: U8, start: int, stop: int) -> NDArray[np.uint64]:
    return h[:, start:stop:2].astype(np.uint64) << np.uint64(8) | h[:, start + 1 : stop : 2]


def build_headers(s: NDArray[Any], l2: int, v6: bool, l4: int) -> U8:
    """Return the L2-L4 headers of rows s (all with the same layout), one row per frame."""
    l2len, iplen, l4len = int(L2_LEN[l2]), 40 if v6 else 20, int(L4_LEN[l4])
    h = np.zeros((len(s), l2len + iplen + l4len), dtype=np.uint8)
    _put(h, 0, s["dmac"] << np.uint64(16), ">u8")  # 8 bytes wide: the 2 spare ones are overwritten next
    _put(h, 6, s["smac"] << np.uint64(16), ">u8")
    ethertype = np.full(len(s), 0x86DD if v6 else 0x0800)
    if l2 == 0:
        _put(h, 12, ethertype, ">u2")
    elif l2 == 1:
        _put(h, 12, np.full(len(s), 0x8100), ">u2")
        _put(h, 14, s["tci1"], ">u2")
        _put(h, 16, ethertype, ">u2")
    else:
        _put(h, 12, np.full(len(s), 0x88A8), ">u2")  # IEEE 802.1ad S-tag, then the C-tag
        _put(h, 14, s["tci1"], ">u2")
        _put(h, 16, np.full(len(s), 0x8100), ">u2")
        _put(h, 18, s["tci2"], ">u2")
        _put(h, 20, ethertype, ">u2")
    ip, t = l2len, l2len + iplen
    upper = l4len + s["plen"].astype(np.int64)
    proto = (6, 6, 17, 58 if v6 else 1)[l4]
    if v6:
        h[:, ip] = 0x60
        _put(h, ip + 4, upper, ">u2")
        h[:, ip + 6] = proto
        h[:, ip + 7] = s["ttl"]
        _put(h, ip + 8, s["s6hi"], ">u8")
        _put(h, ip + 16, s["s6lo"], ">u8")
        _put(h, ip + 24, s["d6hi"], ">u8")
        _put(h, ip + 32, s["d6lo"], ">u8")
    else:
        h[:, ip] = 0x45
        _put(h, ip + 2, 20 + upper, ">u2")
        _put(h, ip + 4, s["ipid"], ">u2")
        h[:, ip + 6] = 0x40  # DF
        h[:, ip + 8] = s["ttl"]
        h[:, ip + 9] = proto
        _put(h, ip + 12, s["s4"], ">u4")
        _put(h, ip + 16, s["d4"], ">u4")
        _put(h, ip + 10, _checksum(_words(h, ip, ip + 20)), ">u2")
    if l4 in (L4_TCP, L4_TCP_SYNOPT):
        _put(h, t, s["sport"], ">u2")
        _put(h, t + 2, s["dport"], ">u2")
        _put(h, t + 4, s["seq"], ">u4")
        _put(h, t + 8, s["ack"], ">u4")
        h[:, t + 12] = (l4len // 4) << 4
        h[:, t + 13] = s["flags"]
        _put(h, t + 14, s["win"], ">u2")
        if l4 == L4_TCP_SYNOPT:  # MSS, SACK permitted, timestamps, NOP, window scale (Linux order)
            h[:, t + 20 : t + 40] = np.frombuffer(
                bytes([2, 4, 0, 0, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 7]), dtype=np.uint8
            )
            _put(h, t + 22, np.full(len(s), 1440 if v6 else 1460), ">u2")
            _put(h, t + 28, s["tsval"], ">u4")
    elif l4 == L4_UDP:
        _put(h, t, s["sport"], ">u2")
        _put(h, t + 2, s["dport"], ">u2")
        _put(h, t + 4, upper, ">u2")
    else:
        h[:, t] = s["icmptype"]
        _put(h, t + 4, s["icmpid"], ">u2")
        _put(h, t + 6, s["icmpseq"], ">u2")
        h[:, t + 8 : t + 64] = np.frombuffer(ICMP_PAYLOAD, dtype=np.uint8)
        words = _words(h, t, t + 64)
        if v6:  # pseudo-header: addresses, upper-layer length, next header (RFC 8200 §8.1)
            pseudo = _words(h, ip + 8, ip + 40).sum(axis=1, dtype=np.uint64) + np.uint64(64 + 58)
            words = np.column_stack([words, pseudo])
        _put(h, t + 2, _checksum(words), ">u2")
    return h


def _scatter(buf: U8, starts: I64, rows: U8) -> None:
    buf[starts[:, None] + np.arange(rows.shape[1])] = rows


def _udp6_checksums(buf: U8, udp: I64, length: I64, ip: I64) -> NDArray[np.uint64]:
    """Return UDP-over-IPv6 checksums (mandatory there, RFC 8200 §8.1) of the datagrams at udp."""
    width = int(length.max() + 1) // 2 * 2
    cols = np.arange(width)
    idx = np.minimum(udp[:, None] + cols, len(buf) - 1)
    data = np.where(cols < length[:, None], buf[idx], 0).astype(np.uint64)
    words = data[:, 0::2] << np.uint64(8) | data[:, 1::2]
    addr = buf[ip[:, None] + 8 + np.arange(32)].astype(np.uint64)
    pseudo = (addr[:, 0::2] << np.uint64(8) | addr[:, 1::2]).sum(axis=1) + length.astype(np.uint64) + np.uint64(17)
    cs = _checksum(np.column_stack([words, pseudo]))
    return np.where(cs == 0, np.uint64(0xFFFF), cs)  # 0 means "no checksum" (RFC 768)


def render(spec: NDArray[Any], tm: Templates) -> U8:
    """Return pcap records (16-byte record header + frame) for the rows of spec, in order."""
    n = len(spec)
    l2, v6, l4 = spec["l2"].astype(np.int64), spec["v6"].astype(np.int64), spec["l4"].astype(np.int64)
    plen = spec["plen"].astype(np.int64)
    hl = L2_LEN[l2] + np.where(v6 == 1, 40, 20) + L4_LEN[l4]
    flen = np.maximum(hl + plen, MIN_FRAME)
    rec_off = np.cumsum(16 + flen) - (16 + flen)
    # payload bytes not set below stay zero: random filler trips Wireshark's heuristic dissectors
    buf = np.zeros(int(rec_off[-1] + 16 + flen[-1]), dtype=np.uint8)
    ts = spec["ts"]
    rec = np.column_stack([ts // 1_000_000, ts % 1_000_000, flen, flen]).astype("<u4")
    _scatter(buf, rec_off, rec.view(np.uint8).reshape(n, 16))
    frame = rec_off + 16
    code = (l2 * 2 + v6) * 4 + l4
    for c in np.unique(code):
        sel = np.flatnonzero(code == c)
        cl2, cv6, cl4 = int(c) // 8, bool((int(c) // 4) % 2), int(c) % 4
        _scatter(buf, frame[sel], build_headers(spec[sel], cl2, cv6, cl4))
    # fixed payloads, then DNS transaction ids
    sel = np.flatnonzero(spec["tmpl"] >= 0)
    if len(sel):
        t = spec["tmpl"][sel].astype(np.int64)
        lengths = tm.length[t]
        rel = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        dst = frame[sel] + hl[sel]
        buf[np.repeat(dst, lengths) + rel] = tm.pool[np.repeat(tm.offset[t], lengths) + rel]
        dns = tm.is_dns[t]
        buf[dst[dns]] = spec["txid"][sel][dns] >> 8
        buf[dst[dns] + 1] = spec["txid"][sel][dns] & 0xFF
    # RTP fixed header: V=2, PT=96, sequence number, timestamp, SSRC
    sel = np.flatnonzero(spec["rtp"])
    if len(sel):
        rtp = np.zeros((len(sel), 12), dtype=np.uint8)
        rtp[:, 0], rtp[:, 1] = 0x80, 96
        _put(rtp, 2, spec["seq"][sel] & 0xFFFF, ">u2")
        _put(rtp, 4, spec["tsval"][sel], ">u4")
        _put(rtp, 8, spec["ack"][sel], ">u4")
        _scatter(buf, frame[sel] + hl[sel], rtp)
    sel = np.flatnonzero((l4 == L4_UDP) & (v6 == 1))
    if len(sel):
        udp = frame[sel] + hl[sel] - 8
        cs = _udp6_checksums(buf, udp, plen[sel] + 8, frame[sel] + L2_LEN[l2[sel]])
        buf[udp + 6], buf[udp + 7] = cs >> np.uint64(8), cs & np.uint64(0xFF)
    return buf


def pcap_header() -> bytes:
    """Return a little-endian microsecond pcap global header (linktype Ethernet)."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)


def write_capture(path: Path, n_packets: int, n_flows: int, seed: int, pps: float) -> tuple[int, int]:
    """Write the capture to path; return (packets written, bytes written)."""
    rng = np.random.default_rng(seed)
    tm = build_templates(rng)
    hosts = build_hosts(rng, n_flows)
    kind, npk = plan_flows(rng, n_packets, n_flows)
    ends = np.cumsum(npk)
    cuts = np.unique(np.searchsorted(ends, np.arange(CHUNK_PACKETS, n_packets, CHUNK_PACKETS)) + 1)
    bounds = [0, *[int(c) for c in cuts if 0 < c < n_flows], n_flows]
    pending = np.zeros(0, dtype=SPEC)
    t0 = START_US
    written = 0
    with path.open("wb") as out:
        out.write(pcap_header())
        nbytes = 24
        for a, b in itertools.pairwise(bounds):
            window = max(1, round(int(npk[a:b].sum()) * 1e6 / pps))
            rows = np.concatenate([pending, gen_chunk(rng, hosts, tm, kind[a:b], npk[a:b], t0, window)])
            rows = rows[np.argsort(rows["ts"], kind="stable")]
            t0 += window
            cut = int(np.searchsorted(rows["ts"], t0))  # later chunks start at t0: these rows are final
            if cut:
                buf = render(rows[:cut], tm)
                out.write(buf.data)
                nbytes += len(buf)
                written += cut
            pending = rows[cut:]
        if len(pending):
            buf = render(pending, tm)
            out.write(buf.data)
            nbytes += len(buf)
            written += len(pending)
    return written, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="pcap file to write")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=None, help="default: packets / 20")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pps", type=float, default=2500.0, help="mean packet rate, sets the time span")
    args = ap.parse_args(argv)
    flows = args.flows if args.flows is not None else max(100, args.packets // 20)
    began = time.perf_counter()
    packets, nbytes = write_capture(args.out, args.packets, flows, args.seed, args.pps)
    took = time.perf_counter() - began
    meta = {
        "generator": GENERATOR,
        "packets": packets,
        "flows": flows,
        "bytes": nbytes,
        "seed": args.seed,
        "pps": args.pps,
        "seconds": round(took, 3),
    }
    Path(f"{args.out}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"{args.out}: {packets:,} packets, {flows:,} flows, {nbytes:,} bytes "
        f"({nbytes / 1e6:.1f} MB) in {took:.1f} s ({packets / took / 1e6:.2f} M packets/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
