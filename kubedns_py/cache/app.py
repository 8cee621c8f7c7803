"""``kubedns-py cache``: the caching forwarder wired together: listeners on every --listen-address, the
frontend (hot path), resolver, forwarder and response cache, the ConfigMap directory watcher, loop
detection, who may ask (``--allow-from``, ``--local-service``), and /metrics, /healthz and /readiness
over HTTP.

Stopping: after the lame-duck period the listeners stop reading, and misses already forwarded are
answered (each bounded by the upstream timeouts, all by ``FINISH_WITHIN``) before the sockets close."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from kubedns_py.cache.configmap import ConfigDirWatcher
from kubedns_py.cache.flags import CacheConfig
from kubedns_py.cache.forward.forwarder import Forwarder
from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.forward.routing import (
    RouteTable,
    build_routes,
    read_resolv_conf,
    read_search_domains,
)
from kubedns_py.cache.front.chaos import Chaos, ChaosCounts
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.listener import CacheListener
from kubedns_py.cache.metrics.collector import CacheCollector, UpstreamDurations
from kubedns_py.cache.metrics.coredns import CoreDnsCacheCollector
from kubedns_py.cache.resolve.resolver import Resolver
from kubedns_py.cache.servers import DnsConfig, StaticServers
from kubedns_py.cache.store.cache import ResponseCache
from kubedns_py.cache.store.rules import CacheRules
from kubedns_py.gcpause import GcPauses
from kubedns_py.net.acl import ClientAcl, RefusedClients
from kubedns_py.net.connections import TcpConnections
from kubedns_py.net.coredns import CoreDnsCollector
from kubedns_py.net.http import bound_port, metrics_handler, start_http, text_handler
from kubedns_py.net.interfaces import local_networks
from kubedns_py.net.sockets import bind_dns_sockets, binding, steer_to, unsteer
from kubedns_py.net.stats import DnsStats
from kubedns_py.net.tcp import TcpServer
from kubedns_py.ratelimit import SuppressedLines

log = logging.getLogger("kubedns_py.cache")

UPSTREAM_TIMEOUT = 2.0
FINISH_WITHIN = 5.0  # seconds for forwarded misses to be answered once the listeners stop reading
LOCAL_NETWORKS_PERIOD = 10.0  # --local-service: interfaces come and go (veths, dummies)
DROP_BATCH = 5000  # entries looked at per turn of the event loop after a change of routes
ROUTES_LOGGED = 8  # domain routes named in a log line; a ConfigMap may hold thousands


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process (``cache.pool``) gets from its supervisor, which serves HTTP for it."""

    sockets: tuple[tuple[socket.socket, socket.socket], ...]  # (UDP, TCP) per --listen-address
    loop_secret: str  # every worker's loop-detection probes carry it


class CacheApp:
    def __init__(
        self,
        config: CacheConfig,
        registry: CollectorRegistry | None = None,
        worker: WorkerSetup | None = None,
        reuse_port: bool = False,
    ) -> None:
        """``reuse_port``: bind beside another process of ours (``nodelocal.handoff``)."""
        self.config = config
        self._worker = worker
        self._reuse_port = reuse_port
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory and CPU for the dashboard
        self.registry.register(SuppressedLines())
        rules = CacheRules(
            min_ttl=config.min_cache_ttl,
            max_ttl=config.max_cache_ttl,
            negative=config.negative_cache,
            neg_ttl=config.neg_ttl or 0,
            stale_ttl=config.stale_cache_ttl,
        )
        self.cache = ResponseCache(config.cache_size, rules)
        self._config_dir = (
            ConfigDirWatcher(config.config_dir, config.config_period) if config.config_dir else None
        )
        self._configmap: DnsConfig | None = None
        self.durations = UpstreamDurations()
        self.forwarder = Forwarder(
            self._routes(None), config.dns_forward_max, UPSTREAM_TIMEOUT, self.durations.observe
        )
        self.resolver = Resolver(self.cache, self.forwarder)
        self.loops = LoopDetector(config.dns_loop_detect, worker.loop_secret if worker else None)
        self.stats = DnsStats("cache")
        self.acl = ClientAcl(config.allow_from) if config.allow_from or config.local_service else None
        self.lameduck = config.lameduck
        self._draining = False
        self.peers = ChaosCounts()  # the other workers' statistics, as the supervisor last passed them
        self.frontend = Frontend(
            self.cache,
            self.resolver,
            self.stats,
            Chaos(
                lambda: self.chaos_counts().add(self.peers).counters,
                lambda: self.chaos_counts().add(self.peers).server_lines(),
            ),
            self.loops,
            max_waiting=max(2000, 10 * config.dns_forward_max),
            acl=self.acl,
            autopath_zone=config.autopath,
            # A Pod's search list ends with the node's search domains: those of our own resolv.conf
            # when we run as Pods do not (dnsPolicy Default, or on the host network).
            host_search=read_search_domains(config.resolv_file) if config.autopath else (),
        )
        self.stats.malformed_counted_by("oversized", self._oversized)
        self.stats.malformed_counted_by("bad-upstream-reply", lambda: self.forwarder.bad_replies)
        self.registry.register(self.stats)
        # A full cache is a heap of long-lived entries without cycles: frozen out of the collector's
        # sight as they settle, so that no collection walks 100k of them while queries wait.
        self.gc_pauses = GcPauses()
        self.registry.register(self.gc_pauses)
        self.registry.register(RefusedClients("cache", self.acl))
        self.registry.register(
            CacheCollector(
                self.cache,
                self.frontend,
                self.resolver,
                self.forwarder,
                self._config_dir,
                self.durations,
                self._overflowed,
            )
        )
        if config.coredns_metrics:
            self._coredns_metrics()
        # One budget for every listen address: a client reaching several counts once.
        self.tcp_connections = TcpConnections("cache", config.tcp_max_connections, config.tcp_max_per_client)
        self.registry.register(self.tcp_connections)
        self._listeners: list[CacheListener] = []
        self._tcp: list[TcpServer] = []
        self._sockets: list[socket.socket] = []
        self._http: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = config.port

    def _coredns_metrics(self) -> None:
        address = self.config.listen_addresses[0] if self.config.listen_addresses else "0.0.0.0"
        core = CoreDnsCollector(self.stats, lambda: self.port, address, "forward")
        plugins = CoreDnsCacheCollector(
            lambda: self.port,
            self.cache,
            self.frontend,
            self.resolver,
            self.forwarder,
            self.stats,
            self.durations,
        )
        for collector in (core, plugins):
            self.registry.register(collector)

    def _routes(self, configmap: DnsConfig | None) -> RouteTable:
        resolv = None if self.config.no_resolv else read_resolv_conf(self.config.resolv_file)
        return build_routes(self.config.servers, resolv, configmap)

    def chaos_counts(self) -> ChaosCounts:
        """This process's statistics for the CHAOS ``*.bind`` answers."""
        counters = {
            "cachesize": self.cache.size,
            "insertions": self.cache.insertions,
            "evictions": self.cache.evictions,
            "misses": self.frontend.counters.misses,
            "hits": self.frontend.counters.hits,
            "auth": 0,  # no zone is authoritative here
        }
        servers = {}
        for upstream in self.forwarder.upstreams():
            health = self.forwarder.client(upstream).health
            servers[str(upstream)] = (health.queries, health.errors)
        return ChaosCounts(counters, servers)

    def _oversized(self) -> int:
        return sum(listener.oversized for listener in self._listeners)

    def _overflowed(self) -> int:
        return sum(listener.inbox.overflowed for listener in self._listeners)

    async def start(self) -> None:
        self.gc_pauses.install()
        if self.config.local_service:
            self._update_local_networks()
        port = self.config.port
        for i, host in enumerate(self.config.listen_addresses):
            if self._worker is not None:
                udp_socket, tcp_socket = self._worker.sockets[i]
            else:
                with binding(port, "--port"):
                    udp_socket, tcp_socket = bind_dns_sockets(host, port, self._reuse_port)
            listener = CacheListener(udp_socket, self.frontend)
            port = listener.server.port  # --port 0: every address shares the first one picked
            self._listeners.append(listener)
            tcp = TcpServer(self.frontend.on_tcp, self.tcp_connections)
            await tcp.start(tcp_socket)
            self._tcp.append(tcp)
            self._sockets += (udp_socket, tcp_socket)
        self.port = port
        if self._worker is None:
            await self._start_http()
        if self._config_dir is not None:
            self._spawn(self._config_dir.run(self._apply_configmap), "config-dir")
        self._spawn(self._check_loops(), "loop-detect")
        if self.config.local_service:
            self._spawn(self._follow_local_networks(), "local-networks")
        self.gc_pauses.settle_first()
        self._spawn(self.gc_pauses.settle_periodically(), "gc-settle")
        if self._worker is not None:
            return  # the supervisor says where it answers
        log.info(
            "caching on %s port %d (udp+tcp); metrics on port %d; upstreams: %s",
            ",".join(self.config.listen_addresses),
            port,
            bound_port(self._http) if self._http else 0,
            self._describe_routes(),
        )

    async def _start_http(self) -> None:
        routes = {
            "/metrics": metrics_handler(self.registry),
            "/healthz": text_handler(self._healthy),
            "/readiness": text_handler(self._readiness),
        }
        with binding(self.config.metrics_port, "--metrics-port"):
            self._http = await start_http(
                self.config.http_bind_address, self.config.metrics_port, routes, self._reuse_port
            )

    def _healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def _readiness(self) -> tuple[bool, str]:
        return (False, "shutting down") if self._draining else (True, "ok")

    def drain(self) -> None:
        self._draining = True

    def _update_local_networks(self) -> None:
        assert self.acl is not None
        networks = (*self.config.allow_from, *local_networks())
        if networks != self.acl.networks:
            self.acl.set_networks(networks)
            log.info("answering clients in %s", " ".join(map(str, networks)))

    async def _follow_local_networks(self) -> None:
        while True:
            await asyncio.sleep(LOCAL_NETWORKS_PERIOD)
            try:
                self._update_local_networks()
            except OSError as err:  # keep the last networks read
                log.warning("reading this host's interface addresses failed: %s", err)

    def set_servers(self, servers: StaticServers) -> None:
        """New ``--server`` routes (``kubedns-py nodelocal`` adds the cluster zones once it knows where
        they go), applied like a ConfigMap change."""
        self.config = replace(self.config, servers=servers)
        self._apply_configmap(self._configmap)

    def _apply_configmap(self, configmap: DnsConfig | None) -> None:
        self._configmap = configmap
        old = self.forwarder.routes
        routes = self._routes(configmap)
        if routes == old:
            return
        self.forwarder.set_routes(routes)
        log.info("upstreams now: %s", self._describe_routes())
        self._spawn(self._drop_rerouted(old, routes), "drop-rerouted")
        self._spawn(self._check_loops(), "loop-detect")

    async def _drop_rerouted(self, old: RouteTable, new: RouteTable) -> None:
        """Forget the answers of names whose route changed: they came from upstreams that no longer
        answer for them and would outlive the change by their TTLs. Every other entry stays. A few
        thousand entries a turn of the event loop, so that a large cache never holds up queries."""
        keys = list(self.cache.index)
        dropped = 0
        for start in range(0, len(keys), DROP_BATCH):
            rerouted = [
                key
                for key in keys[start : start + DROP_BATCH]
                if old.route_wire(key.name) != new.route_wire(key.name)
            ]
            dropped += self.cache.drop(rerouted)
            await asyncio.sleep(0)
        if dropped:
            log.info("dropped %d cached answers whose names the change routes elsewhere", dropped)

    def _describe_routes(self) -> str:
        """The routes in one bounded line: the first few domains, then how many more."""
        routes = self.forwarder.routes
        parts = [
            f"{domain} → {' '.join(map(str, servers)) or 'local'}"
            for domain, servers in islice(routes.domains.items(), ROUTES_LOGGED)
        ]
        if len(routes.domains) > ROUTES_LOGGED:
            parts.append(f"and {len(routes.domains) - ROUTES_LOGGED} more domains")
        parts.append(f"default → {' '.join(map(str, routes.default)) or 'none'}")
        return "; ".join(parts)

    async def _check_loops(self) -> None:
        upstreams = self.forwarder.upstreams()
        await self.loops.check([self.forwarder.client(u) for u in upstreams])

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def steer_here(self, index: int) -> None:
        """Every new query and connection to our ports to our sockets, the ``index``-th of their
        SO_REUSEPORT groups, none to the others' (``net.sockets.steer_to``)."""
        for sock in self._sockets:
            steer_to(sock, index)

    def unsteer(self) -> None:
        for sock in self._sockets:
            unsteer(sock)

    async def stop(self) -> None:
        self.gc_pauses.uninstall()
        self._draining = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for listener in self._listeners:
            listener.stop_reading()
        # TCP: no new connections; queries already read are answered before each connection ends.
        await asyncio.gather(*(tcp.close() for tcp in self._tcp), self.frontend.close(FINISH_WITHIN))
        self.resolver.close()
        for listener in self._listeners:
            listener.close()
        self.forwarder.close()
        if self._http is not None:
            await self._http.cleanup()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r", task.get_name(), task.exception())
