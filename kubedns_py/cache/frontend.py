"""The per-query hot path of ``cache``.

A UDP reply built from a cache entry is remembered under the query's bytes after its ID for the rest
of that second (its TTLs are whole seconds), while the entry is still the one cached and unexpired: the
same question again costs one dictionary lookup, and is tallied on the remembered reply (handed to
the statistics in bulk). Otherwise, what the query's bytes say (cache key,
where the question ends, EDNS) is also remembered under ``query[2:]``, so a repeated question costs the
parse lookup and the cache lookup. A fresh entry is answered on the spot from the reading callback;
anything else becomes a task on the miss path (``Resolver``) and the reply is sent when it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic, perf_counter

from dnslib import CLASS, QTYPE, RCODE

from kubedns_py.cache.chaos import Chaos
from kubedns_py.cache.loopdetect import LoopDetector
from kubedns_py.cache.resolver import PREFETCH_FRACTION, Answer, Question, Resolver
from kubedns_py.cache.responses import Entry, ResponseCache
from kubedns_py.dnswire.query import QR_BIT, RA_BIT, RD_BIT, read_query
from kubedns_py.dnswire.reply import TCP_MAX, badvers_reply, build_reply, raw_opt
from kubedns_py.dnswire.walk import HEADER_SIZE, question_key
from kubedns_py.net.stats import FAST, DnsStats, Tally, qtype_label, rcode_label
from kubedns_py.net.udp import Address, DatagramHandler

log = logging.getLogger(__name__)

# Memos are keyed by whole queries, so clients that randomise the case of names (or send junk) could grow
# them without bound: each is emptied when full. Only small replies are remembered.
Send = Callable[[bytes, Address], None]
PARSED_LIMIT = 20_000
RECENT_LIMIT = 10_000
RECENT_MAX_REPLY = 512
SERVFAIL, REFUSED = RCODE.SERVFAIL, RCODE.REFUSED


@dataclass(frozen=True, slots=True)
class Parsed:
    question: Question
    question_end: int
    edns: bool
    payload: int
    dnssec_ok: bool
    qtype: str  # metrics label


def header_only(query: bytes, question_end: int, rcode: int, edns: bool) -> bytes:
    """A reply with the query's ID, RD bit and question, an rcode and nothing else (our OPT if asked)."""
    flags = QR_BIT | RA_BIT | (struct.unpack_from("!H", query, 2)[0] & RD_BIT) | rcode
    opt = raw_opt() if edns else b""
    return (
        query[:2]
        + struct.pack("!HHHHH", flags, 1, 0, 0, 1 if edns else 0)
        + query[HEADER_SIZE:question_end]
        + opt
    )


class Remembered:
    """A reply made from a cache entry, good until ``until``; repeats are tallied on it."""

    __slots__ = ("entry", "hits", "qtype", "rcode", "seconds", "tail", "until")

    def __init__(self, entry: Entry, until: float, tail: bytes, qtype: str, rcode: str) -> None:
        self.entry = entry
        self.until = until
        self.tail = tail  # the reply without its ID
        self.qtype = qtype
        self.rcode = rcode
        self.hits = 0
        self.seconds = 0.0

    def tally(self) -> Tally:
        return ("udp", self.qtype, self.rcode, self.hits, self.seconds)


@dataclass
class FrontendCounters:
    hits: int = 0
    misses: int = 0


class Frontend:
    def __init__(
        self,
        cache: ResponseCache,
        resolver: Resolver,
        stats: DnsStats,
        chaos: Chaos,
        loops: LoopDetector,
        max_waiting: int = 2000,
    ) -> None:
        self._cache = cache
        self._resolver = resolver
        self._stats = stats
        self._chaos = chaos
        self._loops = loops
        self._parsed: dict[bytes, Parsed] = {}
        self._recent: dict[bytes, Remembered] = {}
        self._recent_get = self._recent.get
        stats.watch(self._tallies)
        self._tasks: set[asyncio.Task[None]] = set()
        # Misses waiting for an answer, duplicates included: --dns-forward-max bounds distinct upstream
        # questions, this bounds the clients queued behind them (a dead upstream and a busy name).
        self._max_waiting = max_waiting
        self.counters = FrontendCounters()

    def udp_handler(self, send: Send) -> DatagramHandler:
        """The callback for one UDP listener's datagrams; ``send`` delivers replies that come later.
        A remembered reply is answered right here, in one call, with everything it needs bound."""
        recent_get, counters, record, rest = self._recent_get, self.counters, self._stats.record, self._on_udp

        def on_datagram(data: bytes, addr: Address) -> bytes | None:
            start = perf_counter()
            now = monotonic()
            recent = recent_get(data[2:])
            if recent is None or now >= recent.until or not recent.entry.cached:
                return rest(data, addr, send, start, now)
            recent.entry.hits += 1
            counters.hits += 1
            reply = data[:2] + recent.tail
            elapsed = perf_counter() - start
            if elapsed < FAST:  # the usual case: tallied on the reply, handed over in bulk
                recent.hits += 1
                recent.seconds += elapsed
            else:
                record("udp", recent.qtype, recent.rcode, elapsed)
            return reply

        return on_datagram

    def _on_udp(self, data: bytes, addr: Address, send: Send, start: float, now: float) -> bytes | None:
        parsed = self._parsed.get(data[2:]) or self._parse(data)
        if not isinstance(parsed, Parsed):
            return self._immediate(parsed, data, "udp", start)
        hit = self._hit(data, parsed, parsed.payload, now)
        if hit is not None:
            entry, reply = hit
            rcode = rcode_label(reply[3] & 0x0F)
            # Good until the TTLs written into it change (the next second), or until the entry is due for
            # refreshing, so that the next ask takes the path that starts the refresh.
            until = min(float(int(now) + 1), entry.expires - entry.lifetime * PREFETCH_FRACTION)
            if until > now and len(reply) <= RECENT_MAX_REPLY:
                self._remember(data[2:], Remembered(entry, until, reply[2:], parsed.qtype, rcode))
            self._stats.record("udp", parsed.qtype, rcode, perf_counter() - start)
            return reply
        self.counters.misses += 1
        if len(self._tasks) >= self._max_waiting:
            reply = header_only(data, parsed.question_end, SERVFAIL, parsed.edns)
            self._stats.record("udp", parsed.qtype, "SERVFAIL", perf_counter() - start)
            return reply
        task = asyncio.create_task(self._miss_udp(data, parsed, addr, send, start))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def on_tcp(self, data: bytes) -> bytes | None:
        start = perf_counter()
        parsed = self._parsed.get(data[2:]) or self._parse(data)
        if not isinstance(parsed, Parsed):
            return self._immediate(parsed, data, "tcp", start)
        hit = self._hit(data, parsed, TCP_MAX, monotonic())
        if hit is not None:
            reply = hit[1]
        else:
            self.counters.misses += 1
            reply = await self._answer(data, parsed, TCP_MAX)
        self._stats.record("tcp", parsed.qtype, rcode_label(reply[3] & 0x0F), perf_counter() - start)
        return reply

    def _hit(self, data: bytes, parsed: Parsed, limit: int, now: float) -> tuple[Entry, bytes] | None:
        """The reply from a fresh cache entry, counted (and refreshed early if popular); None on a miss."""
        entry = self._cache.get(parsed.question.key)  # also keeps a name asked every second recently used
        if entry is None or entry.expires <= now:
            return None
        self.counters.hits += 1
        self._resolver.maybe_prefetch(parsed.question, entry, now)
        return entry, entry.reply(data, parsed.question_end, parsed.edns, parsed.dnssec_ok, limit, now)

    async def _miss_udp(self, data: bytes, parsed: Parsed, addr: Address, send: Send, start: float) -> None:
        reply = await self._answer(data, parsed, parsed.payload)
        self._stats.record("udp", parsed.qtype, rcode_label(reply[3] & 0x0F), perf_counter() - start)
        send(reply, addr)

    async def _answer(self, data: bytes, parsed: Parsed, limit: int) -> bytes:
        try:
            answer: Answer = await self._resolver.resolve(parsed.question)
            if answer.entry is not None:
                return answer.entry.reply(
                    data,
                    parsed.question_end,
                    parsed.edns,
                    parsed.dnssec_ok,
                    limit,
                    monotonic(),
                    answer.stale,
                )
        except Exception:  # whatever went wrong, the client gets an answer
            log.exception("resolving %s failed", parsed.question.name)
            answer = Answer(None, SERVFAIL)
        return header_only(data, parsed.question_end, answer.rcode, parsed.edns)

    def _remember(self, key: bytes, remembered: Remembered) -> None:
        if len(self._recent) >= RECENT_LIMIT:
            self._stats.fold(self._tallies())
            self._recent.clear()  # the same dict: on_udp keeps its bound get()
        replaced = self._recent.get(key)
        if replaced is not None and replaced.hits:
            self._stats.fold([replaced.tally()])
        self._recent[key] = remembered

    def _tallies(self) -> list[Tally]:
        return [r.tally() for r in self._recent.values() if r.hits]

    def _immediate(self, reply: bytes | None, data: bytes, proto: str, start: float) -> bytes | None:
        if reply is not None:
            self._stats.record(proto, "other", rcode_label(reply[3] & 0x0F), perf_counter() - start)
        return reply

    def _parse(self, data: bytes) -> Parsed | bytes | None:
        """Parse a query not seen before: the facts to remember, or a reply to send at once, or None."""
        query = read_query(data)
        if query is None or isinstance(query, bytes):
            return query
        if query.edns_version != 0:
            return badvers_reply(query)
        q = query.record.q
        name = str(q.qname).rstrip(".").lower()
        if q.qclass == CLASS.CH:
            return self._chaos.reply(query)
        if q.qclass != CLASS.IN or q.qtype in (QTYPE.AXFR, QTYPE.IXFR) or self._loops.intercept(name):
            return build_reply(query, REFUSED, (), (), (), False, query.payload, recursion_available=True)
        wire = question_key(data)
        question_end = HEADER_SIZE + len(wire)
        checking_disabled = bool(query.record.header.cd)
        key = (wire[:-4], q.qtype, q.qclass, query.dnssec_ok, checking_disabled)
        parsed = Parsed(
            Question(key, name, wire),
            question_end,
            query.edns,
            query.payload,
            query.dnssec_ok,
            qtype_label(q.qtype),
        )
        if len(self._parsed) >= PARSED_LIMIT:
            self._parsed.clear()
        self._parsed[data[2:]] = parsed
        return parsed

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
