"""The response cache of ``kubedns-py cache``: what it keeps, under which key, for how long, and what it
serves when the upstreams fail (serve-stale) or an entry is about to expire (prefetch).

Each test scripts its own names on the upstream, so one cache (per flag set) serves the whole module.
Lifetimes are scripted short (1-2 s) and expiry is observed as a new upstream query.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.dnsclient import answers, ask, chaos_number, ttls
from tests.support.metrics import scrape
from tests.support.nameservers import (
    TestNameserver,
    answer,
    dead,
    nodata,
    nxdomain,
    servfail,
)
from tests.support.ports import HOST, free_port
from tests.support.processes import Running, cache
from tests.support.waiting import wait_until


class TruncatingUpstream:
    """A UDP-only upstream that answers every query with TC=1 and nothing else (its TCP port is closed,
    so the retry over TCP fails): the only reply the cache ever gets is a truncated one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, self.port))
        self.sock.settimeout(0.1)
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            self.queries.append(query.question[0].name.to_text().lower())
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.TC
            self.sock.sendto(reply.to_wire(), addr)

    def __enter__(self) -> TruncatingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def truncating() -> Iterator[TruncatingUpstream]:
    with TruncatingUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def cached(upstream: TestNameserver, truncating: TruncatingUpstream) -> Iterator[Running]:
    """Default caching flags, as the kube-dns manifests leave them (but negative caching on)."""
    with cache(
        "--no-resolv", f"--server=/tc.test/{HOST}#{truncating.port}", f"--server={upstream.address}"
    ) as c:
        yield c


def upstream_asked(ns: TestNameserver, name: str, rtype: str | None = "A") -> int:
    return len(ns.queries_for(name, rtype))


def asked_again(ns: TestNameserver, name: str, port: int, times: int) -> Callable[[], bool]:
    """For wait_until: ask ``name`` once more, then whether the upstream has seen it ``times`` times."""

    def check() -> bool:
        ask(name, "A", port)
        return upstream_asked(ns, name) >= times

    return check


def test_a_repeated_question_is_answered_from_the_cache(cached: Running, upstream: TestNameserver) -> None:
    name = "repeat.cache.test."
    first = ask(name, "A", cached.dns_port)
    second = ask(name, "A", cached.dns_port, tcp=True)
    assert answers(first) == answers(second) == {f"{name} A 192.0.2.1"}
    assert upstream_asked(upstream, name) == 1
    assert second.flags & dns.flags.RA and not second.flags & dns.flags.AA


def test_ttl_counts_down_and_expiry_asks_the_upstream_again(
    cached: Running, upstream: TestNameserver
) -> None:
    """The entry lives for the smallest TTL of the reply (2 s here, not 300). Few enough hits that no
    prefetch blurs the expiry."""
    name = "countdown.cache.test."
    upstream.script(name, "A", answer(f"{name} 300 IN A 192.0.2.2", f"{name} 2 IN A 192.0.2.3"))
    first = ask(name, "A", cached.dns_port)
    asked_at = upstream.wait_for_queries(1, name, "A")[0].time
    assert max(ttls(first)) <= 2

    def at(seconds: float) -> dns.message.Message:
        time.sleep(max(0.0, asked_at + seconds - time.monotonic()))  # the TTL clock has to move
        return ask(name, "A", cached.dns_port)

    later = at(1.2)
    assert answers(later) == answers(first) and max(ttls(later)) == 1
    at(1.85)
    assert upstream_asked(upstream, name) == 1
    assert answers(at(2.1)) == answers(first)
    assert upstream_asked(upstream, name) == 2


def test_negative_answers_live_for_the_soa_minimum(cached: Running, upstream: TestNameserver) -> None:
    """RFC 2308: min(SOA TTL, SOA minimum), for NXDOMAIN and NODATA alike."""
    gone, empty = "gone.cache.test.", "empty.cache.test."
    upstream.script(gone, None, nxdomain(zone="cache.test.", minimum=60, soa_ttl=2))
    upstream.script(empty, None, nodata(zone="cache.test.", minimum=2, soa_ttl=60))
    for _ in range(3):
        assert ask(gone, "A", cached.dns_port).rcode() == dns.rcode.NXDOMAIN
        reply = ask(empty, "A", cached.dns_port)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer and reply.authority
    assert upstream_asked(upstream, gone) == upstream_asked(upstream, empty) == 1
    assert max(ttls(reply)) <= 2

    def both_asked_again() -> bool:
        ask(gone, "A", cached.dns_port)
        ask(empty, "A", cached.dns_port)
        return upstream_asked(upstream, gone) == 2 and upstream_asked(upstream, empty) == 2

    assert 1.0 <= wait_until(both_asked_again, 3.5) <= 3.5


def test_servfail_is_cached_at_most_five_seconds(cached: Running, upstream: TestNameserver) -> None:
    name = "flaky.cache.test."
    upstream.script(name, "A", servfail())
    assert ask(name, "A", cached.dns_port).rcode() == dns.rcode.SERVFAIL
    upstream.script(name, "A", answer(f"{name} 300 IN A 192.0.2.4"))
    wait_until(lambda: ask(name, "A", cached.dns_port).rcode() == dns.rcode.NOERROR, 5.5, interval=0.25)


def test_truncated_answers_are_never_cached(cached: Running, truncating: TruncatingUpstream) -> None:
    name = "big.tc.test."
    for _ in range(2):
        reply = ask(name, "A", cached.dns_port)
        assert not reply.answer
    assert truncating.queries.count(name) == 2


def test_key_ignores_case_and_answers_carry_the_askers_id_and_case(
    cached: Running, upstream: TestNameserver
) -> None:
    ask("mixed.cache.test.", "A", cached.dns_port)
    for ident, spelling in ((0x0000, "MiXeD.CaChE.TeSt."), (0xBEEF, "MIXED.cache.TEST.")):
        query = dns.message.make_query(spelling, "A", id=ident)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(query.to_wire(), (HOST, cached.dns_port))
            reply = dns.message.from_wire(sock.recv(4096))
        assert reply.id == ident
        assert reply.question[0].name.to_text() == spelling  # byte-for-byte, not just equal
        assert answers(reply) == {"mixed.cache.test. A 192.0.2.1"}
    assert upstream_asked(upstream, "mixed.cache.test.") == 1


def test_a_cached_name_asked_a_new_way_is_answered_from_the_cache_as_asked(
    cached: Running, upstream: TestNameserver
) -> None:
    """Another ID, case, EDNS size or RD bit is still the same entry, positive or negative alike."""
    found, gone = "newway.cache.test.", "newway-gone.cache.test."
    upstream.script(gone, None, nxdomain(zone="cache.test.", minimum=60))
    for name in (found, gone):
        ask(name, "A", cached.dns_port)
        for ident, spelling, edns, payload, rd in (
            (0x1234, name.upper(), 0, 4096, True),
            (0x0001, name.title(), 0, 512, False),
            (0xFFFF, name.swapcase().title(), -1, 0, True),
            (0x0000, name, 0, 1232, True),
        ):
            query = dns.message.make_query(spelling, "A", id=ident, use_edns=edns, payload=payload)
            if not rd:
                query.flags &= ~dns.flags.RD
            reply = dns.query.udp(query, HOST, port=cached.dns_port, timeout=2)
            assert reply.id == ident and reply.question[0].name.to_text() == spelling
            assert bool(reply.flags & dns.flags.RD) == rd and reply.flags & dns.flags.RA
            assert reply.edns == edns
            if name == found:
                assert reply.rcode() == dns.rcode.NOERROR
                assert [str(rrset[0]) for rrset in reply.answer] == ["192.0.2.1"]
            else:
                assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
                assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]
        assert upstream_asked(upstream, name) == 1


def test_key_covers_type_class_and_the_do_and_cd_bits(cached: Running, upstream: TestNameserver) -> None:
    name = "bits.cache.test."
    cd = dns.flags.RD | dns.flags.CD
    variants: list[dict[str, Any]] = [
        {},
        {"want_dnssec": True},
        {"flags": cd},
        {"want_dnssec": True, "flags": cd},
    ]
    for _ in range(2):  # the second round is all hits
        for kw in variants:
            assert ask(name, "A", cached.dns_port, **kw).rcode() == dns.rcode.NOERROR
        ask(name, "AAAA", cached.dns_port)
    seen = upstream.queries_for(name)
    assert sorted((q.rtype, q.do, q.cd) for q in seen) == [
        ("A", False, False),
        ("A", False, True),
        ("A", True, False),
        ("A", True, True),
        ("AAAA", False, False),
    ]
    # Another class never gets the IN answer.
    reply = ask(name, "A", cached.dns_port, rdclass=dns.rdataclass.CH)
    assert not reply.answer


def test_query_types_reach_the_upstream_unchanged(cached: Running, upstream: TestNameserver) -> None:
    """Only the name is case-folded: type 65 (HTTPS, 0x0041) once went upstream as 97 (0x0061)."""
    name = "svcb.cache.test."
    for rdtype in ("HTTPS", "HTTPS", "SVCB"):  # the second HTTPS is a hit
        ask(name, rdtype, cached.dns_port)
    assert [q.rtype for q in upstream.queries_for(name, None)] == ["HTTPS", "SVCB"]


def test_serve_stale_when_every_upstream_fails(cached: Running, upstream: TestNameserver) -> None:
    """An expired entry is answered with TTL 30 when the upstream says SERVFAIL or nothing at all."""
    names = ("stale-servfail.cache.test.", "stale-dead.cache.test.")
    for name in names:
        upstream.script(name, "A", answer(f"{name} 1 IN A 192.0.2.5"))
        ask(name, "A", cached.dns_port)
    before = scrape(cached.metrics_port).get("kubedns_cache_served_stale_total")
    time.sleep(1.1)  # expire both
    upstream.script(names[0], "A", servfail())
    upstream.script(names[1], "A", dead())
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda name: ask(name, "A", cached.dns_port, timeout=4), names))
    for name, reply in zip(names, replies, strict=True):
        assert reply.rcode() == dns.rcode.NOERROR
        assert answers(reply) == {f"{name} A 192.0.2.5"}
        assert ttls(reply) == [30]
        assert upstream_asked(upstream, name) == 2
    assert scrape(cached.metrics_port).get("kubedns_cache_served_stale_total") - before == 2


def test_popular_entries_are_prefetched_before_they_expire(cached: Running, upstream: TestNameserver) -> None:
    name = "popular.cache.test."
    upstream.script(name, "A", answer(f"{name} 2 IN A 192.0.2.6"))
    misses = scrape(cached.metrics_port).get("kubedns_cache_misses_total")
    start = time.monotonic()
    while time.monotonic() - start < 2.5:
        reply = ask(name, "A", cached.dns_port)
        assert answers(reply) == {f"{name} A 192.0.2.6"}
        time.sleep(0.05)
    first, second = (q.time for q in upstream.queries_for(name, "A")[:2])
    assert second - first < 2.0, "refreshed only after the entry had expired"
    assert scrape(cached.metrics_port).get("kubedns_cache_misses_total") - misses == 1
    assert scrape(cached.metrics_port).get("kubedns_cache_prefetch_total") >= 1


# -- other flag sets ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(upstream: TestNameserver) -> Iterator[Running]:
    with cache(
        "--no-resolv",
        f"--server={upstream.address}",
        "--cache-size=3",
        "--no-negcache",
        "--stale-cache-ttl=0",
        "--min-cache-ttl=3",
    ) as c:
        yield c


def test_capacity_evicts_the_least_recently_used(small: Running, upstream: TestNameserver) -> None:
    names = [f"n{i}.small.test." for i in range(5)]
    for name in names:
        ask(name, "A", small.dns_port)
    samples = scrape(small.metrics_port)
    assert samples.get("kubedns_cache_entries") == 3
    assert samples.get("kubedns_cache_evictions_total") == 2
    assert samples.get("kubedns_cache_insertions_total") == 5
    assert chaos_number(small.dns_port, "evictions") == 2
    assert chaos_number(small.dns_port, "cachesize") == 3
    ask(names[-1], "A", small.dns_port)  # still there
    ask(names[0], "A", small.dns_port)  # evicted: asked again
    assert [upstream_asked(upstream, n) for n in names] == [2, 1, 1, 1, 1]


def test_no_negcache_asks_every_time(small: Running, upstream: TestNameserver) -> None:
    name = "nothing.small.test."
    upstream.script(name, None, nxdomain(zone="small.test.", minimum=300))
    for _ in range(3):
        assert ask(name, "A", small.dns_port).rcode() == dns.rcode.NXDOMAIN
    assert upstream_asked(upstream, name) == 3


def test_min_cache_ttl_extends_short_lifetimes_and_stale_zero_turns_serve_stale_off(
    small: Running, upstream: TestNameserver
) -> None:
    name = "short.small.test."
    upstream.script(name, "A", answer(f"{name} 1 IN A 192.0.2.7"))
    ask(name, "A", small.dns_port)
    stored = upstream.wait_for_queries(1, name, "A")[0].time
    time.sleep(1.5)  # past the record's TTL, within --min-cache-ttl
    assert answers(ask(name, "A", small.dns_port)) == {f"{name} A 192.0.2.7"}
    assert upstream_asked(upstream, name) == 1
    upstream.script(name, "A", servfail())
    wait_until(lambda: ask(name, "A", small.dns_port).rcode() == dns.rcode.SERVFAIL, 3.0)
    assert time.monotonic() - stored >= 2.9


@pytest.fixture(scope="module")
def capped(upstream: TestNameserver) -> Iterator[Running]:
    with cache(
        "--no-resolv", f"--server={upstream.address}", "--max-cache-ttl=1", "--stale-cache-ttl=1s"
    ) as c:
        yield c


def test_max_cache_ttl_caps_lifetimes_and_stale_answers_stop_after_the_stale_ttl(
    capped: Running, upstream: TestNameserver
) -> None:
    name = "long.capped.test."
    upstream.script(name, "A", answer(f"{name} 3600 IN A 192.0.2.8"))
    assert ttls(ask(name, "A", capped.dns_port)) == [1]
    stored = upstream.wait_for_queries(1, name, "A")[0].time
    wait_until(asked_again(upstream, name, capped.dns_port, 2), 2.5)
    upstream.script(name, "A", servfail())
    # Expired, within --stale-cache-ttl: stale (TTL 30); then SERVFAIL once that is over too.
    wait_until(lambda: time.monotonic() - upstream.queries_for(name, "A")[-1].time > 1.05, 2)
    reply = ask(name, "A", capped.dns_port)
    assert reply.rcode() == dns.rcode.NOERROR and ttls(reply) == [30]
    wait_until(lambda: ask(name, "A", capped.dns_port).rcode() == dns.rcode.SERVFAIL, 2.0)
    assert time.monotonic() - stored >= 2.0
