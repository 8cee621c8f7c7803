"""kube-dns's own series (SkyDNS's ``skydns_skydns_dns_*``), so dashboards made for kube-dns keep working.

Computed when scraped from what ``DnsStats`` counts; names, labels and buckets are kube-dns's. Its
``system`` is ``reverse`` for PTR questions and ``auth`` for the rest: serve answers everything itself
(kube-dns forwarded names outside its domain as ``recursive``; here the cache does that). kube-dns
counted every ``auth`` question as a miss of its response cache, which it ran disabled; so does this.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.buckets import cumulative
from kubedns_py.net.stats import (
    SKYDNS_DURATION_BUCKETS,
    SKYDNS_SIZE_BUCKETS,
    DnsStats,
    size_histogram,
)

PREFIX = "skydns_skydns_dns_"
SYSTEMS = ("auth", "reverse")
# kube-dns's error causes by rcode; truncation and overflow are not told apart from their rcode here.
CAUSES = {"NXDOMAIN": "nxdomain", "SERVFAIL": "servfail", "REFUSED": "refused"}


class SkyDnsCollector(Collector):
    def __init__(self, stats: DnsStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        counts = self._stats.counts()
        requests = CounterMetricFamily(
            PREFIX + "request_count", "Counter of DNS requests made.", labels=["system"]
        )
        errors = CounterMetricFamily(
            PREFIX + "error_count",
            "Counter of DNS requests resulting in an error.",
            labels=["system", "cause"],
        )
        by_system = dict.fromkeys(SYSTEMS, 0)
        by_cause: dict[tuple[str, str], int] = {}
        for (system, rcode), count in counts.responses.items():
            by_system[system] += count
            cause = CAUSES.get(rcode)
            if cause is not None:
                by_cause[system, cause] = by_cause.get((system, cause), 0) + count
        for system in SYSTEMS:
            requests.add_metric([system], by_system[system])
        for (system, cause), count in sorted(by_cause.items()):
            errors.add_metric([system, cause], count)
        yield requests
        duration = HistogramMetricFamily(
            PREFIX + "request_duration_seconds",
            "Histogram of the time (in seconds) each request took to resolve.",
            labels=["system"],
        )
        size = HistogramMetricFamily(
            PREFIX + "response_size_bytes", "Size of the returns response in bytes.", labels=["system"]
        )
        for system in SYSTEMS:
            buckets = counts.sky_buckets.get(system, [0] * (len(SKYDNS_DURATION_BUCKETS) + 1))
            duration.add_metric(
                [system], cumulative(SKYDNS_DURATION_BUCKETS, buckets), counts.sky_sums.get(system, 0.0)
            )
            sizes = ((b, n) for (_, s, b), n in counts.reply_sizes.items() if s == system)
            total = sum(n for (_, s), n in counts.reply_bytes.items() if s == system)
            size.add_metric(
                [system], cumulative(SKYDNS_SIZE_BUCKETS, size_histogram(SKYDNS_SIZE_BUCKETS, sizes)), total
            )
        yield duration
        yield size
        yield errors
        misses = CounterMetricFamily(
            PREFIX + "cachemiss_count",
            "Counter of DNS requests that result in a cache miss.",
            labels=["cache"],
        )
        misses.add_metric(["response"], by_system["auth"])
        yield misses
