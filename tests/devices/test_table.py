"""The device table: devices keyed by MAC, their addresses, VLANs and traffic; routers are gateways."""

from __future__ import annotations

import dataclasses

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from auditor.capture.types import batch_from_frames
from auditor.decode import decode
from auditor.devices.oui import OuiRegistry, parse_mac
from auditor.devices.table import DeviceTable
from auditor.devices.verdicts import DeviceVerdicts, device_records
from auditor.flows.localnet import DEFAULT_LOCAL_NETWORKS, LocalNetworks
from auditor.flows.table import FlowTable
from auditor.flows.types import FlowRecords

LOCAL = LocalNetworks(DEFAULT_LOCAL_NETWORKS)
_COLUMNS = [f.name for f in dataclasses.fields(FlowRecords)
            if f.name not in ("community_id", "domain", "name_source", "name_mismatch")]
CAM, ROUTER, PC = "4c:bd:8f:21:10:21", "00:0c:42:1a:2b:01", "02:1b:21:3a:4b:5c"


def feed(table: DeviceTable, frames: list[bytes], start: int = 0) -> None:
    """Run frames through decode and a flow table as the pipeline does: flows, then other frames."""
    h = decode(batch_from_frames(frames, ts_ns=[start + i * 1_000 for i in range(len(frames))]))
    flows = FlowTable()
    _, ended = flows.process(h)
    for records in (ended, flows.flush()):
        if records is not None:
            table.add_flows(records)
    table.update(h)
    table.settle()


def udp(src_mac: str, src: str, dst: str = "192.168.10.5", vlan: int | None = None) -> bytes:
    eth = Ether(src=src_mac, dst="00:14:22:0a:00:05")
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    return bytes(eth / IP(src=src, dst=dst) / UDP(sport=5000, dport=554) / b"x")


def test_devices_are_keyed_by_mac_with_addresses_vlans_and_traffic() -> None:
    t = DeviceTable(LOCAL.contains)
    first = [udp(CAM, "192.168.10.21"), udp(CAM, "192.168.10.21", vlan=20), udp(CAM, "192.168.10.99")]
    second = [udp(CAM, "192.168.10.21")]
    feed(t, first)
    feed(t, second, start=10_000)
    (dev,) = t.devices.values()
    assert dev.mac == parse_mac(CAM)
    assert (dev.packets, dev.first_ns, dev.last_ns) == (4, 0, 10_000)
    assert dev.bytes == sum(len(f) for f in first + second)
    assert dev.vlans == {20}
    assert {a[2] for a in dev.addresses} == {0xC0A80A15, 0xC0A80A63}
    seen = dev.addresses[(4, 0, 0xC0A80A15)]
    assert (seen.first_ns, seen.last_ns) == (0, 10_000)
    assert not dev.is_gateway


def test_router_forwarding_remote_hosts_is_a_gateway_not_their_owner() -> None:
    t = DeviceTable(LOCAL.contains)
    feed(t, [udp(ROUTER, "203.0.113.50"), udp(ROUTER, "198.51.100.77"), udp(ROUTER, "192.168.10.1")])
    (rec,) = device_records(t, DeviceVerdicts(OuiRegistry([], "test", "2026-01-01"), None))
    assert rec.role == "gateway"
    assert [a.ip for a in rec.addresses] == ["192.168.10.1"]


def test_a_host_with_one_public_address_per_version_is_not_a_gateway() -> None:
    t = DeviceTable(LOCAL.contains)
    frames = [udp(PC, "198.51.100.9"), bytes(Ether(src=PC) / IPv6(src="2001:db8::9", dst="2001:db8::1") / UDP())]
    feed(t, frames)
    (rec,) = device_records(t, DeviceVerdicts(OuiRegistry([], "test", "2026-01-01"), None))
    assert rec.role == "host"
    assert [a.ip for a in rec.addresses] == ["198.51.100.9", "2001:db8::9"]
    assert rec.locally_administered and rec.oui is None


def test_arp_sender_address_counts_and_unspecified_addresses_do_not() -> None:
    t = DeviceTable(LOCAL.contains)
    arp = bytes(Ether(src=CAM, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=CAM, psrc="192.168.10.21", pdst="192.168.10.1"))
    dhcp = udp(CAM, "0.0.0.0", dst="255.255.255.255")
    feed(t, [arp, dhcp])
    (dev,) = t.devices.values()
    assert list(dev.addresses) == [(4, 0, 0xC0A80A15)]
    assert dev.packets == 2


def test_table_is_bounded() -> None:
    t = DeviceTable(LOCAL.contains, max_devices=3, max_addresses=2)
    macs = [f"00:11:22:33:44:{i:02x}" for i in range(5)]
    feed(
        t,
        [udp(m, f"192.168.10.{i + 1}") for i, m in enumerate(macs)]
        + [udp(macs[0], f"192.168.10.{i}") for i in range(30, 34)],
    )
    assert len(t) == 3 and t.dropped_devices == 2
    dev = t.devices[parse_mac(macs[0])]
    assert len(dev.addresses) == 2 and dev.dropped_addresses == 3


def test_records_carry_registry_organisation() -> None:
    t = DeviceTable(LOCAL.contains)
    feed(t, [udp(CAM, "192.168.10.21")])
    (rec,) = device_records(t, DeviceVerdicts(OuiRegistry.default(), None))
    assert rec.oui is not None and "Hikvision" in rec.oui.organization
    assert rec.vendor is None  # no catalog given


def test_skipped_frames_and_frames_without_mac_are_not_devices() -> None:
    t = DeviceTable(LOCAL.contains)
    t.update(decode(batch_from_frames([bytes.fromhex("4cbd8f211021") + b"\x00" * 4])))  # truncated: skipped
    t.update(decode(batch_from_frames([bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP())], linktype=101)))
    assert len(t) == 0


def test_flows_are_folded_in_batches_and_settled_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditor.devices.table as table_module

    monkeypatch.setattr(table_module, "FOLD_FLOWS", 3)
    t = DeviceTable(LOCAL.contains)
    frames = [udp(CAM, f"192.168.10.{i}") for i in range(1, 6)]  # 5 flows
    h = decode(batch_from_frames(frames, ts_ns=list(range(5))))
    flows = FlowTable()
    flows.process(h)
    records = flows.flush()
    assert records is not None
    for i in range(len(records)):  # one flow at a time, as sweeps hand them over
        t.add_flows(dataclasses.replace(records, **{f: getattr(records, f)[i : i + 1] for f in _COLUMNS}))
        assert len(t) == (1 if i >= 2 else 0)  # folded at the third flow
    (rec,) = device_records(t, DeviceVerdicts(OuiRegistry([], "test", "2026-01-01"), None))  # settles the last two
    assert len(rec.addresses) == 5 and rec.packets == 5
