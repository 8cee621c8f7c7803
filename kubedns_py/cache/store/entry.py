"""A stored upstream reply, re-served with the asker's ID and question case and counted-down TTLs.

An entry keeps the reply's record sections without the OPT record, and where each TTL sits. Serving
it splices the asker's ID and question (same length, maybe another case) around the stored bytes and
writes the remaining TTLs in place; the rendering is reused for the rest of the same second. The header
after the ID is prebuilt for each RD bit with and without our OPT the first time the entry is served,
so an entry that is stored and never asked again (a flood of random names) costs no more than its
bytes.
"""

from __future__ import annotations

import struct
from typing import TypeVar, cast

from kubedns_py.dnswire.header import AA_BIT, HEADER_SIZE, RA_BIT, RD_BIT, SERVFAIL, TC_BIT
from kubedns_py.dnswire.reply import OUR_PAYLOAD
from kubedns_py.dnswire.response import UpstreamReply
from kubedns_py.dnswire.splice import raw_opt
from kubedns_py.net.stats import HitTally

STALE_ANSWER_TTL = 30  # RFC 8767 section 4's recommendation
PREFETCH_MIN_HITS = 3
PREFETCH_FRACTION = 0.1  # refresh once less than this share of the lifetime remains

OPTS = (raw_opt(OUR_PAYLOAD), raw_opt(OUR_PAYLOAD, dnssec_ok=True))  # by the DO bit
OPT_SIZE = len(OPTS[0])
_HEADER_TAIL = struct.Struct("!HHHHH")  # flags and the four counts: the header after the ID
_TTL = struct.Struct("!I")
# TTLs of 64 s and more are shown rounded down to a power of two no more than a 32nd of them (at most
# 3% short, never longer than what remains), so that a rendering serves for seconds rather than one.
EXACT_TTL_BITS = 6
NO_TALLY = HitTally("", "", "")
Numbers = TypeVar("Numbers", bound=tuple[int, ...])  # an entry's tally until the frontend first serves it


def shown_ttl(expires: float, now: float) -> int:
    """The TTL a reply shows at ``now``: the whole seconds left (rounded up), grained as above."""
    remaining = int(expires - now + 0.999)
    if remaining <= 0:
        return 0
    return remaining & -(1 << max(0, remaining.bit_length() - EXACT_TTL_BITS))


def served_flags(upstream_flags: int, truncated: bool = False) -> int:
    """The flags we answer with: the upstream's, less AA (we are not the authority), plus RA; TC only
    for a reply passed on as it came (a partial answer over TCP stays marked partial)."""
    return (upstream_flags & ~(AA_BIT | (0 if truncated else TC_BIT))) | RA_BIT


def splice_reply(
    query: bytes,
    question_end: int,
    edns: bool,
    dnssec_ok: bool,
    limit: int,
    flags: int,
    counts: tuple[int, int, int],
    body: bytes,
) -> bytes:
    """A reply to ``query``: its ID, RD bit and question, ``body``'s records, our OPT if it used EDNS;
    header and question only with TC when that does not fit in ``limit``."""
    rd = RD_BIT if query[2] & 1 else 0
    opt = OPTS[dnssec_ok] if edns else b""
    question = query[HEADER_SIZE:question_end]
    additional = 1 if edns else 0
    if HEADER_SIZE + len(question) + len(body) + len(opt) > limit:
        header = _HEADER_TAIL.pack((flags & ~RD_BIT) | rd | TC_BIT, 1, 0, 0, additional)
        return query[:2] + header + question + opt
    ancount, nscount, arcount = counts
    header = _HEADER_TAIL.pack((flags & ~RD_BIT) | rd, 1, ancount, nscount, arcount + additional)
    return query[:2] + header + question + body + opt


def shared(numbers: Numbers) -> Numbers:
    """One copy of each small tuple the entries hold (record counts, TTL offsets, TTLs): a flood of
    negative answers under one zone holds the same few thousands of times."""
    found = _SHARED.get(numbers)
    if found is None:
        if len(_SHARED) >= SHARED_LIMIT:
            _SHARED.clear()
        found = _SHARED[numbers] = numbers
    return cast(Numbers, found)


_SHARED: dict[tuple[int, ...], tuple[int, ...]] = {}
SHARED_LIMIT = 4096


class Entry:
    __slots__ = (
        "_rendered",
        "_rendered_ttl",
        "body_now",
        "cached",
        "counts",
        "expires",
        "fast_hits",
        "fast_until",
        "flags",
        "heads",
        "hits",
        "lifetime",
        "prefetching",
        "question_size",
        "rcode",
        "size",
        "stale_until",
        "stored",
        "tally",
        "ttl_offsets",
        "ttls",
    )

    def __init__(self, reply: UpstreamReply, lifetime: int, now: float, stale_ttl: float) -> None:
        # The question (as we asked it) and the record sections, in one object: the question is needed
        # only to rebuild the whole message, and two objects cost more than one.
        self.stored = reply.question + reply.body
        self.question_size = len(reply.question)
        self.flags = served_flags(reply.flags)
        self.counts = shared(reply.counts)
        self.ttl_offsets = shared(reply.ttl_offsets)
        self.ttls = shared(reply.ttls)
        self.rcode = reply.rcode
        self.lifetime = lifetime
        self.expires = now + lifetime
        self.stale_until = self.expires + (stale_ttl if reply.rcode != SERVFAIL else 0.0)
        self.size = HEADER_SIZE + len(self.stored)  # a reply without OPT
        # Hits answered by the frontend's fast path, which may run on a listener's thread: counted apart
        # from the others so that each count has one writer.
        self.fast_hits = 0
        self.hits = 0
        self.prefetching = False
        self.cached = False  # True while the cache holds this entry (not replaced, not evicted)
        self._rendered_ttl = -1
        self._rendered = b""
        # Hit-path state, set up by ``ready`` when first served: the header after the ID by (RD bit |
        # 2 when our OPT follows), the body as of the current second, and until when that body may be
        # served without looking further (next second, refresh time, expiry).
        self.heads: tuple[bytes, ...] = ()
        self.body_now = b""
        self.fast_until = 0.0
        self.tally = NO_TALLY

    def refresh_at(self) -> float:
        """When this entry, if popular, is due to be refreshed."""
        return self.expires - self.lifetime * PREFETCH_FRACTION

    def wants_refresh(self, now: float) -> bool:
        """Whether to refresh this entry now: popular, due, and not being refreshed already."""
        return (
            not self.prefetching
            and self.hits + self.fast_hits >= PREFETCH_MIN_HITS
            and now >= self.refresh_at()
        )

    def ready(self, now: float) -> None:
        """Set the hit path up: the body as of ``now``, served as is until the TTLs it shows would
        exceed what remains, or until the refresh is due, whichever comes first. Once the refresh is due
        or under way, hits are looked at again each second (TTL change), not on every hit."""
        if not self.heads:
            ancount, nscount, arcount = self.counts
            base = self.flags & ~RD_BIT
            self.heads = tuple(
                _HEADER_TAIL.pack(base | (RD_BIT if v & 1 else 0), 1, ancount, nscount, arcount + (v >> 1))
                for v in range(4)
            )
        # A listener's thread reads these without a lock, checking fast_until first: it is written last.
        shown = shown_ttl(self.expires, now)
        self.body_now = self._render(shown, False)
        due = self.refresh_at()
        if self.prefetching or now >= due:
            due = self.expires
        self.fast_until = min(self.expires + 0.999 - shown, due)

    def body_at(self, now: float, stale: bool = False) -> bytes:
        """The record sections with TTLs as of ``now`` (``STALE_ANSWER_TTL`` when served stale)."""
        if stale:
            return self._render(STALE_ANSWER_TTL, True)
        return self._render(shown_ttl(self.expires, now), False)

    def _render(self, shown: int, stale: bool) -> bytes:
        rendering = -2 if stale else shown
        if rendering != self._rendered_ttl:
            body = bytearray(self.stored[self.question_size :])
            for offset, ttl in zip(self.ttl_offsets, self.ttls, strict=True):
                _TTL.pack_into(body, offset, shown if stale or ttl > shown else ttl)
            self._rendered = bytes(body)
            self._rendered_ttl = rendering
        return self._rendered

    def message(self, now: float) -> bytes:
        """The whole stored reply (ID 0, question as first asked), e.g. to parse it."""
        header = struct.pack("!HHHHHH", 0, self.flags, 1, *self.counts)
        return header + self.stored[: self.question_size] + self.body_at(now)

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
        body = self.body_at(now, stale)
        return splice_reply(query, question_end, edns, dnssec_ok, limit, self.flags, self.counts, body)
