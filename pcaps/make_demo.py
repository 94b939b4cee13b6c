#!/usr/bin/env python3
"""Build pcaps/demo-site.pcap: a small, deterministic capture of a camera site (scapy).

    python pcaps/make_demo.py [OUT]

Every byte is fixed by this script (fixed timestamps from 2026-11-02T09:00:00Z, fixed sequence
numbers, ids and payloads; no randomness), so running it twice gives byte-identical files and
tests/test_demo_capture.py can check the committed file against it. pcaps/README.md lists the
devices and flows.

To add a device: add its Host below, write a function `def name(site: Site, t0: float) -> None`
that adds its frames (use the Site and Tcp helpers), and list it in DEVICES with its start time.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRSRV
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter

START_S = 1_793_610_000  # 2026-11-02T09:00:00Z
DEFAULT_OUT = Path(__file__).resolve().parent / "demo-site.pcap"
BROADCAST = "ff:ff:ff:ff:ff:ff"


@dataclass(frozen=True)
class Host:
    """A device on the site: its MAC is what the auditor keys devices by."""

    name: str
    mac: str
    ip: str
    ip6: str | None = None
    vlan: int | None = None
    ttl: int = 64


# Real OUIs (see ../shared/research/vendor_ouis_full.csv); the host part is made up.
GATEWAY = Host("gateway", "00:0c:42:1a:2b:01", "192.168.10.1", ip6="fd00:10::1")  # MikroTik: DNS, DHCP, NTP
VMS = Host("vms", "00:14:22:0a:00:05", "192.168.10.5", ip6="fe80::214:22ff:fe0a:5")  # Dell server
HIKVISION_CAM = Host("hikvision-cam", "4c:bd:8f:21:10:21", "192.168.10.21")
AXIS_CAM = Host("axis-cam", "ac:cc:8e:4a:1b:2c", "192.168.10.22", ip6="fe80::aecc:8eff:fe4a:1b2c")
DAHUA_NVR = Host("dahua-nvr", "3c:ef:8c:30:10:30", "192.168.10.30")
EZVIZ_CAM = Host("ezviz-cam", "58:8f:cf:40:10:40", "192.168.10.40")
# A Dahua-made camera sold under another brand: its MAC has Lorex's OUI (00:1F:54, "Lorex Technology Inc.";
# fingerprints.md A: Lorex models are Dahua OEM), so only what it says on the wire shows it is a Dahua.
OEM_DAHUA_CAM = Host("oem-dahua-cam", "00:1f:54:50:10:50", "192.168.10.50")
# A Hikvision Wi-Fi camera whose MAC comes from its Wi-Fi module (24:0A:C4, "Espressif Inc."; fingerprints.md A:
# Wi-Fi cameras often carry a Wi-Fi-module OUI): the OUI says nothing about the camera's maker.
WIFI_HIK_CAM = Host("wifi-hikvision-cam", "24:0a:c4:60:10:60", "192.168.10.60")
PC = Host("pc", "00:1b:21:3a:4b:5c", "192.168.10.100", ip6="fd00:10::100", ttl=128)  # Intel NIC, Windows
SCANNER = Host("nuctech-scanner", "c0:9b:f4:b1:02:15", "192.168.20.15", vlan=20)  # Nuctech MA-M /28
WORKSTATION = Host("scanner-ws", "00:14:22:14:00:02", "192.168.20.2", vlan=20)
HOSTS = [
    GATEWAY,
    VMS,
    HIKVISION_CAM,
    AXIS_CAM,
    DAHUA_NVR,
    EZVIZ_CAM,
    OEM_DAHUA_CAM,
    WIFI_HIK_CAM,
    PC,
    SCANNER,
    WORKSTATION,
]

# Public peers (documentation ranges, RFC 5737)
EASY4IP = "203.0.113.50"
EXAMPLE_WEB = "198.51.100.10"
EZVIZ_PEER = "198.51.100.77"
IMAGE_SINK = "203.0.113.80"  # where the Nuctech scanner uploads its images (HTTP 8080)
EZVIZ_LITEDEV = "198.51.100.41"  # what the site resolver answers for litedev.ezvizlife.com
HIK_CONNECT = "203.0.113.61"  # what the site resolver answers for litedev.hik-connect.com
EZVIZ_NTP = "203.0.113.123"  # what the site resolver answers for time.ys7.com (EZVIZ's default NTP server)

# Multicast groups of the discovery protocols (fingerprints.md section C)
SSDP_GROUP = "239.255.255.250"  # SSDP udp/1900 (B9), and also ONVIF WS-Discovery udp/3702 (B8), SADP udp/37020 (B1)
DHIP_GROUP = "239.255.255.251"  # Dahua DHIP udp/37810 (B4)


def filler(n: int, salt: int = 0) -> bytes:
    """Return n fixed bytes that look like ciphertext or media (no randomness)."""
    return bytes((i * 167 + salt * 31 + (i >> 3)) & 0xFF for i in range(n))


class Site:
    """Collects frames with their times; write() puts them in time order (ties keep insertion order)."""

    def __init__(self, hosts: list[Host]) -> None:
        self.by_ip = {h.ip: h for h in hosts}
        self.by_ip6 = {h.ip6: h for h in hosts if h.ip6}
        self.frames: list[tuple[int, int, Packet]] = []

    def add(self, t_s: float, frame: Packet) -> None:
        self.frames.append((round(t_s * 1_000_000), len(self.frames), frame))

    def ether(
        self, src: Host | None, dst: Host | None, *, src_mac: str | None = None, dst_mac: str | None = None
    ) -> Packet:
        """Return the L2 header between two hosts; None means "through the gateway"."""
        smac = src_mac or (src or GATEWAY).mac
        dmac = dst_mac or (dst or GATEWAY).mac
        vlan = (src and src.vlan) or (dst and dst.vlan)
        eth = Ether(src=smac, dst=dmac)
        return eth / Dot1Q(vlan=vlan) if vlan else eth

    def ip(self, src_ip: str, dst_ip: str) -> Packet:
        """Return Ether/IP from src_ip to dst_ip, with the MACs a SPAN port would show."""
        src, dst = self.by_ip.get(src_ip), self.by_ip.get(dst_ip)
        ttl = src.ttl if src else 52  # remote peers arrive a dozen hops down
        return self.ether(src, dst) / IP(src=src_ip, dst=dst_ip, ttl=ttl, id=0, flags="DF")

    def udp(self, t: float, src_ip: str, dst_ip: str, sport: int, dport: int, payload: Packet | bytes) -> None:
        self.add(t, self.ip(src_ip, dst_ip) / UDP(sport=sport, dport=dport) / payload)

    def multicast(self, t: float, src: Host, group: str, sport: int, dport: int, payload: bytes, ttl: int = 1) -> None:
        """Add a UDP datagram from src to an IPv4 multicast group (on the LAN only: never routed)."""
        octets = [int(x) for x in group.split(".")]
        mac = f"01:00:5e:{octets[1] & 0x7F:02x}:{octets[2]:02x}:{octets[3]:02x}"  # RFC 1112 §6.4: low 23 bits
        ip = IP(src=src.ip, dst=group, ttl=ttl, id=0, flags="DF")
        self.add(t, self.ether(src, None, dst_mac=mac) / ip / UDP(sport=sport, dport=dport) / payload)

    def write(self, path: Path) -> int:
        """Write the frames to path as a pcap; return how many were written."""
        frames = sorted(self.frames, key=lambda f: (f[0], f[1]))
        writer = PcapWriter(str(path), linktype=1, sync=False)
        try:
            for us, _, frame in frames:
                frame.time = Decimal(START_S * 1_000_000 + us) / 1_000_000
                writer.write(frame)
        finally:
            writer.close()
        return len(frames)


class Tcp:
    """One TCP connection: keeps both sides' sequence numbers so segments line up."""

    def __init__(
        self, site: Site, client_ip: str, server_ip: str, sport: int, dport: int, isn_client: int, isn_server: int
    ) -> None:
        self.site, self.ips, self.ports = site, (client_ip, server_ip), (sport, dport)
        self.nxt = [isn_client, isn_server]

    def _seg(
        self,
        t: float,
        from_client: bool,
        flags: str,
        data: bytes = b"",
        options: list[tuple[str, object]] | None = None,
    ) -> None:
        me = 0 if from_client else 1
        other = 1 - me
        seg = TCP(
            sport=self.ports[me],
            dport=self.ports[other],
            seq=self.nxt[me],
            ack=self.nxt[other] if "A" in flags else 0,
            flags=flags,
            window=64240 if me == 0 else 28960,
            options=options or [],
        )
        ip = self.site.ip(self.ips[me], self.ips[other])
        self.site.add(t, ip / seg / Raw(data) if data else ip / seg)
        self.nxt[me] += len(data) + ("S" in flags) + ("F" in flags)

    def handshake(self, t: float, rtt: float) -> float:
        """Add SYN, SYN-ACK, ACK; return the time of the last one."""
        self._seg(t, True, "S", options=[("MSS", 1460)])
        self._seg(t + rtt, False, "SA", options=[("MSS", 1460)])
        self._seg(t + rtt + 0.0001, True, "A")
        return t + rtt + 0.0001

    def send(self, t: float, from_client: bool, data: bytes) -> None:
        self._seg(t, from_client, "PA", data)

    def ack(self, t: float, from_client: bool) -> None:
        self._seg(t, from_client, "A")

    def send_segments(self, t: float, from_client: bool, data: bytes, gap: float, mss: int = 1460) -> float:
        """Send data as MSS-sized segments gap seconds apart (PSH on the last); return the last one's time."""
        chunks = [data[i : i + mss] for i in range(0, len(data), mss)]
        for i, chunk in enumerate(chunks):
            self._seg(t + gap * i, from_client, "PA" if i == len(chunks) - 1 else "A", chunk)
        return t + gap * (len(chunks) - 1)

    def close(self, t: float, from_client: bool, rtt: float) -> float:
        """Add FIN-ACK, FIN-ACK, ACK starting from one side; return the time of the last one."""
        self._seg(t, from_client, "FA")
        self._seg(t + rtt, not from_client, "FA")
        self._seg(t + rtt + 0.0001, from_client, "A")
        return t + rtt + 0.0001


# ---------------------------------------------------------------- payload builders


def client_hello(sni: str, salt: int) -> bytes:
    """Return a TLS ClientHello record with SNI (RFC 8446 §4.1.2, RFC 6066 §3); fixed random fields."""
    name = sni.encode()
    ciphers = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    exts = b"".join(
        [
            struct.pack(">HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name,
            struct.pack(">HHH3H", 10, 8, 6, 0x001D, 0x0017, 0x0018),
            struct.pack(">HHH4H", 13, 10, 8, 0x0403, 0x0804, 0x0401, 0x0503),
            struct.pack(">HHBHH", 43, 5, 4, 0x0304, 0x0303),
            struct.pack(">HHHHH", 51, 38, 36, 0x001D, 32) + filler(32, salt + 1),
        ]
    )
    body = (
        b"\x03\x03"
        + filler(32, salt)
        + b"\x20"
        + filler(32, salt + 2)
        + struct.pack(f">H{len(ciphers)}H", 2 * len(ciphers), *ciphers)
        + b"\x01\x00"
        + struct.pack(">H", len(exts))
        + exts
    )
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def server_hello(salt: int) -> bytes:
    """Return a TLS 1.3 ServerHello, ChangeCipherSpec and one encrypted record (fixed bytes)."""
    exts = struct.pack(">HHH", 43, 2, 0x0304) + struct.pack(">HHHH", 51, 36, 0x001D, 32) + filler(32, salt + 3)
    body = (
        b"\x03\x03"
        + filler(32, salt + 4)
        + b"\x20"
        + filler(32, salt + 2)
        + b"\x13\x01\x00"
        + struct.pack(">H", len(exts))
        + exts
    )
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack(">H", len(hs)) + hs + b"\x14\x03\x03\x00\x01\x01" + app_data(420, salt + 5)


def app_data(n: int, salt: int) -> bytes:
    """Return one TLS application-data record of n encrypted bytes."""
    return b"\x17\x03\x03" + struct.pack(">H", n) + filler(n, salt)


def ntp_packet(mode: int, t_s: float, stratum: int = 0, ref_id: bytes = b"\0\0\0\0") -> bytes:
    """Return a 48-byte NTPv4 header (RFC 5905 §7.3) whose timestamps are t_s."""
    era = START_S + 2_208_988_800  # NTP counts from 1900
    stamp = (int(era + t_s) << 32) | int((t_s % 1) * (1 << 32))
    ts = struct.pack(">Q", stamp)
    head = struct.pack(">BBbbII4s", (4 << 3) | mode, stratum, 6, -20, 0, 0, ref_id)
    if mode == 3:  # a client fills in only its transmit time
        return head + bytes(24) + ts
    return head + ts + ts + ts + ts


def rtsp(lines: list[str], body: str = "") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sadp_hello(host: Host, uuid: str, ident: list[tuple[str, str]], status: list[tuple[str, str]]) -> bytes:
    """Return a Hikvision SADP <Hello>, the XML a device multicasts unasked to 239.255.255.250:37020.

    fingerprints.md B1: plain UTF-8 XML; devices announce themselves with Hello (ethodump-ng handles
    Probe, ProbeMatch and Hello) carrying the ProbeMatch fields: Uuid, then `ident` (DeviceType,
    DeviceDescription = model, DeviceSN = model + date + serial, CommandPort, HttpPort), then the host's
    own network fields (MAC dash-separated, IPv4Address...), then `status` (SoftwareVersion
    `V5.x.ybuild YYMMDD`, DetailOEMCode, SupportHCPlatform, HCPlatformEnable...).
    """
    network = [
        ("MAC", host.mac.replace(":", "-")),
        ("IPv4Address", host.ip),
        ("IPv4SubnetMask", "255.255.255.0"),
        ("IPv4Gateway", GATEWAY.ip),
        ("IPv6Address", "::"),
        ("IPv6Gateway", "::"),
        ("IPv6MaskLen", "64"),
        ("DHCP", "false"),  # a fixed address, as the DHIP announcements say (DhcpEnable false)
    ]
    body = "".join(f"<{k}>{v}</{k}>" for k, v in [("Uuid", uuid), *ident, *network, *status])
    return f'<?xml version="1.0" encoding="UTF-8"?><Hello>{body}</Hello>'.encode()


def wsd_hello(host: Host, uuid: str, message_id: str, types: str, scopes: list[str]) -> bytes:
    """Return an ONVIF WS-Discovery Hello (SOAP 1.2, WS-Discovery 2005/04), multicast to 239.255.255.250:3702.

    fingerprints.md B8: Types `dn:NetworkVideoTransmitter` (ns http://www.onvif.org/ver10/network/wsdl) with
    `tds:Device`; space-separated, percent-encoded onvif:// scopes; XAddrs `http://<ip>/onvif/device_service`.
    """
    ns = (
        'xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsadis="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
        'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"'
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope {ns}><env:Header>'
        f"<wsadis:MessageID>urn:uuid:{message_id}</wsadis:MessageID>"
        "<wsadis:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsadis:To>"
        "<wsadis:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Hello</wsadis:Action>"
        '<d:AppSequence InstanceId="1" MessageNumber="1"/></env:Header><env:Body><d:Hello>'
        f"<wsadis:EndpointReference><wsadis:Address>urn:uuid:{uuid}</wsadis:Address></wsadis:EndpointReference>"
        f"<d:Types>{types}</d:Types><d:Scopes>{' '.join(scopes)}</d:Scopes>"
        f"<d:XAddrs>http://{host.ip}/onvif/device_service</d:XAddrs>"
        "<d:MetadataVersion>1</d:MetadataVersion></d:Hello></env:Body></env:Envelope>"
    ).encode()


def dhip_notify(host: Host, info: dict[str, object]) -> bytes:
    """Return a Dahua DHIP client.notifyDevInfo datagram, as a device multicasts it to 239.255.255.251:37810.

    fingerprints.md B4: a 32-byte little-endian header (u32 0x20, ASCII 'DHIP', the JSON length at 0x10 and
    0x18, the rest 0), then JSON with `method`, a top-level `mac` and `params.deviceInfo` (DeviceType,
    SerialNo, Vendor, Version, MachineName, IPv4Address{...}, Port 37777...), then padding (ethodump-ng
    strips 2 bytes after the JSON).
    """
    doc = {
        "mac": host.mac,
        "method": "client.notifyDevInfo",
        "params": {
            "deviceInfo": {
                **info,
                "HttpPort": 80,
                "IPv4Address": {
                    "DefaultGateway": GATEWAY.ip,
                    "DhcpEnable": False,
                    "IPAddress": host.ip,
                    "SubnetMask": "255.255.255.0",
                },
                "Port": 37777,
            }
        },
    }
    body = json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()
    return struct.pack("<I4sIIIIII", 0x20, b"DHIP", 0, 0, len(body), 0, len(body), 0) + body + b"\n\x00"


def ssdp_search(target: str, mx: int = 3) -> bytes:
    """Return an SSDP M-SEARCH for `target` (UPnP Device Architecture: HOST, MAN "ssdp:discover", MX, ST)."""
    return (
        f'M-SEARCH * HTTP/1.1\r\nHOST: {SSDP_GROUP}:1900\r\nST: {target}\r\nMAN: "ssdp:discover"\r\nMX: {mx}\r\n\r\n'
    ).encode()


def dns_exchange(
    site: Site,
    t: float,
    client: Host,
    server_ip: str,
    txid: int,
    sport: int,
    name: str,
    answer: str,
    rtt: float = 0.004,
) -> None:
    """Add an A query from client and the server's answer."""
    site.udp(t, client.ip, server_ip, sport, 53, DNS(id=txid, rd=1, qd=DNSQR(qname=name, qtype="A")))
    site.udp(
        t + rtt,
        server_ip,
        client.ip,
        53,
        sport,
        DNS(
            id=txid,
            qr=1,
            rd=1,
            ra=1,
            qd=DNSQR(qname=name, qtype="A"),
            an=DNSRR(rrname=name, type="A", ttl=300, rdata=answer),
        ),
    )


def arp_exchange(site: Site, t: float, asker: Host, target: Host) -> None:
    """Add a broadcast who-has from asker and target's reply."""
    site.add(
        t,
        site.ether(asker, None, dst_mac=BROADCAST)
        / ARP(op=1, hwsrc=asker.mac, psrc=asker.ip, hwdst="00:00:00:00:00:00", pdst=target.ip),
    )
    site.add(
        t + 0.0003,
        site.ether(target, asker) / ARP(op=2, hwsrc=target.mac, psrc=target.ip, hwdst=asker.mac, pdst=asker.ip),
    )


def tls_session(
    site: Site, t: float, client: Host, server_ip: str, sport: int, sni: str, salt: int, rtt: float
) -> None:
    """Add a short HTTPS connection: handshake, ClientHello with SNI, a few records, FIN."""
    c = Tcp(site, client.ip, server_ip, sport, 443, 0x1000_0000 + salt * 0x10_0001, 0x8000_0000 + salt * 0x2_0003)
    t = c.handshake(t, rtt)
    c.send(t + 0.0005, True, client_hello(sni, salt))
    c.send(t + rtt + 0.001, False, server_hello(salt))
    c.send(t + rtt + 0.003, True, b"\x14\x03\x03\x00\x01\x01" + app_data(53, salt + 6) + app_data(180, salt + 7))
    c.send(t + 2 * rtt + 0.004, False, app_data(610, salt + 8))
    c.ack(t + 2 * rtt + 0.005, True)
    c.close(t + 2 * rtt + 0.5, True, rtt)


# ---------------------------------------------------------------- devices


def hikvision_camera(site: Site, t0: float) -> None:
    """Hikvision camera: NTP to the gateway; the VMS pulls its stream over RTSP (TCP 554, interleaved RTP)."""
    cam, vms = HIKVISION_CAM, VMS
    site.udp(t0, cam.ip, GATEWAY.ip, 123, 123, ntp_packet(3, t0))
    site.udp(t0 + 0.0008, GATEWAY.ip, cam.ip, 123, 123, ntp_packet(4, t0 + 0.0004, 2, b"\xc0\x00\x02\x7b"))
    hikvision_discovery(site, t0 + 0.5)

    t = t0 + 1.5
    arp_exchange(site, t, vms, cam)
    url = f"rtsp://{cam.ip}:554/Streaming/Channels/101"
    ua = "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)"
    date = "Date:  Mon, Nov 02 2026 09:00:05 GMT"
    nonce = "5f2b3c4d6e7f8091a2b3c4d5e6f70819"
    c = Tcp(site, vms.ip, cam.ip, 50554, 554, 0x2A00_0001, 0x6B00_0001)
    t = c.handshake(t + 0.001, 0.0004)
    exchange = [
        (
            rtsp([f"OPTIONS {url} RTSP/1.0", "CSeq: 1", ua]),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 1",
                    "Public: OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER",
                    date,
                ]
            ),
        ),
        (
            rtsp([f"DESCRIBE {url} RTSP/1.0", "CSeq: 2", ua, "Accept: application/sdp"]),
            rtsp(
                [
                    "RTSP/1.0 401 Unauthorized",
                    "CSeq: 2",
                    f'WWW-Authenticate: Digest realm="Hikvision", nonce="{nonce}", stale="FALSE"',
                    date,
                ]
            ),
        ),
    ]
    sdp = "\r\n".join(
        [
            "v=0",
            f"o=- {START_S} {START_S} IN IP4 {cam.ip}",
            "s=Media Presentation",
            "e=NONE",
            "b=AS:5100",
            "t=0 0",
            f"a=control:{url}/?transportmode=unicast",
            "m=video 0 RTP/AVP 96",
            "c=IN IP4 0.0.0.0",
            "b=AS:5000",
            "a=recvonly",
            f"a=control:{url}/trackID=1?transportmode=unicast",
            "a=rtpmap:96 H264/90000",
            "",
        ]
    )
    auth = (
        'Authorization: Digest username="admin", realm="Hikvision", '
        f'nonce="{nonce}", uri="{url}", response="0c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f"'
    )
    session = "Session: 1160364512"
    exchange += [
        (
            rtsp([f"DESCRIBE {url} RTSP/1.0", "CSeq: 3", auth, ua, "Accept: application/sdp"]),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 3",
                    "Content-Type: application/sdp",
                    f"Content-Base: {url}/",
                    f"Content-Length: {len(sdp)}",
                ],
                sdp,
            ),
        ),
        (
            rtsp(
                [
                    f"SETUP {url}/trackID=1?transportmode=unicast RTSP/1.0",
                    "CSeq: 4",
                    auth,
                    ua,
                    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                ]
            ),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 4",
                    f"{session};timeout=60",
                    'Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=2f6a8b1c;mode="play"',
                    date,
                ]
            ),
        ),
        (
            rtsp([f"PLAY {url} RTSP/1.0", "CSeq: 5", auth, ua, session, "Range: npt=0.000-"]),
            rtsp(["RTSP/1.0 200 OK", "CSeq: 5", session, f"RTP-Info: url={url}/trackID=1;seq=4660;rtptime=0", date]),
        ),
    ]
    for request, response in exchange:
        c.send(t + 0.01, True, request)
        c.send(t + 0.0125, False, response)
        c.ack(t + 0.0127, True)
        t += 0.02
    # interleaved RTP (RFC 2326 §10.12): '$', channel 0, length, RTP header (RFC 3550 §5.1), H.264 FU-A
    for i in range(12):
        rtp = struct.pack(">BBHII", 0x80, 96 | (0x80 if i % 4 == 3 else 0), 4660 + i, 3600 * (i // 4), 0x2F6A8B1C)
        nal = bytes([0x7C, (0x85 if i % 4 == 0 else 0x05) | (0x40 if i % 4 == 3 else 0)]) + filler(1100, i)
        c.send(t + 0.01 * i, False, b"$\x00" + struct.pack(">H", len(rtp) + len(nal)) + rtp + nal)
        if i % 2 == 1:
            c.ack(t + 0.01 * i + 0.0002, True)
    t += 0.2
    c.send(t, True, rtsp([f"TEARDOWN {url} RTSP/1.0", "CSeq: 6", auth, ua, session]))
    c.send(t + 0.002, False, rtsp(["RTSP/1.0 200 OK", "CSeq: 6", session, date]))
    c.close(t + 0.003, True, 0.0004)


def hikvision_discovery(site: Site, t: float) -> None:
    """The Hikvision camera announces itself: a SADP Hello (fingerprints.md B1) and an ONVIF WS-Discovery
    Hello (B8). DetailOEMCode 1 is Hikvision's own (not rebadged) firmware; Hik-Connect is supported but
    switched off (HCPlatformEnable false), matching a camera that talks only to local hosts. The numeric
    DeviceType, the serial, the UUIDs and the build dates are made up."""
    cam = HIKVISION_CAM
    model = "DS-2CD2143G2-I"
    hello = sadp_hello(
        cam,
        "4C4B4D30-1DD2-11B2-8000-4CBD8F211021",
        [
            ("DeviceType", "139264"),
            ("DeviceDescription", model),
            ("DeviceSN", f"{model}20220315AAWRJ00000021"),
            ("CommandPort", "8000"),
            ("HttpPort", "80"),
        ],
        [
            ("AnalogChannelNum", "0"),
            ("DigitalChannelNum", "1"),
            ("SoftwareVersion", "V5.7.3build 220112"),
            ("DSPVersion", "V7.3 build 220112"),
            ("BootTime", "2026-11-02 08:41:17"),
            ("Encrypt", "true"),
            ("ResetAbility", "false"),
            ("DiskNumber", "0"),
            ("Activated", "true"),
            ("PasswordResetAbility", "true"),
            ("PasswordResetModeSecond", "true"),
            ("DetailOEMCode", "1"),
            ("SupportSecurityQuestion", "true"),
            ("SupportHCPlatform", "true"),
            ("HCPlatformEnable", "false"),
            ("IsModifyVerificationCode", "false"),
            ("SDKServerStatus", "true"),
            ("SDKOverTLSServerStatus", "true"),
        ],
    )
    site.multicast(t, cam, SSDP_GROUP, 37020, 37020, hello)
    onvif = "onvif://www.onvif.org"
    scopes = [
        f"{onvif}/type/video_encoder",
        f"{onvif}/type/Network_Video_Transmitter",
        f"{onvif}/Profile/Streaming",
        f"{onvif}/MAC/{cam.mac}",
        f"{onvif}/hardware/{model}",
        f"{onvif}/name/HIKVISION%20{model}",
        f"{onvif}/location/city/hangzhou",
    ]
    wsd = wsd_hello(
        cam,
        "4c4b4d30-1dd2-11b2-8000-4cbd8f211021",
        "4c4b4d30-1dd2-11b2-8001-4cbd8f211021",
        "dn:NetworkVideoTransmitter tds:Device",
        scopes,
    )
    site.multicast(t + 0.1, cam, SSDP_GROUP, 3702, 3702, wsd)


def axis_camera(site: Site, t0: float) -> None:
    """Axis camera: DHCP with host name and vendor class, announces itself over ARP and mDNS; talks only to the VMS."""
    cam = AXIS_CAM
    xid = 0x3903F326
    hostname = "axis-accc8e4a1b2c"
    vendor = "AXIS,Network Camera,P3245-LV,10.12.182"
    prl = [1, 3, 6, 12, 15, 28, 42]
    client_id = b"\x01" + bytes.fromhex(cam.mac.replace(":", ""))
    chaddr = bytes.fromhex(cam.mac.replace(":", "")) + bytes(10)

    def bootp(op: int, yiaddr: str = "0.0.0.0") -> Packet:
        return BOOTP(op=op, xid=xid, chaddr=chaddr, yiaddr=yiaddr, flags=0)

    def from_client(t: float, options: list[object]) -> None:  # option order as Axis sends it: 53,61,57,55,60,12
        site.add(
            t,
            site.ether(cam, None, dst_mac=BROADCAST)
            / IP(src="0.0.0.0", dst="255.255.255.255", id=0)
            / UDP(sport=68, dport=67)
            / bootp(1)
            / DHCP(options=options),
        )

    def from_server(t: float, kind: str) -> None:
        site.add(
            t,
            site.ether(GATEWAY, cam)
            / IP(src=GATEWAY.ip, dst=cam.ip, id=0)
            / UDP(sport=67, dport=68)
            / bootp(2, cam.ip)
            / DHCP(
                options=[
                    ("message-type", kind),
                    ("server_id", GATEWAY.ip),
                    ("lease_time", 86400),
                    ("subnet_mask", "255.255.255.0"),
                    ("router", GATEWAY.ip),
                    ("name_server", GATEWAY.ip),
                    ("domain", b"site.example"),
                    "end",
                ]
            ),
        )

    common = [
        ("client_id", client_id),
        ("max_dhcp_size", 576),
        ("param_req_list", prl),
        ("vendor_class_id", vendor.encode()),
        ("hostname", hostname.encode()),
    ]
    from_client(t0, [("message-type", "discover"), *common, "end"])
    from_server(t0 + 0.002, "offer")
    from_client(
        t0 + 0.5,
        [
            ("message-type", "request"),
            common[0],
            ("requested_addr", cam.ip),
            ("server_id", GATEWAY.ip),
            *common[1:],
            "end",
        ],
    )
    from_server(t0 + 0.502, "ack")
    # gratuitous ARP announcing the leased address (RFC 5227 §2.3)
    site.add(
        t0 + 0.6,
        site.ether(cam, None, dst_mac=BROADCAST)
        / ARP(op=1, hwsrc=cam.mac, psrc=cam.ip, hwdst="00:00:00:00:00:00", pdst=cam.ip),
    )

    # the VMS browses for Axis cameras over mDNS (RFC 6762) on IPv6 link-local
    service = "_axis-video._tcp.local"
    instance = f"AXIS P3245-LV - ACCC8E4A1B2C.{service}"
    t = t0 + 20.0
    site.add(
        t,
        site.ether(VMS, None, dst_mac="33:33:00:00:00:fb")
        / IPv6(src=VMS.ip6, dst="ff02::fb", hlim=255)
        / UDP(sport=5353, dport=5353)
        / DNS(id=0, qd=DNSQR(qname=service, qtype="PTR")),
    )
    site.add(
        t + 0.05,
        site.ether(cam, None, dst_mac="33:33:00:00:00:fb")
        / IPv6(src=cam.ip6, dst="ff02::fb", hlim=255)
        / UDP(sport=5353, dport=5353)
        / DNS(
            id=0,
            qr=1,
            aa=1,
            qd=[],
            an=[
                DNSRR(rrname=service, type="PTR", ttl=4500, rdata=instance),
                DNSRRSRV(rrname=instance, ttl=120, priority=0, weight=0, port=80, target=f"{hostname}.local"),
                DNSRR(rrname=f"{hostname}.local", type="A", ttl=120, rdata=cam.ip),
            ],
        ),
    )

    # the VMS reads the camera's brand parameters over HTTP (VAPIX param.cgi)
    body = (
        "root.Brand.Brand=AXIS\r\nroot.Brand.ProdFullName=AXIS P3245-LV Network Camera\r\n"
        "root.Brand.ProdNbr=P3245-LV\r\nroot.Brand.ProdType=Network Camera\r\n"
    )
    c = Tcp(site, VMS.ip, cam.ip, 50880, 80, 0x3B00_0001, 0x7C00_0001)
    t = c.handshake(t0 + 30.0, 0.0004)
    c.send(
        t + 0.001,
        True,
        (
            f"GET /axis-cgi/param.cgi?action=list&group=root.Brand HTTP/1.1\r\nHost: {cam.ip}\r\n"
            "User-Agent: vms-poller/2.1\r\nAccept: */*\r\n\r\n"
        ).encode(),
    )
    c.send(
        t + 0.004,
        False,
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
        ).encode(),
    )
    c.close(t + 0.005, False, 0.0004)


def dahua_nvr(site: Site, t0: float) -> None:
    """Dahua NVR: resolves its P2P cloud name through the site resolver, then opens TLS 443 to it;
    later the VMS pulls its stream over RTSP (TCP 554, interleaved RTP)."""
    nvr = DAHUA_NVR
    arp_exchange(site, t0, nvr, GATEWAY)
    dns_exchange(site, t0 + 0.01, nvr, GATEWAY.ip, 0x4D21, 40123, "www.easy4ipcloud.com", EASY4IP, rtt=0.031)
    tls_session(site, t0 + 0.1, nvr, EASY4IP, 41234, "www.easy4ipcloud.com", salt=1, rtt=0.180)
    # fingerprints.md B4: generic Dahua firmware says Vendor "General"; the serial is the one in its RTSP realm
    info = {
        "AlarmInputChannels": 4,
        "AlarmOutputChannels": 1,
        "DeviceType": "DHI-NVR4208-8P-4KS2/L",
        "MachineName": "dahua-nvr",
        "RemoteVideoInputChannels": 8,
        "SerialNo": "7K0DEMO0030",
        "Vendor": "General",
        "Version": "4.001.0000000.6",
        "VideoInputChannels": 0,
        "VideoOutputChannels": 2,
    }
    site.multicast(t0 + 1.5, nvr, DHIP_GROUP, 37810, 37810, dhip_notify(nvr, info))
    dahua_rtsp(site, t0 + 8.0)


def dahua_rtsp(
    site: Site,
    t0: float,
    nvr: Host = DAHUA_NVR,
    *,
    sport: int = 50562,
    isns: tuple[int, int] = (0x2C00_0001, 0x6D00_0001),
    serial: str = "7K0DEMO0030",
    nonce: str = "a4f1c2e3b5d6978801f2e3d4c5b6a798",
    response: str = "7d3e9a1b2c4f5e6d8a9b0c1d2e3f4a5b",
    session_id: str = "3021554877",
    ssrc: int = 0x5D1E3A70,
    frames: int = 8,
    salt: int = 40,
) -> None:
    """The VMS pulls a Dahua-made device's stream over RTSP: OPTIONS, DESCRIBE -> 401, DESCRIBE -> 200, SETUP,
    PLAY, `frames` interleaved RTP frames, TEARDOWN, FIN. The defaults are the Dahua NVR's session.

    Banners from ../shared/research/fingerprints.md B13: Dahua's RTSP server answers with
    `Server: Dahua Rtsp Server` (recog rtsp_servers.xml; nmap), and its digest realm is `Login to <serial>`
    (recog/nmap, seen on Lorex, a Dahua OEM). The serial, nonce and digest response are made up.
    """
    vms = VMS
    realm = f"Login to {serial}"
    server = "Server: Dahua Rtsp Server"
    url = f"rtsp://{nvr.ip}:554/cam/realmonitor?channel=1&subtype=0"
    ua = "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)"
    c = Tcp(site, vms.ip, nvr.ip, sport, 554, *isns)
    t = c.handshake(t0, 0.0004)
    sdp = "\r\n".join(
        [
            "v=0",
            f"o=- {START_S} {START_S} IN IP4 {nvr.ip}",
            "s=Media Server",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=now-",
            "m=video 0 RTP/AVP 96",
            "a=control:trackID=0",
            "a=framerate:25.000000",
            "a=rtpmap:96 H264/90000",
            "a=recvonly",
            "",
        ]
    )
    auth = (
        f'Authorization: Digest username="admin", realm="{realm}", nonce="{nonce}", uri="{url}", response="{response}"'
    )
    session = f"Session: {session_id}"
    exchange = [
        (
            rtsp([f"OPTIONS {url} RTSP/1.0", "CSeq: 1", ua]),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 1",
                    server,
                    "Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, TEARDOWN, SET_PARAMETER, GET_PARAMETER",
                ]
            ),
        ),
        (
            rtsp([f"DESCRIBE {url} RTSP/1.0", "CSeq: 2", ua, "Accept: application/sdp"]),
            rtsp(
                [
                    "RTSP/1.0 401 Unauthorized",
                    "CSeq: 2",
                    server,
                    f'WWW-Authenticate: Digest realm="{realm}", nonce="{nonce}", stale="FALSE"',
                ]
            ),
        ),
        (
            rtsp([f"DESCRIBE {url} RTSP/1.0", "CSeq: 3", auth, ua, "Accept: application/sdp"]),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 3",
                    server,
                    "Content-Type: application/sdp",
                    f"Content-Base: {url}/",
                    f"Content-Length: {len(sdp)}",
                ],
                sdp,
            ),
        ),
        (
            rtsp(
                [
                    f"SETUP {url}/trackID=0 RTSP/1.0",
                    "CSeq: 4",
                    auth,
                    ua,
                    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                ]
            ),
            rtsp(
                [
                    "RTSP/1.0 200 OK",
                    "CSeq: 4",
                    server,
                    f"{session};timeout=60",
                    f"Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={ssrc:08X}",
                ]
            ),
        ),
        (
            rtsp([f"PLAY {url}/ RTSP/1.0", "CSeq: 5", auth, ua, session, "Range: npt=0.000-"]),
            rtsp(["RTSP/1.0 200 OK", "CSeq: 5", server, session, f"RTP-Info: url={url}/trackID=0;seq=8800;rtptime=0"]),
        ),
    ]
    for request, response in exchange:
        c.send(t + 0.01, True, request)
        c.send(t + 0.0125, False, response)
        c.ack(t + 0.0127, True)
        t += 0.02
    # interleaved RTP (RFC 2326 §10.12) carrying H.264 FU-A fragments, as for the Hikvision camera
    for i in range(frames):
        rtp = struct.pack(">BBHII", 0x80, 96 | (0x80 if i % 4 == 3 else 0), 8800 + i, 3600 * (i // 4), ssrc)
        nal = bytes([0x7C, (0x85 if i % 4 == 0 else 0x05) | (0x40 if i % 4 == 3 else 0)]) + filler(900, salt + i)
        c.send(t + 0.01 * i, False, b"$\x00" + struct.pack(">H", len(rtp) + len(nal)) + rtp + nal)
        if i % 2 == 1:
            c.ack(t + 0.01 * i + 0.0002, True)
    t += 0.2
    c.send(t, True, rtsp([f"TEARDOWN {url}/ RTSP/1.0", "CSeq: 6", auth, ua, session]))
    c.send(t + 0.002, False, rtsp(["RTSP/1.0 200 OK", "CSeq: 6", server, session]))
    c.close(t + 0.003, True, 0.0004)


def ezviz_camera(site: Site, t0: float) -> None:
    """EZVIZ camera: looks up and calls its bootstrap server, sets its clock from its vendor's NTP server
    rather than the site's, searches for a UPnP router to open ports on, then UDP to a public address it
    never looked up in DNS (placeholder payload, not the real format).

    fingerprints.md B7 (Blanchfield's EZVIZ DB1 capture): DNS for litedev.ezvizlife.com at boot, then the
    device talks to it (the capture's TLS on 443 stands in for its binary tcp/8666 exchange), and it
    sends SSDP M-SEARCH for InternetGatewayDevice (B9: a UPnP port-forwarding attempt). B7/B11: the EZVIZ
    firmware's default NTP server is time.ys7.com; NTP has no name on the wire, so only the camera's own
    DNS answer names that flow.
    """
    cam = EZVIZ_CAM
    dns_exchange(site, t0, cam, GATEWAY.ip, 0x5E40, 49300, "litedev.ezvizlife.com", EZVIZ_LITEDEV, rtt=0.009)
    tls_session(site, t0 + 0.05, cam, EZVIZ_LITEDEV, 49301, "litedev.ezvizlife.com", salt=3, rtt=0.210)
    dns_exchange(site, t0 + 1.0, cam, GATEWAY.ip, 0x5E41, 49303, "time.ys7.com", EZVIZ_NTP, rtt=0.008)
    site.udp(t0 + 1.02, cam.ip, EZVIZ_NTP, 123, 123, ntp_packet(3, t0 + 1.02))
    site.udp(t0 + 1.31, EZVIZ_NTP, cam.ip, 123, 123, ntp_packet(4, t0 + 1.17, 2, b"\xcb\x00\x71\x01"))
    igd = ssdp_search("urn:schemas-upnp-org:device:InternetGatewayDevice:1")
    site.multicast(t0 + 2.0, cam, SSDP_GROUP, 49302, 1900, igd, ttl=2)  # UDA 1.1+: TTL should default to 2
    for i in range(3):
        t = t0 + 4.0 + 15.0 * i
        site.udp(
            t,
            cam.ip,
            EZVIZ_PEER,
            49320,
            31007,
            (
                f'<?xml version="1.0" encoding="utf-8"?><Request><Type>keepalive</Type><Seq>{i + 1}</Seq>'
                "<Serial>DEMO00000001</Serial></Request>"
            ).encode(),
        )
        site.udp(
            t + 0.062,
            EZVIZ_PEER,
            cam.ip,
            31007,
            49320,
            (
                f'<?xml version="1.0" encoding="utf-8"?><Response><Seq>{i + 1}</Seq><Result>0</Result></Response>'
            ).encode(),
        )


def oem_dahua_camera(site: Site, t0: float) -> None:
    """A Dahua-made camera sold as Lorex, with Lorex's OUI: it answers DHIP with Vendor "Lorex" and a Dahua
    IPC-... DeviceType (fingerprints.md B4: Vendor is the OEM label), and its RTSP server is Dahua's
    (B13: `Server: Dahua Rtsp Server`, realm `Login to <serial>`). Serial and firmware are made up."""
    cam = OEM_DAHUA_CAM
    info = {
        "AlarmInputChannels": 1,
        "AlarmOutputChannels": 1,
        "DeviceType": "IPC-HDW2431T-AS-S2",
        "MachineName": "oem-dahua-cam",
        "RemoteVideoInputChannels": 0,
        "SerialNo": "7M0DEMO0050",
        "Vendor": "Lorex",
        "Version": "2.800.0000000.25.R",
        "VideoInputChannels": 1,
        "VideoOutputChannels": 0,
    }
    site.multicast(t0, cam, DHIP_GROUP, 37810, 37810, dhip_notify(cam, info))
    arp_exchange(site, t0 + 1.0, VMS, cam)
    dahua_rtsp(
        site,
        t0 + 1.001,
        cam,
        sport=50566,
        isns=(0x2E00_0001, 0x6F00_0001),
        serial="7M0DEMO0050",
        nonce="c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8",
        response="1f2e3d4c5b6a79880f1e2d3c4b5a6978",
        session_id="1850334702",
        ssrc=0x3A5C7E91,
        frames=4,
        salt=50,
    )


def wifi_hikvision_camera(site: Site, t0: float) -> None:
    """A Hikvision Wi-Fi camera (DS-2CV... series) whose MAC has its Espressif Wi-Fi module's OUI: it announces
    itself over SADP (fingerprints.md B1; Hik-Connect on, HCPlatformEnable true) and, after a DNS lookup via
    the gateway, opens TLS to the Hik-Connect platform address litedev.hik-connect.com (B7). The numeric
    DeviceType, serial, UUID and build dates are made up."""
    cam = WIFI_HIK_CAM
    model = "DS-2CV2041G2-IDW"
    hello = sadp_hello(
        cam,
        "4C4B4D30-1DD2-11B2-8000-240AC4601060",
        [
            ("DeviceType", "139264"),
            ("DeviceDescription", model),
            ("DeviceSN", f"{model}20230615AAWRL00000060"),
            ("CommandPort", "8000"),
            ("HttpPort", "80"),
        ],
        [
            ("AnalogChannelNum", "0"),
            ("DigitalChannelNum", "1"),
            ("SoftwareVersion", "V5.5.800build 230615"),
            ("DSPVersion", "V7.3 build 230615"),
            ("BootTime", "2026-11-02 08:58:40"),
            ("Activated", "true"),
            ("DetailOEMCode", "1"),
            ("SupportHCPlatform", "true"),
            ("HCPlatformEnable", "true"),
        ],
    )
    site.multicast(t0, cam, SSDP_GROUP, 37020, 37020, hello)
    dns_exchange(site, t0 + 1.0, cam, GATEWAY.ip, 0x6A60, 50060, "litedev.hik-connect.com", HIK_CONNECT, rtt=0.011)
    tls_session(site, t0 + 1.05, cam, HIK_CONNECT, 50061, "litedev.hik-connect.com", salt=4, rtt=0.190)


def pc(site: Site, t0: float) -> None:
    """Office PC: DNS then HTTPS to a public web site, and an ICMPv6 echo to the gateway's ULA."""
    arp_exchange(site, t0, PC, GATEWAY)
    dns_exchange(site, t0 + 0.01, PC, GATEWAY.ip, 0x1A2B, 51000, "www.example.com", EXAMPLE_WEB, rtt=0.012)
    tls_session(site, t0 + 0.05, PC, EXAMPLE_WEB, 51001, "www.example.com", salt=2, rtt=0.024)
    for i in range(2):
        t = t0 + 10.0 + i
        site.add(
            t,
            site.ether(PC, GATEWAY)
            / IPv6(src=PC.ip6, dst=GATEWAY.ip6, hlim=128)
            / ICMPv6EchoRequest(id=1, seq=i + 1, data=b"abcdefghijklmnopqrstuvwabcdefghi"),
        )
        site.add(
            t + 0.0003,
            site.ether(GATEWAY, PC)
            / IPv6(src=GATEWAY.ip6, dst=PC.ip6, hlim=64)
            / ICMPv6EchoReply(id=1, seq=i + 1, data=b"abcdefghijklmnopqrstuvwabcdefghi"),
        )


def nuctech_scanner(site: Site, t0: float) -> None:
    """Nuctech screening scanner on VLAN 20: syslog to its workstation (placeholder messages), then an
    HTTP POST of a scan image to a public address (routed through the gateway)."""
    for i, msg in enumerate(["system started", "self-test passed", "heartbeat"]):
        stamp = f"2026-11-02T09:00:{int(t0) + 5 * i:02d}.000Z"
        line = f"<134>1 {stamp} scanner-01 scanctl 1201 - - {msg}"
        site.udp(t0 + 5 * i, SCANNER.ip, WORKSTATION.ip, 40514, 514, line.encode())

    # the image: JPEG SOI + APP0 "JFIF" header (FF D8 FF E0 ...), fixed filler, EOI; 4,000 bytes in all
    jfif = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    image = jfif + filler(4000 - len(jfif) - 2, 60) + b"\xff\xd9"
    head = (
        f"POST /upload HTTP/1.1\r\nHost: {IMAGE_SINK}:8080\r\nUser-Agent: scanctl/1.2\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {len(image)}\r\n\r\n"
    ).encode()
    c = Tcp(site, SCANNER.ip, IMAGE_SINK, 49810, 8080, 0x3D00_0001, 0x7E00_0001)
    rtt = 0.090
    t = c.handshake(t0 + 11.0, rtt)
    t = c.send_segments(t + 0.001, True, head + image, gap=0.0002)
    c.ack(t + rtt, False)
    c.send(
        t + rtt + 0.015,
        False,
        b"HTTP/1.1 201 Created\r\nLocation: /upload/scan-000001.jpg\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    c.ack(t + rtt + 0.0152, True)
    c.close(t + rtt + 0.016, True, rtt)


DEVICES: list[tuple[Callable[[Site, float], None], float]] = [
    (axis_camera, 0.0),
    (hikvision_camera, 3.0),
    (ezviz_camera, 8.0),
    (dahua_nvr, 10.0),
    (pc, 15.0),
    (oem_dahua_camera, 22.0),
    (nuctech_scanner, 30.0),
    (wifi_hikvision_camera, 31.0),
]
"""Each device's function and the second (after START_S) at which its first frame appears."""


def build() -> Site:
    """Return the site with every device's frames added."""
    site = Site(HOSTS)
    for device, t0 in DEVICES:
        device(site, t0)
    return site


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT.name}")
    args = ap.parse_args(argv)
    n = build().write(args.out)
    print(f"{args.out}: {n} packets, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
