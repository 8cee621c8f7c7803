"""The cache's part of ``--coredns-metrics``: CoreDNS's ``cache`` and ``forward`` plugin series, read
from the cache's own counters when scraped (the core series come from ``net.coredns``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.cache.forward.forwarder import Forwarder
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.metrics.collector import UpstreamDurations
from kubedns_py.cache.resolve.resolver import Resolver
from kubedns_py.cache.store.cache import ResponseCache
from kubedns_py.dnswire import header
from kubedns_py.dnswire.header import rcode_name
from kubedns_py.net.coredns import VIEW, ZONE, server_label, to_label
from kubedns_py.net.stats import DnsStats

NXDOMAIN = rcode_name(header.NXDOMAIN)


@dataclass(eq=False)  # registries key collectors by identity
class CoreDnsCacheCollector(Collector):
    port: Callable[[], int]
    cache: ResponseCache
    frontend: Frontend
    resolver: Resolver
    forwarder: Forwarder
    stats: DnsStats
    durations: UpstreamDurations

    def collect(self) -> Iterator[Metric]:
        where, labels = [server_label(self.port()), ZONE, VIEW], ["server", "zones", "view"]
        entries = GaugeMetricFamily(
            "coredns_cache_entries", "The number of elements in the cache.", labels=[*labels, "type"]
        )
        success = sum(1 for e in list(self.cache.index.values()) if e.rcode == 0 and e.counts[0])
        entries.add_metric([*where, "success"], success)
        entries.add_metric([*where, "denial"], len(self.cache) - success)
        yield entries
        front = self.frontend.counters
        # Denials served on the fast path, counted by their tallies; other hits count as successes.
        denied = sum(t.hits for t in self.stats.tallies() if t.rcode == NXDOMAIN)
        hits = CounterMetricFamily("coredns_cache_hits", "The count of cache hits.", labels=[*labels, "type"])
        hits.add_metric([*where, "success"], front.hits - denied)
        hits.add_metric([*where, "denial"], denied)
        yield hits
        yield _counter("coredns_cache_misses", "The count of cache misses.", where, front.misses)
        yield _counter(
            "coredns_cache_requests", "The count of cache requests.", where, front.hits + front.misses
        )
        counters = self.resolver.counters
        yield _counter(
            "coredns_cache_prefetch",
            "The number of times the cache has prefetched a cached item.",
            where,
            counters.prefetches,
        )
        yield _counter(
            "coredns_cache_served_stale",
            "The number of requests served from stale cache entries.",
            where,
            counters.stale,
        )
        evictions = CounterMetricFamily(
            "coredns_cache_evictions", "The count of cache evictions.", labels=[*labels, "type"]
        )
        evictions.add_metric([*where, "success"], self.cache.evictions)
        yield evictions
        requests = CounterMetricFamily(
            "coredns_forward_requests", "Counter of requests made per upstream.", labels=["to"]
        )
        failures = CounterMetricFamily(
            "coredns_forward_healthcheck_failures",
            "Counter of the number of failed healthchecks.",
            labels=["to"],
        )
        proxy_failures = CounterMetricFamily(
            "coredns_proxy_healthcheck_failures",
            "Count of failed health checks per upstream.",
            labels=["proxy_name", "to"],
        )
        for client in self.forwarder.clients():
            to = to_label(str(client.upstream))
            requests.add_metric([to], client.health.queries)
            failures.add_metric([to], client.health.errors)
            proxy_failures.add_metric(["forward", to], client.health.errors)
        yield requests
        yield failures
        yield proxy_failures
        rejected = sum(share.rejected for share in self.forwarder.budget.shares.values())
        yield CounterMetricFamily(
            "coredns_forward_max_concurrent_rejects",
            "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            value=rejected,
        )
        # The upstream latencies under forward's name before CoreDNS 1.11 (which the coredns-mixin
        # reads) and proxy's since, and the responses they count.
        yield self.durations.histogram("coredns_forward_request_duration_seconds", to_label)
        yield self.durations.histogram(
            "coredns_proxy_request_duration_seconds", to_label, proxy_name="forward"
        )
        responses = CounterMetricFamily(
            "coredns_forward_responses", "Counter of responses received per upstream.", labels=["to", "rcode"]
        )
        for to, rcode, count in self.durations.counts():
            responses.add_metric([to_label(to), rcode], count)
        yield responses
        autopath = self.frontend.autopath
        if autopath is not None:
            autopathed = CounterMetricFamily(
                "coredns_autopath_success",
                "Counter of requests that did autopath.",
                labels=["server"],
            )
            autopathed.add_metric([where[0]], autopath.counters.shortened)
            yield autopathed


def _counter(name: str, documentation: str, where: list[str], value: int) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["server", "zones", "view"])
    family.add_metric(where, value)
    return family
