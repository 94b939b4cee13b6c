"""Names of local hosts: DHCP host names (option 12) and mDNS A/AAAA records.

Sources: RFC 2131 §3.1 (a server's DHCPACK carries the client's address in yiaddr; a client's
DHCPREQUEST names it in option 50 or, when renewing, in ciaddr) and §3.4 (DHCPINFORM: the client
already has ciaddr), RFC 2132 §3.14 (option 12), RFC 6762 §6 (every record in a response is the
responder's), §7.1 (a query's answer section lists records the asker already knows: not its own).

These names serve flows between local devices and the device inventory. Names are kept as the
parsers give them (output escapes them); mDNS owner names are already lower-case without the
trailing dot, and one is stripped anyway in case a caller hands in a hand-made message.
"""

from __future__ import annotations

from collections import OrderedDict

from auditor.names.types import Address, address_key
from auditor.protocols import dns
from auditor.protocols.dhcp import BOOTREPLY, BOOTREQUEST, DhcpRecord
from auditor.protocols.dns import DnsMessage

SOURCE_DHCP = "dhcp"
SOURCE_MDNS = "mdns"

CLASS_IN = 1

_CLIENT_ADDRESS_MESSAGES = frozenset({"request", "inform"})
"""Client messages whose ciaddr / requested address is the client's own address."""

_MAC_SEPARATORS = str.maketrans("", "", ":-.")


def mac_key(text: str) -> str:
    """Return a hardware address as lower-case hex without separators ('AA-BB-..' and 'aa:bb:..' agree)."""
    return text.translate(_MAC_SEPARATORS).lower()


class LocalNames:
    """Host names of local devices by address and by MAC; the latest observation wins."""

    __slots__ = ("_by_address", "_by_mac", "_requested", "evicted", "max_entries")

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        """Cap on each index (addresses, MACs)."""
        self._by_address: OrderedDict[Address, tuple[str, str, int]] = OrderedDict()
        """address -> (name, source, ts_ns)."""
        self._by_mac: OrderedDict[str, tuple[str, int]] = OrderedDict()
        """mac_key -> (name, ts_ns)."""
        self._requested: OrderedDict[str, Address] = OrderedDict()
        """mac_key -> the address its last REQUEST was bound to, until the server ACKs or NAKs it."""
        self.evicted = 0
        """Entries dropped from either index to stay within max_entries."""

    def __len__(self) -> int:
        """Return the number of addresses with a name."""
        return len(self._by_address)

    def observe_dhcp(self, ts_ns: int, record: DhcpRecord) -> None:
        """Learn a client's host name (option 12) and the address it holds or asks for.

        Most servers leave option 12 out of the ACK; the name the same client (chaddr) sent in
        its DISCOVER or REQUEST is then bound to the acknowledged address. A NAK undoes the binding
        its REQUEST made: a client back from another network asks for its old address, which may
        belong to someone else here.
        """
        mac = mac_key(record.chaddr) if record.chaddr else None
        name = record.hostname
        if name and mac:
            self._put_mac(mac, name, ts_ns)
        address: str | None = None
        if record.op == BOOTREPLY and record.message == "nak":
            if mac:
                self._undo_request(mac, ts_ns)
            return
        if record.op == BOOTREPLY and record.message == "ack":
            if mac:
                self._requested.pop(mac, None)
            address = record.yiaddr or record.ciaddr  # an ACK to an INFORM leaves yiaddr 0
            if not name and mac:
                held = self._by_mac.get(mac)
                name = held[0] if held is not None else None
        elif record.op == BOOTREQUEST and record.message in _CLIENT_ADDRESS_MESSAGES:
            address = record.ciaddr or record.requested_address
        if name and address is not None:
            try:
                key = address_key(address)
            except ValueError:
                return
            self._put(key, name, SOURCE_DHCP, ts_ns)
            if record.op == BOOTREQUEST and mac:
                self._requested[mac] = key
                self._requested.move_to_end(mac)
                if len(self._requested) > self.max_entries:
                    self._requested.popitem(last=False)

    def _undo_request(self, mac: str, ts_ns: int) -> None:
        """Drop the DHCP binding the client's last REQUEST made, unless something newer replaced it."""
        key = self._requested.pop(mac, None)
        if key is None:
            return
        held = self._by_address.get(key)
        if held is not None and held[1] == SOURCE_DHCP and held[2] <= ts_ns:
            del self._by_address[key]

    def observe_mdns(self, ts_ns: int, message: DnsMessage) -> None:
        """Learn the names of A/AAAA records in an mDNS response (queries name nobody's own address)."""
        if not message.qr or message.opcode != 0 or message.rcode != 0:
            return  # RFC 6762 §18.3, §18.11
        for section in (message.answers, message.authority, message.additional):
            for rr in section:
                rdata = rr.rdata
                if rr.rtype not in (dns.TYPE_A, dns.TYPE_AAAA) or rr.rclass != CLASS_IN:
                    continue
                if not isinstance(rdata, str) or not rr.name:
                    continue
                try:
                    key = address_key(rdata)
                except ValueError:
                    continue
                self._put(key, rr.name.lower().removesuffix("."), SOURCE_MDNS, ts_ns)

    def _put(self, address: Address, name: str, source: str, ts_ns: int) -> None:
        """Bind a name to an address unless a later observation already did."""
        index = self._by_address
        held = index.get(address)
        if held is not None and held[2] > ts_ns:
            return
        index[address] = (name, source, ts_ns)
        index.move_to_end(address)
        if len(index) > self.max_entries:
            index.popitem(last=False)
            self.evicted += 1

    def _put_mac(self, mac: str, name: str, ts_ns: int) -> None:
        """Bind a name to a MAC unless a later observation already did."""
        index = self._by_mac
        held = index.get(mac)
        if held is not None and held[1] > ts_ns:
            return
        index[mac] = (name, ts_ns)
        index.move_to_end(mac)
        if len(index) > self.max_entries:
            index.popitem(last=False)
            self.evicted += 1

    def name_of(self, address: Address) -> tuple[str, str] | None:
        """Return (name, source) for an address, source 'dhcp' or 'mdns'; the latest observation wins."""
        held = self._by_address.get(address)
        return None if held is None else (held[0], held[1])

    def name_of_mac(self, mac_text: str) -> str | None:
        """Return the DHCP host name of a hardware address ('AA-BB-CC-DD-EE-FF', 'aa:bb:..' or hex)."""
        held = self._by_mac.get(mac_key(mac_text))
        return None if held is None else held[0]
