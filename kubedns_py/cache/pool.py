"""``kubedns-py cache --workers N``: N cache processes on one port (``net.workers``).

The supervisor binds every worker's sockets (SO_REUSEPORT; a first plain bind fails, as without
workers, when another program holds the port), serves /metrics (every worker's series summed),
/healthz and /readiness (200 once every worker answers), and passes the workers' statistics around:
each worker reports its CHAOS counters when they change, at most every ``REPORT_EVERY`` seconds, and
answers ``hits.bind`` and the rest with its own plus the others' last reports. A loop-detection probe
that comes back to any worker takes that upstream out of service in all of them.

Each worker has its own response cache of ``--cache-size`` entries (a client's questions reach
several workers, so a smaller share each would lower every worker's hit rate), and its share of
``--dns-forward-max`` and ``--tcp-max-connections``, so that the pod's totals stay what the flags say.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Iterator
from dataclasses import replace

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from kubedns_py.cache.app import CacheApp, WorkerSetup
from kubedns_py.cache.flags import CacheConfig
from kubedns_py.cache.front.chaos import ChaosCounts
from kubedns_py.cache.servers import StaticServers, frozen
from kubedns_py.lifecycle import cancelled
from kubedns_py.net.http import Handler, bound_port, merged_metrics_handler, start_http, text_handler
from kubedns_py.net.sockets import bind_for_workers, binding, steer_to, unsteer
from kubedns_py.net.workers import Message, Supervisor, Worker
from kubedns_py.ratelimit import SuppressedLines

log = logging.getLogger(__name__)

REPORT_EVERY = 0.5  # seconds between a worker's CHAOS reports, when its counters moved


def _share(total: int, workers: int) -> int:
    return max(1, -(-total // workers))


class CachePool:
    def __init__(
        self, config: CacheConfig, registry: CollectorRegistry | None = None, reuse_port: bool = False
    ) -> None:
        """``reuse_port``: bind beside another process of ours (``nodelocal.handoff``)."""
        self.config = config
        self._reuse_port = reuse_port
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # the supervisor's; each worker adds its own
        self.registry.register(SuppressedLines())
        self.lameduck = config.lameduck
        self._draining = False
        count = config.workers
        self._worker_config = replace(
            config,
            dns_forward_max=_share(config.dns_forward_max, count),
            tcp_max_connections=_share(config.tcp_max_connections, count),
        )
        self._secret = secrets.token_hex(8)
        self._sockets: list[tuple[tuple[socket.socket, socket.socket], ...]] = []
        self._counts: dict[int, ChaosCounts] = {}
        self.supervisor = Supervisor("cache", count, self._make_worker, self._fds, self._on_message)
        self.registry.register(self.supervisor)
        self._http: web.AppRunner | None = None
        self.port = config.port

    async def start(self) -> None:
        with binding(self.config.port, "--port"):
            self.port, self._sockets = bind_for_workers(
                self.config.listen_addresses, self.config.port, self.config.workers, self._reuse_port
            )
        routes = {
            "/metrics": self.metrics_handler(),
            "/healthz": text_handler(lambda: (True, "ok")),
            "/readiness": text_handler(self._readiness),
        }
        with binding(self.config.metrics_port, "--metrics-port"):
            self._http = await start_http(
                self.config.http_bind_address, self.config.metrics_port, routes, self._reuse_port
            )
        self.supervisor.start()
        await self.supervisor.started()
        log.info(
            "caching on %s port %d (udp+tcp); metrics on port %d; %d workers",
            ",".join(self.config.listen_addresses),
            self.port,
            bound_port(self._http),
            self.config.workers,
        )

    def metrics_handler(self) -> Handler:
        """This process's series and every worker's, as one exposition."""
        return merged_metrics_handler(self.registry, self.supervisor.scrape)

    def set_servers(self, servers: StaticServers) -> None:
        """New ``--server`` routes for every worker, and for those started later
        (``CacheApp.set_servers``)."""
        self.config = replace(self.config, servers=servers)
        self._worker_config = replace(self._worker_config, servers=servers)
        # A mapping proxy does not pickle: the domains go as a dict.
        self.supervisor.broadcast(("servers", dict(servers.domains), servers.default, servers.use_default))

    def steer_here(self, index: int) -> None:
        """Every new query and connection to the first worker's sockets, the ``index``-th of their
        SO_REUSEPORT groups (``CacheApp.steer_here``); one program serves the whole group."""
        for pair in self._sockets[0]:
            for sock in pair:
                steer_to(sock, index)

    def unsteer(self) -> None:
        for pair in self._sockets[0]:
            for sock in pair:
                unsteer(sock)

    def _fds(self, index: int) -> Iterator[int]:
        for pair in self._sockets[index]:
            for sock in pair:
                yield sock.fileno()

    def _make_worker(self, worker: Worker) -> _CacheWorker:
        setup = WorkerSetup(self._sockets[worker.index], self._secret)
        return _CacheWorker(CacheApp(self._worker_config, worker=setup), worker)

    def _on_message(self, index: int, message: Message) -> None:
        kind = message[0]
        if kind == "chaos":
            self._counts[index] = message[1]
            for other in range(self.config.workers):
                if other != index:
                    self.supervisor.send(other, ("peers", self._peers_of(other)))
        elif kind == "looped":
            self.supervisor.broadcast(message)

    def _peers_of(self, index: int) -> ChaosCounts:
        total = ChaosCounts()
        for other, counts in self._counts.items():
            if other != index:
                total = total.add(counts)
        return total

    def _readiness(self) -> tuple[bool, str]:
        if self._draining:
            return False, "shutting down"
        return (True, "ok") if self.supervisor.ready else (False, "workers starting")

    def drain(self) -> None:
        self._draining = True

    async def stop(self) -> None:
        self._draining = True
        await self.supervisor.stop()
        for pairs in self._sockets:
            for udp, tcp in pairs:
                udp.close()
                tcp.close()
        if self._http is not None:
            await self._http.cleanup()


class _CacheWorker:
    """A worker's cache, reporting its statistics and loops to the supervisor."""

    def __init__(self, app: CacheApp, worker: Worker) -> None:
        self.app = app
        self.registry = app.registry
        self._worker = worker
        self._report: asyncio.Task[None] | None = None
        worker.on("peers", self._take_peers)
        worker.on("looped", lambda message: app.loops.looped(message[1]))
        worker.on("servers", lambda message: app.set_servers(StaticServers(frozen(message[1]), *message[2:])))
        app.loops.on_loop = lambda label: worker.send(("looped", label))

    def _take_peers(self, message: Message) -> None:
        self.app.peers = message[1]

    async def start(self) -> None:
        await self.app.start()
        self._report = asyncio.create_task(self._report_counts(), name="chaos-report")

    async def _report_counts(self) -> None:
        last = None
        while True:
            counts = self.app.chaos_counts()
            if counts != last:
                self._worker.send(("chaos", counts))
                last = counts
            await asyncio.sleep(REPORT_EVERY)

    async def stop(self) -> None:
        await cancelled(self._report)
        await self.app.stop()
