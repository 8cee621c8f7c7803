"""Prometheus metrics of the Kubernetes API source, all named ``kubedns_kubernetes_*``.

The programming-latency histogram matches CoreDNS's ``coredns_kubernetes_dns_programming_duration_seconds``
(same buckets, same ``service_kind`` values) so its dashboards and SLO rules carry over.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.buckets import cumulative
from kubedns_py.cluster.objects import EndpointSet, Kind, Service
from kubedns_py.cluster.store import Delete, Event, Replace, Upsert

PROGRAMMING = "kubedns_kubernetes_dns_programming_duration_seconds"
PROGRAMMING_BUCKETS = tuple(0.001 * 2**i for i in range(20))  # 1 ms doubling up to ~9 min
SERVICE_KINDS = ("cluster_ip", "headless_with_selector")


class KubeMetrics(Collector):
    """Plain counts kept by the reflectors, turned into families when scraped."""

    def __init__(
        self, registry: CollectorRegistry, last_contact: Callable[[], float | None], coredns_names: bool
    ) -> None:
        self._started = time.time()
        self._programming_names = [PROGRAMMING]
        if coredns_names:  # the same histogram for CoreDNS's dashboards and SLO rules
            self._programming_names.append("coredns_kubernetes_dns_programming_duration_seconds")
        self._last_contact_any = last_contact
        self.watch_events: Counter[tuple[str, str]] = Counter()  # (resource, event type)
        self.relists: Counter[str] = Counter()
        self.reconnects: Counter[str] = Counter()
        self.last_contact: dict[str, float] = {}
        # Exported at zero from the start: a series born at its first observation shows Prometheus no
        # increase, so the first endpoint change after a restart would not reach rate() or the dashboard.
        self._programming = {kind: [0] * (len(PROGRAMMING_BUCKETS) + 1) for kind in SERVICE_KINDS}
        self._programming_sums = dict.fromkeys(SERVICE_KINDS, 0.0)
        registry.register(self)

    def add_resource(self, resource: str) -> None:
        """Create a resource's series at zero, so they exist before the first failure."""
        self.relists[resource] += 0
        self.reconnects[resource] += 0

    def count_events(self, resource: str, types: Mapping[str, int]) -> None:
        for event_type, count in types.items():
            self.watch_events[resource, event_type] += count

    def observe_programming(self, service_kind: str, trigger_time: str, now: float) -> None:
        try:
            changed = datetime.fromisoformat(trigger_time).timestamp()
        except ValueError:
            return
        seconds = max(0.0, now - changed)
        self._programming[service_kind][bisect_left(PROGRAMMING_BUCKETS, seconds)] += 1
        self._programming_sums[service_kind] += seconds

    def collect(self) -> Iterator[Metric]:
        return self._families(time.time() - (self._last_contact_any() or self._started))

    def _families(self, since_last_contact: float) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "kubedns_kubernetes_watch_events",
            "Watch events received from the API server, by resource and event type.",
            labels=["resource", "type"],
        )
        for (resource, event_type), count in sorted(self.watch_events.items()):
            events.add_metric([resource, event_type], count)
        yield events
        yield _by_resource(
            "kubedns_kubernetes_relists",
            "LISTs after the first one of a resource (410 Gone: the watch fell too far behind; or the "
            "server went back below our resourceVersion).",
            self.relists,
        )
        yield _by_resource(
            "kubedns_kubernetes_reconnects",
            "Failed, stalled or restarted LIST/WATCH requests, each retried after a backoff.",
            self.reconnects,
        )
        contact = GaugeMetricFamily(
            "kubedns_kubernetes_last_contact_timestamp_seconds",
            "Unix time of the last successful answer (LIST page, watch event or bookmark) per resource.",
            labels=["resource"],
        )
        for resource, stamp in sorted(self.last_contact.items()):
            contact.add_metric([resource], stamp)
        yield contact
        yield GaugeMetricFamily(
            "kubedns_kubernetes_since_last_contact_seconds",
            "Seconds since the last successful answer from the API server (since start-up if none yet).",
            value=since_last_contact,
        )
        for name in self._programming_names:
            programming = HistogramMetricFamily(
                name,
                "From an endpoint change (the last-change-trigger-time annotation) to its arrival in DNS.",
                labels=["service_kind"],
            )
            for kind, buckets in self._programming.items():
                sums = self._programming_sums[kind]
                programming.add_metric([kind], cumulative(PROGRAMMING_BUCKETS, buckets), sums)
            yield programming


def _by_resource(name: str, documentation: str, counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["resource"])
    for resource, count in sorted(counts.items()):
        family.add_metric([resource], count)
    return family


class ProgrammingLatency:
    """Reads the events of every resource as they go to the store: remembers which services are
    headless (the ``service_kind`` label) and times each endpoint change that a watch delivers (an
    ``Upsert``; what a LIST delivers is old news)."""

    def __init__(self, metrics: KubeMetrics) -> None:
        self._metrics = metrics
        self._headless: set[tuple[str, str]] = set()

    def observe(self, events: Sequence[Event]) -> None:
        now = time.time()
        for event in events:
            match event:
                case Replace(kind=Kind.SERVICE, objects=objects):
                    self._headless = {
                        (s.namespace, s.name) for s in objects if isinstance(s, Service) and s.headless
                    }
                case Upsert(obj=Service() as service) if service.headless:
                    self._headless.add((service.namespace, service.name))
                case Upsert(obj=Service() as service):
                    self._headless.discard((service.namespace, service.name))
                case Delete(kind=Kind.SERVICE, namespace=namespace, name=name):
                    self._headless.discard((namespace, name))
                case Upsert(obj=EndpointSet(trigger_time=str(trigger), service=str(service)) as endpoints):
                    headless = (endpoints.namespace, service) in self._headless
                    kind = SERVICE_KINDS[1] if headless else SERVICE_KINDS[0]
                    self._metrics.observe_programming(kind, trigger, now)
