"""The probe's metrics, under two sets of names.

The k8s-dns-sidecar's, so dashboards built for kube-dns keep working: a histogram
``<ns>_probe_<label>_latency_ms`` and an ``<ns>_probe_<label>_errors`` count per probe, and
``<ns>_dnsmasq_{hits,misses,evictions,insertions,max_size,errors}``. Those counts carry no ``_total``
suffix, which prometheus_client insists on for counters, so they are exposed as untyped samples with the
exact old names (rate() works on them as before). Beside them, labelled ones as Prometheus names them
today: ``<ns>_probe_latency_seconds{probe}``, ``<ns>_probe_errors_total{probe}``, ``<ns>_probe_up{probe}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

# The sidecar's buckets: 0.25 ms doubling 16 times (to ~8 s), in milliseconds for the legacy histogram.
BUCKETS_MS = tuple(0.25 * 2**k for k in range(16))
BUCKETS_S = tuple(b / 1000 for b in BUCKETS_MS)
DNSMASQ_STATS = ("hits", "misses", "evictions", "insertions", "max_size")


class LegacyCounts(Collector):
    """Plain monotonic counts exposed as untyped samples under fixed names."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.help: dict[str, str] = {}

    def declare(self, name: str, documentation: str) -> None:
        self.values.setdefault(name, 0.0)
        self.help[name] = documentation

    def add(self, name: str, amount: float = 1.0) -> None:
        self.values[name] += amount

    def collect(self) -> Iterator[Metric]:
        for name, value in self.values.items():
            metric = Metric(name, self.help[name], "unknown")
            metric.add_sample(name, {}, value)
            yield metric


class ProbeMetrics:
    def __init__(self, registry: CollectorRegistry, namespace: str, labels: Sequence[str]) -> None:
        self.namespace = namespace
        self.legacy = LegacyCounts()
        registry.register(self.legacy)
        self._legacy_latency = {
            label: Histogram(
                f"{namespace}_probe_{label}_latency_ms",
                f"Latency of the {label} probe in milliseconds.",
                buckets=BUCKETS_MS,
                registry=registry,
            )
            for label in labels
        }
        for label in labels:
            self.legacy.declare(f"{namespace}_probe_{label}_errors", f"Failed {label} probes.")
        for stat in DNSMASQ_STATS:
            self.legacy.declare(
                f"{namespace}_dnsmasq_{stat}", f"The cache's {stat} (from CHAOS {stat}.bind)."
            )
        self.legacy.declare(f"{namespace}_dnsmasq_errors", "Failed polls of the cache's statistics.")
        self.latency = Histogram(
            f"{namespace}_probe_latency_seconds",
            "Probe latency.",
            ["probe"],
            buckets=BUCKETS_S,
            registry=registry,
        )
        self.errors = Counter(f"{namespace}_probe_errors", "Failed probes.", ["probe"], registry=registry)
        self.up = Gauge(
            f"{namespace}_probe_up", "1 when the probe's last run passed.", ["probe"], registry=registry
        )
        for label in labels:
            self.errors.labels(label)
            self.up.labels(label).set(0)

    def probed(self, label: str, ok: bool, seconds: float) -> None:
        if ok:
            self._legacy_latency[label].observe(seconds * 1000)
            self.latency.labels(label).observe(seconds)
        else:
            self.legacy.add(f"{self.namespace}_probe_{label}_errors")
            self.errors.labels(label).inc()
        self.up.labels(label).set(int(ok))
