"""The cache's Prometheus metrics, all computed when scraped: counters live as plain integers on the
objects that own them and upstream latencies as per-bucket counts (``UpstreamDurations``), so the hot
path pays nothing for metrics and the miss path a bisect. CoreDNS's names for the same numbers are in
``coredns_metrics``."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.buckets import cumulative
from kubedns_py.cache.configmap import ConfigDirWatcher
from kubedns_py.cache.forward.forwarder import Forwarder
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.resolve.autopath import AutopathCounters
from kubedns_py.cache.resolve.resolver import Resolver
from kubedns_py.cache.store.cache import ResponseCache
from kubedns_py.net.stats import DURATION_BUCKETS

FORWARD_DURATION = "kubedns_forward_request_duration_seconds"
FORWARD_DURATION_HELP = "Time an upstream took to answer (or to fail), by upstream and rcode."


class UpstreamDurations:
    """How long upstream exchanges took, by (upstream, rcode name or "error"): counts per bucket of
    ``DURATION_BUCKETS`` and their sum. The forwarder's observer is ``observe``."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}

    def observe(self, upstream: str, seconds: float, rcode: str) -> None:
        key = (upstream, rcode)
        buckets = self._buckets.get(key)
        if buckets is None:
            buckets = self._buckets[key] = [0] * (len(DURATION_BUCKETS) + 1)
        buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._sums[key] = self._sums.get(key, 0.0) + seconds

    def counts(self) -> list[tuple[str, str, int]]:
        """(upstream, rcode, exchanges) for each pair seen."""
        return [(to, rcode, sum(buckets)) for (to, rcode), buckets in list(self._buckets.items())]

    def histogram(
        self, name: str, spell: Callable[[str], str] = str, **constant: str
    ) -> HistogramMetricFamily:
        """The family ``name`` with labels ``to`` (an upstream as ``spell`` writes it) and ``rcode``,
        after any ``constant`` ones."""
        family = HistogramMetricFamily(name, FORWARD_DURATION_HELP, labels=[*constant, "to", "rcode"])
        for (to, rcode), buckets in list(self._buckets.items()):
            family.add_metric(
                [*constant.values(), spell(to), rcode],
                cumulative(DURATION_BUCKETS, buckets),
                self._sums[(to, rcode)],
            )
        return family


@dataclass(eq=False)  # registries key collectors by identity
class CacheCollector(Collector):
    cache: ResponseCache
    frontend: Frontend
    resolver: Resolver
    forwarder: Forwarder
    config_dir: ConfigDirWatcher | None
    durations: UpstreamDurations
    overflowed: Callable[[], int]  # UDP queries dropped because the event loop had too many waiting

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
        yield _counter(
            "kubedns_cache_dropped_queries",
            "UDP queries dropped unanswered because the event loop had too many of them waiting.",
            self.overflowed(),
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
        yield self.durations.histogram(FORWARD_DURATION)
        autopath = self.frontend.autopath
        # Zeros without --autopath, so that one dashboard serves caches with and without it.
        found = autopath.counters if autopath is not None else AutopathCounters()
        yield _counter(
            "kubedns_cache_autopath_shortened",
            "First search-path questions answered with what the client's search finds (a CNAME).",
            found.shortened,
        )
        yield _counter(
            "kubedns_cache_autopath_missing",
            "First search-path questions walked to the end: no candidate exists (NXDOMAIN).",
            found.missing,
        )
        yield _counter(
            "kubedns_cache_autopath_candidates",
            "Search-path candidates autopath looked up (in the cache or upstream).",
            found.candidates,
        )
        fallbacks = CounterMetricFamily(
            "kubedns_cache_autopath_fallbacks",
            "First search-path questions given their plain answer, by why.",
            labels=["reason"],
        )
        for reason, count in found.fallbacks.items():
            fallbacks.add_metric([reason.value], count)
        yield fallbacks
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
