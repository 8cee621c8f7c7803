"""The per-query hot path of ``serve``.

A reply depends only on the query bytes after the 2-byte ID (flags, question, OPT) and on the zone
data. So a finished reply, minus its ID, is memoised under ``query[2:]``; a repeated question costs a
dict lookup and one concatenation. The memo is emptied whenever the store changes, and the question's
case comes back exactly as asked because the key holds it byte for byte.

Anything not in the memo takes the full path: parse with dnslib, look up the zone, build and size the
reply. Errors (FORMERR, NOTIMP, BADVERS, REFUSED for other classes) are answered but never memoised.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from dnslib import CLASS, QTYPE, RCODE

from kubedns_py.cluster.zone import Zone
from kubedns_py.dnswire.query import Query, read_query
from kubedns_py.dnswire.reply import TCP_MAX, badvers_reply, build_reply
from kubedns_py.net.stats import DnsStats, qtype_label, rcode_label

MEMO_LIMIT = 100_000
ZONE_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)


class Prepared(NamedTuple):
    tail: bytes  # the reply without its ID
    qtype: str
    rcode: str


class Answerer:
    def __init__(self, zone: Zone, stats: DnsStats, memo_limit: int = MEMO_LIMIT) -> None:
        self._zone = zone
        self._stats = stats
        self._memo_limit = memo_limit
        self._udp: dict[bytes, Prepared] = {}
        self._tcp: dict[bytes, Prepared] = {}

    def invalidate(self) -> None:
        self._udp.clear()
        self._tcp.clear()

    def answer_udp(self, data: bytes, _addr: object = None) -> bytes | None:
        start = time.perf_counter()
        prepared = self._udp.get(data[2:]) or self._prepare(data, self._udp, tcp=False)
        if prepared is None:
            return None
        self._stats.record("udp", prepared.qtype, prepared.rcode, time.perf_counter() - start)
        return data[:2] + prepared.tail

    async def answer_tcp(self, data: bytes) -> bytes | None:
        start = time.perf_counter()
        prepared = self._tcp.get(data[2:]) or self._prepare(data, self._tcp, tcp=True)
        if prepared is None:
            return None
        self._stats.record("tcp", prepared.qtype, prepared.rcode, time.perf_counter() - start)
        return data[:2] + prepared.tail

    def _prepare(self, data: bytes, memo: dict[bytes, Prepared], tcp: bool) -> Prepared | None:
        query = read_query(data)
        if query is None:
            return None
        if isinstance(query, bytes):
            return Prepared(query[2:], "other", rcode_label(query[3] & 0xF))
        wire, memoise = self._reply(query, TCP_MAX if tcp else query.payload)
        prepared = Prepared(wire[2:], qtype_label(query.qtype), rcode_label(wire[3] & 0xF))
        if memoise:
            if len(memo) >= self._memo_limit:
                memo.clear()  # a flood of distinct names must not grow memory without bound
            memo[data[2:]] = prepared
        return prepared

    def _reply(self, query: Query, limit: int) -> tuple[bytes, bool]:
        question = query.record.q
        if query.edns_version != 0:
            return badvers_reply(query), False
        if question.qclass != CLASS.IN or question.qtype in ZONE_TRANSFERS:
            return build_reply(query, RCODE.REFUSED, (), (), (), False, limit), False
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
        return wire, result.cacheable
