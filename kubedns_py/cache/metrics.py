"""The cache's Prometheus metrics. Counters live as plain integers on the objects that own them (the
hot path pays nothing for metrics); this collector reads them at scrape time. Only the upstream
latency histogram is a prometheus_client object, fed on the miss path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.cache.configdir import ConfigDirWatcher
from kubedns_py.cache.forwarder import Forwarder
from kubedns_py.cache.frontend import Frontend
from kubedns_py.cache.resolver import Resolver
from kubedns_py.cache.responses import ResponseCache
from kubedns_py.cache.settings import Upstream
from kubedns_py.net.stats import DURATION_BUCKETS


def upstream_histogram(registry: CollectorRegistry) -> Callable[[Upstream, float, str], None]:
    histogram = Histogram(
        "kubedns_forward_request_duration_seconds",
        "Time an upstream took to answer (or to fail), by upstream and rcode.",
        ["to", "rcode"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    )

    def observe(upstream: Upstream, seconds: float, rcode: str) -> None:
        histogram.labels(str(upstream), rcode).observe(seconds)

    return observe


@dataclass(eq=False)  # registries key collectors by identity
class CacheCollector(Collector):
    cache: ResponseCache
    frontend: Frontend
    resolver: Resolver
    forwarder: Forwarder
    config_dir: ConfigDirWatcher | None

    def collect(self) -> Iterator[Metric]:
        counters = self.resolver.counters
        front = self.frontend.counters
        yield _counter("kubedns_cache_hits", "Questions answered from the cache.", front.hits)
        yield _counter("kubedns_cache_misses", "Questions the cache could not answer.", front.misses)
        yield _counter("kubedns_cache_insertions", "Replies stored.", self.cache.insertions)
        yield _counter("kubedns_cache_evictions", "Entries evicted to make room.", self.cache.evictions)
        yield _counter(
            "kubedns_cache_served_stale", "Expired entries served because upstreams failed.", counters.stale
        )
        yield _counter(
            "kubedns_cache_prefetch", "Popular entries refreshed before expiry.", counters.prefetches
        )
        yield _counter(
            "kubedns_cache_deduplicated",
            "Misses that joined an identical question already upstream.",
            counters.deduplicated,
        )
        yield GaugeMetricFamily("kubedns_cache_entries", "Entries in the cache.", value=len(self.cache))
        yield GaugeMetricFamily(
            "kubedns_cache_capacity", "The cache's capacity (--cache-size).", value=self.cache.size
        )
        budget = self.forwarder.budget
        rejected = CounterMetricFamily(
            "kubedns_cache_forward_rejected",
            "Misses answered SERVFAIL because their route had used its share of --dns-forward-max.",
            labels=["route"],
        )
        for share in budget.shares.values():
            rejected.add_metric([share.name], share.rejected)
        yield rejected
        yield GaugeMetricFamily(
            "kubedns_forward_inflight", "Upstream exchanges in flight.", value=budget.inflight
        )
        requests = CounterMetricFamily("kubedns_forward_requests", "Queries sent upstream.", labels=["to"])
        failures = CounterMetricFamily(
            "kubedns_forward_failures", "Upstream exchanges that failed.", labels=["to"]
        )
        up = GaugeMetricFamily(
            "kubedns_forward_upstream_up", "1 when an upstream is in service.", labels=["to"]
        )
        for client in self.forwarder.clients():
            name = str(client.upstream)
            requests.add_metric([name], client.health.queries)
            failures.add_metric([name], client.health.errors)
            up.add_metric([name], int(client.health.usable))
        yield requests
        yield failures
        yield up
        if self.config_dir is not None:
            yield _counter(
                "kubedns_cache_config_reloads", "ConfigMap changes applied.", self.config_dir.reloads
            )
            yield _counter(
                "kubedns_cache_config_reload_failures",
                "ConfigMap contents rejected as invalid.",
                self.config_dir.reload_failures,
            )


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
