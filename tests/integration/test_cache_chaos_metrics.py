"""The statistics ``kubedns-py cache`` publishes: dnsmasq's CHAOS TXT ``*.bind`` records (which the kube-dns
sidecar polls) and Prometheus /metrics, each moving as the queries that should move it are made.

The behaviour behind the deduplication, rejection, serve-stale and reload counters is exercised (and
those counters checked) in test_cache_forwarding, test_cache_caching and test_cache_configmap.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.rcode
import pytest

from tests.support.dig import run_dig
from tests.support.dnsclient import ask, chaos, chaos_number
from tests.support.metrics import Metrics, scrape
from tests.support.nameservers import TestNameserver, nxdomain
from tests.support.ports import free_port
from tests.support.processes import Running, cache

STATS = ("cachesize", "insertions", "evictions", "misses", "hits", "auth")


@pytest.fixture(scope="module")
def closed() -> str:
    """An upstream address nothing listens on: every exchange with it fails at once (port unreachable)."""
    return f"127.0.0.1#{free_port()}"


@pytest.fixture(scope="module")
def running(upstream: TestNameserver, closed: str) -> Iterator[Running]:
    upstream.script("missing.stats.test", None, nxdomain(zone="stats.test."))
    with cache(
        "--no-resolv", "--cache-size=500", f"--server=/down.test/{closed}", f"--server={upstream.address}"
    ) as c:
        yield c


def stats(port: int) -> dict[str, int]:
    return {stat: chaos_number(port, stat) for stat in STATS}


def test_cachesize_and_auth(running: Running) -> None:
    assert chaos_number(running.dns_port, "cachesize") == 500
    assert chaos_number(running.dns_port, "auth") == 0
    # As the kube-dns sidecar asks: dig, CH class, TXT, over UDP and over TCP.
    assert run_dig("CH", "TXT", "cachesize.bind", "+short", port=running.dns_port).strip() == '"500"'
    assert chaos(running.dns_port, "cachesize.bind", tcp=True) == ["500"]


def test_a_miss_then_a_hit_moves_misses_hits_and_insertions(running: Running) -> None:
    before = stats(running.dns_port)
    ask("counted.stats.test.", "A", running.dns_port)
    ask("counted.stats.test.", "A", running.dns_port)
    after = stats(running.dns_port)
    moved = {stat: after[stat] - before[stat] for stat in STATS}
    assert moved == {"cachesize": 0, "insertions": 1, "evictions": 0, "misses": 1, "hits": 1, "auth": 0}


def test_chaos_queries_are_not_cache_traffic(running: Running) -> None:
    before = stats(running.dns_port)
    for _ in range(3):
        chaos(running.dns_port, "hits.bind")
    assert stats(running.dns_port) == before


def test_servers_bind_lists_each_upstream_with_queries_and_errors(
    running: Running, upstream: TestNameserver, closed: str
) -> None:
    def servers() -> dict[str, tuple[int, int]]:
        listed = {}
        for line in chaos(running.dns_port, "servers.bind"):
            server, queries, errors = line.split()
            listed[server] = (int(queries), int(errors))
        return listed

    before = servers()
    assert set(before) == {upstream.address, closed}
    ask("servers.stats.test.", "A", running.dns_port)
    assert ask("x.down.test.", "A", running.dns_port).rcode() == dns.rcode.SERVFAIL
    after = servers()
    assert after[upstream.address][0] - before[upstream.address][0] == 1
    assert after[upstream.address][1] == before[upstream.address][1]
    assert after[closed][0] - before[closed][0] == 1
    assert after[closed][1] - before[closed][1] == 1


def delta(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.get(name, **labels) - before.get(name, **labels)


def test_metrics_follow_the_traffic(running: Running, upstream: TestNameserver, closed: str) -> None:
    port = running.dns_port
    before = scrape(running.metrics_port)
    ask("metrics.stats.test.", "A", port)  # miss, NOERROR
    ask("metrics.stats.test.", "A", port)  # hit
    ask("metrics.stats.test.", "AAAA", port, tcp=True)  # miss over TCP
    assert ask("missing.stats.test.", "A", port).rcode() == dns.rcode.NXDOMAIN  # miss, cached negative
    assert ask("y.down.test.", "A", port).rcode() == dns.rcode.SERVFAIL  # miss, upstream failure
    after = scrape(running.metrics_port)

    def moved(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    assert moved("kubedns_dns_requests_total", server="cache", proto="udp", type="A") == 4
    assert moved("kubedns_dns_requests_total", server="cache", proto="tcp", type="AAAA") == 1
    assert moved("kubedns_dns_responses_total", rcode="NOERROR") == 3
    assert moved("kubedns_dns_responses_total", rcode="NXDOMAIN") == 1
    assert moved("kubedns_dns_responses_total", rcode="SERVFAIL") == 1
    assert moved("kubedns_dns_request_duration_seconds_count", server="cache") == 5
    assert moved("kubedns_cache_hits_total") == 1
    assert moved("kubedns_cache_misses_total") == 4
    assert moved("kubedns_cache_insertions_total") == 3
    assert moved("kubedns_cache_entries") == 3
    assert moved("kubedns_cache_evictions_total") == 0
    assert after.get("kubedns_cache_capacity") == 500
    assert moved("kubedns_forward_requests_total", to=upstream.address) == 3
    assert moved("kubedns_forward_requests_total", to=closed) == 1
    assert moved("kubedns_forward_failures_total", to=closed) == 1
    assert moved("kubedns_forward_failures_total", to=upstream.address) == 0
    histogram = "kubedns_forward_request_duration_seconds_count"
    assert moved(histogram, to=upstream.address, rcode="NOERROR") == 2
    assert moved(histogram, to=upstream.address, rcode="NXDOMAIN") == 1
    assert moved(histogram, to=closed, rcode="error") == 1
    assert after.get("kubedns_forward_request_duration_seconds_bucket", to=upstream.address, le="+Inf") >= 3
    assert after.get("kubedns_forward_upstream_up", to=upstream.address) == 1
    assert after.get("kubedns_forward_inflight") == 0
    # The CHAOS view agrees with /metrics.
    assert chaos_number(port, "hits") == after.get("kubedns_cache_hits_total")
    assert chaos_number(port, "misses") == after.get("kubedns_cache_misses_total")


def test_every_counter_family_is_exported(running: Running) -> None:
    names = scrape(running.metrics_port).names()
    for family in (
        "kubedns_cache_deduplicated_total",
        "kubedns_cache_forward_rejected_total",
        "kubedns_cache_served_stale_total",
        "kubedns_cache_prefetch_total",
    ):
        assert family in names
