"""The per-query hot path of ``serve``.

A query is read without dnslib (``dnswire.reader``); an IN-class question then finds its prebuilt answer
section in the wire zone (``cluster.answers``), and the reply is spliced from the query's ID, the
section's header, the question exactly as asked, the section's records and our OPT. That costs the same
for a question never seen before as for one asked a million times.

Everything else takes the general path: error replies spliced from what the reader found, and the rare
questions only ``Zone`` answers (ExternalName CNAMEs, ANY, the apex and its fixed names, answers too
large for the client's UDP size) built with dnslib.

The autopath record (``NameKind.AUTOPATH``) says which namespace the Pod at an address is in:
it goes only to the clients ``readers`` allows (the caches), and is REFUSED to anyone else.

Over UDP a reply never exceeds the client's EDNS size nor ours (``OUR_PAYLOAD``); over TCP, 64 KiB, an
answer with more records than that carrying as many as fit (``cluster.answers.Spread``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from time import perf_counter
from typing import Final, Protocol

from dnslib import DNSRecord
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.cluster.answers import Section, Spread, Validity
from kubedns_py.cluster.names import NameKind
from kubedns_py.cluster.zone import Zone
from kubedns_py.dnswire.header import AXFR, BADVERS, FORMERR, IN, IXFR, REFUSED, SERVFAIL, rcode_name
from kubedns_py.dnswire.query import Query
from kubedns_py.dnswire.reader import (
    BadVersion,
    Drop,
    Outcome,
    Question,
    Rejected,
    asked_dnssec_ok,
    presentation,
    read,
)
from kubedns_py.dnswire.reply import OUR_PAYLOAD, TCP_MAX, build_reply
from kubedns_py.dnswire.splice import empty_reply, header_only, raw_opt
from kubedns_py.memo import Memo
from kubedns_py.net.acl import ClientAcl, ClientGuard
from kubedns_py.net.stats import DnsStats, HitTally, qtype_label
from kubedns_py.net.tcp import Peer
from kubedns_py.net.udp import Address, DatagramHandler
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

# Types from IXFR (251) up (AXFR, MAILB, MAILA, ANY) and the rare ones past 255 take the general path.
FIRST_GENERAL_TYPE: Final = IXFR
OPT_BY_DO: Final = (raw_opt(OUR_PAYLOAD, False), raw_opt(OUR_PAYLOAD, True))
ZONE_TRANSFERS: Final = (AXFR, IXFR)
# Finished UDP replies by query bytes after the ID, for names asked again and again. Keyed by whole
# queries (case, EDNS size), so bounded; it forgets its oldest a few at a time.
MEMO_LIMIT: Final = 20_000
# The memo pays where names are asked again and again. On more distinct questions than it holds (a
# scan, a wide working set) its lookups and insertions find nothing and cost about a tenth of the
# answer, so it judges itself every MEMO_WINDOW misses: when fewer than MEMO_PAYS of its lookups hit
# (about where a hit's saving stops covering the misses' cost), it rests for MEMO_REST answers, then
# tries again.
MEMO_WINDOW = 16_384
MEMO_PAYS: Final = 0.25
MEMO_REST = 8 * MEMO_WINDOW


class PrebuiltAnswers(Protocol):
    """What the answerer asks first: the wire zone (``cluster.answers.WireZone``), or anything that
    answers as it does."""

    def find(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None: ...


class Remembered:
    """A finished UDP reply less its ID, good while what it was made from is ``live``."""

    __slots__ = ("source", "tail", "tally")

    def __init__(self, tail: bytes, source: Validity, tally: HitTally) -> None:
        self.tail = tail
        self.source = source
        self.tally = tally


class Answerer:
    def __init__(
        self,
        zone: Zone,
        wire: PrebuiltAnswers,
        stats: DnsStats,
        acl: ClientAcl | None = None,
        readers: ClientAcl | None = None,
    ) -> None:
        self._zone = zone
        self._guard = ClientGuard(acl, stats, 0)  # acl None: everyone may ask
        self._readers = readers  # who may read autopath records; None: nobody
        self._find = wire.find
        self._tally = stats.tally
        self._record = stats.record
        self._malformed = stats.malformed
        self._failures = RateLimitedLog(log)
        self._notices = RateLimitedLog(log)
        self.partial_answers = 0  # TCP replies carrying part of an answer too large for any message
        self._memo: Memo[bytes, Remembered] = Memo(MEMO_LIMIT)
        self._memo_get = self._memo.get
        self._memo_on = True
        self._memo_hits = 0
        self._memo_misses = 0
        self._memo_rest = 0
        self._unremembered = 0

    def udp_handler(self) -> DatagramHandler:
        """``answer`` itself, or, when only some clients may ask, ``answer`` behind a check of the
        client's address (one dict lookup for an address seen before)."""
        return self._guard.udp(self.answer)

    def answer_tcp(self, data: bytes, peer: Peer = None) -> bytes | None:
        if not self._guard.admits(peer):
            return self._guard.refuse(data, "tcp")
        return self.answer(data, peer, True)

    def answer(self, data: bytes, addr: Address | Peer = None, tcp: bool = False) -> bytes | None:
        """The reply to one query, or None to send nothing; listeners pass the client's address."""
        start = perf_counter()
        if not tcp and self._memo_on:
            hit = self._memo_get(data[2:])
            if hit is not None and hit.source.live:
                self._memo_hits += 1
                hit.tally.count(perf_counter() - start)
                return data[:2] + hit.tail
        q = read(data)
        try:
            if type(q) is Question and q.qclass == IN and q.qtype < FIRST_GENERAL_TYPE:
                found = self._find(q.key, q.qtype)
                if found is not None:
                    section, source = found
                    head = data[:2]
                    question = data[12 : q.end]
                    variant = q.edns << 1 | (q.flags >> 8 & 1)
                    opt = OPT_BY_DO[q.dnssec_ok] if q.edns else b""
                    limit = TCP_MAX if tcp else min(q.payload, OUR_PAYLOAD)
                    while True:
                        heads, body, rcode, shorter = section
                        reply = head + heads[variant] + question + body + opt
                        if len(reply) <= limit:
                            proto = "tcp" if tcp else "udp"
                            tally = self._tally(proto, q.qtype, rcode, len(reply), len(data), q.dnssec_ok)
                            tally.count(perf_counter() - start)
                            if not tcp:
                                self._remember(data, reply, source, tally)
                            return reply
                        if shorter is None:
                            break
                        if isinstance(shorter, Spread):
                            room = limit - (len(reply) - len(body))
                            shorter = self._in_part(shorter, q, room) if tcp else shorter.truncated
                        section = shorter  # too large for the client: drop what may be dropped
            general, qtype_name, rcode_text = self._general(data, q, TCP_MAX if tcp else None, addr)
        except Exception:  # never a query without an answer: SERVFAIL, and a (rate-limited) log line
            self._failures.exception("answer", "answering a %d-byte query failed", len(data))
            general, qtype_name, rcode_text = (
                header_only(data, SERVFAIL),
                "other",
                rcode_name(SERVFAIL),
            )
        if general is not None:
            proto = "tcp" if tcp else "udp"
            seconds, dnssec_ok = perf_counter() - start, asked_dnssec_ok(q)
            self._record(proto, qtype_name, rcode_text, seconds, len(general), len(data), dnssec_ok)
        return general

    def _may_read(self, addr: Address | Peer) -> bool:
        return self._readers is not None and addr is not None and self._readers.allows(addr[0])

    def _in_part(self, spread: Spread, q: Question, room: int) -> Section:
        """The next part of an answer too large for any message; said once per answer (and at most once
        every few seconds for all of them), counted every time."""
        self.partial_answers += 1
        if not spread.noticed:
            spread.noticed = True
            self._notices.warning(
                "partial",
                "%s %s has %d records, more than one DNS message holds: each TCP reply carries as many as"
                " fit, in turn, with TC set",
                presentation(q.key),
                qtype_label(q.qtype),
                spread.count,
            )
        return spread.part(room)

    def _remember(self, data: bytes, reply: bytes, source: Validity, tally: HitTally) -> None:
        if not self._memo_on:
            self._memo_rest -= 1
            self._memo_on = self._memo_rest <= 0
            return
        self._memo_misses += 1
        if self._memo_misses == MEMO_WINDOW:
            self._judge_memo()
        # One answer in four: a name asked again and again is soon remembered, while a stream of
        # questions each asked once (a scan, a search-path storm) does not keep churning the memo.
        self._unremembered += 1
        if self._unremembered & 3 == 0 and source.live:
            self._memo.put(data[2:], Remembered(reply[2:], source, tally))

    def _judge_memo(self) -> None:
        hits, self._memo_hits, self._memo_misses = self._memo_hits, 0, 0
        if hits < MEMO_PAYS * (hits + MEMO_WINDOW):
            self._memo_on = False
            self._memo_rest = MEMO_REST

    def _general(
        self, data: bytes, outcome: Outcome, tcp_limit: int | None, addr: Address | Peer
    ) -> tuple[bytes | None, str, str]:
        """The reply to anything the wire zone does not answer, its type label and its rcode label."""
        match outcome:
            case Question():
                return self._from_zone(data, outcome, tcp_limit, addr)
            case Rejected(rcode, reason):
                self._malformed(reason)
                return header_only(data, rcode), "other", rcode_name(rcode)
            case BadVersion(question, _, reason):
                self._malformed(reason)
                reply = empty_reply(data, question, BADVERS, 0, OUR_PAYLOAD)
                return reply, qtype_label(question.qtype), "BADVERS"
            case Drop(reason):  # too short to answer, or a response
                self._malformed(reason)
        return None, "other", ""

    def _from_zone(
        self, data: bytes, q: Question, tcp_limit: int | None, addr: Address | Peer
    ) -> tuple[bytes, str, str]:
        label = qtype_label(q.qtype)
        if q.qclass != IN or q.qtype in ZONE_TRANSFERS:
            return empty_reply(data, q, REFUSED, 0, OUR_PAYLOAD), label, "REFUSED"
        try:
            record = DNSRecord.parse(data)
        except Exception:  # dnslib reads less than the wire allows (e.g. labels that are not UTF-8)
            self._malformed("undecodable")
            return header_only(data, FORMERR), label, "FORMERR"
        query = Query(record, q.edns, q.payload, q.dnssec_ok)
        name = self._zone.names.parse(q.key)
        if name.kind is NameKind.AUTOPATH and not self._may_read(addr):
            return empty_reply(data, q, REFUSED, 0, OUR_PAYLOAD), label, "REFUSED"
        result = self._zone.lookup(name, record.q.qname, q.qtype)
        limit = tcp_limit if tcp_limit is not None else min(q.payload, OUR_PAYLOAD)
        answer, authority, additional = result.answer, result.authority, result.additional
        wire = build_reply(query, result.rcode, answer, authority, additional, result.authoritative, limit)
        return wire, label, rcode_name(result.rcode)


class PartialAnswers(Collector):
    """The answerer's count of partial answers, as a series (kept apart, so that the answerer itself
    compiles to a native class: its attributes are read on every query)."""

    def __init__(self, answerer: Answerer) -> None:
        self._answerer = answerer

    def collect(self) -> Iterator[Metric]:
        partial = CounterMetricFamily(
            "kubedns_dns_partial_answers",
            "TCP replies carrying part of an answer that has more records than one DNS message holds.",
            labels=["server"],
        )
        partial.add_metric(["serve"], self._answerer.partial_answers)
        yield partial
