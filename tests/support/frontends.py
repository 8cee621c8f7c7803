"""The cache's frontend in process, with no upstream: what the hit-path tests and the fuzzer drive."""

from __future__ import annotations

import time

import dns.message
import dns.name
import dns.rcode
import dns.rrset

from kubedns_py.cache.forward.forwarder import Forwarder
from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.forward.routing import RouteTable
from kubedns_py.cache.front.chaos import STAT_NAMES, Chaos
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.resolve.resolver import Resolver
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.rules import CacheRules
from kubedns_py.dnswire.response import scan
from kubedns_py.net.stats import DnsStats


def cache_frontend(timeout: float = 0.5) -> tuple[Frontend, DnsStats, Forwarder]:
    """A frontend over an empty 1,000-entry cache whose misses have nowhere to go (SERVFAIL once
    ``timeout`` has passed); close the forwarder when done."""
    cache = ResponseCache(1000, CacheRules())
    forwarder = Forwarder(RouteTable(domains={}, default=()), 150, timeout, lambda *_: None)
    stats = DnsStats("cache")
    chaos = Chaos(lambda: dict.fromkeys(STAT_NAMES, 0), list)
    return Frontend(cache, Resolver(cache, forwarder), stats, chaos, LoopDetector(False)), stats, forwarder


def upstream_reply(name: str, rcode: int = 0, ttl: int = 300, soa: bool = False) -> bytes:
    """What an upstream answers to the lower-cased question the cache forwards: an A record, or
    ``rcode`` with the zone's SOA."""
    query = dns.message.make_query(name.lower(), "A", use_edns=0, payload=1232)
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.Rcode(rcode))
    if soa:
        reply.authority.append(
            dns.rrset.from_text("example.com.", ttl, "IN", "SOA", "ns. host. 1 2 3 4 " + str(ttl))
        )
    else:
        reply.answer.append(dns.rrset.from_text(name.lower(), ttl, "IN", "A", "192.0.2.1"))
    return reply.to_wire()


def key(name: str, dnssec_ok: bool = False) -> CacheKey:
    """The cache's key for ``name`` A IN."""
    return CacheKey(dns.name.from_text(name.lower()).to_wire() or b"", 1, 1, dnssec_ok, False)


def store(front: Frontend, name: str, wire: bytes) -> None:
    """Keep ``wire`` (an upstream's reply) for ``name`` A, as a forwarded answer would be kept."""
    assert front._cache.store(key(name), scan(wire), time.monotonic()) is not None
