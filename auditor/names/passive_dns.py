"""Passive DNS: which name each client resolved to each address, learnt from the answers it received.

Sources: RFC 1035 §4.1.1 (QR, OPCODE, RCODE), §3.2.4 (CLASS IN), RFC 2181 §8 (a TTL with the top
bit set is read as zero), §10.1 (a CNAME owner has no other data; a CNAME chain is followed from
the question name).

Only the chain that starts at the question name is believed: question -> CNAME -> ... -> A/AAAA
whose owner is the current chain name. Other address records (unrelated answers, glue in the
authority and additional sections) are ignored: an off-path or misconfigured server cannot bind
a name the client never asked about to an address by tacking records on.

Memory is bounded: the per-client table holds at most max_bindings (client, address, name)
bindings and the any-client index at most max_bindings addresses; the least recently updated
entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from auditor.names.types import Address, DnsName, address_key
from auditor.protocols import dns
from auditor.protocols.dns import DnsMessage

NS_PER_S = 1_000_000_000

CLASS_IN = 1
"""The Internet class (RFC 1035 §3.2.4); other classes (CHAOS...) say nothing about addresses."""

QCLASS_ANY = 255
"""QCLASS '*' (RFC 1035 §3.2.5): asks for any class, so IN answers count."""

OPCODE_QUERY = 0
RCODE_NOERROR = 0

MAX_TTL_S = 0x7FFFFFFF
"""RFC 2181 §8: a TTL above 2**31 - 1 is treated as zero."""

NAMES_PER_ADDRESS = 4
"""Names kept per (client, address) and per address in the any-client index (a CDN address serves many)."""

CLOCK_SLACK_NS = NS_PER_S
"""How long before its answer a flow may start and still take the name: in a span capture the answer
and the client's first packet to the address can arrive out of order."""

_Pair = tuple[Address, Address]
"""(client, address)."""


def _merge(names: tuple[DnsName, ...], new: DnsName, grace_ns: int) -> tuple[DnsName, ...] | None:
    """Return names with `new` in it (oldest seen first, at most NAMES_PER_ADDRESS), or None when
    nothing changes (the answer adds no time to a binding already held).

    A refresh of a name whose binding is still valid (within its TTL and grace) extends that binding
    rather than replacing it: a long-lived flow that started under the first answer must keep its
    name after the device re-resolves. Bindings of one name whose windows do not meet stay apart.
    """
    kept: list[DnsName] = []
    for old in names:
        overlap = old.seen_ns <= new.expires_ns + grace_ns and new.seen_ns <= old.expires_ns + grace_ns
        if old.name == new.name and overlap:
            if old.seen_ns <= new.seen_ns and old.expires_ns >= new.expires_ns:
                return None  # already covered, e.g. the same answer seen twice
            latest = new if new.seen_ns >= old.seen_ns else old
            new = DnsName(latest.name, latest.chain, min(old.seen_ns, new.seen_ns), max(old.expires_ns, new.expires_ns))
            continue
        kept.append(old)
    kept.append(new)
    if len(kept) > 1 and kept[-2].seen_ns > new.seen_ns:
        kept.sort(key=lambda n: n.seen_ns)  # an answer seen out of order (rare)
    return tuple(kept[-NAMES_PER_ADDRESS:])


def _valid(names: tuple[DnsName, ...], ts_ns: int, grace_ns: int) -> tuple[DnsName, ...]:
    return tuple(n for n in names if n.seen_ns - CLOCK_SLACK_NS <= ts_ns <= n.expires_ns + grace_ns)


def _pick(names: tuple[DnsName, ...], ts_ns: int, grace_ns: int) -> DnsName | None:
    """Return the most recently seen name valid at ts_ns."""
    for n in reversed(names):
        if n.seen_ns - CLOCK_SLACK_NS <= ts_ns <= n.expires_ns + grace_ns:
            return n
    return None


class PassiveDns:
    """Names clients resolved to addresses, from the DNS responses sent to them."""

    __slots__ = ("_by_address", "_by_pair", "_count", "evicted", "evicted_any", "grace_ns", "max_bindings", "max_chain")

    def __init__(self, max_bindings: int = 200_000, grace_s: int = 300, max_chain: int = 8) -> None:
        """max_chain caps the chain's length, question name included (so max_chain - 1 CNAME hops).
        A binding costs about 0.9 KB in both tables (measured): the default cap holds memory near 180 MB
        on a site that resolves that many distinct names; older bindings are evicted first."""
        self.max_bindings = max_bindings
        self.grace_ns = grace_s * NS_PER_S
        """How long after the TTL a binding still names a flow: clients keep using addresses past it."""
        self.max_chain = max_chain
        # OrderedDict, not dict: popping the oldest of a plain dict rescans its deleted head (~25 µs at 200k)
        self._by_pair: OrderedDict[_Pair, tuple[DnsName, ...]] = OrderedDict()
        self._by_address: OrderedDict[Address, tuple[DnsName, ...]] = OrderedDict()
        self._count = 0
        """Bindings held in _by_pair (the sum of its tuple lengths)."""
        self.evicted = 0
        """Per-client bindings dropped to stay within max_bindings."""
        self.evicted_any = 0
        """Addresses dropped from the any-client index to stay within max_bindings."""

    def __len__(self) -> int:
        """Return the number of per-client bindings held."""
        return self._count

    def observe(self, client: Address, ts_ns: int, message: DnsMessage) -> int:
        """Learn from a DNS response sent to `client`; return the number of address bindings learnt."""
        if not message.qr or message.rcode != RCODE_NOERROR or message.opcode != OPCODE_QUERY:
            return 0
        if not message.questions or not message.answers:
            return 0
        # index the answer section once: owner -> CNAME target / address records
        cnames: dict[str, tuple[str, int]] = {}
        addrs: dict[str, list[tuple[str, int]]] = {}
        for rr in message.answers:
            rdata = rr.rdata
            if rr.rclass != CLASS_IN or not isinstance(rdata, str) or not rdata:
                continue
            rtype = rr.rtype
            if rtype == dns.TYPE_A or rtype == dns.TYPE_AAAA:
                addrs.setdefault(rr.name, []).append((rdata, rr.ttl_s))
            elif rtype == dns.TYPE_CNAME:
                cnames.setdefault(rr.name, (rdata, rr.ttl_s))  # RFC 2181 §10.1: one CNAME per owner
        if not addrs:
            return 0
        learnt = 0
        done: set[str] = set()
        for q in message.questions:
            qname = q.name
            if qname in done or q.qclass not in (CLASS_IN, QCLASS_ANY):
                continue
            done.add(qname)
            learnt += self._walk(client, ts_ns, qname, cnames, addrs)
        return learnt

    def _walk(
        self,
        client: Address,
        ts_ns: int,
        qname: str,
        cnames: dict[str, tuple[str, int]],
        addrs: dict[str, list[tuple[str, int]]],
    ) -> int:
        """Follow the CNAME chain from qname and bind the addresses at its end; return how many."""
        chain = [qname]
        ttl = MAX_TTL_S
        current = qname
        while True:
            found = addrs.get(current)
            if found is not None:
                break
            step = cnames.get(current)
            if step is None or len(chain) >= self.max_chain:
                return 0
            target, hop_ttl = step
            if target in chain:
                return 0  # a CNAME loop reaches no address
            chain.append(target)
            ttl = min(ttl, hop_ttl if hop_ttl <= MAX_TTL_S else 0)
            current = target
        chain_t = tuple(chain)
        learnt = 0
        binding: DnsName | None = None
        for text, rr_ttl in found:
            try:
                address = address_key(text)
            except ValueError:
                continue  # not written by dns.parse; a hand-made message
            expires_ns = ts_ns + min(ttl, rr_ttl if rr_ttl <= MAX_TTL_S else 0) * NS_PER_S
            if binding is None or binding.expires_ns != expires_ns:  # one record shared by equal TTLs
                binding = DnsName(qname, chain_t, ts_ns, expires_ns)
            if self._bind(client, address, binding):
                learnt += 1
        return learnt

    def _bind(self, client: Address, address: Address, binding: DnsName) -> bool:
        """Store one binding in both tables, evicting the oldest entries past the bound."""
        pairs = self._by_pair
        pair = (client, address)
        old = pairs.get(pair, ())
        merged = _merge(old, binding, self.grace_ns)
        if merged is None:
            return False
        pairs[pair] = merged
        pairs.move_to_end(pair)
        self._count += len(merged) - len(old)
        while self._count > self.max_bindings:
            _, dropped = pairs.popitem(last=False)
            self._count -= len(dropped)
            self.evicted += len(dropped)

        index = self._by_address
        held = index.get(address, ())
        merged_any = _merge(held, binding, self.grace_ns)
        if merged_any is not None:
            index[address] = merged_any
            index.move_to_end(address)
            if len(index) > self.max_bindings:
                index.popitem(last=False)
                self.evicted_any += 1
        return True

    def bindings(self) -> Iterator[tuple[Address, Address, DnsName]]:
        """Yield every (client, address, name) held, least recently updated first (for dumps and tests)."""
        for (client, address), names in self._by_pair.items():
            for name in names:
                yield client, address, name

    def knows(self, client: Address, address: Address) -> bool:
        """True when `client` resolved some name to `address` (valid or not at any given time)."""
        return (client, address) in self._by_pair

    def name_of(self, client: Address, address: Address, ts_ns: int) -> DnsName | None:
        """Return the name `client` resolved to `address`, valid at ts_ns (most recently seen first)."""
        names = self._by_pair.get((client, address))
        if names is None:
            return None
        return _pick(names, ts_ns, self.grace_ns)

    def names_of(self, client: Address, address: Address, ts_ns: int) -> tuple[DnsName, ...]:
        """Return every name `client` resolved to `address` that is valid at ts_ns, oldest seen first
        (a CDN address serves several names: an SNI agrees with DNS when it is any of them)."""
        names = self._by_pair.get((client, address))
        return _valid(names, ts_ns, self.grace_ns) if names else ()

    def any_name_of(self, address: Address, ts_ns: int) -> DnsName | None:
        """Return a name any client resolved to `address`, valid at ts_ns (for clients behind a forwarder)."""
        names = self._by_address.get(address)
        if names is None:
            return None
        return _pick(names, ts_ns, self.grace_ns)
