"""The probe's metrics, under two sets of names, counted as plain numbers and turned into families when
scraped (the one way every component of kubedns-py declares its metrics).

The k8s-dns-sidecar's, so dashboards built for kube-dns keep working: a histogram
``<ns>_probe_<label>_latency_ms`` and an ``<ns>_probe_<label>_errors`` count per probe, and
``<ns>_dnsmasq_{hits,misses,evictions,insertions,max_size,errors}``. Those counts carry no ``_total``
suffix, which Prometheus reserves for counters, so they are exposed untyped with the exact old names
(rate() works on them as before). Beside them, labelled ones as Prometheus names them today:
``<ns>_probe_latency_seconds{probe}``, ``<ns>_probe_errors_total{probe}``, ``<ns>_probe_up{probe}``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.buckets import cumulative

# The sidecar's buckets: 0.25 ms doubling 16 times (to ~8 s), in milliseconds for the legacy histogram.
BUCKETS_MS = tuple(0.25 * 2**k for k in range(16))
BUCKETS_S = tuple(b / 1000 for b in BUCKETS_MS)
DNSMASQ_STATS = ("hits", "misses", "evictions", "insertions", "max_size")


@dataclass
class ProbeCounts:
    """One probe's runs: passing ones timed per bucket, failing ones counted, the last verdict."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))
    seconds: float = 0.0
    errors: int = 0
    up: bool = False


class ProbeMetrics(Collector):
    def __init__(self, registry: CollectorRegistry, namespace: str, labels: Sequence[str]) -> None:
        self.namespace = namespace
        self.probes = {label: ProbeCounts() for label in labels}
        self.dnsmasq = dict.fromkeys(DNSMASQ_STATS, 0.0)
        self.dnsmasq_errors = 0
        registry.register(self)

    def probed(self, label: str, ok: bool, seconds: float) -> None:
        counts = self.probes[label]
        if ok:
            counts.buckets[bisect_left(BUCKETS_MS, seconds * 1000)] += 1
            counts.seconds += seconds
        else:
            counts.errors += 1
        counts.up = ok

    def collect(self) -> Iterator[Metric]:
        ns = self.namespace
        for label, counts in self.probes.items():
            legacy = HistogramMetricFamily(
                f"{ns}_probe_{label}_latency_ms", f"Latency of the {label} probe in milliseconds."
            )
            legacy.add_metric([], cumulative(BUCKETS_MS, counts.buckets), counts.seconds * 1000)
            yield legacy
            yield _untyped(f"{ns}_probe_{label}_errors", f"Failed {label} probes.", counts.errors)
        for stat, value in self.dnsmasq.items():
            yield _untyped(f"{ns}_dnsmasq_{stat}", f"The cache's {stat} (from CHAOS {stat}.bind).", value)
        yield _untyped(f"{ns}_dnsmasq_errors", "Failed polls of the cache's statistics.", self.dnsmasq_errors)
        latency = HistogramMetricFamily(f"{ns}_probe_latency_seconds", "Probe latency.", labels=["probe"])
        errors = CounterMetricFamily(f"{ns}_probe_errors", "Failed probes.", labels=["probe"])
        up = GaugeMetricFamily(f"{ns}_probe_up", "1 when the probe's last run passed.", labels=["probe"])
        for label, counts in self.probes.items():
            latency.add_metric([label], cumulative(BUCKETS_S, counts.buckets), counts.seconds)
            errors.add_metric([label], counts.errors)
            up.add_metric([label], int(counts.up))
        yield from (latency, errors, up)


def _untyped(name: str, documentation: str, value: float) -> Metric:
    metric = Metric(name, documentation, "unknown")
    metric.add_sample(name, {}, value)
    return metric
