"""PassiveDns: names bound per client from the CNAME chain of the question, bounded and time-limited."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from auditor.names.passive_dns import CLOCK_SLACK_NS, NAMES_PER_ADDRESS, PassiveDns
from auditor.names.types import DnsName, address_key, address_text
from auditor.protocols import dns
from auditor.protocols.dns import DnsMessage

S = 1_000_000_000
T0 = 1_700_000_000 * S
CLIENT = address_key("192.168.1.10")
CLIENT_B = address_key("192.168.1.11")
V6_CLIENT = address_key("fd00::10")

# --- builders --------------------------------------------------------------------------------------


def rr(owner: str, rtype: str, rdata: str, ttl: int = 300) -> DNSRR:
    """Return one resource record as scapy builds it."""
    return DNSRR(rrname=owner, type=rtype, ttl=ttl, rdata=rdata)


def response(qname: str, *answers: DNSRR, qtype: str = "A", rcode: int = 0, qr: int = 1, **sections: Any) -> DnsMessage:
    """Return dns.parse of a response built with scapy (sections: ns=[...], ar=[...])."""
    packet = DNS(
        id=7, qr=qr, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=qname, qtype=qtype)], an=list(answers), **sections
    )
    message = dns.parse(bytes(packet))
    assert message is not None
    return message


def wire_name(name: str) -> bytes:
    """Return a name as uncompressed wire labels."""
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def wire_rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    """Return one hand-built resource record; `owner` is wire bytes (labels or a pointer)."""
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def wire_message(flags: int, qname: str, answers: list[bytes], ancount: int | None = None) -> bytes:
    """Return a hand-built message with one A question; ancount may lie about the answers."""
    count = len(answers) if ancount is None else ancount
    header = struct.pack(">HHHHHH", 9, flags, 1, count, 0, 0)
    return header + wire_name(qname) + struct.pack(">HH", 1, 1) + b"".join(answers)


def parsed(payload: bytes) -> DnsMessage:
    """Return dns.parse(payload), which must not be None."""
    message = dns.parse(payload)
    assert message is not None
    return message


def a(text: str) -> tuple[int, int, int]:
    """Shorthand for address_key."""
    return address_key(text)


# --- what binds ------------------------------------------------------------------------------------


def test_passive_dns_single_a() -> None:
    pdns = PassiveDns()
    assert pdns.observe(CLIENT, T0, response("www.example.com", rr("www.example.com", "A", "192.0.2.1", 60))) == 1
    got = pdns.name_of(CLIENT, a("192.0.2.1"), T0 + S)
    assert got == DnsName("www.example.com", ("www.example.com",), T0, T0 + 60 * S)
    assert pdns.name_of(CLIENT, a("192.0.2.2"), T0 + S) is None
    assert len(pdns) == 1


def test_passive_dns_several_a_answers() -> None:
    pdns = PassiveDns()
    answers = [rr("cdn.example", "A", f"198.51.100.{i}") for i in range(1, 5)]
    assert pdns.observe(CLIENT, T0, response("cdn.example", *answers)) == 4
    for i in range(1, 5):
        found = pdns.name_of(CLIENT, a(f"198.51.100.{i}"), T0)
        assert found is not None and found.name == "cdn.example"


def test_passive_dns_aaaa() -> None:
    pdns = PassiveDns()
    message = response("v6.example", rr("v6.example", "AAAA", "2001:db8::53", 120), qtype="AAAA")
    assert pdns.observe(V6_CLIENT, T0, message) == 1
    address = a("2001:db8::53")
    assert address[0] == 6 and address_text(address) == "2001:db8::53"
    found = pdns.name_of(V6_CLIENT, address, T0 + 5 * S)
    assert found is not None and found.name == "v6.example" and found.expires_ns == T0 + 120 * S


def test_passive_dns_cname_chain_binds_question_with_full_chain() -> None:
    pdns = PassiveDns()
    message = response(
        "www.apple.com",
        rr("www.apple.com", "CNAME", "www-apple-com.v.aaplimg.com.", 600),
        rr("www-apple-com.v.aaplimg.com", "CNAME", "www.apple.com.edgekey.net.", 90),
        rr("www.apple.com.edgekey.net", "CNAME", "e6858.dsce9.akamaiedge.net.", 300),
        rr("e6858.dsce9.akamaiedge.net", "A", "23.194.101.24", 20),
        rr("e6858.dsce9.akamaiedge.net", "A", "23.194.101.25", 200),
    )
    assert pdns.observe(CLIENT, T0, message) == 2
    chain = ("www.apple.com", "www-apple-com.v.aaplimg.com", "www.apple.com.edgekey.net", "e6858.dsce9.akamaiedge.net")
    first = pdns.name_of(CLIENT, a("23.194.101.24"), T0)
    second = pdns.name_of(CLIENT, a("23.194.101.25"), T0)
    assert first is not None and second is not None
    assert first.name == second.name == "www.apple.com"
    assert first.chain == second.chain == chain
    assert first.expires_ns == T0 + 20 * S  # the A record's own TTL is the smallest
    assert second.expires_ns == T0 + 90 * S  # the second CNAME's TTL is the smallest


def test_passive_dns_cname_chain_in_any_order() -> None:
    pdns = PassiveDns()
    message = response(
        "a.example",
        rr("c.example", "A", "192.0.2.9"),
        rr("b.example", "CNAME", "c.example."),
        rr("a.example", "CNAME", "b.example."),
    )
    assert pdns.observe(CLIENT, T0, message) == 1
    found = pdns.name_of(CLIENT, a("192.0.2.9"), T0)
    assert found is not None and found.chain == ("a.example", "b.example", "c.example")


def test_passive_dns_cname_loop_binds_nothing() -> None:
    pdns = PassiveDns()
    message = response(
        "a.example",
        rr("a.example", "CNAME", "b.example."),
        rr("b.example", "CNAME", "a.example."),
        rr("x.example", "A", "192.0.2.1"),
    )
    assert pdns.observe(CLIENT, T0, message) == 0
    self_loop = response("a.example", rr("a.example", "CNAME", "a.example."), rr("a.example", "A", "192.0.2.2"))
    # a name with both CNAME and A (illegal, RFC 2181 §10.1): the address record is taken, no loop walked
    assert pdns.observe(CLIENT, T0, self_loop) == 1
    assert len(pdns) == 1


def test_passive_dns_chain_longer_than_max_chain_stops() -> None:
    names = [f"n{i}.example" for i in range(6)]
    hops = [rr(names[i], "CNAME", names[i + 1] + ".") for i in range(5)]
    message = response(names[0], *hops, rr(names[5], "A", "192.0.2.77"))
    assert PassiveDns(max_chain=5).observe(CLIENT, T0, message) == 0  # six names > 5
    pdns = PassiveDns(max_chain=6)
    assert pdns.observe(CLIENT, T0, message) == 1
    found = pdns.name_of(CLIENT, a("192.0.2.77"), T0)
    assert found is not None and found.chain == tuple(names)


def test_passive_dns_unrelated_records_are_not_bound() -> None:
    pdns = PassiveDns()
    message = response(
        "www.bank.example",
        rr("www.bank.example", "A", "192.0.2.1"),
        rr("evil.example", "A", "203.0.113.66"),  # unrelated answer: a poisoning attempt
        rr("other.example", "CNAME", "www.bank.example."),  # a CNAME not on the question's chain
        ns=[rr("bank.example", "NS", "ns1.bank.example.")],
        ar=[rr("ns1.bank.example", "A", "203.0.113.53"), rr("www.bank.example", "A", "203.0.113.99")],
    )
    assert pdns.observe(CLIENT, T0, message) == 1
    assert pdns.name_of(CLIENT, a("203.0.113.66"), T0) is None
    assert pdns.name_of(CLIENT, a("203.0.113.53"), T0) is None  # glue
    assert pdns.name_of(CLIENT, a("203.0.113.99"), T0) is None  # additional section, even for the question name
    found = pdns.name_of(CLIENT, a("192.0.2.1"), T0)
    assert found is not None and found.chain == ("www.bank.example",)


def test_passive_dns_chain_target_answered_for_another_name_is_ignored() -> None:
    pdns = PassiveDns()
    # the CNAME's target has no address here; an A for a different owner must not be taken instead
    message = response("a.example", rr("a.example", "CNAME", "b.example."), rr("c.example", "A", "192.0.2.3"))
    assert pdns.observe(CLIENT, T0, message) == 0


def test_passive_dns_nxdomain_and_errors_not_bound() -> None:
    pdns = PassiveDns()
    for rcode in (1, 2, 3, 5):
        assert (
            pdns.observe(CLIENT, T0, response("gone.example", rr("gone.example", "A", "192.0.2.1"), rcode=rcode)) == 0
        )
    assert len(pdns) == 0


def test_passive_dns_query_not_bound() -> None:
    pdns = PassiveDns()
    query = response("www.example.com", rr("www.example.com", "A", "192.0.2.1"), qr=0)
    assert not query.qr and query.answers
    assert pdns.observe(CLIENT, T0, query) == 0
    assert pdns.any_name_of(a("192.0.2.1"), T0) is None


def test_passive_dns_other_class_not_bound() -> None:
    pdns = PassiveDns()
    chaos = DNSRR(rrname="version.bind", type="A", rclass="CH", ttl=0, rdata="192.0.2.1")
    assert pdns.observe(CLIENT, T0, response("version.bind", chaos)) == 0


def test_passive_dns_case_insensitive_owner_names() -> None:
    pdns = PassiveDns()
    message = response(
        "WWW.Example.COM",
        rr("www.EXAMPLE.com", "CNAME", "Edge.CDN.example."),
        rr("EDGE.cdn.EXAMPLE", "A", "192.0.2.44"),
    )
    assert pdns.observe(CLIENT, T0, message) == 1
    found = pdns.name_of(CLIENT, a("192.0.2.44"), T0)
    assert found is not None
    assert found.name == "www.example.com" and found.chain == ("www.example.com", "edge.cdn.example")


# --- time ------------------------------------------------------------------------------------------


def test_passive_dns_ttl_then_grace_then_gone() -> None:
    pdns = PassiveDns(grace_s=300)
    pdns.observe(CLIENT, T0, response("t.example", rr("t.example", "A", "192.0.2.5", 60)))
    address = a("192.0.2.5")
    assert pdns.name_of(CLIENT, address, T0 + 59 * S) is not None  # inside the TTL
    assert pdns.name_of(CLIENT, address, T0 + 359 * S) is not None  # inside the grace
    assert pdns.name_of(CLIENT, address, T0 + 360 * S) is not None  # the last instant of the grace
    assert pdns.name_of(CLIENT, address, T0 + 361 * S) is None  # after the grace
    assert pdns.any_name_of(address, T0 + 361 * S) is None


def test_passive_dns_ttl_zero_still_binds() -> None:
    pdns = PassiveDns(grace_s=10)
    assert pdns.observe(CLIENT, T0, response("z.example", rr("z.example", "A", "192.0.2.6", 0))) == 1
    found = pdns.name_of(CLIENT, a("192.0.2.6"), T0 + 5 * S)
    assert found is not None and found.expires_ns == T0
    assert pdns.name_of(CLIENT, a("192.0.2.6"), T0 + 11 * S) is None


def test_passive_dns_ttl_with_top_bit_is_zero() -> None:
    pdns = PassiveDns()
    pdns.observe(CLIENT, T0, response("big.example", rr("big.example", "A", "192.0.2.7", 0x80000000)))
    found = pdns.name_of(CLIENT, a("192.0.2.7"), T0)
    assert found is not None and found.expires_ns == T0  # RFC 2181 §8


def test_passive_dns_answer_seen_after_flow_start_within_slack() -> None:
    pdns = PassiveDns()
    pdns.observe(CLIENT, T0, response("r.example", rr("r.example", "A", "192.0.2.8")))
    address = a("192.0.2.8")
    assert pdns.name_of(CLIENT, address, T0 - CLOCK_SLACK_NS // 2) is not None  # reordered by the span port
    assert pdns.name_of(CLIENT, address, T0 - CLOCK_SLACK_NS) is not None
    assert pdns.name_of(CLIENT, address, T0 - CLOCK_SLACK_NS - 1) is None  # the flow came first: not this lookup


# --- several names, replacement --------------------------------------------------------------------


def test_passive_dns_shared_address_most_recent_valid_name() -> None:
    pdns = PassiveDns(grace_s=0)
    shared = a("192.0.2.100")
    pdns.observe(CLIENT, T0, response("one.example", rr("one.example", "A", "192.0.2.100", 3600)))
    pdns.observe(CLIENT, T0 + 10 * S, response("two.example", rr("two.example", "A", "192.0.2.100", 30)))
    now = pdns.name_of(CLIENT, shared, T0 + 20 * S)
    assert now is not None and now.name == "two.example"  # the most recently seen
    before = pdns.name_of(CLIENT, shared, T0 + 5 * S)
    assert before is not None and before.name == "one.example"  # 'two' was not yet asked
    later = pdns.name_of(CLIENT, shared, T0 + 100 * S)
    assert later is not None and later.name == "one.example"  # 'two' expired, 'one' still valid


def test_passive_dns_keeps_a_few_names_per_address() -> None:
    pdns = PassiveDns()
    shared = a("192.0.2.100")
    for i in range(NAMES_PER_ADDRESS + 3):
        pdns.observe(CLIENT, T0 + i * 10 * S, response(f"n{i}.example", rr(f"n{i}.example", "A", "192.0.2.100")))
    assert len(pdns) == NAMES_PER_ADDRESS
    latest = pdns.name_of(CLIENT, shared, T0 + 100 * S)
    assert latest is not None and latest.name == f"n{NAMES_PER_ADDRESS + 2}.example"
    oldest_kept = 3
    found = pdns.name_of(CLIENT, shared, T0 + oldest_kept * 10 * S)
    assert found is not None and found.name == f"n{oldest_kept}.example"
    assert pdns.name_of(CLIENT, shared, T0 + 10 * S) is None  # the names asked then were dropped


def test_passive_dns_refresh_extends_a_valid_binding_and_keeps_its_start() -> None:
    pdns = PassiveDns()
    address = a("192.0.2.20")
    pdns.observe(CLIENT, T0, response("s.example", rr("s.example", "A", "192.0.2.20", 60)))
    assert pdns.observe(CLIENT, T0 + 30 * S, response("s.example", rr("s.example", "A", "192.0.2.20", 60))) == 1
    found = pdns.name_of(CLIENT, address, T0 + 40 * S)
    # one window from the first answer to the refresh's expiry: a flow started under the first answer
    # keeps its name after the device re-resolved
    assert found is not None and found.seen_ns == T0 and found.expires_ns == T0 + 90 * S
    assert pdns.name_of(CLIENT, address, T0 + 1 * S) is not None
    assert len(pdns) == 1
    # an older answer arriving late adds nothing
    assert pdns.observe(CLIENT, T0 + 10 * S, response("s.example", rr("s.example", "A", "192.0.2.20", 60))) == 0
    found = pdns.name_of(CLIENT, address, T0 + 40 * S)
    assert found is not None and (found.seen_ns, found.expires_ns) == (T0, T0 + 90 * S)


def test_passive_dns_answers_whose_windows_do_not_meet_stay_apart() -> None:
    pdns = PassiveDns(grace_s=0)
    address = a("192.0.2.21")
    pdns.observe(CLIENT, T0, response("s.example", rr("s.example", "A", "192.0.2.21", 60)))
    pdns.observe(CLIENT, T0 + 600 * S, response("s.example", rr("s.example", "A", "192.0.2.21", 60)))
    assert len(pdns) == 2
    assert pdns.name_of(CLIENT, address, T0 + 30 * S) is not None  # under the first answer
    assert pdns.name_of(CLIENT, address, T0 + 300 * S) is None  # between them
    assert pdns.name_of(CLIENT, address, T0 + 630 * S) is not None  # under the second


def test_passive_dns_per_client_isolation() -> None:
    pdns = PassiveDns()
    pdns.observe(CLIENT, T0, response("private.example", rr("private.example", "A", "192.0.2.30")))
    address = a("192.0.2.30")
    assert pdns.name_of(CLIENT_B, address, T0) is None
    found = pdns.any_name_of(address, T0)
    assert found is not None and found.name == "private.example"


# --- bounds ----------------------------------------------------------------------------------------


def test_passive_dns_eviction_bound_respected() -> None:
    pdns = PassiveDns(max_bindings=50)
    for i in range(200):
        answers = [rr(f"h{i}.example", "A", f"10.{i}.0.{j}") for j in range(1, 4)]
        pdns.observe(CLIENT, T0 + i * S, response(f"h{i}.example", *answers))
        assert len(pdns) <= 50
    assert len(pdns) == 50
    assert pdns.evicted == 600 - 50
    assert pdns.name_of(CLIENT, a("10.199.0.1"), T0 + 199 * S) is not None
    assert pdns.name_of(CLIENT, a("10.0.0.1"), T0) is None
    assert pdns.any_name_of(a("10.0.0.1"), T0) is None
    assert pdns.evicted_any == 600 - 50


# --- hostile and broken messages -------------------------------------------------------------------


def test_passive_dns_truncated_answer_binds_what_it_holds() -> None:
    a1 = wire_rr(b"\xc0\x0c", dns.TYPE_A, bytes([192, 0, 2, 1]))
    a2 = wire_rr(b"\xc0\x0c", dns.TYPE_A, bytes([192, 0, 2, 2]))
    full = wire_message(0x8180, "cut.example", [a1, a2])
    message = parsed(full[:-3])  # the second record's rdata is cut
    assert not message.complete and len(message.answers) == 1
    pdns = PassiveDns()
    assert pdns.observe(CLIENT, T0, message) == 1
    assert pdns.name_of(CLIENT, a("192.0.2.1"), T0) is not None
    # TC set and a lying ANCOUNT: still what the message holds
    assert PassiveDns().observe(CLIENT, T0, parsed(wire_message(0x8380, "cut.example", [a1], ancount=5))) == 1


def test_passive_dns_compression_pointer_loop_does_not_crash() -> None:
    question_end = 12 + len(wire_name("loop.example")) + 4

    def looping(offset: int) -> bytes:
        """An A record whose owner is a pointer to itself."""
        return wire_rr(struct.pack(">H", 0xC000 | offset), dns.TYPE_A, bytes([192, 0, 2, 3]))

    forward = wire_rr(struct.pack(">H", 0xC000 | 0x3FFF), dns.TYPE_A, bytes([192, 0, 2, 4]))
    good = wire_rr(b"\xc0\x0c", dns.TYPE_A, bytes([192, 0, 2, 5]))
    pdns = PassiveDns()
    for answers in ([good, looping(question_end + len(good))], [good, forward], [looping(question_end), good]):
        message = dns.parse(wire_message(0x8180, "loop.example", answers))
        assert message is not None
        pdns.observe(CLIENT, T0, message)
    assert pdns.name_of(CLIENT, a("192.0.2.5"), T0) is not None  # bound from the records read before the bad one
    assert pdns.name_of(CLIENT, a("192.0.2.3"), T0) is None
    # a CNAME whose rdata points at itself: the record is kept with rdata None and ends the chain
    bad_cname = wire_rr(b"\xc0\x0c", dns.TYPE_CNAME, struct.pack(">H", 0xC000 | question_end + 12))
    message = parsed(wire_message(0x8180, "loop.example", [bad_cname, good]))
    assert message.answers[0].rdata is None
    assert pdns.observe(CLIENT_B, T0, message) == 1  # the A for the question name itself is still there


def test_passive_dns_bad_address_rdata_skipped() -> None:
    short_a = wire_rr(b"\xc0\x0c", dns.TYPE_A, b"\x01\x02\x03")
    good = wire_rr(b"\xc0\x0c", dns.TYPE_A, bytes([192, 0, 2, 6]))
    message = parsed(wire_message(0x8180, "odd.example", [short_a, good]))
    assert PassiveDns().observe(CLIENT, T0, message) == 1


VALID = bytes(
    DNS(
        id=1,
        qr=1,
        rd=1,
        ra=1,
        qd=[DNSQR(qname="www.example.com")],
        an=[rr("www.example.com", "CNAME", "e.cdn.example."), rr("e.cdn.example", "A", "192.0.2.1")],
    )
)


@given(st.binary(max_size=600))
def test_passive_dns_random_bytes_never_raise(payload: bytes) -> None:
    pdns = PassiveDns(max_bindings=8)
    message = dns.parse(payload)
    if message is not None:
        assert pdns.observe(CLIENT, T0, message) >= 0
        assert len(pdns) <= 8


@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8), st.integers(0, len(VALID)))
def test_passive_dns_mutated_response_never_raises(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for pos, value in edits:
        data[pos] = value
    message = dns.parse(bytes(data[:cut]))
    if message is not None:
        pdns = PassiveDns()
        learnt = pdns.observe(CLIENT, T0, message)
        assert 0 <= len(pdns) <= learnt


def test_passive_dns_hand_made_message_with_bad_address_text() -> None:
    question = dns.DnsQuestion("h.example", dns.TYPE_A, 1)
    answers = (
        dns.DnsResource("h.example", dns.TYPE_A, 1, 60, "not-an-address"),
        dns.DnsResource("h.example", dns.TYPE_A, 1, 60, "192.0.2.80"),
    )
    message = DnsMessage(1, True, 0, False, False, True, True, 0, (question,), answers)
    pdns = PassiveDns()
    assert pdns.observe(CLIENT, T0, message) == 1
    assert pdns.name_of(CLIENT, a("192.0.2.80"), T0) is not None


def test_address_key_layout() -> None:
    assert address_key("192.0.2.1") == (4, 0, 0xC0000201)
    assert address_key("2001:db8::1") == (6, 0x20010DB800000000, 1)
    assert address_key("::ffff:192.0.2.1") == (6, 0, 0xFFFFC0000201)
    for text in ("192.0.2.1", "2001:db8::1", "fe80::1", "::ffff:192.0.2.1", "0.0.0.0"):
        assert address_text(address_key(text)) == text
    for bad in ("", "192.0.2", "192.0.2.256", "2001:db8::1::2", "fe80::1%eth0", "host.example"):
        with pytest.raises(ValueError):
            address_key(bad)
