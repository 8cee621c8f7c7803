"""Stored upstream replies, re-served with the asker's ID and question case and counted-down TTLs.

An entry keeps the upstream reply minus its OPT record, and where each record's TTL sits. Serving it
splices the asker's ID and question (same length, maybe another case) around the stored bytes and
writes the remaining TTLs in place; the rendering is reused for the rest of the same second, and the
header after the ID is prebuilt for each RD bit with and without our OPT, so a hit costs a dictionary
lookup and a few concatenations.

The LRU order lives in a cachetools ``LRUCache``; a plain dict (``index``) mirrors its contents for
the hit path, which reads the dict and moves an entry to the recent end at most once a second.

Lifetimes follow dnsmasq and RFC 2308: a positive reply lives for its smallest TTL, a negative one for
min(SOA TTL, SOA minimum), both clamped by --min-cache-ttl/--max-cache-ttl; SERVFAIL lives at most 5 s;
truncated replies are never stored. After expiry an entry stays ``stale_ttl`` longer so it can be served
(RFC 8767) when every upstream fails.

A popular entry (``PREFETCH_MIN_HITS`` hits) is refreshed early, once less than ``PREFETCH_FRACTION`` of
its lifetime remains (``Entry.wants_refresh``), so its askers never see a miss. Hits are counted on the
entry by the frontend that serves them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cachetools import LRUCache
from dnslib import RCODE

from kubedns_py.dnswire.header import AA_BIT, RA_BIT, RCODE_MASK, RD_BIT, TC_BIT, reply_rcode
from kubedns_py.dnswire.reply import FORWARDER_PAYLOAD
from kubedns_py.dnswire.splice import raw_opt
from kubedns_py.dnswire.walk import HEADER_SIZE, OPT, SOA, Walk, WireError, soa_minimum, walk
from kubedns_py.net.stats import HitTally

SERVFAIL_TTL = 5
STALE_ANSWER_TTL = 30  # RFC 8767 section 4's recommendation
PREFETCH_MIN_HITS = 3
PREFETCH_FRACTION = 0.1  # refresh once less than this share of the lifetime remains

CacheKey = tuple[bytes, int, int, bool, bool]  # lower-cased qname wire, qtype, qclass, DO, CD


@dataclass(frozen=True, slots=True)
class Policy:
    min_ttl: int = 0
    max_ttl: int = 0  # 0: no cap
    negative: bool = True
    neg_ttl: int = 0  # for negative replies without an SOA; 0: do not store them
    stale_ttl: float = 3600.0


OPT_PLAIN = raw_opt(FORWARDER_PAYLOAD)
OPT_DO = raw_opt(FORWARDER_PAYLOAD, dnssec_ok=True)
OPTS = (OPT_PLAIN, OPT_DO)  # indexed by the DO bit
_HEADER_TAIL = struct.Struct("!HHHHH")  # flags and the four counts: the header after the ID
_TTL = struct.Struct("!I")
# TTLs of 64 s and more are shown rounded down to a power of two no more than a 32nd of them (at most
# 3% short, never longer than what remains), so that a rendering serves for seconds rather than one.
EXACT_TTL_BITS = 6


def shown_ttl(expires: float, now: float) -> int:
    """The TTL a reply shows at ``now``: the whole seconds left (rounded up), grained as above."""
    remaining = int(expires - now + 0.999)
    if remaining <= 0:
        return 0
    return remaining & -(1 << max(0, remaining.bit_length() - EXACT_TTL_BITS))


NO_TALLY = HitTally("", "", "")  # an entry's tally until the frontend first serves it


class Entry:
    __slots__ = (
        "_rendered",
        "_rendered_ttl",
        "body",
        "body_now",
        "cached",
        "counts",
        "expires",
        "fast_until",
        "flags",
        "heads",
        "hits",
        "lifetime",
        "prefetching",
        "question",
        "question_end",
        "rcode",
        "size",
        "stale_until",
        "tally",
        "ttl_offsets",
        "ttls",
    )

    def __init__(self, wire: bytes, walked: Walk, lifetime: int, now: float, stale_ttl: float) -> None:
        """``wire`` has no OPT record, or has it last (``ResponseCache.store`` sees to that)."""
        opt = walked.opt()
        ancount, nscount, arcount = struct.unpack_from("!HHH", wire, 6)
        if opt is not None:
            wire = wire[: opt.start]
            arcount -= 1
        records = [r for r in walked.records if r.rtype != OPT]
        self.question = wire[HEADER_SIZE : walked.question_end]
        self.question_end = walked.question_end
        self.flags = (struct.unpack_from("!H", wire, 2)[0] & ~(AA_BIT | TC_BIT)) | RA_BIT
        self.counts = (ancount, nscount, arcount)
        self.body = bytearray(wire[walked.question_end :])
        self.ttl_offsets = tuple(r.ttl_offset - walked.question_end for r in records)
        self.ttls = tuple(r.ttl for r in records)
        self.rcode = reply_rcode(wire)
        self.lifetime = lifetime
        self.expires = now + lifetime
        self.stale_until = self.expires + stale_ttl
        self.hits = 0
        self.prefetching = False
        self.cached = False  # True while the cache holds this entry (not replaced, not evicted)
        self._rendered_ttl = -1
        self._rendered = b""
        # The header after the ID, by (RD bit | 2 when our OPT follows): RD is data[2] & 1 in a query.
        base = self.flags & ~RD_BIT
        self.heads = tuple(
            _HEADER_TAIL.pack(base | (RD_BIT if v & 1 else 0), 1, ancount, nscount, arcount + (v >> 1))
            for v in range(4)
        )
        self.size = self.question_end + len(self.body)  # a reply without OPT: the asked question's too
        # Hit-path state, kept by the frontend: the body as of the current second and until when that
        # body may be served without looking further (next second, refresh time, expiry).
        self.body_now = b""
        self.fast_until = 0.0
        self.tally = NO_TALLY

    def body_at(self, now: float, stale: bool = False) -> bytes:
        """The record sections with TTLs as of ``now`` (``STALE_ANSWER_TTL`` when served stale)."""
        if stale:
            return self._render(STALE_ANSWER_TTL, True)
        return self._render(shown_ttl(self.expires, now), False)

    def refresh_at(self) -> float:
        """When this entry, if popular, is due to be refreshed."""
        return self.expires - self.lifetime * PREFETCH_FRACTION

    def wants_refresh(self, now: float) -> bool:
        """Whether to refresh this entry now: popular, due, and not being refreshed already."""
        return not self.prefetching and self.hits >= PREFETCH_MIN_HITS and now >= self.refresh_at()

    def ready(self, now: float) -> None:
        """Set the hit path up: the body as of ``now``, served as is until the TTLs it shows would
        exceed what remains, or until the refresh is due, whichever comes first. Once the refresh is due
        or under way, hits are looked at again each second (TTL change), not on every hit."""
        shown = shown_ttl(self.expires, now)
        self.body_now = self._render(shown, False)
        due = self.refresh_at()
        if self.prefetching or now >= due:
            due = self.expires
        self.fast_until = min(self.expires + 0.999 - shown, due)

    def _render(self, shown: int, stale: bool) -> bytes:
        rendering = -2 if stale else shown
        if rendering != self._rendered_ttl:
            body = self.body
            for offset, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
                _TTL.pack_into(body, offset, shown if stale or ttl > shown else ttl)
            self._rendered = bytes(body)
            self._rendered_ttl = rendering
        return self._rendered

    def message(self, now: float) -> bytes:
        """The whole stored reply (ID 0, question as first asked), e.g. to parse it."""
        header = struct.pack("!HHHHHH", 0, self.flags, 1, *self.counts)
        return header + self.question + self.body_at(now)

    def reply(
        self,
        query: bytes,
        question_end: int,
        edns: bool,
        dnssec_ok: bool,
        limit: int,
        now: float,
        stale: bool = False,
    ) -> bytes:
        """This entry answering ``query``: the query's ID, RD bit and question; our OPT if it used EDNS."""
        rd = query[2] & 1
        opt = OPTS[dnssec_ok] if edns else b""
        if self.size + len(opt) > limit:
            flags = (self.flags & ~RD_BIT) | (RD_BIT if rd else 0) | TC_BIT
            header = _HEADER_TAIL.pack(flags, 1, 0, 0, 1 if edns else 0)
            return query[:2] + header + query[HEADER_SIZE:question_end] + opt
        head = self.heads[rd | 2 if edns else rd]
        return query[:2] + head + query[HEADER_SIZE:question_end] + self.body_at(now, stale) + opt


def lifetime_of(wire: bytes, walked: Walk, policy: Policy) -> int | None:
    """How long a reply may be stored, or None when it must not be."""
    flags = struct.unpack_from("!H", wire, 2)[0]
    if flags & TC_BIT:
        return None
    rcode = flags & RCODE_MASK
    if rcode == RCODE.SERVFAIL:
        return SERVFAIL_TTL
    answers = [r for r in walked.records if r.section == 0]
    if rcode == RCODE.NOERROR and answers:
        ttl = min(r.ttl for r in walked.records if r.rtype != OPT)
        return _clamp(ttl, policy)
    if rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return None
    if not policy.negative:
        return None
    soa = next((r for r in walked.records if r.section == 1 and r.rtype == SOA), None)
    if soa is None:
        return _clamp(policy.neg_ttl, policy) if policy.neg_ttl else None
    return _clamp(min(soa.ttl, soa_minimum(wire, soa)), policy)


def _clamp(ttl: int, policy: Policy) -> int:
    ttl = max(ttl, policy.min_ttl)
    if policy.max_ttl:
        ttl = min(ttl, policy.max_ttl)
    return ttl


class _CountingLRU(LRUCache[CacheKey, Entry]):
    def __init__(self, maxsize: int, index: dict[CacheKey, Entry]) -> None:
        super().__init__(maxsize)
        self.evictions = 0
        self._index = index

    def popitem(self) -> tuple[CacheKey, Entry]:
        item = super().popitem()
        item[1].cached = False
        del self._index[item[0]]
        self.evictions += 1
        return item


class ResponseCache:
    def __init__(self, size: int, policy: Policy) -> None:
        # What the LRU holds, as a plain dict: reading it costs a fraction of ``LRUCache.get``. It is
        # never replaced, so the hit path may keep its bound ``get``.
        self.index: dict[CacheKey, Entry] = {}
        self._entries: _CountingLRU | None = _CountingLRU(size, self.index) if size > 0 else None
        self.size = size
        self.policy = policy
        self.insertions = 0

    def get(self, key: CacheKey) -> Entry | None:
        return self._entries.get(key) if self._entries is not None else None

    def touch(self, key: CacheKey) -> None:
        """Mark ``key`` recently used (the hit path does so once a second per entry, not per hit)."""
        if self._entries is not None and key in self.index:
            self._entries[key]  # LRUCache.__getitem__ moves the key to the recent end

    def store(self, key: CacheKey, wire: bytes, now: float) -> Entry | None:
        """Keep a reply when it may be kept; the entry, or None."""
        if self._entries is None:
            return None
        try:
            walked = walk(wire)
        except WireError:
            return None
        lifetime = lifetime_of(wire, walked, self.policy)
        opt = walked.opt()
        if lifetime is None or lifetime <= 0 or (opt is not None and opt.end != len(wire)):
            return None
        stale_ttl = self.policy.stale_ttl if (reply_rcode(wire)) != RCODE.SERVFAIL else 0.0
        entry = Entry(wire, walked, lifetime, now, stale_ttl)
        replaced = self._entries.pop(key, None)
        if replaced is not None:
            replaced.cached = False
        self._entries[key] = entry
        self.index[key] = entry
        entry.cached = True
        self.insertions += 1
        return entry

    def clear(self) -> None:
        """Forget every entry (replies already remembered from them stop being served too)."""
        if self._entries is not None:
            for entry in self._entries.values():
                entry.cached = False
            self._entries.clear()
            self.index.clear()

    @property
    def evictions(self) -> int:
        return self._entries.evictions if self._entries is not None else 0

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0
