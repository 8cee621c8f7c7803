"""The cache's hit path, in process: entries stored as an upstream would give them, then asked in ways
never seen before (another ID, case, EDNS size, RD bit), answered from the entry without an upstream;
negative entries the same way; the reply memo bounded and only fed by names as first asked; the
answers that never reach the cache (BADVERS, FORMERR, NOTIMP, REFUSED, drops)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from kubedns_py.cache.front import frontend as frontend_module
from kubedns_py.cache.front.frontend import Frontend, Slot
from kubedns_py.cache.store.entry import shown_ttl
from kubedns_py.dnswire.response import scan
from kubedns_py.memo import Memo
from tests.support.frontends import cache_frontend, key, store, upstream_reply

NAME = "www.example.com."


CLIENT = ("127.0.0.1", 5300)  # the address a query came from


@pytest.fixture
async def front() -> AsyncIterator[Frontend]:
    frontend, _, forwarder = cache_frontend()
    yield frontend
    await frontend.close()
    forwarder.close()


def ask(front: Frontend, query: dns.message.Message) -> dns.message.Message:
    reply = front.udp_handler(lambda *_: pytest.fail("a hit is answered at once"))(query.to_wire(), CLIENT)
    assert reply is not None
    return dns.message.from_wire(reply)


@pytest.mark.parametrize(
    ("spelling", "ident", "edns", "payload", "rd"),
    [
        ("www.example.com.", 1, -1, 0, True),
        ("WwW.ExAmPlE.CoM.", 0xBEEF, -1, 0, True),
        ("WWW.EXAMPLE.COM.", 7, 0, 512, False),
        ("www.Example.com.", 0, 0, 4096, True),
        ("www.example.COM.", 65535, 0, 1232, True),
    ],
)
async def test_a_cached_name_asked_a_new_way_is_answered_from_the_entry_as_asked(
    front: Frontend, spelling: str, ident: int, edns: int, payload: int, rd: bool
) -> None:
    store(front, NAME, upstream_reply(NAME))
    for _ in range(3):  # the first ask readies the entry, later ones take the memo or the reader
        query = dns.message.make_query(spelling, "A", id=ident, use_edns=edns, payload=payload)
        if not rd:
            query.flags &= ~dns.flags.RD
        reply = ask(front, query)
        assert reply.id == ident and reply.rcode() == dns.rcode.NOERROR
        assert reply.question[0].name.to_text() == spelling  # byte for byte, case as asked
        assert bool(reply.flags & dns.flags.RD) == rd
        assert reply.flags & dns.flags.RA and reply.flags & dns.flags.QR
        assert not reply.flags & (dns.flags.AA | dns.flags.TC)
        assert [(rrset.name, str(rrset[0])) for rrset in reply.answer] == [
            (query.question[0].name, "192.0.2.1")
        ]
        assert 296 <= reply.answer[0].ttl <= 300  # long TTLs are shown a little short: see shown_ttl
        assert reply.edns == edns and (edns < 0 or reply.payload == 1232)
    assert front.counters.hits == 3 and front.counters.misses == 0


async def test_the_do_bit_is_echoed_and_a_different_key(front: Frontend) -> None:
    assert front._cache.store(key(NAME, dnssec_ok=True), scan(upstream_reply(NAME)), time.monotonic())
    reply = ask(front, dns.message.make_query(NAME, "A", want_dnssec=True, id=9))
    assert reply.ednsflags & dns.flags.DO and reply.answer
    assert front.counters.hits == 1


@pytest.mark.parametrize("rcode", [dns.rcode.NXDOMAIN, dns.rcode.NOERROR])
async def test_negative_entries_are_answered_from_the_entry_too(front: Frontend, rcode: int) -> None:
    name = "gone.example.com."
    store(front, name, upstream_reply(name, rcode=rcode, ttl=60, soa=True))
    for ident, spelling, edns in ((1, name, -1), (2, "GoNe.Example.Com.", 0), (3, name.upper(), 0)):
        reply = ask(front, dns.message.make_query(spelling, "A", id=ident, use_edns=edns))
        assert reply.id == ident and reply.rcode() == rcode and not reply.answer
        assert reply.question[0].name.to_text() == spelling
        assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]
        assert 0 < reply.authority[0].ttl <= 60
    assert front.counters.hits == 3 and front.counters.misses == 0


async def test_ttls_count_down_between_hits(front: Frontend, monkeypatch: pytest.MonkeyPatch) -> None:
    store(front, NAME, upstream_reply(NAME, ttl=30))
    now = time.monotonic()
    for later, ttl in ((0.0, 30), (0.5, 30), (1.2, 29), (2.5, 28), (2.6, 28), (29.5, 1)):
        monkeypatch.setattr(frontend_module, "monotonic", lambda later=later: now + later)
        for spelling in (NAME, NAME.upper()):  # from the memo, and from the reader
            assert ask(front, dns.message.make_query(spelling, "A")).answer[0].ttl == ttl
    monkeypatch.setattr(frontend_module, "monotonic", lambda: now + 30.5)
    assert front.udp_handler(lambda *_: None)(dns.message.make_query(NAME, "A").to_wire(), CLIENT) is None


def test_long_ttls_are_shown_rounded_down_by_at_most_a_32nd() -> None:
    assert [shown_ttl(100.0 + t - 0.5, 100.0) for t in (1, 2, 30, 63)] == [1, 2, 30, 63]
    previous = 1 << 30
    for remaining in range(200_000, 0, -7):
        shown = shown_ttl(float(remaining) - 0.5, 0.0)
        assert remaining - remaining / 32 <= shown <= remaining and shown <= previous
        previous = shown
    assert shown_ttl(10.0, 20.0) == 0


async def test_an_answer_too_big_for_the_client_is_truncated(front: Frontend) -> None:
    query = dns.message.make_query(NAME, "A")
    reply = dns.message.make_response(dns.message.make_query(NAME, "A"))
    reply.answer.append(
        dns.rrset.from_text_list(NAME, 300, "IN", "A", [f"192.0.2.{i}" for i in range(1, 41)])
    )
    store(front, NAME, reply.to_wire())
    small = ask(front, query)
    assert small.flags & dns.flags.TC and not small.answer
    large = ask(front, dns.message.make_query(NAME, "A", use_edns=0, payload=4096))
    assert not large.flags & dns.flags.TC and len(large.answer[0]) == 40


async def test_udp_replies_never_exceed_our_size_whatever_the_client_takes(front: Frontend) -> None:
    reply = dns.message.make_response(dns.message.make_query(NAME, "A"))
    addresses = [f"192.0.2.{i}" for i in range(1, 101)]  # about 1,650 bytes
    reply.answer.append(dns.rrset.from_text_list(NAME, 300, "IN", "A", addresses))
    store(front, NAME, reply.to_wire())
    for _ in range(2):  # the slower path first, then the fast one
        wire = front.udp_handler(pytest.fail)(
            dns.message.make_query(NAME, "A", use_edns=0, payload=4096).to_wire(), CLIENT
        )
        assert wire is not None and len(wire) <= 1232
        assert dns.message.from_wire(wire).flags & dns.flags.TC


async def test_misses_read_with_hits_are_forwarded_once_the_hits_are_answered(front: Frontend) -> None:
    store(front, NAME, upstream_reply(NAME))
    sent: list[bytes] = []
    handler = front.udp_handler(lambda reply, _: sent.append(reply))
    assert handler(dns.message.make_query("miss.example.com.", "A").to_wire(), ("127.0.0.1", 1)) is None
    hit = handler(dns.message.make_query(NAME, "A").to_wire(), ("127.0.0.1", 1))
    assert hit is not None and sent == []  # the miss has not even been looked at yet
    await asyncio.sleep(0)  # the turn of the event loop that read them ends
    assert len(sent) == 1 and dns.message.from_wire(sent[0]).rcode() == dns.rcode.SERVFAIL  # no upstream


async def test_the_memo_takes_names_as_first_asked_and_stays_bounded(front: Frontend) -> None:
    memo: Memo[bytes, Slot] = Memo(8, batch=2)
    front._memo = memo
    names = [f"n{i}.example.com." for i in range(20)]
    for name in names:
        store(front, name, upstream_reply(name))
    handler = front.udp_handler(lambda *_: None)
    for name in names:
        assert handler(dns.message.make_query(name, "A").to_wire(), CLIENT) is not None
        assert len(memo) <= 8
    assert memo.evictions == 12
    # Later names are remembered; the first ones were forgotten a batch at a time, not all at once.
    assert len(memo) == 8 and dns.message.make_query(names[-1], "A").to_wire()[2:] in memo
    # Another spelling is answered (from the reader) but never remembered.
    for i in range(10):
        spelled = dns.message.make_query(names[-1].upper(), "A", id=i)
        reply = handler(spelled.to_wire(), CLIENT)
        assert reply is not None and dns.message.from_wire(reply).question[0].name.to_text().isupper()
        assert spelled.to_wire()[2:] not in memo
    # A replaced entry is not served from the memo: the new one is.
    store(front, names[-1], upstream_reply(names[-1], ttl=100))
    again = ask(front, dns.message.make_query(names[-1], "A"))
    assert again.answer[0].ttl == 100


async def test_a_cleared_cache_is_not_served_from_the_memo(front: Frontend) -> None:
    store(front, NAME, upstream_reply(NAME))
    query = dns.message.make_query(NAME, "A").to_wire()
    handler = front.udp_handler(lambda *_: None)
    assert handler(query, CLIENT) is not None and handler(query, CLIENT) is not None
    front._cache.clear()
    assert handler(query, CLIENT) is None  # a miss: the resolver takes it


def test_memo_rejects_nonsense_and_counts() -> None:
    with pytest.raises(ValueError):
        Memo(0)
    memo: Memo[int, int] = Memo(3, batch=10)
    for i in range(10):
        memo.put(i, i)
        memo.put(i, i)  # replacing a key evicts nothing
    assert len(memo) == 3 and list(memo._items) == [7, 8, 9] and memo.evictions == 7
    memo.discard(8)
    assert 8 not in memo and memo.get(9) == 9
    memo.clear()
    assert len(memo) == 0


def header(data: bytes) -> tuple[int, int, int, int, int, int]:
    fields: tuple[int, int, int, int, int, int] = struct.unpack_from("!HHHHHH", data)
    return fields


async def test_answers_that_never_reach_the_cache(front: Frontend) -> None:
    handler = front.udp_handler(lambda *_: None)
    query = dns.message.make_query(NAME, "A", id=77)
    # EDNS version 1: BADVERS (extended rcode 16), our OPT at version 0.
    badvers = dns.message.make_query(NAME, "A", use_edns=1, id=78)
    reply = dns.message.from_wire(handler(badvers.to_wire(), CLIENT) or b"")
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0
    # Not a query: NOTIMP, header only; two questions: FORMERR; a response: nothing.
    wire = bytearray(query.to_wire())
    wire[2] |= 0x10  # opcode 2 (STATUS)
    assert header(handler(bytes(wire), CLIENT) or b"")[1] & 0x0F == dns.rcode.NOTIMP
    wire = bytearray(query.to_wire())
    wire[5] = 2
    assert header(handler(bytes(wire), CLIENT) or b"") == (77, 0x8101, 0, 0, 0, 0)
    wire = bytearray(query.to_wire())
    wire[2] |= 0x80
    assert handler(bytes(wire), CLIENT) is None
    # Zone transfers and other classes: REFUSED with RA.
    for asked in (
        dns.message.make_query(NAME, "AXFR"),
        dns.message.make_query(NAME, "A", rdclass=dns.rdataclass.HS),
    ):
        reply = dns.message.from_wire(handler(asked.to_wire(), CLIENT) or b"")
        assert reply.rcode() == dns.rcode.REFUSED and reply.flags & dns.flags.RA
    # CHAOS statistics still answer.
    chaos = dns.message.make_query("hits.bind.", "TXT", rdclass=dns.rdataclass.CH)
    reply = dns.message.from_wire(bytes(handler(chaos.to_wire(), CLIENT) or b""))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
