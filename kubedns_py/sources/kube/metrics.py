"""Prometheus metrics of the Kubernetes API source, all named ``kubedns_kubernetes_*``.

The programming-latency histogram matches CoreDNS's ``coredns_kubernetes_dns_programming_duration_seconds``
(same buckets, same ``service_kind`` values) so its dashboards and SLO rules carry over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubedns_py.cluster.objects import EndpointSet, Kind, Service
from kubedns_py.cluster.store import Delete, Event, Replace, Upsert

PROGRAMMING_BUCKETS = tuple(0.001 * 2**i for i in range(20))  # 1 ms doubling up to ~9 min
SERVICE_KINDS = ("cluster_ip", "headless_with_selector")


class KubeMetrics:
    def __init__(self, registry: CollectorRegistry, last_contact: Callable[[], float | None]) -> None:
        started = time.time()
        self.watch_events = Counter(
            "kubedns_kubernetes_watch_events",
            "Watch events received from the API server, by resource and event type.",
            ("resource", "type"),
            registry=registry,
        )
        self.relists = Counter(
            "kubedns_kubernetes_relists",
            "LISTs after the first one of a resource (410 Gone: the watch fell too far behind).",
            ("resource",),
            registry=registry,
        )
        self.reconnects = Counter(
            "kubedns_kubernetes_reconnects",
            "Failed or stalled LIST/WATCH requests, each retried after a backoff.",
            ("resource",),
            registry=registry,
        )
        self.last_contact = Gauge(
            "kubedns_kubernetes_last_contact_timestamp_seconds",
            "Unix time of the last successful answer (LIST page, watch event or bookmark) per resource.",
            ("resource",),
            registry=registry,
        )
        since = Gauge(
            "kubedns_kubernetes_since_last_contact_seconds",
            "Seconds since the last successful answer from the API server (since start-up if none yet).",
            registry=registry,
        )
        since.set_function(lambda: time.time() - (last_contact() or started))
        self.programming = Histogram(
            "kubedns_kubernetes_dns_programming_duration_seconds",
            "From an endpoint change (the last-change-trigger-time annotation) to its arrival in DNS.",
            ("service_kind",),
            buckets=PROGRAMMING_BUCKETS,
            registry=registry,
        )
        # Exported at zero from the start: a series born at its first observation shows Prometheus no
        # increase, so the first endpoint change after a restart would not reach rate() or the dashboard.
        for kind in SERVICE_KINDS:
            self.programming.labels(kind)

    def add_resource(self, resource: str) -> None:
        """Create a resource's series at zero, so they exist before the first failure."""
        self.relists.labels(resource)
        self.reconnects.labels(resource)

    def count_events(self, resource: str, types: Mapping[str, int]) -> None:
        for event_type, count in types.items():
            self.watch_events.labels(resource, event_type).inc(count)

    def observe_programming(self, service_kind: str, trigger_time: str, now: float) -> None:
        try:
            changed = datetime.fromisoformat(trigger_time).timestamp()
        except ValueError:
            return
        self.programming.labels(service_kind).observe(max(0.0, now - changed))


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
