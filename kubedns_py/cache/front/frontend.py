"""The per-query hot path of ``cache``.

Every query is read by ``dnswire.reader`` (no dnslib) and looked up in the cache's index under
(name lower-cased, type, class, DO, CD). A fresh entry answers on the spot, in the reading callback:
the query's ID, the entry's prebuilt header for the query's RD bit and EDNS, the question exactly as
asked (case included), the entry's records with their TTLs as of now, and our OPT when the query had
one. Nothing depends on having seen the same query bytes before (another ID, case or EDNS size costs
the same), and negative entries (NXDOMAIN, NODATA) take the same path as positive ones. These hits are
tallied on a counter shared by every entry with the same type, rcode and DO bit, which the
statistics read when scraped.

An entry's first hit after its TTLs have counted down a second takes the slower path: it renders the
TTLs, marks the entry recently used in the LRU, and starts a refresh when a popular entry is about to
expire. Questions that are not plain cached answers (those ``QueryPolicy`` answers itself, EDNS
versions other than 0, malformed queries, answers too big for the client) are answered on that path
too, and misses go to the ``Resolver`` with a callback that sends the reply when it is ready (no task
per miss). Clients the ACL refuses never reach the cache (``net.acl.ClientGuard``).

With ``--autopath``, a question that may be the first of a Pod's search (``X.<ns>.svc.<zone>``, A or
AAAA) goes to ``Autopath`` unless a positive answer is cached (which is what the search finds anyway);
its NXDOMAIN entries and serve's autopath records are never readied for the fast path, so no hit
bypasses that, and every other hit is as without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from time import monotonic

from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.front.chaos import Chaos
from kubedns_py.cache.front.policy import QueryPolicy
from kubedns_py.cache.resolve.autopath import Autopath
from kubedns_py.cache.resolve.resolver import Answer, Resolver, UpstreamQuestion, Waiter
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.entry import NO_TALLY, OPT_SIZE, OPTS, Entry, served_flags, splice_reply
from kubedns_py.dnswire import reader, splice
from kubedns_py.dnswire.header import (
    BADVERS,
    CD_BIT,
    MIN_UDP_PAYLOAD,
    RA_BIT,
    SERVFAIL,
    rcode_name,
    reply_rcode,
)
from kubedns_py.dnswire.reply import OUR_PAYLOAD, TCP_MAX
from kubedns_py.memo import Memo
from kubedns_py.net.acl import ClientAcl, ClientGuard
from kubedns_py.net.stats import DnsStats
from kubedns_py.net.tcp import Peer
from kubedns_py.net.udp import Address, DatagramHandler, Send
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

_new = tuple.__new__
MEMO_LIMIT = 50_000
# What the fast path falls back to: the slower path, and readying an entry it found.
Rest = Callable[[bytes, reader.Outcome, Address, Send, float], bytes | None]
Ready = Callable[[bytes, reader.Question, CacheKey, Entry, float], bool]


def cache_key(q: reader.Question) -> CacheKey:
    return _new(CacheKey, (q.key, q.qtype, q.qclass, q.dnssec_ok, q.flags & CD_BIT != 0))


def udp_limit(q: reader.Question) -> int:
    """The largest UDP reply for ``q``: the client's size or ours (DNS Flag Day 2020), the smaller."""
    return min(q.payload, OUR_PAYLOAD)


class Slot:
    """A query's bytes after the ID, remembered with the entry that answered it and the parts of the
    reply that depend on the query alone: the header after the ID with the question as asked, and
    our OPT."""

    __slots__ = ("entry", "head", "opt")

    def __init__(self, entry: Entry, head: bytes, opt: bytes) -> None:
        self.entry = entry
        self.head = head
        self.opt = opt


class FrontendCounters:
    """dnsmasq's hits and misses. Fast-path hits are counted on the shared tallies only."""

    def __init__(self, stats: DnsStats) -> None:
        self._stats = stats
        self.misses = 0
        self.other_hits = 0  # hits answered on the slower path

    @property
    def hits(self) -> int:
        return self.other_hits + self._stats.tallied_hits  # the cache tallies only hits


class Frontend:
    def __init__(
        self,
        cache: ResponseCache,
        resolver: Resolver,
        stats: DnsStats,
        chaos: Chaos,
        loops: LoopDetector,
        max_waiting: int = 2000,
        acl: ClientAcl | None = None,
        autopath_zone: str | None = None,
        host_search: tuple[str, ...] = (),
    ) -> None:
        self._cache = cache
        self._index_get = cache.index.get
        self._resolver = resolver
        self._stats = stats
        self._policy = QueryPolicy(stats, chaos, loops)
        self._guard = ClientGuard(acl, stats, RA_BIT)
        self._memo: Memo[bytes, Slot] = Memo(MEMO_LIMIT)
        # Misses waiting for an answer, duplicates included: --dns-forward-max bounds distinct upstream
        # questions, this bounds the clients queued behind them (a dead upstream and a busy name).
        self._max_waiting = max_waiting
        # UDP misses read in this turn of the event loop, forwarded once it ends: the hits read with
        # them are answered first, not after tens of microseconds per miss (a flood of misses would
        # otherwise queue every cached answer behind it).
        self._deferred: list[tuple[UpstreamQuestion, str | None, Waiter]] = []
        self.counters = FrontendCounters(stats)
        self._failures = RateLimitedLog(log)
        self.autopath = Autopath(autopath_zone, host_search, self._lookup) if autopath_zone else None

    def udp_handler(self, send: Send, pass_on: DatagramHandler | None = None) -> DatagramHandler:
        """The callback for one UDP listener's datagrams; ``send`` delivers replies that come later.
        A fresh cached answer is spliced right here, with everything it needs bound.

        With ``pass_on``, the callback runs on the listener's own thread (``net.udpthread``): it
        answers only entries already readied, changes nothing but the memo and the counts only it
        writes (``fast_hits``, the tallies), and passes every other datagram on, for the event loop
        to answer with ``loop_udp_handler``."""
        index_get, read = self._index_get, reader.read
        memo_get, memo_put = self._memo.get, self._memo.put
        opts = OPTS
        rest: Rest
        ready: Ready
        if pass_on is None:
            rest, ready = self._on_udp, self._ready
        else:
            rest, ready = _passing_on(pass_on), _not_here

        def on_datagram(data: bytes, addr: Address) -> bytes | None:
            now = monotonic()
            asked = data[2:]
            slot = memo_get(asked)
            if slot is not None and now < (entry := slot.entry).fast_until and entry.cached:
                head, opt = slot.head, slot.opt
            else:
                q = read(data)
                if type(q) is not reader.Question:
                    return rest(data, q, addr, send, now)
                key = _new(CacheKey, (q.key, q.qtype, q.qclass, q.dnssec_ok, q.flags & CD_BIT != 0))
                found = index_get(key)
                if found is None or (now >= found.fast_until and not ready(data, q, key, found, now)):
                    return rest(data, q, addr, send, now)
                entry = found
                if q.edns:
                    if entry.size + OPT_SIZE > q.payload or entry.size + OPT_SIZE > OUR_PAYLOAD:
                        return rest(data, q, addr, send, now)
                    head = entry.heads[data[2] & 1 | 2] + data[12 : q.end]
                    opt = opts[q.dnssec_ok]
                elif entry.size > MIN_UDP_PAYLOAD:
                    return rest(data, q, addr, send, now)
                else:
                    head = entry.heads[data[2] & 1] + data[12 : q.end]
                    opt = b""
                if data[12 : q.name_end] == q.key:  # as first asked (not a random-case spelling)
                    memo_put(asked, Slot(entry, head, opt))
            reply = data[:2] + head + entry.body_now + opt
            entry.fast_hits += 1  # the hits of the slower paths are counted in _hit
            entry.tally.count(monotonic() - now)
            return reply

        return self._guard.udp(on_datagram, pass_on)

    def loop_udp_handler(self, send: Send) -> DatagramHandler:
        """The event loop's callback for what ``udp_handler``'s listener thread passes on: the
        slower path (readying entries, misses, refusals, malformed queries), without the memo,
        which is the thread's."""

        def on_passed(data: bytes, addr: Address) -> bytes | None:
            now = monotonic()
            return self._on_udp(data, reader.read(data), addr, send, now)

        return self._guard.udp(on_passed)

    def _on_udp(
        self, data: bytes, outcome: reader.Outcome, addr: Address, send: Send, now: float
    ) -> bytes | None:
        if not isinstance(outcome, reader.Question):
            return self._not_a_question(data, outcome, "udp", now)
        q = outcome
        refused = self._policy.decide(data, q)
        if refused is not None:
            self._record("udp", q, reply_rcode(refused), monotonic() - now, refused, data)
            return refused
        key = cache_key(q)
        entry = self._hit(data, q, key, now)
        if entry is not None:
            reply = entry.reply(data, q.end, q.edns, q.dnssec_ok, udp_limit(q), now)
            self._record("udp", q, entry.rcode, monotonic() - now, reply, data)
            return reply
        remembered = self._remembered(key, addr)
        if remembered is not None:  # autopath gave this client this answer a moment ago
            reply = self._render(remembered, data, q, udp_limit(q))
            self._record("udp", q, reply_rcode(reply), monotonic() - now, reply, data)
            return reply
        deferred = self._deferred
        if self._resolver.waiting + len(deferred) >= self._max_waiting:
            self.counters.misses += 1
            failed = splice.empty_reply(data, q, SERVFAIL, RA_BIT, OUR_PAYLOAD)
            self._record("udp", q, SERVFAIL, monotonic() - now, failed, data)
            return failed
        if not deferred:
            asyncio.get_running_loop().call_soon(self._forward_deferred)
        answered = partial(self._answered, data, q, addr, send, now)
        deferred.append((self._question(data, q, key), addr[0] if addr else None, answered))
        return None

    def _forward_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for question, client, waiter in deferred:
            try:
                self._miss(question, client, waiter)
            except Exception:  # a bug; the other misses still go
                self._failures.exception("miss", "forwarding %s failed", question.name)

    def _answered(
        self, data: bytes, q: reader.Question, addr: Address, send: Send, start: float, answer: Answer
    ) -> None:
        """A forwarded UDP query's answer is ready: reply."""
        reply = self._render(answer, data, q, udp_limit(q))
        self._record("udp", q, reply_rcode(reply), monotonic() - start, reply, data)
        send(reply, addr)

    async def on_tcp(self, data: bytes, peer: Peer = None) -> bytes | None:
        if not self._guard.admits(peer):
            return self._guard.refuse(data, "tcp")
        now = monotonic()
        q = reader.read(data)
        if not isinstance(q, reader.Question):
            return self._not_a_question(data, q, "tcp", now)
        reply = self._policy.decide(data, q)
        if reply is None:
            key = cache_key(q)
            entry = self._hit(data, q, key, now)
            if entry is not None:
                reply = entry.reply(data, q.end, q.edns, q.dnssec_ok, TCP_MAX, now)
            else:
                answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
                self._miss(self._question(data, q, key), peer[0] if peer else None, _setter(answered))
                reply = self._render(await answered, data, q, TCP_MAX)
        self._record("tcp", q, reply_rcode(reply), monotonic() - now, reply, data)
        return reply

    def _miss(self, question: UpstreamQuestion, client: str | None, waiter: Waiter) -> None:
        """A question not answered from the cache: to autopath when it may be a search's first (which
        counts its own hits and misses), else upstream."""
        autopath = self.autopath
        if (
            autopath is not None
            and client is not None
            and autopath.applies(question.key.name, question.key.qtype)
        ):
            autopath.resolve(question, client, waiter)
            return
        self.counters.misses += 1
        self._resolver.resolve(question, waiter)

    def _remembered(self, key: CacheKey, addr: Address) -> Answer | None:
        autopath = self.autopath
        if autopath is None or not addr or not autopath.applies(key.name, key.qtype):
            return None
        return autopath.remembered(key, addr[0])

    def _lookup(self, question: UpstreamQuestion, waiter: Waiter) -> None:
        """Autopath's questions: a fresh entry, counted as a hit, or a miss to the resolver."""
        entry = self._index_get(question.key)
        if entry is not None and entry.expires > monotonic():
            entry.hits += 1
            self.counters.other_hits += 1
            self._cache.touch(question.key)
            waiter(Answer(entry))
            return
        self.counters.misses += 1
        self._resolver.resolve(question, waiter)

    def _hit(self, data: bytes, q: reader.Question, key: CacheKey, now: float) -> Entry | None:
        """The fresh cache entry for ``key``, counted; None on a miss."""
        entry = self._index_get(key)
        if entry is None or (now >= entry.fast_until and not self._ready(data, q, key, entry, now)):
            return None
        entry.hits += 1
        self.counters.other_hits += 1
        return entry

    def _ready(self, data: bytes, q: reader.Question, key: CacheKey, entry: Entry, now: float) -> bool:
        """Ready a found entry for the fast path when the TTLs it shows are due to count down: render
        them, mark it recently used, refresh it early if it is popular and about to expire. False
        when it has expired (the miss path then decides between stale and fresh), and for the
        answers autopath must see first."""
        if entry.expires <= now or (self.autopath is not None and self.autopath.diverts(key, entry.rcode)):
            return False
        if entry.wants_refresh(now):
            self._resolver.prefetch(key, entry, lambda: self._question(data, q, key))
        self._cache.touch(key)
        if entry.tally is NO_TALLY:
            # Chosen once per entry, with the sizes of the query that first found it fresh: later hits
            # differ only by our OPT record (present or not) and by the EDNS options their queries carry.
            size = entry.size + (OPT_SIZE if q.edns else 0)
            entry.tally = self._stats.tally("udp", q.qtype, entry.rcode, size, len(data), q.dnssec_ok)
        entry.ready(now)
        return True

    def _not_a_question(
        self, data: bytes, outcome: reader.Drop | reader.Rejected | reader.BadVersion, proto: str, now: float
    ) -> bytes | None:
        """Dropped (None), or answered at once: FORMERR/NOTIMP header only, BADVERS with our OPT."""
        self._stats.malformed(outcome.reason)
        if isinstance(outcome, reader.BadVersion):
            reply = splice.empty_reply(data, outcome.question, BADVERS, RA_BIT, OUR_PAYLOAD)
        elif isinstance(outcome, reader.Rejected):
            reply = splice.header_only(data, outcome.rcode)
        else:
            return None
        rcode, seconds = rcode_name(reply_rcode(reply)), monotonic() - now
        dnssec_ok = reader.asked_dnssec_ok(outcome)
        self._stats.record(proto, "other", rcode, seconds, len(reply), len(data), dnssec_ok)
        return reply

    def _record(
        self, proto: str, q: reader.Question, rcode: int, seconds: float, reply: bytes, data: bytes
    ) -> None:
        """One answer not served by the fast path (those count on their entry's tally)."""
        tally = self._stats.tally(proto, q.qtype, rcode, len(reply), len(data), q.dnssec_ok, hit=False)
        tally.count(seconds)

    @staticmethod
    def _question(data: bytes, q: reader.Question, key: CacheKey) -> UpstreamQuestion:
        """What the resolver asks: the name for routing, the question section lower-cased."""
        return UpstreamQuestion(key, q.key + data[q.name_end : q.end])

    @staticmethod
    def _render(answer: Answer, data: bytes, q: reader.Question, limit: int) -> bytes:
        """The client's reply from the resolver's answer."""
        if answer.entry is not None:
            return answer.entry.reply(data, q.end, q.edns, q.dnssec_ok, limit, monotonic(), answer.stale)
        passed = answer.passed
        if passed is not None:
            flags = served_flags(passed.flags, truncated=True)
            return splice_reply(data, q.end, q.edns, q.dnssec_ok, limit, flags, passed.counts, passed.body)
        return splice.empty_reply(data, q, answer.rcode, RA_BIT, OUR_PAYLOAD)

    async def close(self, finish_within: float = 0.0) -> None:
        """Answer the misses in flight, waiting at most ``finish_within`` seconds."""
        await self._resolver.drained(finish_within)


def _passing_on(pass_on: DatagramHandler) -> Rest:
    """The fast path's way out on a listener's thread: the datagram goes to the event loop."""

    def pass_datagram_on(data: bytes, outcome: reader.Outcome, addr: Address, send: Send, now: float) -> None:
        pass_on(data, addr)

    return pass_datagram_on


def _not_here(data: bytes, q: reader.Question, key: CacheKey, entry: Entry, now: float) -> bool:
    """Readying an entry changes it, which only the event loop may: on a listener's thread, never."""
    return False


def _setter(future: asyncio.Future[Answer]) -> Callable[[Answer], None]:
    """Sets ``future`` unless its client went away first (the future was cancelled)."""

    def set_unless_done(answer: Answer) -> None:
        if not future.done():
            future.set_result(answer)

    return set_unless_done
