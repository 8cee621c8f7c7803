"""The cache's miss path, ``Resolver``, against a fake forwarder the test answers by hand: one upstream
question per key however many ask, failures turned into answers, what is stored and what is only
passed on, serve-stale (RFC 8767) on failure and on the client-response timer, prefetch, the CNAME
chase of ExternalName answers, and the waiting count that ``drained`` watches. Time is a fake clock
the test moves; the client-response timer is expired by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from kubedns_py.cache.forward import timers as timers_module
from kubedns_py.cache.forward.forwarder import Done, Failure, Forwarder
from kubedns_py.cache.forward.upstream import Request
from kubedns_py.cache.resolve import resolver as resolver_module
from kubedns_py.cache.resolve.resolver import MAX_CHAIN, STALE_AFTER, Answer, Resolver, UpstreamQuestion
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.entry import Entry
from kubedns_py.cache.store.rules import CacheRules
from kubedns_py.dnswire.header import HEADER_SIZE, NXDOMAIN, SERVFAIL
from kubedns_py.dnswire.reader import presentation
from kubedns_py.dnswire.response import scan
from tests.support.junk import EXAMPLE, header, pointer, record
from tests.support.replies import question_wire, reply, soa

NAME = "www.example.com."
A1 = f"{NAME} 10 IN A 192.0.2.1"
FRESH = f"{NAME} 300 IN A 192.0.2.2"
A, AAAA, MX = 1, 28, 15


class Clock:
    """``monotonic`` for the resolver and its timers, moved by the test."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Forwarded:
    """One question handed to the fake forwarder, answered when the test says so."""

    name: str
    request: Request
    done: Done
    fallthrough: bool = True

    def answer(self, wire: bytes) -> None:
        self.done(scan(wire))

    def fail(self, failure: Failure) -> None:
        self.done(failure)


@dataclass
class FakeForwarder:
    calls: list[Forwarded] = field(default_factory=list)
    unreadable_replies: int = 0

    def forward(self, name: bytes, request: Request, done: Done, fallthrough: bool = True) -> None:
        self.calls.append(Forwarded(presentation(name), request, done, fallthrough))


@dataclass
class Waiter:
    """A client: the answers it was given (one, if all is well)."""

    answers: list[Answer] = field(default_factory=list)

    def __call__(self, answer: Answer) -> None:
        self.answers.append(answer)

    @property
    def answer(self) -> Answer:
        assert len(self.answers) == 1, self.answers
        return self.answers[0]


@dataclass
class World:
    clock: Clock
    cache: ResponseCache
    forwarder: FakeForwarder
    resolver: Resolver

    def store(self, name: str, wire: bytes, qtype: int = A) -> Entry:
        entry = self.cache.store(question(name, qtype).key, scan(wire), self.clock())
        assert entry is not None
        return entry

    def resolve(self, name: str = NAME, qtype: int = A) -> Waiter:
        waiter = Waiter()
        self.resolver.resolve(question(name, qtype), waiter)
        return waiter


def question(
    name: str, qtype: int = A, dnssec_ok: bool = False, checking_disabled: bool = False
) -> UpstreamQuestion:
    wire = question_wire(name, qtype)
    key = CacheKey(wire[:-4], qtype, 1, dnssec_ok, checking_disabled)
    return UpstreamQuestion(key, wire)


def records(entry: Entry, now: float) -> list[tuple[str, str, str, int]]:
    """The answer section of what ``entry`` serves: (owner, type, data, TTL) each."""
    message = dns.message.from_wire(entry.message(now))
    return [
        (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), str(rdata), rrset.ttl)
        for rrset in message.answer
        for rdata in rrset
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(resolver_module, "monotonic", clock)
    monkeypatch.setattr(timers_module, "monotonic", clock)
    return clock


def make_world(clock: Clock, rules: CacheRules) -> World:
    cache = ResponseCache(100, rules)
    forwarder = FakeForwarder()
    return World(clock, cache, forwarder, Resolver(cache, cast(Forwarder, forwarder)))


@pytest.fixture
def world(clock: Clock) -> Iterator[World]:
    world = make_world(clock, CacheRules())
    yield world
    world.resolver.close()
    assert world.resolver.waiting == 0  # every client got its answer


async def test_the_same_question_asked_twice_goes_upstream_once(world: World) -> None:
    first, second = world.resolve(), world.resolve(NAME.upper())
    assert world.resolver.counters.deduplicated == 1 and world.resolver.waiting == 2
    [call] = world.forwarder.calls
    assert (call.name, call.request) == ("www.example.com", Request(question_wire(NAME), False, False))
    call.answer(reply(NAME, answer=[FRESH]))
    entry = world.cache.get(question(NAME).key)
    assert entry is not None and first.answer == second.answer == Answer(entry)
    assert world.resolver.waiting == 0
    # Answered, the question is no longer upstream: the next one is asked again.
    third = world.resolve()
    assert len(world.forwarder.calls) == 2 and world.resolver.counters.deduplicated == 1
    world.forwarder.calls[1].answer(reply(NAME, answer=[FRESH]))
    assert third.answer.entry is not None and len(first.answers) == len(second.answers) == 1


async def test_the_dnssec_and_cd_bits_make_another_question(world: World) -> None:
    plain, with_do = Waiter(), Waiter()
    world.resolver.resolve(question(NAME), plain)
    world.resolver.resolve(question(NAME, dnssec_ok=True, checking_disabled=True), with_do)
    assert world.resolver.counters.deduplicated == 0
    assert [(c.request.dnssec_ok, c.request.checking_disabled) for c in world.forwarder.calls] == [
        (False, False),
        (True, True),
    ]
    for call in world.forwarder.calls:
        call.fail(Failure.NO_ANSWER)


async def test_a_failing_waiter_does_not_keep_the_others_from_their_answer(world: World) -> None:
    def broken(answer: Answer) -> None:
        raise RuntimeError("a bug in a client's callback")

    world.resolver.resolve(question(NAME), broken)
    other = world.resolve()
    world.forwarder.calls[0].answer(reply(NAME, answer=[FRESH]))
    assert other.answer.entry is not None and world.resolver.waiting == 0


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure.LOCAL_ONLY, Answer(None, rcode=NXDOMAIN)),
        (Failure.BUSY, Answer(None, rcode=SERVFAIL, busy=True)),
        (Failure.NO_ANSWER, Answer(None, rcode=SERVFAIL)),
    ],
)
async def test_a_forwarding_failure_is_answered(world: World, failure: Failure, expected: Answer) -> None:
    waiter = world.resolve()
    world.forwarder.calls[0].fail(failure)
    assert waiter.answer == expected and len(world.cache) == 0


async def test_a_cacheable_reply_is_stored_and_answered_from_its_entry(world: World) -> None:
    waiter = world.resolve()
    world.forwarder.calls[0].answer(reply(NAME, rcode=NXDOMAIN, authority=[soa("example.com.", 600, 60)]))
    entry = world.cache.get(question(NAME).key)
    assert entry is not None and waiter.answer == Answer(entry)
    assert entry.rcode == NXDOMAIN and entry.expires == world.clock.now + 60


@pytest.mark.parametrize(
    ("rules", "wire"),
    [
        pytest.param(CacheRules(), reply(NAME), id="NODATA without SOA"),
        pytest.param(CacheRules(), reply(NAME, rcode=NXDOMAIN), id="NXDOMAIN without SOA"),
        pytest.param(
            CacheRules(negative=False),
            reply(NAME, rcode=NXDOMAIN, authority=[soa("example.com.", 600, 60)]),
            id="--no-negcache",
        ),
        pytest.param(CacheRules(), reply(NAME, rcode=dns.rcode.REFUSED), id="REFUSED"),
        pytest.param(CacheRules(), reply(NAME, answer=[f"{NAME} 0 IN A 192.0.2.1"]), id="TTL 0"),
        pytest.param(CacheRules(), reply(NAME, answer=[FRESH], flags=0x0200), id="truncated"),
    ],
)
async def test_a_reply_that_may_not_be_kept_is_passed_on_unstored(
    clock: Clock, rules: CacheRules, wire: bytes
) -> None:
    world = make_world(clock, rules)
    waiter = world.resolve()
    world.forwarder.calls[0].answer(wire)
    assert waiter.answer.entry is None and waiter.answer.passed is not None
    assert waiter.answer.passed.wire == wire
    assert world.cache.get(question(NAME).key) is None and len(world.cache) == 0
    world.resolver.close()


async def test_servfail_does_not_replace_an_entry_held(world: World) -> None:
    held = world.store(NAME, reply(NAME, answer=[FRESH]))
    waiter = world.resolve()
    world.forwarder.calls[0].answer(reply(NAME, rcode=SERVFAIL))
    assert waiter.answer == Answer(None, rcode=SERVFAIL)  # fresh: not served stale either
    assert world.cache.get(question(NAME).key) is held and world.resolver.counters.stale == 0


async def test_servfail_without_an_entry_is_kept_briefly(world: World) -> None:
    waiter = world.resolve()
    world.forwarder.calls[0].answer(reply(NAME, rcode=SERVFAIL))
    entry = waiter.answer.entry
    assert entry is not None and entry.rcode == SERVFAIL and entry.expires == world.clock.now + 5
    assert world.cache.get(question(NAME).key) is entry


def fail_with_servfail(call: Forwarded) -> None:
    call.answer(reply(NAME, rcode=SERVFAIL))


def fail_with_no_answer(call: Forwarded) -> None:
    call.fail(Failure.NO_ANSWER)


@pytest.mark.parametrize("fail", [fail_with_servfail, fail_with_no_answer])
async def test_an_expired_entry_is_served_stale_when_the_fetch_fails(
    world: World, fail: Callable[[Forwarded], None]
) -> None:
    held = world.store(NAME, reply(NAME, answer=[A1]))
    world.clock.advance(20)
    waiter = world.resolve()
    fail(world.forwarder.calls[0])
    assert waiter.answer == Answer(held, stale=True) and world.resolver.counters.stale == 1
    assert world.cache.get(question(NAME).key) is held


async def test_a_busy_forwarder_is_not_a_reason_to_serve_stale(world: World) -> None:
    world.store(NAME, reply(NAME, answer=[A1]))
    world.clock.advance(20)
    waiter = world.resolve()
    world.forwarder.calls[0].fail(Failure.BUSY)
    assert waiter.answer == Answer(None, rcode=SERVFAIL, busy=True) and world.resolver.counters.stale == 0


async def test_an_entry_past_its_stale_window_is_not_served(world: World) -> None:
    world.store(NAME, reply(NAME, answer=[A1]))
    world.clock.advance(10 + CacheRules().stale_ttl + 1)
    waiter = world.resolve()
    world.forwarder.calls[0].fail(Failure.NO_ANSWER)
    assert waiter.answer == Answer(None, rcode=SERVFAIL) and world.resolver.counters.stale == 0


async def test_a_slow_fetch_is_answered_stale_when_the_client_response_timer_runs_out(world: World) -> None:
    held = world.store(NAME, reply(NAME, answer=[A1]))
    world.clock.advance(20)
    first = world.resolve()
    timers = world.resolver._stale_timers
    assert len(timers) == 1
    world.clock.advance(STALE_AFTER - 0.1)
    timers.expire_due(world.clock())
    assert first.answers == [] and world.resolver.waiting == 1
    world.clock.advance(0.1 + 1e-6)  # past the deadline whatever the rounding of the sums
    timers.expire_due(world.clock())
    assert first.answer == Answer(held, stale=True) and world.resolver.counters.stale == 1
    assert world.resolver.waiting == 0
    # A client asking while the fetch is still out gets the stale answer at once.
    joiner = world.resolve()
    assert joiner.answer == Answer(held, stale=True)
    assert world.resolver.counters.stale == 2 and world.resolver.counters.deduplicated == 1
    assert len(world.forwarder.calls) == 1
    # The late reply refreshes the entry; nobody is answered twice.
    world.forwarder.calls[0].answer(reply(NAME, answer=[FRESH]))
    refreshed = world.cache.get(question(NAME).key)
    assert refreshed is not None and refreshed is not held
    assert refreshed.expires == world.clock.now + 300
    assert len(first.answers) == len(joiner.answers) == 1 and len(timers) == 0
    # And the question is no longer upstream.
    later = world.resolve()
    assert len(world.forwarder.calls) == 2 and later.answers == []
    world.forwarder.calls[1].answer(reply(NAME, answer=[FRESH]))


async def test_a_fetch_answering_in_time_stops_the_client_response_timer(world: World) -> None:
    world.store(NAME, reply(NAME, answer=[A1]))
    world.clock.advance(20)
    waiter = world.resolve()
    world.forwarder.calls[0].answer(reply(NAME, answer=[FRESH]))
    assert waiter.answer.entry is not None and not waiter.answer.stale
    assert len(world.resolver._stale_timers) == 0
    world.clock.advance(STALE_AFTER)
    world.resolver._stale_timers.expire_due(world.clock())
    assert len(waiter.answers) == 1 and world.resolver.counters.stale == 0


async def test_no_client_response_timer_without_a_stale_entry(world: World) -> None:
    world.store(NAME, reply(NAME, answer=[FRESH]))  # fresh: nothing to serve stale
    fresh = world.resolve()
    nothing = world.resolve("nothing.example.com.")
    assert len(world.resolver._stale_timers) == 0
    world.forwarder.calls[0].fail(Failure.NO_ANSWER)
    world.forwarder.calls[1].fail(Failure.NO_ANSWER)
    assert fresh.answer.rcode == nothing.answer.rcode == SERVFAIL


async def test_a_prefetch_refreshes_the_entry_without_a_waiter(world: World) -> None:
    held = world.store(NAME, reply(NAME, answer=[FRESH]))
    world.resolver.prefetch(question(NAME).key, held, lambda: question(NAME))
    assert held.prefetching and world.resolver.counters.prefetches == 1
    assert world.resolver.waiting == 0 and len(world.forwarder.calls) == 1
    # A client asking meanwhile joins the prefetch.
    joiner = world.resolve()
    assert len(world.forwarder.calls) == 1 and world.resolver.counters.deduplicated == 1
    world.clock.advance(100)
    world.forwarder.calls[0].answer(reply(NAME, answer=[FRESH]))
    refreshed = world.cache.get(question(NAME).key)
    assert refreshed is not None and refreshed is not held and refreshed.expires == world.clock.now + 300
    assert joiner.answer == Answer(refreshed)


async def test_no_prefetch_while_the_question_is_upstream(world: World) -> None:
    held = world.store(NAME, reply(NAME, answer=[FRESH]))
    waiter = world.resolve()

    def not_asked() -> UpstreamQuestion:
        raise AssertionError("the question of a skipped prefetch is not made")

    world.resolver.prefetch(question(NAME).key, held, not_asked)
    assert not held.prefetching and world.resolver.counters.prefetches == 0
    assert len(world.forwarder.calls) == 1
    world.forwarder.calls[0].answer(reply(NAME, answer=[FRESH]))
    assert waiter.answer.entry is not None


SVC = "svc.example.com."
TARGET = "web.example.net."


@pytest.mark.parametrize(("qtype", "data"), [(A, "192.0.2.7"), (AAAA, "2001:db8::7")])
async def test_a_cname_alone_is_chased_and_the_target_records_appended(
    world: World, qtype: int, data: str
) -> None:
    rdtype = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
    waiter = world.resolve(SVC, qtype)
    world.forwarder.calls[0].answer(reply(SVC, qtype, answer=[f"{SVC} 60 IN CNAME {TARGET.upper()}"]))
    assert waiter.answers == [] and len(world.forwarder.calls) == 2
    chased = world.forwarder.calls[1]
    assert (chased.name, chased.request.question) == ("web.example.net", question_wire(TARGET, qtype))
    chased.answer(reply(TARGET, qtype, answer=[f"{TARGET} 30 IN {rdtype} {data}"]))
    entry = waiter.answer.entry
    assert entry is not None and world.cache.get(question(SVC, qtype).key) is entry
    assert records(entry, world.clock()) == [
        (SVC, "CNAME", TARGET.upper(), 30),  # as the upstream spelled it
        (TARGET, rdtype, data, 30),
    ]
    assert entry.lifetime == 30  # the smallest TTL on the chain
    assert world.cache.get(question(TARGET, qtype).key) is not None  # the target was kept too


async def test_a_cname_target_fresh_in_the_cache_is_not_asked_again(world: World) -> None:
    world.store(TARGET, reply(TARGET, answer=[f"{TARGET} 300 IN A 192.0.2.7"]))
    world.clock.advance(100)
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 600 IN CNAME {TARGET}"]))
    assert len(world.forwarder.calls) == 1
    entry = waiter.answer.entry
    assert entry is not None
    assert records(entry, world.clock()) == [(SVC, "CNAME", TARGET, 200), (TARGET, "A", "192.0.2.7", 200)]


async def test_an_expired_cname_target_is_asked_again(world: World) -> None:
    world.store(TARGET, reply(TARGET, answer=[f"{TARGET} 10 IN A 192.0.2.7"]))
    world.clock.advance(20)
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 600 IN CNAME {TARGET}"]))
    assert len(world.forwarder.calls) == 2
    world.forwarder.calls[1].answer(reply(TARGET, answer=[f"{TARGET} 40 IN A 192.0.2.8"]))
    entry = waiter.answer.entry
    assert entry is not None and records(entry, world.clock())[-1] == (TARGET, "A", "192.0.2.8", 40)


async def test_other_types_are_not_chased(world: World) -> None:
    waiter = world.resolve(SVC, MX)
    world.forwarder.calls[0].answer(reply(SVC, "MX", answer=[f"{SVC} 60 IN CNAME {TARGET}"]))
    entry = waiter.answer.entry
    assert len(world.forwarder.calls) == 1 and entry is not None
    assert records(entry, world.clock()) == [(SVC, "CNAME", TARGET, 60)]


async def test_a_cname_to_itself_is_answered_with_the_chain_so_far(world: World) -> None:
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 60 IN CNAME {SVC}"]))
    entry = waiter.answer.entry
    assert len(world.forwarder.calls) == 1 and entry is not None
    assert records(entry, world.clock()) == [(SVC, "CNAME", SVC, 60)]


async def test_a_cname_loop_is_answered_with_the_chain_so_far(world: World) -> None:
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 60 IN CNAME {TARGET}"]))
    world.forwarder.calls[1].answer(reply(TARGET, answer=[f"{TARGET} 60 IN CNAME {SVC}"]))
    entry = waiter.answer.entry
    assert len(world.forwarder.calls) == 2 and entry is not None
    assert records(entry, world.clock()) == [(SVC, "CNAME", TARGET, 60), (TARGET, "CNAME", SVC, 60)]


async def test_a_cname_chain_is_followed_at_most_max_chain_links(world: World) -> None:
    names = [f"n{i}.example.com." for i in range(MAX_CHAIN + 3)]
    waiter = world.resolve(names[0])
    for i, call in enumerate(world.forwarder.calls):  # grows as the chain is followed
        assert call.name == names[i].rstrip(".")
        call.answer(reply(names[i], answer=[f"{names[i]} 60 IN CNAME {names[i + 1]}"]))
    assert len(world.forwarder.calls) == MAX_CHAIN + 1
    entry = waiter.answer.entry
    assert entry is not None and len(records(entry, world.clock())) == MAX_CHAIN + 1


async def test_an_unresolvable_cname_target_is_servfail(world: World) -> None:
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 60 IN CNAME {TARGET}"]))
    world.forwarder.calls[1].fail(Failure.NO_ANSWER)
    assert waiter.answer == Answer(None, rcode=SERVFAIL)
    assert world.cache.get(question(SVC).key) is None


async def test_a_cname_target_that_does_not_exist_is_nxdomain_with_the_cname(world: World) -> None:
    waiter = world.resolve(SVC)
    world.forwarder.calls[0].answer(reply(SVC, answer=[f"{SVC} 60 IN CNAME {TARGET}"]))
    world.forwarder.calls[1].answer(reply(TARGET, rcode=NXDOMAIN, authority=[soa("example.net.", 900, 45)]))
    entry = waiter.answer.entry
    assert entry is not None and entry.rcode == NXDOMAIN and entry.lifetime == 45
    message = dns.message.from_wire(entry.message(world.clock()))
    assert [rrset.rdtype for rrset in message.answer] == [dns.rdatatype.CNAME]
    assert [rrset.rdtype for rrset in message.authority] == [dns.rdatatype.SOA]


async def test_an_unreadable_cname_is_servfail_and_counted(world: World) -> None:
    question_section = EXAMPLE + b"\0\1\0\1"
    rdata_at = HEADER_SIZE + len(question_section) + 2 + 10
    looping = record(pointer(HEADER_SIZE), rtype=5, rdata=pointer(rdata_at))  # a CNAME pointing at itself
    wire = header(0x8180, an=1) + question_section + looping
    assert scan(wire).cname_at == rdata_at  # read fine, but its target is no name
    waiter = world.resolve()
    world.forwarder.calls[0].answer(wire)
    assert waiter.answer == Answer(None, rcode=SERVFAIL)
    assert world.forwarder.unreadable_replies == 1 and len(world.forwarder.calls) == 1


async def test_drained_returns_at_once_when_no_client_waits(world: World) -> None:
    async with asyncio.timeout(1):
        await world.resolver.drained(3600)
    assert world.resolver._idle is None


async def test_drained_returns_when_the_last_waiter_is_answered(world: World) -> None:
    first, second = world.resolve(), world.resolve("other.example.com.")
    drained = asyncio.create_task(world.resolver.drained(3600))
    await asyncio.sleep(0)  # one turn: the task starts waiting
    assert not drained.done() and world.resolver._idle is not None and world.resolver.waiting == 2
    world.forwarder.calls[0].fail(Failure.NO_ANSWER)
    await asyncio.sleep(0)
    assert not drained.done() and world.resolver.waiting == 1
    world.forwarder.calls[1].fail(Failure.NO_ANSWER)
    async with asyncio.timeout(1):
        await drained
    assert first.answer.rcode == second.answer.rcode == SERVFAIL and world.resolver._idle is None


async def test_drained_with_no_time_left_returns_at_once(world: World) -> None:
    waiter = world.resolve()
    async with asyncio.timeout(1):
        await world.resolver.drained(0)
    assert world.resolver.waiting == 1
    world.forwarder.calls[0].fail(Failure.NO_ANSWER)
    assert waiter.answer.rcode == SERVFAIL and world.resolver.waiting == 0
