"""``KubeSource``: which resources to follow, a reflector for each, and a watchdog over them all.

Services, EndpointSlices or v1 Endpoints (discovery decides in ``auto`` mode), Namespaces, and with
``--pods=verified`` the Pods that are not finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry

from kubedns_py.cluster.objects import Kind
from kubedns_py.cluster.store import Event, Replace, Synced
from kubedns_py.ratelimit import RateLimitedLog
from kubedns_py.sources.base import ApplyEvents
from kubedns_py.sources.kube.client import Api, KubeSettings, client_configuration, log, session
from kubedns_py.sources.kube.metrics import KubeMetrics, ProgrammingLatency
from kubedns_py.sources.kube.reflector import Reflector, Resource, backoff_delay
from kubedns_py.sources.kube.watchdog import Watchdog

T = TypeVar("T")

SERVICES = Resource(Kind.SERVICE, "services", "/api/v1/services")
ENDPOINT_SLICES = Resource(Kind.ENDPOINT_SLICE, "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices")
ENDPOINTS = Resource(Kind.ENDPOINTS, "endpoints", "/api/v1/endpoints")
NAMESPACES = Resource(Kind.NAMESPACE, "namespaces", "/api/v1/namespaces")
# Finished pods keep their IP in the API but must not answer `verified` pod queries (as in CoreDNS).
_LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
PODS = Resource(Kind.POD, "pods", "/api/v1/pods", _LIVE_PODS)


class KubeSource:
    """A ``Source`` fed by the Kubernetes API (``kubedns_py.sources.base.Source``)."""

    def __init__(self, settings: KubeSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = KubeMetrics(registry, lambda: self.last_contact, settings.coredns_metrics)
        self.limited = RateLimitedLog(log)  # what the API sends: bad objects, failing watches
        self._reflectors: list[Reflector] = []

    @property
    def kinds(self) -> frozenset[Kind]:
        """With ``endpoints_api="auto"`` both endpoint kinds: the one the cluster does not serve is
        delivered as an empty ``Replace`` + ``Synced`` once discovery has decided."""
        kinds = {Kind.SERVICE, Kind.NAMESPACE}
        if self.settings.endpoints_api != "endpoints":
            kinds.add(Kind.ENDPOINT_SLICE)
        if self.settings.endpoints_api != "endpointslices":
            kinds.add(Kind.ENDPOINTS)
        if self.settings.watch_pods:
            kinds.add(Kind.POD)
        return frozenset(kinds)

    @property
    def last_contact(self) -> float | None:
        """Unix time of the last successful answer from the API server, if any."""
        return max((r.last_contact for r in self._reflectors if r.last_contact is not None), default=None)

    @property
    def connected(self) -> bool:
        """Every resource is listed and its watch is open (none is failing or backing off)."""
        return bool(self._reflectors) and all(r.healthy for r in self._reflectors)

    async def run(self, apply: ApplyEvents) -> None:
        configuration, loader = await self._retry(
            "loading the client configuration", lambda: client_configuration(self.settings)
        )
        latency = ProgrammingLatency(self.metrics)

        def sink(events: Sequence[Event]) -> None:
            apply(events)
            latency.observe(events)  # after apply: the latency runs until the store has the change

        async with session(self.settings, configuration, loader) as api, asyncio.TaskGroup() as tasks:
            endpoints = await self._retry("API discovery", lambda: self._endpoints_resource(api))
            unused = (self.kinds & {Kind.ENDPOINT_SLICE, Kind.ENDPOINTS}) - {endpoints.kind}
            if unused:
                apply([event for kind in unused for event in (Replace(kind, ()), Synced(kind))])
            resources = [SERVICES, endpoints, NAMESPACES] + ([PODS] if self.settings.watch_pods else [])
            for resource in resources:
                reflector = Reflector(api, resource, self.settings, sink, self.metrics, self.limited)
                self._reflectors.append(reflector)
                tasks.create_task(reflector.run())
            watchdog = Watchdog(api, NAMESPACES.path, self._reflectors, self.settings, self.limited)
            tasks.create_task(watchdog.run())

    async def _retry(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await action()
            except Exception as exc:  # config and discovery trouble is logged and retried, never raised
                delay = backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
                attempt += 1
                self.limited.warning(
                    f"retry {what}", "kubernetes: %s failed (%s); retrying in %.1fs", what, exc, delay
                )
                await asyncio.sleep(delay)

    async def _endpoints_resource(self, api: Api) -> Resource:
        if self.settings.endpoints_api != "auto":
            return ENDPOINT_SLICES if self.settings.endpoints_api == "endpointslices" else ENDPOINTS
        served = await api.served("discovery.k8s.io/v1")
        if served is None:
            log.info("kubernetes: discovery.k8s.io/v1 is not served; watching v1 Endpoints")
            return ENDPOINTS
        return ENDPOINT_SLICES if "endpointslices" in served else ENDPOINTS
