"""The miss path: one upstream question per key however many clients ask, answers kept by the cache,
stale answers when every upstream fails, early refresh of popular entries, and ExternalName targets
resolved and appended.

kubedns answers an ExternalName service with a CNAME alone (the target is outside its zone); clients
expect the address too, so the target is asked through the same routes (and cache) and its records are
appended, following at most ``MAX_CHAIN`` links and never the same name twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

from kubedns_py.cache.forwarder import Forwarder, LocalOnly, NoAnswer, Overloaded
from kubedns_py.cache.responses import CacheKey, Entry, ResponseCache
from kubedns_py.dnswire.header import reply_rcode
from kubedns_py.dnswire.walk import CNAME, Walk, question_key, walk
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
limited = RateLimitedLog(log)

MAX_CHAIN = 8
PASS_THROUGH = 2**31 - 1  # lifetime of a reply served once and not kept: its TTLs stay as received
SERVFAIL, NXDOMAIN = RCODE.SERVFAIL, RCODE.NXDOMAIN
STALE_AFTER = 1.8  # RFC 8767's client-response timer: under the usual 2 s client timeouts


@dataclass(frozen=True, slots=True)
class Question:
    key: CacheKey
    name: str  # lower-case presentation form without the final dot, for routing
    wire: bytes  # the question section (name, type, class), name lower-cased

    @property
    def qtype(self) -> int:
        return self.key[1]


@dataclass(frozen=True, slots=True)
class Answer:
    entry: Entry | None
    rcode: int = 0  # when there is no entry: the rcode of a header-only reply
    stale: bool = False
    busy: bool = False  # refused at its route's share of --dns-forward-max: no upstream was asked


@dataclass
class ResolverCounters:
    deduplicated: int = 0
    stale: int = 0
    prefetches: int = 0


class Resolver:
    def __init__(self, cache: ResponseCache, forwarder: Forwarder) -> None:
        self.cache = cache
        self.forwarder = forwarder
        self.counters = ResolverCounters()
        self._inflight: dict[CacheKey, asyncio.Future[Answer]] = {}
        self._background: set[asyncio.Task[Answer]] = set()

    async def resolve(self, question: Question, chain: tuple[str, ...] = ()) -> Answer:
        pending = self._inflight.get(question.key)
        if pending is not None:
            self.counters.deduplicated += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[question.key] = future
        try:
            answer = await self._fetch_or_stale(question, chain)
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # retrieved: waiters get it too, and no "never retrieved" warning
            raise
        finally:
            self._inflight.pop(question.key, None)
        future.set_result(answer)
        return answer

    def prefetch(self, key: CacheKey, entry: Entry, question: Callable[[], Question]) -> None:
        """Refresh ``entry`` in the background (``Entry.wants_refresh`` said so), unless its question is
        upstream already. ``question`` makes the question to ask, only when it is asked."""
        if key in self._inflight:
            return
        entry.prefetching = True
        self.counters.prefetches += 1
        task = asyncio.create_task(self.resolve(question()))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fetch_or_stale(self, question: Question, chain: tuple[str, ...]) -> Answer:
        """The upstream's answer, or an expired one (RFC 8767): when upstreams fail, or when they have
        not answered within the client-response timer while an expired answer is at hand; the fetch
        then goes on in the background and refreshes the entry."""
        fetch = asyncio.ensure_future(self._fetch(question, chain))
        if self._stale(question) is not None:
            done, _ = await asyncio.wait({fetch}, timeout=STALE_AFTER)
            if not done:
                self._background.add(fetch)
                fetch.add_done_callback(self._background.discard)
                answer = self._stale_or(question, None)
                if answer is not None:
                    return answer
        answer = await fetch
        if answer.entry is None and answer.rcode == SERVFAIL and not answer.busy:
            return self._stale_or(question, answer) or answer
        return answer

    async def _fetch(self, question: Question, chain: tuple[str, ...]) -> Answer:
        key = question.key
        try:
            reply, walked = await self.forwarder.forward(question.name, question.wire, key[4], key[3])
        except LocalOnly:
            return Answer(None, NXDOMAIN)
        except Overloaded:
            return Answer(None, SERVFAIL, busy=True)  # not stale: a busy forwarder is not a dead upstream
        except NoAnswer as err:
            log.debug("%s: %s", question.name, err)
            return Answer(None, SERVFAIL)
        if reply_rcode(reply) == SERVFAIL and self._usable(question) is not None:
            return Answer(None, SERVFAIL)  # the answer held (fresh or expired) beats storing this one
        if question.qtype in (QTYPE.A, QTYPE.AAAA) and len(chain) < MAX_CHAIN:
            followed = await self._follow_cname(question, reply, walked, chain)
            if followed is None:  # the target could not be resolved: an answer without it is no answer
                return Answer(None, SERVFAIL)
            reply, walked = followed
        now = time.monotonic()
        entry = self.cache.store(key, reply, now)
        if entry is None:
            entry = Entry(reply, walked, PASS_THROUGH, now, 0.0)
        return Answer(entry)

    def _usable(self, question: Question) -> Entry | None:
        """The entry held for the question, fresh or expired within the stale window (not a SERVFAIL)."""
        entry = self.cache.get(question.key)
        if entry is not None and entry.stale_until > time.monotonic() and entry.rcode != SERVFAIL:
            return entry
        return None

    def _stale(self, question: Question) -> Entry | None:
        """The entry held for the question if it has expired but may still be served stale."""
        entry = self._usable(question)
        return entry if entry is not None and entry.expires <= time.monotonic() else None

    def _stale_or(self, question: Question, fallback: Answer | None) -> Answer | None:
        entry = self._stale(question)
        if entry is None:
            return fallback
        self.counters.stale += 1
        return Answer(entry, stale=True)

    async def _follow_cname(
        self, question: Question, reply: bytes, walked: Walk, chain: tuple[str, ...]
    ) -> tuple[bytes, Walk] | None:
        """The reply with its CNAME target's records appended (unchanged when there is nothing to
        follow); None when the target could not be resolved, or a reply could not be read (their
        records were walked, but a name inside their data may still be malformed)."""
        answers = [r for r in walked.records if r.section == 0]
        if not answers or answers[-1].rtype != CNAME or any(r.rtype == question.qtype for r in answers):
            return reply, walked
        try:
            record = DNSRecord.parse(reply)
            target = str(record.rr[-1].rdata.label).rstrip(".").lower()
            target_question = _question_for(target, question) if target else None
        except Exception as err:  # dnslib raises several types on malformed input (a pointer loop, ...)
            self._unreadable(question, err)
            return None
        if target_question is None or target in chain or target == question.name:
            limited.warning(
                "cname-loop", "CNAME loop at %s -> %s; answering with the chain so far", question.name, target
            )
            return reply, walked
        followed = await self._follow(target_question, (*chain, question.name))
        if followed.entry is None:
            return None
        try:
            target_reply = DNSRecord.parse(followed.entry.message(time.monotonic()))
            for rr in target_reply.rr:
                record.add_answer(rr)
            record.header.rcode = target_reply.header.rcode
            if not target_reply.rr:
                record.auth = target_reply.auth
            combined: bytes = record.pack()
            return combined, walk(combined)
        except Exception as err:
            self._unreadable(question, err)
            return None

    def _unreadable(self, question: Question, err: Exception) -> None:
        """A reply on the chain whose records were walked but whose data cannot be read: SERVFAIL."""
        self.forwarder.bad_replies += 1
        log.debug("%s: unreadable reply on its CNAME chain: %s", question.name, err)

    async def _follow(self, question: Question, chain: tuple[str, ...]) -> Answer:
        """A CNAME target: from the cache when fresh, else fetched by this chain itself. Never by joining
        another question in flight: two chains walking a CNAME loop from both ends would each wait for
        the other forever."""
        entry = self.cache.get(question.key)
        if entry is not None and entry.expires > time.monotonic():
            return Answer(entry)
        return await self._fetch(question, chain)

    def close(self) -> None:
        for task in self._background:
            task.cancel()


def _question_for(name: str, like: Question) -> Question:
    wire = question_key(bytes(DNSRecord.question(name, QTYPE[like.qtype]).pack()))
    key: CacheKey = (wire[:-4], like.key[1], like.key[2], like.key[3], like.key[4])
    return Question(key, name, wire)
