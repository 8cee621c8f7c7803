"""The per-query hot path of ``serve``.

A reply depends only on the query bytes after the 2-byte ID (flags, question, OPT) and on the zone
data. So a finished reply, minus its ID, is memoised under ``query[2:]``; a repeated question costs a
dict lookup and one concatenation. The memo is emptied whenever the store changes, and the question's
case comes back exactly as asked because the key holds it byte for byte.

Anything not in the memo takes the full path: parse with dnslib, look up the zone, build and size the
reply. Errors (FORMERR, NOTIMP, BADVERS, REFUSED for other classes) are answered but never memoised.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from dnslib import CLASS, QTYPE, RCODE

from kubedns_py.cluster.zone import Zone
from kubedns_py.dnswire.query import Query, error_reply, read_query
from kubedns_py.dnswire.reply import TCP_MAX, badvers_reply, build_reply
from kubedns_py.net.stats import DnsStats, qtype_label, rcode_label
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

# Keys are whole queries, so clients that randomise the case of names could grow the memo without bound;
# past either limit it starts over.
MEMO_ENTRIES = 50_000
MEMO_BYTES = 32 * 1024 * 1024
ZONE_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)


class Prepared(NamedTuple):
    tail: bytes  # the reply without its ID
    qtype: str
    rcode: str


class Memo:
    """Finished replies by query bytes after the ID, within an entry and a byte budget."""

    __slots__ = ("entries", "size")

    def __init__(self) -> None:
        self.entries: dict[bytes, Prepared] = {}
        self.size = 0

    def put(self, key: bytes, prepared: Prepared) -> None:
        if len(self.entries) >= MEMO_ENTRIES or self.size >= MEMO_BYTES:
            self.clear()
        self.entries[key] = prepared
        self.size += len(key) + len(prepared.tail)

    def clear(self) -> None:
        self.entries.clear()  # the same dict: the answer paths keep its bound get()
        self.size = 0


class Answerer:
    def __init__(self, zone: Zone, stats: DnsStats) -> None:
        self._zone = zone
        self._stats = stats
        self._udp = Memo()
        self._tcp = Memo()
        self._udp_get = self._udp.entries.get
        self._tcp_get = self._tcp.entries.get
        self._failures = RateLimitedLog(log)

    def invalidate(self) -> None:
        self._udp.clear()
        self._tcp.clear()

    def answer_udp(self, data: bytes, _addr: object = None) -> bytes | None:
        start = time.perf_counter()
        prepared = self._udp_get(data[2:]) or self._prepare(data, self._udp, tcp=False)
        if prepared is None:
            return None
        self._stats.record("udp", prepared.qtype, prepared.rcode, time.perf_counter() - start)
        return data[:2] + prepared.tail

    async def answer_tcp(self, data: bytes) -> bytes | None:
        start = time.perf_counter()
        prepared = self._tcp_get(data[2:]) or self._prepare(data, self._tcp, tcp=True)
        if prepared is None:
            return None
        self._stats.record("tcp", prepared.qtype, prepared.rcode, time.perf_counter() - start)
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
