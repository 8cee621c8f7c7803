"""How long a reply may be kept: dnsmasq's rules and RFC 2308's.

A positive reply lives for its smallest TTL; a negative one (NXDOMAIN, or NOERROR without answers)
for min(SOA TTL, SOA MINIMUM), or ``--neg-ttl`` when it carries no SOA; both clamped by
--min-cache-ttl/--max-cache-ttl. SERVFAIL lives at most ``SERVFAIL_TTL``; truncated replies and other
rcodes are never kept, nor negative ones under --no-negcache.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubedns_py.dnswire.header import NOERROR, NXDOMAIN, SERVFAIL, TC_BIT
from kubedns_py.dnswire.response import UpstreamReply

SERVFAIL_TTL = 5


@dataclass(frozen=True, slots=True)
class CacheRules:
    min_ttl: int = 0
    max_ttl: int = 0  # 0: no cap
    negative: bool = True
    neg_ttl: int = 0  # for negative replies without an SOA; 0: do not store them
    stale_ttl: float = 3600.0  # how long past expiry an entry may still be served stale (RFC 8767)


def lifetime_of(reply: UpstreamReply, rules: CacheRules) -> int | None:
    """How long ``reply`` may be kept, or None when it must not be."""
    if reply.flags & TC_BIT:
        return None
    rcode = reply.rcode
    if rcode == SERVFAIL:
        return SERVFAIL_TTL
    if rcode == NOERROR and reply.counts[0]:
        return _clamp(reply.min_ttl, rules)
    if rcode not in (NOERROR, NXDOMAIN) or not rules.negative:
        return None
    if reply.soa_ttl < 0:
        return _clamp(rules.neg_ttl, rules) if rules.neg_ttl else None
    return _clamp(min(reply.soa_ttl, reply.soa_minimum), rules)


def _clamp(ttl: int, rules: CacheRules) -> int:
    ttl = max(ttl, rules.min_ttl)
    if rules.max_ttl:
        ttl = min(ttl, rules.max_ttl)
    return ttl
