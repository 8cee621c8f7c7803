"""``kubedns-py serve``: a source feeds the store, the zone reads it, the answerer answers on UDP and
TCP; readiness, liveness and metrics are served over HTTP.

Startup order matters for clients: the DNS ports open first and answer SERVFAIL for cluster names
until every source kind has finished its first list (a client must never cache a false NXDOMAIN), and
/readiness says 503 until then. A missing sync is logged after --initial-sync-timeout but never fatal:
restarting would not make the API server answer sooner.

With ``--workers N`` (``serve.pool``) this process runs the source and the HTTP side, and N worker
processes answer DNS.

Stopping: after the lame-duck period (/readiness 503, DNS still answered) UDP stops being read and TCP
stops accepting; queries already read over TCP are answered before the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py import __version__
from kubedns_py.cluster.store import Event, ServiceKey, Store
from kubedns_py.gcpause import GcPauses
from kubedns_py.net.http import bound_port, merged_metrics_handler, metrics_handler, start_http, text_handler
from kubedns_py.net.sockets import bind_dns_sockets, binding
from kubedns_py.ratelimit import SuppressedLines
from kubedns_py.serve.answering import Answering
from kubedns_py.serve.config import ServeConfig
from kubedns_py.serve.pool import ServePool
from kubedns_py.sources.base import Source

log = logging.getLogger("kubedns_py.serve")


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
        # --workers: the workers answer, this process feeds them (``serve.pool``).
        self.pool = ServePool(config, self.store) if config.workers > 1 else None
        self.answering = Answering(config, self.store, self.registry) if self.pool is None else None
        if self.pool is not None:
            self.registry.register(self.pool.supervisor)
        self.lameduck = config.lameduck
        self._draining = False
        self.registry.register(StoreCollector(self.store))
        self.gc_pauses = GcPauses()
        self._settling = False
        self.registry.register(self.gc_pauses)
        self._source = source
        self._http: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # The first sync builds a million long-lived objects, none in a reference cycle; the cycle
        # collector would rescan them all, again and again, as they grow (about half the sync time).
        # It is off until the sync is done; from then on what survives is frozen out of its sight.
        self.gc_pauses.install()
        gc.disable()
        self.store.subscribe(self._after_first_sync)
        host = self.config.dns_bind_address
        if self.pool is not None:
            port = self.pool.bind()
        else:
            assert self.answering is not None
            with binding(self.config.dns_port, "--dns-port"):
                udp, tcp = bind_dns_sockets(host, self.config.dns_port)
            await self.answering.start(udp, tcp)
            port = self.answering.port()
        await self._start_http()
        self._tasks.append(asyncio.create_task(self._run_source(), name="source"))
        self._tasks.append(asyncio.create_task(self._warn_if_unsynced(), name="sync-timeout"))
        if self.pool is not None:
            self.pool.start()
            await self.pool.supervisor.started()
        log.info(
            "serving %s on %s port %d (udp+tcp); health on port %d, metrics on port %d",
            self.config.domain,
            host,
            port,
            bound_port(self._http[0]),
            bound_port(self._http[-1]),
        )

    async def _start_http(self) -> None:
        http_host = self.config.http_bind_address
        health = {"/readiness": text_handler(self._readiness), "/healthz": text_handler(lambda: (True, "ok"))}
        if self.pool is not None:
            metrics = {"/metrics": merged_metrics_handler(self.registry, self.pool.supervisor.scrape)}
        else:
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

    def drain(self) -> None:
        self._draining = True

    async def stop(self) -> None:
        self._draining = True
        gc.enable()  # stopped before its first sync
        self.gc_pauses.uninstall()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pool is not None:
            await self.pool.stop()
        elif self.answering is not None:
            await self.answering.stop()
        for runner in self._http:
            await runner.cleanup()

    def _after_first_sync(self, _changed: frozenset[ServiceKey]) -> None:
        if self.store.synced and not self._settling:
            self._settling = True
            self.gc_pauses.settle_first()
            gc.enable()
            self._tasks.append(asyncio.create_task(self.gc_pauses.settle_periodically(), name="gc-settle"))
            if self.pool is not None:
                self.pool.start()  # workers with the whole store, in place of those forked before it

    def _readiness(self) -> tuple[bool, str]:
        if self._draining:
            return False, "shutting down"
        if not self.store.synced:
            return False, "waiting for the first sync of cluster data"
        if self.pool is not None and not self.pool.supervisor.ready:
            return False, "workers starting"
        return True, "ok"

    async def _run_source(self) -> None:
        """Run the source for ever: should it ever fail, answer from the data it last gave and start it
        again (it lists afresh, so nothing missed meanwhile stays missed)."""
        delay = 1.0
        while True:
            try:
                await self._source.run(self._apply)
            except Exception:
                log.exception("the cluster data source failed; restarting it in %.0fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _apply(self, events: Sequence[Event]) -> None:
        synced = self.store.synced
        if self.answering is not None:
            self.answering.apply(lambda: self.store.apply(events))
        else:
            self.store.apply(events)
        if synced and self.pool is not None:  # workers forked before the first sync need none
            self.pool.changed(events)

    async def _warn_if_unsynced(self) -> None:
        await asyncio.sleep(self.config.initial_sync_timeout)
        if not self.store.synced:
            gc.enable()  # failed attempts leave cycles; with no sync in sight they must be collected
            log.warning(
                "no complete sync after %.0fs; cluster names get SERVFAIL until it completes (still trying)",
                self.config.initial_sync_timeout,
            )
