"""The cache's store rules and the reply reading they stand on: how long each kind of upstream reply is
kept (``lifetime_of``, a table), what ``scan``/``read_reply`` learn in their one pass (the OPT record
cut out, counts, TTL offsets, CNAME target, SOA fields) and which inputs they refuse; and an
``Entry``'s rendering: shown TTLs, TC past the client's limit, stale answers with TTL 30."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest
from _pytest.mark import ParameterSet
from dnslib import EDNS0, QTYPE, RR, A, DNSHeader, DNSQuestion, DNSRecord

from kubedns_py.cache.store.entry import STALE_ANSWER_TTL, Entry, shown_ttl
from kubedns_py.cache.store.rules import SERVFAIL_TTL, CacheRules, lifetime_of
from kubedns_py.dnswire.header import HEADER_SIZE
from kubedns_py.dnswire.response import NO_TTL, OptMisplaced, UpstreamReply, read_reply, scan
from kubedns_py.dnswire.walk import WireError
from tests.support.junk import EXAMPLE, header, opt, pointer, record
from tests.support.replies import question_wire, reply, soa

NAME = "www.example.com."
A1 = f"{NAME} 300 IN A 192.0.2.1"
SOA_LONG_MINIMUM = soa("example.com.", 30, 900)  # min(TTL, MINIMUM) = 30
SOA_SHORT_MINIMUM = soa("example.com.", 600, 60)  # = 60
NXDOMAIN, SERVFAIL, REFUSED = dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED
DEFAULT = CacheRules()
QUESTION = EXAMPLE + b"\0\1\0\1"  # www.example.com A IN, right after the header


def lifetime_case(case: str, expected: int | None, rules: CacheRules = DEFAULT, **parts: Any) -> ParameterSet:
    """A row: the reply to NAME made of ``parts``, the rules, the lifetime expected."""
    return pytest.param(reply(NAME, **parts), rules, expected, id=case)


@pytest.mark.parametrize(
    ("wire", "rules", "expected"),
    [
        lifetime_case("positive", 300, answer=[A1]),
        lifetime_case(
            "positive: the smallest answer TTL", 100, answer=[A1, f"{NAME} 100 IN AAAA 2001:db8::1"]
        ),
        lifetime_case(
            "positive: authority TTLs count", 60, answer=[A1], authority=["example.com. 60 IN NS ns."]
        ),
        lifetime_case(
            "positive: additional TTLs count",
            45,
            answer=[A1],
            additional=["ns.example.com. 45 IN A 192.0.2.53"],
        ),
        lifetime_case("positive: the OPT record's TTL field is not a TTL", 300, answer=[A1], edns=True),
        lifetime_case("positive: TTL 0", 0, answer=[f"{NAME} 0 IN A 192.0.2.1"]),
        lifetime_case("positive: top bit set means 0", 0, answer=[f"{NAME} 2147483648 IN A 192.0.2.1", A1]),
        lifetime_case(
            "positive: min clamp", 60, CacheRules(min_ttl=60), answer=[f"{NAME} 10 IN A 192.0.2.1"]
        ),
        lifetime_case("positive: max clamp", 120, CacheRules(max_ttl=120), answer=[A1]),
        lifetime_case("positive: max 0 is no cap", 300, CacheRules(max_ttl=0), answer=[A1]),
        lifetime_case(
            "positive: top bit set, min clamp",
            30,
            CacheRules(min_ttl=30),
            answer=[f"{NAME} 4294967295 IN A 192.0.2.1"],
        ),
        lifetime_case("NXDOMAIN: SOA TTL below MINIMUM", 30, rcode=NXDOMAIN, authority=[SOA_LONG_MINIMUM]),
        lifetime_case("NXDOMAIN: MINIMUM below SOA TTL", 60, rcode=NXDOMAIN, authority=[SOA_SHORT_MINIMUM]),
        lifetime_case("NODATA: SOA TTL below MINIMUM", 30, authority=[SOA_LONG_MINIMUM]),
        lifetime_case("NODATA: MINIMUM below SOA TTL", 60, authority=[SOA_SHORT_MINIMUM]),
        lifetime_case(
            "NXDOMAIN: min clamp", 90, CacheRules(min_ttl=90), rcode=NXDOMAIN, authority=[SOA_SHORT_MINIMUM]
        ),
        lifetime_case("NODATA: max clamp", 10, CacheRules(max_ttl=10), authority=[SOA_SHORT_MINIMUM]),
        lifetime_case("NXDOMAIN without SOA: not kept", None, rcode=NXDOMAIN),
        lifetime_case("NODATA without SOA: not kept", None),
        lifetime_case("NXDOMAIN without SOA: --neg-ttl", 20, CacheRules(neg_ttl=20), rcode=NXDOMAIN),
        lifetime_case("NODATA without SOA: --neg-ttl", 20, CacheRules(neg_ttl=20)),
        lifetime_case("--neg-ttl clamped", 10, CacheRules(neg_ttl=20, max_ttl=10), rcode=NXDOMAIN),
        lifetime_case(
            "NXDOMAIN: --no-negcache",
            None,
            CacheRules(negative=False),
            rcode=NXDOMAIN,
            authority=[SOA_SHORT_MINIMUM],
        ),
        lifetime_case(
            "NODATA: --no-negcache", None, CacheRules(negative=False), authority=[SOA_SHORT_MINIMUM]
        ),
        lifetime_case(
            "--no-negcache beats --neg-ttl", None, CacheRules(negative=False, neg_ttl=20), rcode=NXDOMAIN
        ),
        lifetime_case("--no-negcache keeps positives", 300, CacheRules(negative=False), answer=[A1]),
        lifetime_case("SERVFAIL", SERVFAIL_TTL, rcode=SERVFAIL),
        lifetime_case(
            "SERVFAIL under --no-negcache", SERVFAIL_TTL, CacheRules(negative=False), rcode=SERVFAIL
        ),
        lifetime_case("REFUSED", None, rcode=REFUSED),
        lifetime_case("REFUSED with an answer", None, rcode=REFUSED, answer=[A1]),
        lifetime_case("FORMERR", None, rcode=dns.rcode.FORMERR),
        lifetime_case("NOTIMP", None, rcode=dns.rcode.NOTIMP),
        lifetime_case("YXDOMAIN", None, rcode=dns.rcode.YXDOMAIN, authority=[SOA_SHORT_MINIMUM]),
        lifetime_case("truncated", None, answer=[A1], flags=dns.flags.TC),
        lifetime_case(
            "truncated NXDOMAIN", None, rcode=NXDOMAIN, authority=[SOA_SHORT_MINIMUM], flags=dns.flags.TC
        ),
        lifetime_case("truncated SERVFAIL", None, rcode=SERVFAIL, flags=dns.flags.TC),
    ],
)
def test_lifetime_of(wire: bytes, rules: CacheRules, expected: int | None) -> None:
    assert lifetime_of(scan(wire), rules) == expected


def ttl_at(reply: UpstreamReply, index: int) -> int:
    (ttl,) = struct.unpack_from("!I", reply.body, reply.ttl_offsets[index])
    return int(ttl)


def test_scan_cuts_the_opt_record_out_of_the_body_and_its_count() -> None:
    with_opt = reply(NAME, answer=[A1], additional=["ns.example.com. 45 IN A 192.0.2.53"])
    without = reply(NAME, answer=[A1], additional=["ns.example.com. 45 IN A 192.0.2.53"], edns=False)
    read, plain = scan(with_opt), scan(without)
    assert struct.unpack_from("!H", with_opt, 10) == (2,)  # the header counts the OPT record
    assert read.counts == plain.counts == (1, 0, 1)
    assert read.body == plain.body == without[plain.question_end :]
    assert read.wire == with_opt and read.question_end == plain.question_end
    # What is left is a message of its own: header, question and body, without EDNS.
    rebuilt = dns.message.from_wire(
        struct.pack("!HHHHHH", 0, read.flags, 1, *read.counts) + read.question + read.body
    )
    assert rebuilt.edns < 0 and [str(r[0]) for r in rebuilt.additional] == ["192.0.2.53"]


def test_scan_records_each_ttl_and_where_it_sits() -> None:
    wire = reply(
        NAME,
        answer=[A1, f"{NAME} 2147483649 IN AAAA 2001:db8::1"],
        authority=["example.com. 60 IN NS ns.example.com."],
        additional=["ns.example.com. 45 IN A 192.0.2.53"],
    )
    read = scan(wire)
    assert read.counts == (2, 1, 1)
    assert read.ttls == (300, 0, 60, 45)  # the top bit set reads as 0
    assert [ttl_at(read, i) for i in (0, 2, 3)] == [300, 60, 45]
    assert ttl_at(read, 1) == 2147483649  # the offset points at the field as received
    assert read.min_ttl == 0 and read.answer_types == frozenset({1, 28})
    assert read.question == question_wire(NAME) and read.question_end == HEADER_SIZE + len(read.question)
    assert read.rcode == 0 and read.flags & 0x8000 and read.cname_at == 0 and read.soa_ttl == -1


def test_scan_of_a_reply_without_records() -> None:
    read = scan(reply(NAME, rcode=NXDOMAIN))
    assert read.counts == (0, 0, 0) and read.body == b"" and read.ttls == () and read.ttl_offsets == ()
    assert read.min_ttl == NO_TTL and read.answer_types == frozenset() and read.rcode == NXDOMAIN


@pytest.mark.parametrize(
    ("answer", "target"),
    [
        ([f"{NAME} 60 IN CNAME web.example.net."], "web.example.net."),
        (
            [f"{NAME} 60 IN CNAME a.example.net.", "a.example.net. 60 IN CNAME b.example.org."],
            "b.example.org.",
        ),
        ([f"{NAME} 60 IN CNAME web.example.net.", "web.example.net. 60 IN A 192.0.2.1"], None),
        ([A1], None),
    ],
)
def test_scan_finds_a_cname_ending_the_answers(answer: list[str], target: str | None) -> None:
    wire = reply(NAME, answer=answer)
    read = scan(wire)
    if target is None:
        assert read.cname_at == 0
    else:
        assert dns.name.from_wire(wire, read.cname_at)[0] == dns.name.from_text(target)


def test_scan_reads_the_first_soa_of_the_authority_section_only() -> None:
    read = scan(reply(NAME, rcode=NXDOMAIN, authority=[SOA_SHORT_MINIMUM, soa("com.", 5, 5)]))
    assert (read.soa_ttl, read.soa_minimum) == (600, 60)
    in_answer = scan(reply("example.com.", "SOA", answer=[SOA_SHORT_MINIMUM]))
    assert (in_answer.soa_ttl, in_answer.answer_types) == (-1, frozenset({6}))
    assert lifetime_of(in_answer, DEFAULT) == 600  # a positive answer: its TTL, not the MINIMUM


def test_read_reply_repacks_an_opt_record_that_is_not_last() -> None:
    misplaced = DNSRecord(
        DNSHeader(id=7, qr=1, rd=1, ra=1),
        q=DNSQuestion("www.example.com"),
        rr=[RR("www.example.com", QTYPE.A, rdata=A("192.0.2.1"), ttl=300)],
        ar=[EDNS0(udp_len=1232), RR("ns.example.com", QTYPE.A, rdata=A("192.0.2.53"), ttl=45)],
    )
    wire = bytes(misplaced.pack())
    with pytest.raises(OptMisplaced):
        scan(wire)
    read = read_reply(wire)
    assert read.counts == (1, 0, 1) and read.ttls == (300, 45) and read.min_ttl == 45
    assert DNSRecord.parse(read.wire).ar[-1].rtype == QTYPE.OPT
    rebuilt = DNSRecord.parse(
        struct.pack("!HHHHHH", 0, read.flags, 1, *read.counts) + read.question + read.body
    )
    assert [str(rr.rdata) for rr in rebuilt.ar] == ["192.0.2.53"]
    # The usual reply is read as received, not repacked.
    usual = reply(NAME, answer=[A1])
    assert read_reply(usual).wire is usual


TRUNCATED_A = record(pointer(12), rdata=b"\1\2\3")  # scanned fine, but no A record


@pytest.mark.parametrize("read", [scan, read_reply])
@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(header(0x8180)[:11], id="short header"),
        pytest.param(header(0x8180, qd=0), id="no question"),
        pytest.param(header(0x8180, qd=2) + QUESTION + QUESTION, id="two questions"),
        pytest.param(header(0x8180) + EXAMPLE + b"\0\1", id="question cut short"),
        pytest.param(header(0x8180) + b"\3www\7exam", id="name past the end"),
        pytest.param(header(0x8180) + b"\x80www\0\0\1\0\1", id="unknown label type"),
        pytest.param(header(0x8180) + b"\1a" * 128 + b"\0\0\1\0\1", id="too many labels"),
        pytest.param(
            header(0x8180, an=1) + QUESTION + pointer(12) + b"\0\1\0\1", id="record header cut short"
        ),
        pytest.param(header(0x8180, an=1) + QUESTION + record(pointer(12))[:-1], id="record data cut short"),
        pytest.param(header(0x8180, an=2) + QUESTION + record(pointer(12)), id="fewer records than counted"),
        pytest.param(header(0x8180, an=1) + QUESTION + opt(), id="OPT in the answers"),
        pytest.param(header(0x8180, ns=1) + QUESTION + opt(), id="OPT in the authority"),
        pytest.param(header(0x8180, ar=2) + QUESTION + opt() + opt(), id="two OPT records"),
        pytest.param(
            header(0x8180, ar=2) + QUESTION + opt() + TRUNCATED_A, id="misplaced OPT, bad record after"
        ),
    ],
)
def test_malformed_replies_raise_wire_error(read: Callable[[bytes], UpstreamReply], wire: bytes) -> None:
    with pytest.raises(WireError):
        read(wire)


def test_a_top_bit_ttl_reads_as_zero_in_raw_wire() -> None:
    wire = header(0x8180, an=2) + QUESTION + record(pointer(12), ttl=0x80000000) + record(pointer(12), ttl=90)
    read = scan(wire)
    assert read.ttls == (0, 90) and read.min_ttl == 0
    assert lifetime_of(read, DEFAULT) == 0 and lifetime_of(read, CacheRules(min_ttl=15)) == 15


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (-5.0, 0),
        (0.0, 0),
        (0.0005, 0),  # less than what rounding up needs
        (0.01, 1),
        (0.5, 1),
        (1.0, 1),
        (1.2, 2),
        (30.0, 30),
        (63.0, 63),
        (64.0, 64),
        (65.0, 64),
        (127.0, 126),
        (1000.0, 992),
        (86400.0, 86016),
    ],
)
def test_shown_ttl(left: float, shown: int) -> None:
    assert shown_ttl(1000.0 + left, 1000.0) == shown


def entry_of(wire: bytes, lifetime: int = 300, now: float = 1000.0, stale_ttl: float = 3600.0) -> Entry:
    return Entry(scan(wire), lifetime, now, stale_ttl)


def test_an_entry_renders_remaining_ttls_and_never_raises_one() -> None:
    entry = entry_of(reply(NAME, answer=[A1, f"{NAME} 10 IN AAAA 2001:db8::1"]), lifetime=10)
    message = dns.message.from_wire(entry.message(1000.0))
    assert [rrset.ttl for rrset in message.answer] == [10, 10]
    message = dns.message.from_wire(entry.message(1004.5))
    assert [rrset.ttl for rrset in message.answer] == [6, 6]
    long_lived = entry_of(reply(NAME, answer=[A1, f"{NAME} 10 IN AAAA 2001:db8::1"]), lifetime=300)
    assert [rrset.ttl for rrset in dns.message.from_wire(long_lived.message(1100.0)).answer] == [200, 10]


def test_a_stale_entry_is_rendered_with_ttl_30() -> None:
    entry = entry_of(reply(NAME, answer=[A1, f"{NAME} 10 IN AAAA 2001:db8::1"]), lifetime=10)
    query = dns.message.make_query(NAME, "A", id=4242)
    wire = query.to_wire()
    stale = dns.message.from_wire(entry.reply(wire, len(wire), False, False, 512, 2000.0, stale=True))
    assert [rrset.ttl for rrset in stale.answer] == [STALE_ANSWER_TTL] * 2 and stale.id == 4242
    fresh = dns.message.from_wire(entry.reply(wire, len(wire), False, False, 512, 1002.0))
    assert [rrset.ttl for rrset in fresh.answer] == [8, 8]  # the stale rendering is not reused
    assert entry.stale_until == entry.expires + 3600.0


def test_a_servfail_entry_is_never_served_stale() -> None:
    entry = entry_of(reply(NAME, rcode=SERVFAIL), lifetime=SERVFAIL_TTL)
    assert entry.stale_until == entry.expires == 1000.0 + SERVFAIL_TTL


def test_an_entry_answers_with_ra_set_and_aa_cleared() -> None:
    entry = entry_of(reply(NAME, answer=[A1], flags=dns.flags.AA))
    query = dns.message.make_query(NAME.upper(), "A", id=9)
    query.flags &= ~dns.flags.RD
    wire = query.to_wire()
    answer = dns.message.from_wire(entry.reply(wire, len(wire), False, False, 512, 1000.0))
    assert answer.flags & dns.flags.RA and not answer.flags & (dns.flags.AA | dns.flags.RD)
    assert answer.question[0].name.to_text() == NAME.upper() and answer.id == 9


@pytest.mark.parametrize("edns", [False, True])
def test_an_entry_over_the_clients_limit_is_sent_truncated(edns: bool) -> None:
    many = [f"{NAME} 300 IN A 192.0.2.{i}" for i in range(1, 41)]
    entry = entry_of(reply(NAME, answer=many))
    query = dns.message.make_query(NAME, "A", id=77, use_edns=0 if edns else -1)
    question_end = len(dns.message.make_query(NAME, "A", use_edns=-1).to_wire())
    full = entry.reply(query.to_wire(), question_end, edns, False, 65535, 1000.0)
    assert len(dns.message.from_wire(full).answer[0]) == 40
    # Exactly at the limit it fits; one byte less and only the header and question go, with TC.
    assert entry.reply(query.to_wire(), question_end, edns, False, len(full), 1000.0) == full
    cut = entry.reply(query.to_wire(), question_end, edns, False, len(full) - 1, 1000.0)
    truncated = dns.message.from_wire(cut)
    assert truncated.flags & dns.flags.TC and truncated.id == 77 and not truncated.answer
    assert truncated.question[0].name == dns.name.from_text(NAME)
    assert (truncated.edns == 0) == edns
    assert not dns.message.from_wire(full).flags & dns.flags.TC
