"""The miss path: one upstream question per key however many clients ask, answers kept by the cache,
stale answers when upstreams fail or are slow (RFC 8767), early refresh of popular entries, and
ExternalName targets resolved and appended. Everything here is callbacks: a question upstream is a
``Pending`` in one table, its clients are functions called once with the ``Answer``.

kubedns answers an ExternalName service with a CNAME alone (the target is outside its zone); clients
expect the address too, so the target is asked through the same routes (and cache) and its records are
appended, following at most ``MAX_CHAIN`` links and never the same name twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import monotonic
from typing import NamedTuple

from dnslib import DNSRecord

from kubedns_py.cache.forward.forwarder import Failure, Forwarder, Outcome
from kubedns_py.cache.forward.timers import Deadlines
from kubedns_py.cache.forward.upstream import Request
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.entry import Entry
from kubedns_py.dnswire import encode
from kubedns_py.dnswire.header import NXDOMAIN, SERVFAIL
from kubedns_py.dnswire.reader import presentation
from kubedns_py.dnswire.response import UpstreamReply, scan
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
limited = RateLimitedLog(log)

MAX_CHAIN = 8
STALE_AFTER = 1.8  # RFC 8767's client-response timer: under the usual 2 s client timeouts
A, AAAA = 1, 28


class UpstreamQuestion(NamedTuple):
    """What the cache asks upstream."""

    key: CacheKey
    wire: bytes  # the question section (name, type, class), name lower-cased
    own_route: bool = False  # never passed on to the default upstreams (serve's autopath records)

    @property
    def name(self) -> str:
        """The name in lower-case presentation form without the final dot (for logs and CNAME chains)."""
        return presentation(self.key.name)


class Answer(NamedTuple):
    entry: Entry | None  # the cached entry that answers
    passed: UpstreamReply | None = None  # or a reply that may not be kept, passed on as received
    rcode: int = 0  # with neither: the rcode of a reply without records
    stale: bool = False
    busy: bool = False  # refused at its route's share of --dns-forward-max: no upstream was asked


Waiter = Callable[[Answer], None]
Finished = Callable[[Answer], None]


class Pending:
    """A question upstream and the clients waiting for it."""

    __slots__ = ("question", "stale", "waiters")

    def __init__(self, question: UpstreamQuestion) -> None:
        self.question = question
        self.waiters: list[Waiter] = []
        self.stale: Answer | None = None  # set once the client-response timer served a stale answer


class ResolverCounters:
    __slots__ = ("deduplicated", "prefetches", "stale")

    def __init__(self) -> None:
        self.deduplicated = 0
        self.stale = 0
        self.prefetches = 0


class Resolver:
    def __init__(self, cache: ResponseCache, forwarder: Forwarder) -> None:
        self.cache = cache
        self.forwarder = forwarder
        self.counters = ResolverCounters()
        self.waiting = 0  # clients waiting for an upstream, duplicates included
        self._inflight: dict[CacheKey, Pending] = {}
        self._stale_timers: Deadlines[Pending] = Deadlines(STALE_AFTER, self._stale_due)
        self._idle: asyncio.Event | None = None

    def resolve(self, question: UpstreamQuestion, waiter: Waiter) -> None:
        """Call ``waiter`` once with the answer to ``question`` (possibly before this returns)."""
        self.waiting += 1
        pending = self._inflight.get(question.key)
        if pending is not None:
            self.counters.deduplicated += 1
            if pending.stale is not None:
                self.counters.stale += 1
                self._answer(waiter, pending.stale)
            else:
                pending.waiters.append(waiter)
            return
        self._start(question, waiter)

    def prefetch(self, key: CacheKey, entry: Entry, question: Callable[[], UpstreamQuestion]) -> None:
        """Refresh ``entry`` in the background (``Entry.wants_refresh`` said so), unless its question is
        upstream already. ``question`` makes the question to ask, only when it is asked."""
        if key in self._inflight:
            return
        entry.prefetching = True
        self.counters.prefetches += 1
        self._start(question(), None)

    def _start(self, question: UpstreamQuestion, waiter: Waiter | None) -> None:
        pending = self._inflight[question.key] = Pending(question)
        if waiter is not None:
            pending.waiters.append(waiter)
            if self._stale(question) is not None:
                self._stale_timers.add(pending)
        self._fetch(question, (), lambda answer: self._complete(pending, answer))

    def _complete(self, pending: Pending, answer: Answer) -> None:
        question = pending.question
        if self._inflight.get(question.key) is pending:
            del self._inflight[question.key]
        self._stale_timers.remove(pending)
        waiters, pending.waiters = pending.waiters, []
        if not waiters:
            return  # a prefetch, or every client was given a stale answer already
        if answer.entry is None and answer.passed is None and answer.rcode == SERVFAIL and not answer.busy:
            answer = self._stale_or(question, answer)
        for waiter in waiters:
            self._answer(waiter, answer)

    def _stale_due(self, pending: Pending) -> None:
        """The client-response timer ran out with an expired answer at hand: serve it now; the fetch
        goes on and refreshes the entry."""
        entry = self._stale(pending.question)
        if entry is None or not pending.waiters:
            return
        self.counters.stale += 1
        pending.stale = Answer(entry, stale=True)
        waiters, pending.waiters = pending.waiters, []
        for waiter in waiters:
            self._answer(waiter, pending.stale)

    def _answer(self, waiter: Waiter, answer: Answer) -> None:
        self.waiting -= 1
        try:
            waiter(answer)
        except Exception:  # a bug; the other waiters still get their answers
            limited.exception("waiter", "answering a client failed")
        if not self.waiting and self._idle is not None:
            self._idle.set()

    def _fetch(self, question: UpstreamQuestion, chain: tuple[str, ...], finished: Finished) -> None:
        key = question.key
        self.forwarder.forward(
            key.name,
            Request(question.wire, key.checking_disabled, key.dnssec_ok),
            lambda outcome: self._fetched(question, chain, outcome, finished),
            fallthrough=not question.own_route,
        )

    def _fetched(
        self, question: UpstreamQuestion, chain: tuple[str, ...], outcome: Outcome, finished: Finished
    ) -> None:
        try:
            if isinstance(outcome, Failure):
                finished(_FAILURES[outcome])
            elif outcome.rcode == SERVFAIL and self._usable(question) is not None:
                finished(Answer(None, rcode=SERVFAIL))  # the answer held (fresh or expired) beats this one
            elif (
                outcome.cname_at
                and question.key.qtype in (A, AAAA)
                and question.key.qtype not in outcome.answer_types
                and len(chain) < MAX_CHAIN
            ):
                self._follow_cname(question, outcome, chain, finished)
            else:
                finished(self._keep(question, outcome))
        except Exception:  # a bug, but whatever went wrong, the clients get an answer
            limited.exception("resolve", "resolving %s failed", question.name)
            finished(Answer(None, rcode=SERVFAIL))

    def _keep(self, question: UpstreamQuestion, reply: UpstreamReply) -> Answer:
        entry = self.cache.store(question.key, reply, monotonic())
        return Answer(entry) if entry is not None else Answer(None, passed=reply)

    def _usable(self, question: UpstreamQuestion) -> Entry | None:
        """The entry held for the question, fresh or expired within the stale window (not a SERVFAIL)."""
        entry = self.cache.get(question.key)
        if entry is not None and entry.stale_until > monotonic() and entry.rcode != SERVFAIL:
            return entry
        return None

    def _stale(self, question: UpstreamQuestion) -> Entry | None:
        """The entry held for the question if it has expired but may still be served stale."""
        entry = self._usable(question)
        return entry if entry is not None and entry.expires <= monotonic() else None

    def _stale_or(self, question: UpstreamQuestion, fallback: Answer) -> Answer:
        entry = self._stale(question)
        if entry is None:
            return fallback
        self.counters.stale += 1
        return Answer(entry, stale=True)

    def _follow_cname(
        self, question: UpstreamQuestion, reply: UpstreamReply, chain: tuple[str, ...], finished: Finished
    ) -> None:
        """``reply`` with its CNAME target's records appended; SERVFAIL when the target cannot be
        resolved or a reply on the chain cannot be read (its records were scanned, but a name inside
        their data may still be malformed)."""
        try:
            record = DNSRecord.parse(reply.wire)
            labels = record.rr[-1].rdata.label.label
            target_name = encode.from_labels(labels).lower()
            target = presentation(target_name)
            target_question = _question_for(target_name, question) if labels else None
        except Exception as err:  # dnslib raises several types on malformed input (a pointer loop, ...)
            finished(self._unreadable(question, err))
            return
        if target_question is None or target in chain or target == question.name:
            limited.warning(
                "cname-loop", "CNAME loop at %s -> %s; answering with the chain so far", question.name, target
            )
            finished(self._keep(question, reply))
            return

        def append(followed: Answer) -> None:
            finished(self._appended(question, record, followed))

        entry = self.cache.get(target_question.key)
        if entry is not None and entry.expires > monotonic():
            append(Answer(entry))
        else:
            # Fetched by this chain itself, never by joining another question in flight: two chains
            # walking a CNAME loop from both ends would each wait for the other forever.
            self._fetch(target_question, (*chain, question.name), append)

    def _appended(self, question: UpstreamQuestion, record: DNSRecord, followed: Answer) -> Answer:
        if followed.entry is not None:
            target_wire = followed.entry.message(monotonic())
        elif followed.passed is not None:
            target_wire = followed.passed.wire
        else:
            return Answer(None, rcode=SERVFAIL)  # an answer without the target's records is no answer
        try:
            target_reply = DNSRecord.parse(target_wire)
            for rr in target_reply.rr:
                record.add_answer(rr)
            record.header.rcode = target_reply.header.rcode
            if not target_reply.rr:
                record.auth = target_reply.auth
            combined = scan(bytes(record.pack()))
        except Exception as err:
            return self._unreadable(question, err)
        return self._keep(question, combined)

    def _unreadable(self, question: UpstreamQuestion, err: Exception) -> Answer:
        self.forwarder.unreadable_replies += 1
        log.debug("%s: unreadable reply on its CNAME chain: %s", question.name, err)
        return Answer(None, rcode=SERVFAIL)

    async def drained(self, within: float) -> None:
        """Return once no client waits for an upstream, or after ``within`` seconds."""
        if not self.waiting or within <= 0:
            return
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            pass
        finally:
            self._idle = None

    def close(self) -> None:
        self._stale_timers.close()


_FAILURES = {
    Failure.LOCAL_ONLY: Answer(None, rcode=NXDOMAIN),
    Failure.BUSY: Answer(
        None, rcode=SERVFAIL, busy=True
    ),  # not stale: a busy forwarder is not a dead upstream
    Failure.NO_ANSWER: Answer(None, rcode=SERVFAIL),
}


def _question_for(name: bytes, like: UpstreamQuestion) -> UpstreamQuestion:
    """``like``'s question (its type and class) for ``name``, a lower-cased wire name."""
    return UpstreamQuestion(like.key._replace(name=name), name + like.wire[-4:])
