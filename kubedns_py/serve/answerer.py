"""The per-query hot path of ``serve``.

A reply depends only on the query bytes after the 2-byte ID (flags, question, OPT) and on the zone
data. So a finished reply, minus its ID, is memoised under ``query[2:]``; a repeated question costs a
dict lookup and one concatenation, and is counted on the memoised reply itself (the statistics take
those counts over when the memo is emptied, or read them when scraped). The memo is emptied whenever
the store changes, and the question's case comes back exactly as asked because the key holds it byte
for byte.

Anything not in the memo takes the full path: parse with dnslib, look up the zone, build and size the
reply. Errors (FORMERR, NOTIMP, BADVERS, REFUSED for other classes) are answered but never memoised.
"""

from __future__ import annotations

import logging
from time import perf_counter

from dnslib import CLASS, QTYPE, RCODE

from kubedns_py.cluster.zone import Zone
from kubedns_py.dnswire.query import Query, error_reply, read_query
from kubedns_py.dnswire.reply import TCP_MAX, badvers_reply, build_reply
from kubedns_py.net.stats import FAST, DnsStats, Tally, qtype_label, rcode_label
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

# Keys are whole queries, so clients that randomise the case of names could grow the memo without bound;
# past either limit it starts over.
MEMO_ENTRIES = 50_000
MEMO_BYTES = 32 * 1024 * 1024
ZONE_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)


class Prepared:
    """A finished reply, and the tally of its fast repeats not yet handed to the statistics."""

    __slots__ = ("hits", "qtype", "rcode", "seconds", "tail")

    def __init__(self, tail: bytes, qtype: str, rcode: str) -> None:
        self.tail = tail  # the reply without its ID
        self.qtype = qtype
        self.rcode = rcode
        self.hits = 0
        self.seconds = 0.0


class Memo:
    """Finished replies by query bytes after the ID, within an entry and a byte budget."""

    __slots__ = ("entries", "proto", "size", "stats")

    def __init__(self, proto: str, stats: DnsStats) -> None:
        self.entries: dict[bytes, Prepared] = {}
        self.proto = proto
        self.stats = stats
        self.size = 0
        stats.watch(self.tallies)

    def put(self, key: bytes, prepared: Prepared) -> None:
        if len(self.entries) >= MEMO_ENTRIES or self.size >= MEMO_BYTES:
            self.clear()
        self.entries[key] = prepared
        self.size += len(key) + len(prepared.tail)

    def tallies(self) -> list[Tally]:
        return [(self.proto, p.qtype, p.rcode, p.hits, p.seconds) for p in self.entries.values() if p.hits]

    def clear(self) -> None:
        # Costs a pass over entries that each cost a full answer to make: small change on top.
        self.stats.fold(self.tallies())
        self.entries.clear()  # the same dict: the answer paths keep its bound get()
        self.size = 0


class Answerer:
    def __init__(self, zone: Zone, stats: DnsStats) -> None:
        self._zone = zone
        self._stats = stats
        self._udp = Memo("udp", stats)
        self._tcp = Memo("tcp", stats)
        self._udp_get = self._udp.entries.get
        self._tcp_get = self._tcp.entries.get
        self._failures = RateLimitedLog(log)

    def invalidate(self) -> None:
        self._udp.clear()
        self._tcp.clear()

    def answer_udp(self, data: bytes, _addr: object = None) -> bytes | None:
        start = perf_counter()
        prepared = self._udp_get(data[2:])
        if prepared is None:
            return self._answer(data, self._udp, start)
        reply = data[:2] + prepared.tail
        elapsed = perf_counter() - start
        if elapsed < FAST:  # the usual case: tallied on the reply, handed over in bulk
            prepared.hits += 1
            prepared.seconds += elapsed
        else:
            self._stats.record("udp", prepared.qtype, prepared.rcode, elapsed)
        return reply

    async def answer_tcp(self, data: bytes) -> bytes | None:
        start = perf_counter()
        prepared = self._tcp_get(data[2:])
        if prepared is None:
            return self._answer(data, self._tcp, start)
        self._stats.record("tcp", prepared.qtype, prepared.rcode, perf_counter() - start)
        return data[:2] + prepared.tail

    def _answer(self, data: bytes, memo: Memo, start: float) -> bytes | None:
        prepared = self._prepare(data, memo, memo.proto == "tcp")
        if prepared is None:
            return None
        self._stats.record(memo.proto, prepared.qtype, prepared.rcode, perf_counter() - start)
        return data[:2] + prepared.tail

    def _prepare(self, data: bytes, memo: Memo, tcp: bool) -> Prepared | None:
        query = read_query(data)
        if query is None:
            return None
        if isinstance(query, bytes):
            return Prepared(query[2:], "other", rcode_label(query[3] & 0xF))
        try:
            wire, memoise, rcode = self._reply(query, TCP_MAX if tcp else query.payload)
        except Exception:  # never a query without an answer: SERVFAIL, and a (rate-limited) log line
            self._failures.log("answering %s failed", query.record.q.qname)
            return Prepared(error_reply(data, RCODE.SERVFAIL)[2:], qtype_label(query.qtype), "SERVFAIL")
        prepared = Prepared(wire[2:], qtype_label(query.qtype), rcode)
        if memoise:
            memo.put(data[2:], prepared)
        return prepared

    def _reply(self, query: Query, limit: int) -> tuple[bytes, bool, str]:
        """The reply, whether it may be memoised, and its rcode's name."""
        question = query.record.q
        if query.edns_version != 0:
            return badvers_reply(query), False, "BADVERS"
        if question.qclass != CLASS.IN or question.qtype in ZONE_TRANSFERS:
            return build_reply(query, RCODE.REFUSED, (), (), (), False, limit), False, "REFUSED"
        result = self._zone.lookup(question.qname, question.qtype)
        wire = build_reply(
            query,
            result.rcode,
            result.answer,
            result.authority,
            result.additional,
            result.authoritative,
            limit,
        )
        return wire, result.cacheable, rcode_label(result.rcode)
