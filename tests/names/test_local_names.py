"""LocalNames: DHCP host names and mDNS A/AAAA owners bound to local addresses and MACs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR

from auditor.names.local_names import LocalNames
from auditor.names.types import address_key
from auditor.protocols import dhcp, dns
from auditor.protocols.dhcp import DhcpRecord
from auditor.protocols.dns import DnsMessage

S = 1_000_000_000
T0 = 1_700_000_000 * S
MAC = "00:11:22:33:44:55"

# --- builders --------------------------------------------------------------------------------------


def dhcp_message(
    op: int,
    message_type: str,
    hostname: str | None = None,
    yiaddr: str = "0.0.0.0",
    ciaddr: str = "0.0.0.0",
    requested: str | None = None,
    mac: str = MAC,
) -> DhcpRecord:
    """Return dhcp.parse of a message built with scapy."""
    options: list[object] = [("message-type", message_type)]
    if requested is not None:
        options.append(("requested_addr", requested))
    if hostname is not None:
        options.append(("hostname", hostname.encode()))
    options.append("end")
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    packet = BOOTP(op=op, xid=0x1234, yiaddr=yiaddr, ciaddr=ciaddr, chaddr=chaddr) / DHCP(options=options)
    record = dhcp.parse(bytes(packet))
    assert record is not None
    return record


def mdns_message(*records: DNSRR, qr: int = 1, **sections: Any) -> DnsMessage:
    """Return dns.parse of an mDNS message built with scapy."""
    message = dns.parse(bytes(DNS(id=0, qr=qr, aa=qr, an=list(records), **sections)))
    assert message is not None
    return message


def a_record(owner: str, address: str, cache_flush: bool = True) -> DNSRR:
    """Return an A or AAAA record as an mDNS responder sends it (cache-flush bit set)."""
    rtype = "AAAA" if ":" in address else "A"
    return DNSRR(rrname=owner, type=rtype, rclass=0x8001 if cache_flush else 1, ttl=120, rdata=address)


# --- DHCP ------------------------------------------------------------------------------------------


def test_local_names_dhcp_ack_with_host_name() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(2, "ack", hostname="cam-lobby", yiaddr="192.168.1.50"))
    assert names.name_of(address_key("192.168.1.50")) == ("cam-lobby", "dhcp")
    assert names.name_of_mac("00:11:22:33:44:55") == "cam-lobby"
    assert names.name_of_mac("00-11-22-33-44-55") == "cam-lobby"
    assert names.name_of_mac("001122334455") == "cam-lobby"
    assert names.name_of_mac("00:11:22:33:44:56") is None


def test_local_names_dhcp_request_with_requested_address() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(1, "request", hostname="NVR-01", requested="192.168.1.51"))
    assert names.name_of(address_key("192.168.1.51")) == ("NVR-01", "dhcp")  # kept as sent: no lower-casing


def test_local_names_dhcp_renewal_uses_ciaddr() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(1, "request", hostname="printer", ciaddr="192.168.1.52"))
    names.observe_dhcp(T0, dhcp_message(1, "inform", hostname="laptop", ciaddr="192.168.1.53", mac="00:11:22:33:44:66"))
    assert names.name_of(address_key("192.168.1.52")) == ("printer", "dhcp")
    assert names.name_of(address_key("192.168.1.53")) == ("laptop", "dhcp")


def test_local_names_dhcp_ack_without_host_name_uses_the_clients_name() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(1, "discover", hostname="doorbell"))
    assert len(names) == 0  # a DISCOVER names no address
    assert names.name_of_mac(MAC) == "doorbell"
    names.observe_dhcp(T0 + S, dhcp_message(2, "offer", yiaddr="192.168.1.54"))
    assert len(names) == 0  # an OFFER may not be taken
    names.observe_dhcp(T0 + 2 * S, dhcp_message(2, "ack", yiaddr="192.168.1.54"))
    assert names.name_of(address_key("192.168.1.54")) == ("doorbell", "dhcp")
    names.observe_dhcp(T0 + 3 * S, dhcp_message(2, "ack", yiaddr="192.168.1.55", mac="00:11:22:33:44:77"))
    assert names.name_of(address_key("192.168.1.55")) is None  # nobody named that client


def test_local_names_dhcp_nak_undoes_the_request() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(1, "request", hostname="roamer", requested="10.9.9.9"))
    assert names.name_of(address_key("10.9.9.9")) == ("roamer", "dhcp")
    names.observe_dhcp(T0 + S, dhcp_message(2, "nak"))
    assert names.name_of(address_key("10.9.9.9")) is None
    names.observe_dhcp(T0 + 2 * S, dhcp_message(1, "request", hostname="roamer", requested="192.168.1.56"))
    names.observe_dhcp(T0 + 3 * S, dhcp_message(2, "ack", yiaddr="192.168.1.56"))
    names.observe_dhcp(T0 + 4 * S, dhcp_message(2, "nak"))  # a stray NAK after the ACK changes nothing
    assert names.name_of(address_key("192.168.1.56")) == ("roamer", "dhcp")


def test_local_names_dhcp_without_host_name_binds_nothing() -> None:
    names = LocalNames()
    names.observe_dhcp(T0, dhcp_message(1, "request", requested="192.168.1.57"))
    names.observe_dhcp(T0, dhcp_message(2, "ack", yiaddr="192.168.1.57"))
    assert len(names) == 0
    assert names.name_of_mac(MAC) is None


# --- mDNS ------------------------------------------------------------------------------------------


def test_local_names_mdns_response_a_and_aaaa() -> None:
    names = LocalNames()
    message = mdns_message(
        a_record("AXIS-ACCC8E123456.local", "192.168.1.60"),
        a_record("axis-accc8e123456.local", "fe80::2a0:c9ff:fe12:3456", cache_flush=False),
        ar=[a_record("axis-accc8e123456.local", "fd00::60")],
    )
    names.observe_mdns(T0, message)
    assert names.name_of(address_key("192.168.1.60")) == ("axis-accc8e123456.local", "mdns")
    assert names.name_of(address_key("fe80::2a0:c9ff:fe12:3456")) == ("axis-accc8e123456.local", "mdns")
    assert names.name_of(address_key("fd00::60")) == ("axis-accc8e123456.local", "mdns")


def test_local_names_mdns_queries_are_ignored() -> None:
    names = LocalNames()
    known_answer = mdns_message(a_record("other.local", "192.168.1.61"), qr=0, qd=[DNSQR(qname="other.local")])
    probe = mdns_message(qr=0, qd=[DNSQR(qname="me.local", qtype=255)], ns=[a_record("me.local", "192.168.1.62")])
    names.observe_mdns(T0, known_answer)
    names.observe_mdns(T0, probe)
    assert len(names) == 0


def test_local_names_mdns_other_records_are_ignored() -> None:
    names = LocalNames()
    message = mdns_message(
        DNSRR(rrname="62.1.168.192.in-addr.arpa", type="PTR", rclass=0x8001, rdata="host.local."),
        DNSRR(rrname="host._http._tcp.local", type="TXT", rdata=["path=/"]),
    )
    names.observe_mdns(T0, message)
    assert len(names) == 0


# --- order and bounds ------------------------------------------------------------------------------


def test_local_names_latest_wins() -> None:
    names = LocalNames()
    address = address_key("192.168.1.70")
    names.observe_dhcp(T0, dhcp_message(2, "ack", hostname="old-name", yiaddr="192.168.1.70"))
    names.observe_mdns(T0 + S, mdns_message(a_record("new-name.local", "192.168.1.70")))
    assert names.name_of(address) == ("new-name.local", "mdns")
    names.observe_dhcp(T0 + 2 * S, dhcp_message(2, "ack", hostname="newest", yiaddr="192.168.1.70"))
    assert names.name_of(address) == ("newest", "dhcp")
    # an observation older than the one held (out-of-order input) does not replace it
    names.observe_mdns(T0 + S // 2, mdns_message(a_record("stale.local", "192.168.1.70")))
    assert names.name_of(address) == ("newest", "dhcp")


def test_local_names_bounded() -> None:
    names = LocalNames(max_entries=10)
    for i in range(50):
        names.observe_mdns(T0 + i, mdns_message(a_record(f"h{i}.local", f"10.0.0.{i}")))
        mac = f"00:00:00:00:01:{i:02x}"
        names.observe_dhcp(T0 + i, dhcp_message(1, "request", hostname=f"d{i}", requested=f"10.1.0.{i}", mac=mac))
        assert len(names) <= 10
    assert names.evicted == (100 - 10) + (50 - 10)  # addresses (mDNS and DHCP share the index), MACs
    assert names.name_of(address_key("10.1.0.49")) == ("d49", "dhcp")
    assert names.name_of(address_key("10.0.0.0")) is None
    assert names.name_of_mac("00:00:00:00:01:00") is None
    assert names.name_of_mac("00:00:00:00:01:31") == "d49"


# --- real captures ---------------------------------------------------------------------------------


def feed_capture(names: LocalNames, path: Path) -> None:
    """Feed the DHCP (UDP 67/68) and mDNS (UDP 5353) payloads of a capture, in order."""
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if UDP not in pkt:
                continue
            ports = (pkt[UDP].sport, pkt[UDP].dport)
            payload = bytes(pkt[UDP].payload)
            ts_ns = int(pkt.time * S)
            if 67 in ports or 68 in ports:
                record = dhcp.parse(payload)
                if record is not None:
                    names.observe_dhcp(ts_ns, record)
            elif 5353 in ports:
                message = dns.parse(payload)
                if message is not None:
                    names.observe_mdns(ts_ns, message)


@pytest.mark.corpus
def test_local_names_corpus(corpus: Path) -> None:
    names = LocalNames()
    feed_capture(names, corpus / "zeek__dhcp_dhcp.pcap")
    assert names.name_of(address_key("128.2.6.189")) == ("btest.is.cool", "dhcp")  # REQUEST, then ACK
    assert names.name_of(address_key("192.168.211.194")) is None  # requested, then NAKed
    assert names.name_of_mac("90:b1:1c:99:49:29") == "btest.is.cool"

    feed_capture(names, corpus / "iotsentinel__D-LinkDayCam_Setup-C-1.pcap")
    assert names.name_of(address_key("10.10.10.58")) == ("dcs-930lb1_1c7185.local", "mdns")
    assert names.name_of_mac("b0:c5:54:1c:71:85") == "DCS-930LB"

    feed_capture(names, corpus / "zeek__dns_mdns.pcap")
    for text in ("10.0.2.7", "fd52:429e:c03c:8235:883c:d6ff:fee1:4dc4", "fd52:429e:c03c:8235:5968:5bc6:1563:f82f"):
        assert names.name_of(address_key(text)) == ("johanna-qemu-virtual-machine.local", "mdns")

    feed_capture(names, corpus / "ndpi__android.pcap")
    assert names.name_of_mac("d8:30:62:56:00:1c") == "Lucas-iMac"
