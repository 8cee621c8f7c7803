"""``kubedns-py serve``: a source feeds the store, the zone reads it, the answerer answers on UDP and
TCP; readiness, liveness and metrics are served over HTTP.

Startup order matters for clients: the DNS ports open first and answer SERVFAIL for cluster names
until every source kind has finished its first list (a client must never cache a false NXDOMAIN), and
/readiness says 503 until then. A missing sync is logged after --initial-sync-timeout but never fatal:
restarting would not make the API server answer sooner.

Stopping: after the lame-duck period (/readiness 503, DNS still answered) UDP stops being read and TCP
stops accepting; queries already read over TCP are answered before the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py import __version__
from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.store import ServiceKey, Store
from kubedns_py.cluster.zone import Zone
from kubedns_py.gcpause import GcPauses
from kubedns_py.net.acl import ClientAcl, RefusedClients, parse_networks
from kubedns_py.net.connections import TcpConnections
from kubedns_py.net.coredns import CoreDnsCollector
from kubedns_py.net.http import bound_port, metrics_handler, start_http, text_handler
from kubedns_py.net.sockets import bind_dns_sockets, binding
from kubedns_py.net.stats import DnsStats
from kubedns_py.net.tcp import TcpServer
from kubedns_py.net.udp import UdpServer
from kubedns_py.ratelimit import SuppressedLines
from kubedns_py.serve.answerer import Answerer
from kubedns_py.serve.config import ServeConfig
from kubedns_py.serve.skydns import SkyDnsCollector
from kubedns_py.sources.base import Source

log = logging.getLogger("kubedns_py.serve")
LOOPBACK = ("127.0.0.0/8", "::1/128")


class StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        objects = GaugeMetricFamily("kubedns_store_objects", "Objects held by the store.", labels=["kind"])
        for kind, count in sorted(self._store.counts().items()):
            objects.add_metric([kind], count)
        yield objects
        yield GaugeMetricFamily(
            "kubedns_zone_serial", "SOA serial of the cluster zone.", value=self._store.serial
        )
        yield GaugeMetricFamily(
            "kubedns_store_synced",
            "1 once every source kind finished its first list.",
            value=int(self._store.synced),
        )
        yield GaugeMetricFamily(
            "kubedns_store_last_change_timestamp_seconds",
            "When DNS-visible data last changed (unix time).",
            value=self._store.last_change,
        )
        info = GaugeMetricFamily("kubedns_build_info", "Build information (always 1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


class ServeApp:
    def __init__(
        self, config: ServeConfig, source: Source, registry: CollectorRegistry | None = None
    ) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory and CPU for the dashboard
        self.registry.register(SuppressedLines())
        self.store = Store(required=source.kinds)
        self.zone = Zone(self.store, config.domain, config.ttl, config.pods)
        self.stats = DnsStats("serve")
        self.acl = ClientAcl(config.allow_from) if config.allow_from else None
        # Autopath records name the namespace of each Pod's address: only for the caches, which
        # are --allow-from's clients, or without it, the pod's own cache on loopback.
        readers = ClientAcl(config.allow_from or parse_networks(LOOPBACK))
        wire = WireZone(self.zone, self.store)
        self.answerer = Answerer(self.zone, wire, self.stats, self.acl, readers)
        self.registry.register(self.stats)
        self.registry.register(self.answerer)
        self.registry.register(SkyDnsCollector(self.stats))
        self.registry.register(RefusedClients("serve", self.acl))
        self.lameduck = config.lameduck
        self._draining = False
        self.registry.register(StoreCollector(self.store))
        if config.coredns_metrics:
            self._coredns_metrics()
        self.gc_pauses = GcPauses()
        self._settling = False
        self.registry.register(self.gc_pauses)
        self.tcp_connections = TcpConnections("serve", config.tcp_max_connections, config.tcp_max_per_client)
        self.registry.register(self.tcp_connections)
        self._source = source
        self._udp: UdpServer | None = None
        self._tcp = TcpServer(self.answerer.answer_tcp, self.tcp_connections)
        self._http: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _coredns_metrics(self) -> None:
        def dns_port() -> int:
            return self._udp.port if self._udp is not None else self.config.dns_port

        self.registry.register(
            CoreDnsCollector(self.stats, dns_port, self.config.dns_bind_address, "kubernetes")
        )

    async def start(self) -> None:
        # The first sync builds a million long-lived objects, none in a reference cycle; the cycle
        # collector would rescan them all, again and again, as they grow (about half the sync time).
        # It is off until the sync is done; from then on what survives is frozen out of its sight.
        self.gc_pauses.install()
        gc.disable()
        self.store.subscribe(self._after_first_sync)
        host = self.config.dns_bind_address
        with binding(self.config.dns_port, "--dns-port"):
            udp, tcp = bind_dns_sockets(host, self.config.dns_port)
        self._udp = UdpServer(udp, self.answerer.udp_handler())
        self.stats.malformed_counted_by("oversized", lambda: self._udp.oversized if self._udp else 0)
        await self._tcp.start(tcp)
        self._tasks.append(asyncio.create_task(self._run_source(), name="source"))
        self._tasks.append(asyncio.create_task(self._warn_if_unsynced(), name="sync-timeout"))
        http_host = self.config.http_bind_address
        health = {"/readiness": text_handler(self._readiness), "/healthz": text_handler(lambda: (True, "ok"))}
        metrics = {"/metrics": metrics_handler(self.registry)}
        healthz, metrics_port = self.config.healthz_port, self.config.metrics_port
        if healthz == metrics_port and healthz != 0:
            with binding(healthz, "--healthz-port and --metrics-port"):
                self._http.append(await start_http(http_host, healthz, health | metrics))
        else:
            with binding(healthz, "--healthz-port"):
                self._http.append(await start_http(http_host, healthz, health))
            with binding(metrics_port, "--metrics-port or $PROMETHEUS_PORT"):
                self._http.append(await start_http(http_host, metrics_port, metrics))
        log.info(
            "serving %s on %s port %d (udp+tcp); health on port %d, metrics on port %d",
            self.config.domain,
            host,
            self._udp.port,
            bound_port(self._http[0]),
            bound_port(self._http[-1]),
        )

    def drain(self) -> None:
        self._draining = True

    async def stop(self) -> None:
        self._draining = True
        gc.enable()  # stopped before its first sync
        self.gc_pauses.uninstall()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()
        await self._tcp.close()
        for runner in self._http:
            await runner.cleanup()

    def _after_first_sync(self, _changed: frozenset[ServiceKey]) -> None:
        if self.store.synced and not self._settling:
            self._settling = True
            self.gc_pauses.settle_first()
            gc.enable()
            self._tasks.append(asyncio.create_task(self.gc_pauses.settle_periodically(), name="gc-settle"))

    def _readiness(self) -> tuple[bool, str]:
        if self._draining:
            return False, "shutting down"
        return (True, "ok") if self.store.synced else (False, "waiting for the first sync of cluster data")

    async def _run_source(self) -> None:
        """Run the source for ever: should it ever fail, answer from the data it last gave and start it
        again (it lists afresh, so nothing missed meanwhile stays missed)."""
        delay = 1.0
        while True:
            try:
                await self._source.run(self.store.apply)
            except Exception:
                log.exception("the cluster data source failed; restarting it in %.0fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _warn_if_unsynced(self) -> None:
        await asyncio.sleep(self.config.initial_sync_timeout)
        if not self.store.synced:
            gc.enable()  # failed attempts leave cycles; with no sync in sight they must be collected
            log.warning(
                "no complete sync after %.0fs; cluster names get SERVFAIL until it completes (still trying)",
                self.config.initial_sync_timeout,
            )
