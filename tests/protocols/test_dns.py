"""dns.parse: RFC 1035 messages with the mDNS bits, bounded against hostile names and counts."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.protocols import dns
from auditor.protocols.dns import DnsMessage, DnsQuestion, DnsResource, SrvData

# --- builders (mdns tests use them too) ---------------------------------------------------------


def encode_name(name: str) -> bytes:
    """Return a name as uncompressed wire labels."""
    out = b""
    for label in name.split(".") if name else []:
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def question(name: str, qtype: int, qclass: int = 1) -> bytes:
    """Return one question entry."""
    return encode_name(name) + struct.pack(">HH", qtype, qclass)


def resource(name: bytes | str, rtype: int, rdata: bytes, rclass: int = 1, ttl: int = 120) -> bytes:
    """Return one resource record; `name` is wire bytes (e.g. a pointer) or text to encode."""
    owner = name if isinstance(name, bytes) else encode_name(name)
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def message(
    flags: int,
    questions: list[bytes] = [],  # noqa: B006 - never mutated
    answers: list[bytes] = [],  # noqa: B006
    authority: list[bytes] = [],  # noqa: B006
    additional: list[bytes] = [],  # noqa: B006
    ident: int = 0,
) -> bytes:
    """Return a DNS message from its sections."""
    header = struct.pack(">HHHHHH", ident, flags, len(questions), len(answers), len(authority), len(additional))
    return header + b"".join(questions + answers + authority + additional)


def txt(*strings: bytes) -> bytes:
    """Return TXT rdata."""
    return b"".join(bytes([len(s)]) + s for s in strings)


# --- real payloads from the shared corpus --------------------------------------------------------

# ndpi__android.pcap: an A query and its answer
ANDROID_QUERY = b"r\xa3\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x06google\x03com\x00\x00\x01\x00\x01"
ANDROID_TIME_REPLY = (
    b"\xa0\xf4\x81\x80\x00\x01\x00\x04\x00\x00\x00\x00\x04time\x07android\x03com\x00\x00\x01\x00\x01"
    b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x18\x00\x04\xd8\xef#\x08\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x18\x00\x04"
    b"\xd8\xef#\x00\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x18\x00\x04\xd8\xef#\x04\xc0\x0c\x00\x01\x00\x01\x00\x00\x01"
    b"\x18\x00\x04\xd8\xef#\x0c"
)
# ndpi__android.pcap: a CNAME chain
ANDROID_CAPTIVE_REPLY = (
    b"\xfb\xa6\x81\x80\x00\x01\x00\x05\x00\x00\x00\x00\x07captive\x05apple\x03com\x00\x00\x01\x00\x01\xc0\x0c\x00"
    b"\x05\x00\x01\x00\x00\x10\x8a\x00*\x0ccaptive-cidr\x0corigin-apple\x03com\x06akadns\x03net\x00\xc0/\x00\x05\x00"
    b"\x01\x00\x00\x00\x82\x00\x0e\x0bcaptive-cdn\xc0<\xc0e\x00\x05\x00\x01\x00\x00\x01T\x00\x14\x07captive\x01g\x07"
    b"aaplimg\xc0\x1a\xc0\x7f\x00\x01\x00\x01\x00\x00\x00\x13\x00\x04\x11\xfd5\xc9\xc0\x7f\x00\x01\x00\x01\x00\x00"
    b"\x00\x13\x00\x04\x11\xfd5\xd0"
)
# zeek__pcapng-multi-interface.pcapng: AAAA answers
ZEEK_AAAA_REPLY = (
    b"\x00\x05\x81\x80\x00\x01\x00\x04\x00\x00\x00\x00\x06google\x03com\x00\x00\x1c\x00\x01\xc0\x0c\x00\x1c\x00\x01"
    b"\x00\x00\x00p\x00\x10&\x07\xf8\xb0@# \x07\x00\x00\x00\x00\x00\x00\x00f\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00p\x00"
    b"\x10&\x07\xf8\xb0@# \x07\x00\x00\x00\x00\x00\x00\x00\x8b\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00p\x00\x10&\x07\xf8"
    b"\xb0@# \x07\x00\x00\x00\x00\x00\x00\x00q\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00p\x00\x10&\x07\xf8\xb0@# \x07\x00"
    b"\x00\x00\x00\x00\x00\x00\x8a"
)
# zeek__ipv6-fragmented-dns.pcap: TXT answer, NS authority, OPT and A additional
ZEEK_TXT_REPLY = (
    b"\x0f?\x85\x00\x00\x01\x00\x01\x00\x01\x00\x02\x0etxtpadding_323\x02n1\x08netalyzr\x04icsi\x08berkeley\x03edu"
    b"\x00\x00\x10\x00\x01\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x01\x00\xc1!This TXT record should be ignored\x15As it"
    b" is just padding\x88" + b"X" * 136 + b"\xc0\x1b\x00\x02\x00\x01\x00\x00\x00d\x00\x11\x06roland\x04icir\x03org\x00"
    b"\x00\x00)\x10\x00\x00\x00\x80\x00\x00\x00\xc1\x17\x00\x01\x00\x01\x00\x00\x00d\x00\x04\xc0\x96\xbb\x1f"
)
# iotsentinel__D-LinkDayCam_Setup-C-1.pcap: an mDNS probe (QU questions, proposed records in authority)
DLINK_PROBE = (
    b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x11DCS-930LB1_1C7185\x05local\x00\x00\xff\x80\x01\x10DCS-930LB_"
    b"1C7185\x05_http\x04_tcp\xc0\x1e\x00\xff\x80\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x00<\x00\x04\n\n\n:\xc0)\x00!"
    b"\x00\x01\x00\x00\x00x\x00\x08\x00\x00\x00\x00\x00P\xc0\x0c"
)
# ndpi__malformed_dns.pcap: a reply whose second question is a 34-byte label running into garbage
MALFORMED_REPLY = (
    b'\x84\xb4\x81\x00\x00\x02\x00\x02\x00\x00\x00\x00\x03www\x02xt\x03com\x00\x00\x01\x00\x01"' + b"A" * 34 + b"?"
    b"\x00\x00\x00\x00" + b"?" * 700 + b"\xc0@=>" + b"?" * 60 + b"\xc0A\xc0B;<=>"
)

GOOD = (ANDROID_QUERY, ANDROID_TIME_REPLY, ANDROID_CAPTIVE_REPLY, ZEEK_AAAA_REPLY, ZEEK_TXT_REPLY, DLINK_PROBE)


def test_dns_parse_reads_a_query() -> None:
    assert dns.parse(ANDROID_QUERY) == DnsMessage(
        id=0x72A3,
        qr=False,
        opcode=0,
        aa=False,
        tc=False,
        rd=True,
        ra=False,
        rcode=0,
        questions=(DnsQuestion(name="www.google.com", qtype=1, qclass=1),),
    )
    msg = dns.parse(ANDROID_QUERY)
    assert msg is not None
    assert list(msg.facts()) == [("query", "www.google.com")]


def test_dns_parse_reads_a_answers_through_pointers() -> None:
    msg = dns.parse(ANDROID_TIME_REPLY)
    assert msg is not None
    assert (msg.qr, msg.rd, msg.ra, msg.rcode, msg.complete) == (True, True, True, 0, True)
    assert msg.answers == tuple(
        DnsResource(name="time.android.com", rtype=1, rclass=1, ttl_s=280, rdata=f"216.239.35.{n}")
        for n in (8, 0, 4, 12)
    )
    assert list(msg.facts()) == [
        ("answer", "time.android.com A 216.239.35.8"),
        ("answer", "time.android.com A 216.239.35.0"),
        ("answer", "time.android.com A 216.239.35.4"),
        ("answer", "time.android.com A 216.239.35.12"),
    ]


def test_dns_parse_reads_a_cname_chain() -> None:
    msg = dns.parse(ANDROID_CAPTIVE_REPLY)
    assert msg is not None
    assert [(rr.name, rr.rtype, rr.ttl_s, rr.rdata) for rr in msg.answers] == [
        ("captive.apple.com", 5, 4234, "captive-cidr.origin-apple.com.akadns.net"),
        ("captive-cidr.origin-apple.com.akadns.net", 5, 130, "captive-cdn.origin-apple.com.akadns.net"),
        ("captive-cdn.origin-apple.com.akadns.net", 5, 340, "captive.g.aaplimg.com"),
        ("captive.g.aaplimg.com", 1, 19, "17.253.53.201"),
        ("captive.g.aaplimg.com", 1, 19, "17.253.53.208"),
    ]
    assert list(msg.facts()) == [
        ("answer", "captive.apple.com CNAME captive-cidr.origin-apple.com.akadns.net"),
        ("answer", "captive-cidr.origin-apple.com.akadns.net CNAME captive-cdn.origin-apple.com.akadns.net"),
        ("answer", "captive-cdn.origin-apple.com.akadns.net CNAME captive.g.aaplimg.com"),
        ("answer", "captive.g.aaplimg.com A 17.253.53.201"),
        ("answer", "captive.g.aaplimg.com A 17.253.53.208"),
    ]


def test_dns_parse_writes_aaaa_as_compressed_text() -> None:
    msg = dns.parse(ZEEK_AAAA_REPLY)
    assert msg is not None
    assert [rr.rdata for rr in msg.answers] == [
        "2607:f8b0:4023:2007::66",
        "2607:f8b0:4023:2007::8b",
        "2607:f8b0:4023:2007::71",
        "2607:f8b0:4023:2007::8a",
    ]
    assert next(msg.facts()) == ("answer", "google.com AAAA 2607:f8b0:4023:2007::66")


def test_dns_parse_reads_txt_ns_and_keeps_opt_class() -> None:
    msg = dns.parse(ZEEK_TXT_REPLY)
    assert msg is not None
    assert (msg.aa, msg.rd, msg.ra, msg.complete) == (True, True, False, True)
    assert msg.answers == (
        DnsResource(
            name="txtpadding_323.n1.netalyzr.icsi.berkeley.edu",
            rtype=16,
            rclass=1,
            ttl_s=1,
            rdata=("This TXT record should be ignored", "As it is just padding", "X" * 136),
        ),
    )
    assert msg.authority == (
        DnsResource(name="n1.netalyzr.icsi.berkeley.edu", rtype=2, rclass=1, ttl_s=100, rdata="roland.icir.org"),
    )
    # RFC 6891: OPT's class is the UDP payload size (4096 here) and is never masked
    assert msg.additional == (
        DnsResource(name="", rtype=41, rclass=4096, ttl_s=0x8000, rdata=None),
        DnsResource(name="roland.icir.org", rtype=1, rclass=1, ttl_s=100, rdata="192.150.187.31"),
    )
    assert list(msg.facts()) == []  # TXT answers are not answer facts


def test_dns_parse_masks_mdns_unicast_response_bit() -> None:
    msg = dns.parse(DLINK_PROBE)
    assert msg is not None
    assert msg.questions == (
        DnsQuestion(name="dcs-930lb1_1c7185.local", qtype=255, qclass=1, unicast_response=True),
        DnsQuestion(name="dcs-930lb_1c7185._http._tcp.local", qtype=255, qclass=1, unicast_response=True),
    )
    assert msg.authority == (
        DnsResource(name="dcs-930lb1_1c7185.local", rtype=1, rclass=1, ttl_s=60, rdata="10.10.10.58"),
        DnsResource(
            name="dcs-930lb_1c7185._http._tcp.local",
            rtype=33,
            rclass=1,
            ttl_s=120,
            rdata=SrvData(priority=0, weight=0, port=80, target="dcs-930lb1_1c7185.local"),
        ),
    )
    assert list(msg.facts()) == [("query", "dcs-930lb1_1c7185.local"), ("query", "dcs-930lb_1c7185._http._tcp.local")]


def test_dns_parse_masks_mdns_cache_flush_bit() -> None:
    payload = message(0x8400, answers=[resource("cam.local", dns.TYPE_A, bytes([192, 168, 1, 64]), rclass=0x8001)])
    msg = dns.parse(payload)
    assert msg is not None
    assert msg.answers == (
        DnsResource(name="cam.local", rtype=1, rclass=1, ttl_s=120, rdata="192.168.1.64", cache_flush=True),
    )


def test_dns_parse_escapes_odd_label_octets() -> None:
    labels = [b"Living Room.Cam", b"a\\b", b"tab\there", b"Caf\xc3\xa9", b"LOCAL"]
    wire = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    msg = dns.parse(message(0, questions=[wire + b"\x00\x01\x00\x01"]))
    assert msg is not None
    qname = msg.questions[0].name
    assert qname == "living room\\.cam.a\\\\b.tab\\009here.caf\\195\\169.local"
    assert dns.labels(qname) == ["living room\\.cam", "a\\\\b", "tab\\009here", "caf\\195\\169", "local"]
    assert all(0x20 <= ord(c) < 0x7F for c in qname)


def test_dns_labels_splits_names() -> None:
    assert dns.labels("") == []
    assert dns.labels("_http._tcp.local") == ["_http", "_tcp", "local"]
    assert dns.labels("a\\.b.c") == ["a\\.b", "c"]
    assert dns.labels("a\\\\.b") == ["a\\\\", "b"]
    assert dns.labels("trailing\\") == ["trailing\\"]


def test_dns_parse_escapes_control_characters_in_txt() -> None:
    payload = message(0x8400, answers=[resource("cam._http._tcp.local", dns.TYPE_TXT, txt(b"path=/\x1b[31m", b""))])
    msg = dns.parse(payload)
    assert msg is not None
    assert msg.answers[0].rdata == ("path=/\\027[31m", "")


def test_dns_parse_reads_srv_and_leaves_unknown_types_raw() -> None:
    srv = struct.pack(">HHH", 1, 2, 554) + encode_name("NVR.local")
    payload = message(
        0x8400,
        answers=[
            resource("nvr._rtsp._tcp.local", dns.TYPE_SRV, srv),
            resource("nvr.local", dns.TYPE_HINFO, b"\x03ARM\x05Linux"),
            resource("nvr.local", 99, b"\x01\x02"),
        ],
    )
    msg = dns.parse(payload)
    assert msg is not None
    assert [rr.rdata for rr in msg.answers] == [SrvData(priority=1, weight=2, port=554, target="nvr.local"), None, None]
    assert dns.type_name(99) == "TYPE99"
    assert dns.type_name(dns.TYPE_SRV) == "SRV"


def test_dns_parse_keeps_a_record_with_bad_rdata() -> None:
    payload = message(
        0x8180,
        answers=[
            resource("a.example", dns.TYPE_A, b"\x01\x02\x03"),
            resource("b.example", dns.TYPE_A, b"\x01\x02\x03\x04"),
        ],
    )
    msg = dns.parse(payload)
    assert msg is not None
    assert msg.complete
    assert [(rr.name, rr.rdata) for rr in msg.answers] == [("a.example", None), ("b.example", "1.2.3.4")]
    assert list(msg.facts()) == [("answer", "b.example A 1.2.3.4")]


def test_dns_parse_gives_query_facts_only_for_queries() -> None:
    reply = message(
        0x8180, questions=[question("cloud.example", 1)], answers=[resource("cloud.example", 1, b"\x0a\0\0\1")]
    )
    msg = dns.parse(reply)
    assert msg is not None
    assert list(msg.facts()) == [("answer", "cloud.example A 10.0.0.1")]
    # an mDNS query's known answers describe other hosts
    query = message(0, questions=[question("_http._tcp.local", 12)], answers=[resource("x.local", 1, b"\x0a\0\0\2")])
    msg = dns.parse(query)
    assert msg is not None
    assert list(msg.facts()) == [("query", "_http._tcp.local")]


def test_dns_parse_rejects_forward_pointer() -> None:
    # the question's name points at offset 0x20, past itself
    payload = message(0x0100, questions=[b"\x03www\xc0\x20\x00\x01\x00\x01"]) + b"\x00" * 32
    assert dns.parse(payload) is None


def test_dns_parse_rejects_pointer_loops() -> None:
    # a pointer to itself, and two names pointing at each other
    assert dns.parse(message(0x0100, questions=[b"\xc0\x0c\x00\x01\x00\x01"])) is None
    looped = message(0x8180, questions=[question("a.example", 1)], answers=[resource(b"\x01b\xc0\x1b", 1, b"\0\0\0\0")])
    msg = dns.parse(looped)
    assert msg is not None
    assert not msg.complete
    assert msg.answers == ()


def test_dns_parse_rejects_pointers_into_the_header() -> None:
    payload = message(0x8180, questions=[question("a", 1)], answers=[resource(b"\xc0\x02", 1, b"\0\0\0\0")])
    msg = dns.parse(payload)
    assert msg is not None
    assert not msg.complete
    assert msg.answers == ()


def _pointer_chain(hops: int) -> bytes:
    """Return a reply whose second answer's owner reaches the name 'a' through `hops` backward pointers.

    Layout: question 'a' at offset 12; answer 'b' (type 99) at 19 with its opaque rdata at 32
    holding the pointers, each pointing at the one before it, the first at offset 12.
    """
    blob = struct.pack(">H", 0xC000 | 12) + b"".join(struct.pack(">H", 0xC000 | (32 + 2 * i)) for i in range(hops - 1))
    last = struct.pack(">H", 0xC000 | (32 + 2 * (hops - 1)))
    return message(
        0x8180,
        questions=[question("a", 1)],
        answers=[resource("b", 99, blob), resource(last, dns.TYPE_A, b"\x0a\0\0\1")],
    )


def test_dns_parse_follows_long_backward_chains_within_the_step_cap() -> None:
    msg = dns.parse(_pointer_chain(200))
    assert msg is not None
    assert msg.complete
    assert [rr.name for rr in msg.answers] == ["b", "a"]
    msg = dns.parse(_pointer_chain(300))  # more steps than MAX_NAME_STEPS
    assert msg is not None
    assert not msg.complete
    assert [rr.name for rr in msg.answers] == ["b"]


def test_dns_parse_rejects_long_names_and_extended_labels() -> None:
    long_name = ".".join(["a" * 63] * 4)  # 4 * 64 + 1 = 257 wire bytes
    assert dns.parse(message(0x0100, questions=[question(long_name, 1)])) is None
    ok_name = ".".join(["a" * 63] * 3 + ["a" * 61])  # exactly 255
    msg = dns.parse(message(0x0100, questions=[question(ok_name, 1)]))
    assert msg is not None and msg.questions[0].name == ok_name
    assert dns.parse(message(0x0100, questions=[b"\x41abc\x00\x00\x01\x00\x01"])) is None  # 01xxxxxx label type


def test_dns_parse_caps_name_work_per_message() -> None:
    # 64 answers whose owners all reach 'a' through 200 pointers: 64 * 201 steps is over the budget
    chain = _pointer_chain(200)
    last_answer = chain[-16:]  # owner pointer (2) + fixed fields (10) + A rdata (4)
    payload = chain[:6] + struct.pack(">H", 64) + chain[8:] + last_answer * 63
    msg = dns.parse(payload)
    assert msg is not None
    assert not msg.complete
    assert 30 < len(msg.answers) < 64
    assert all(rr.name == "a" for rr in msg.answers[1:])


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x7fU\x84\x00",  # ndpi__badpackets.pcap: a reply cut after 4 bytes
        b"\x86\xad\x84\x10\x00\x01\x00\x05\x00\x00",  # ndpi__badpackets.pcap: header cut short
        b"\xed\x0c\x84\x10\x00\x01\x00\x04\x00\x04\x00\r\x0favia",  # ndpi__badpackets.pcap: question cut short
        MALFORMED_REPLY,
        message(0x0100, questions=[b"\x03www\x00\x00"]),  # QTYPE cut off
    ],
)
def test_dns_parse_rejects_bad_headers_and_questions(payload: bytes) -> None:
    assert dns.parse(payload) is None


def test_dns_parse_keeps_questions_of_a_truncated_reply() -> None:
    cut = ANDROID_TIME_REPLY[:-10]
    msg = dns.parse(cut)
    assert msg is not None
    assert not msg.complete
    assert msg.questions == (DnsQuestion(name="time.android.com", qtype=1, qclass=1),)
    assert [rr.rdata for rr in msg.answers] == ["216.239.35.8", "216.239.35.0", "216.239.35.4"]


def test_dns_parse_caps_records_per_section() -> None:
    answers = [resource(b"\xc0\x0c", 1, bytes([10, 0, n // 256, n % 256])) for n in range(100)]
    payload = message(0x8180, questions=[question("many.example", 1)], answers=answers, additional=[answers[0]])
    msg = dns.parse(payload)
    assert msg is not None
    assert len(msg.answers) == dns.MAX_SECTION_RECORDS
    assert msg.additional == ()
    assert not msg.complete
    assert len(list(msg.facts())) == dns.MAX_ANSWER_FACTS


def test_dns_parse_bounds_a_huge_payload() -> None:
    # 1 MB: a header claiming 65535 questions, then the same question over and over
    payload = struct.pack(">HHHHHH", 1, 0x0100, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF) + question("a.example", 1) * 70_000
    msg = dns.parse(payload)
    assert msg is not None
    assert len(msg.questions) == dns.MAX_SECTION_RECORDS
    assert (msg.answers, msg.authority, msg.additional, msg.complete) == ((), (), (), False)


@given(st.binary(max_size=2048))
def test_dns_parse_never_raises_on_random_bytes(payload: bytes) -> None:
    msg = dns.parse(payload)
    assert msg is None or isinstance(msg, DnsMessage)
    if msg is not None:
        list(msg.facts())


@given(st.binary(max_size=512))
def test_dns_parse_never_raises_behind_a_valid_header(body: bytes) -> None:
    msg = dns.parse(struct.pack(">HHHHHH", 0, 0x8400, 1, 3, 2, 2) + body)
    assert msg is None or isinstance(msg, DnsMessage)
    if msg is not None:
        list(msg.facts())


@pytest.mark.parametrize("good", GOOD)
def test_dns_parse_survives_every_truncation(good: bytes) -> None:
    assert dns.parse(good) is not None
    for n in range(len(good) + 1):
        msg = dns.parse(good[:n])
        assert msg is None or isinstance(msg, DnsMessage)


DNS_FILES = (
    "ndpi__android.pcap",
    "ndpi__badpackets.pcap",
    "ndpi__malformed_dns.pcap",
    "zeek__ipv6-fragmented-dns.pcap",
    "zeek__pcapng-multi-interface.pcapng",
    "zeek__var-services-std-ports.pcap",
    "zeek__wikipedia.pcap",
)
"""Corpus files with DNS on UDP 53 (MANIFEST.md quick index)."""


@pytest.mark.corpus
def test_dns_parse_reads_the_corpus(corpus: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    parsed = rejected = 0
    for name in DNS_FILES:
        with PcapReader(str(corpus / name)) as reader:
            for pkt in reader:
                if UDP not in pkt or 53 not in (pkt[UDP].sport, pkt[UDP].dport):
                    continue
                msg = dns.parse(bytes(pkt[UDP].payload))
                if msg is None:
                    # only the captures of broken traffic may hold unparseable messages
                    assert name in ("ndpi__badpackets.pcap", "ndpi__malformed_dns.pcap")
                    rejected += 1
                else:
                    list(msg.facts())
                    parsed += 1
    assert parsed > 200
    assert rejected < parsed
