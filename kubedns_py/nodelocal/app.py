"""``kubedns-py nodelocal`` wired together: the node setup (``netsetup``), the cache answering on every
local IP, the cluster zones routed to the upstream Service once it is known, /health on the health port
and /metrics on the metrics address.

Nothing here crash-loops on a missing piece: a failed setup step or an unknown upstream Service is
logged, counted in ``kubedns_nodelocal_setup_errors_total{type}`` and retried every sync interval. While
the interface step fails and the local IPs are not on the node, the cache waits (/health says 503) and
starts answering on the check that finds them. On exit the rules and addresses go first (unless
``-skipteardown``, or a successor holds them), so Pods' queries fall back to kube-dns through
kube-proxy while the next process starts. A process started beside a running one takes over from it
without losing a query (``handoff``). With ``-- --workers N`` the cache is N worker processes
(``cache.pool``), the upstream Service sent to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.cache.app import CacheApp
from kubedns_py.cache.pool import CachePool
from kubedns_py.cache.servers import Upstream
from kubedns_py.lifecycle import cancelled
from kubedns_py.net.http import metrics_handler, start_http, text_handler
from kubedns_py.net.sockets import on_this_host
from kubedns_py.nodelocal.config import NodeLocalConfig, upstream_from_env, with_upstream
from kubedns_py.nodelocal.handoff import Handoff
from kubedns_py.nodelocal.netsetup import NodeSetup, SetupError

log = logging.getLogger("kubedns_py.nodelocal")

ERROR_TYPES = ("interface", "iptables", "upstream")


class SetupErrors(Collector):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({kind: 0 for kind in ERROR_TYPES})

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kubedns_nodelocal_setup_errors",
            "Failed node setup steps (interface, iptables) and checks for the upstream Service.",
            labels=["type"],
        )
        for kind, count in self.counts.items():
            family.add_metric([kind], count)
        yield family


class NodeLocalApp:
    def __init__(self, config: NodeLocalConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.errors = SetupErrors()
        self.registry.register(self.errors)
        workers = config.cache.workers
        self.cache: CacheApp | CachePool = (
            CachePool(config.cache, self.registry, reuse_port=True)
            if workers > 1
            else CacheApp(config.cache, self.registry, reuse_port=True)
        )
        self.handoff = Handoff(config.interface, self._hand_over, sockets=workers)
        self.lameduck = config.cache.lameduck
        self.node = NodeSetup(
            config.interface,
            config.local_ips,
            config.health_port,
            config.setup_interface,
            config.setup_iptables,
        )
        self.upstream: Upstream | None = None
        self._ready = False
        self._http: list[web.AppRunner] = []
        self._sync: asyncio.Task[None] | None = None
        self._handing: asyncio.Task[None] | None = None

    def _failed(self, err: SetupError) -> None:
        self.errors.counts[err.kind] += 1
        log.error("setup: %s", err)

    def _find_upstream(self) -> None:
        found = upstream_from_env(self.config.upstream_service)
        if isinstance(found, str):
            self.errors.counts["upstream"] += 1
            log.warning(
                "%s; cluster names go to the default upstreams until it is known (retrying every %gs)",
                found,
                self.config.sync_interval,
            )
            return
        self.upstream = found
        self.cache.set_servers(with_upstream(self.config.cache.servers, self.config.cluster_domain, found))
        log.info("cluster zones (%s, reverse) → %s over TCP", self.config.cluster_domain, found)

    async def _ensure_interface(self) -> bool:
        try:
            await asyncio.to_thread(self.node.ensure_interface)
        except SetupError as err:
            self._failed(err)
            return False
        return True

    def _missing(self) -> list[str]:
        """The local IPs not on this node: the cache could not bind them."""
        return [ip for ip in self.config.local_ips if not on_this_host(ip)]

    async def _answer(self) -> None:
        """Start the cache if every local IP is on the node now; else say which are missing."""
        missing = await asyncio.to_thread(self._missing)
        if missing:
            log.error(
                "not answering yet: %s not on this node (the interface step puts them on %s); "
                "checking again in %gs",
                ", ".join(missing),
                self.config.interface,
                self.config.sync_interval,
            )
            return
        await self._start_cache()

    async def _start_cache(self) -> None:
        await self.cache.start()
        self._ready = True
        self._handing = asyncio.create_task(self._take_over(), name="take-over")

    async def _take_over(self) -> None:
        """Answering now: every new query comes to us, and the predecessor, which receives no more,
        reads what it holds and closes; then the kernel spreads by hash again (for our successor)."""
        if self.handoff.has_predecessor:
            self.cache.steer_here(self.handoff.predecessor_sockets)  # ours are bound after its
        if await self.handoff.take_over():
            self.cache.unsteer()

    async def _check(self) -> None:
        """One round of the periodic check; each piece is retried on its own."""
        await self._ensure_interface()
        if not self._ready:
            try:
                await self._answer()
            except OSError as err:  # say so and retry, as for every other step
                log.error("binding the local IPs failed: %s; retrying in %gs", err, self.config.sync_interval)
        for failure in await asyncio.to_thread(self.node.ensure_iptables):
            self._failed(failure)
        if self.upstream is None:
            self._find_upstream()

    async def start(self) -> None:
        await self.handoff.find_predecessor()
        # The addresses must exist before the cache binds them. A failed interface step may have left
        # them in place (or someone else put them there): then binding works and decides.
        if await self._ensure_interface():
            await self._start_cache()
        else:
            await self._answer()
        for failure in self.node.ensure_iptables():
            self._failed(failure)  # answering without NOTRACK still works; the next check retries
        self._find_upstream()
        merged = self.cache.metrics_handler() if isinstance(self.cache, CachePool) else None
        metrics = {"/metrics": merged or metrics_handler(self.registry)}
        self._http.append(await start_http(self.config.metrics_host, self.config.metrics_port, metrics, True))
        health = {"/health": text_handler(self._health)}
        self._http.append(await start_http("0.0.0.0", self.config.health_port, health, True))
        if self.config.pidfile:
            await asyncio.to_thread(_write_pidfile, self.config.pidfile)
        self._sync = asyncio.create_task(self._follow(), name="nodelocal-sync")
        log.info(
            "node-local on %s (%s); /health on port %d",
            ",".join(self.config.local_ips),
            self.config.interface,
            self.config.health_port,
        )

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.config.sync_interval)
            await self._check()

    def _health(self) -> tuple[bool, str]:
        return (True, "OK") if self._ready else (False, "not set up")

    def drain(self) -> None:
        self.cache.drain()

    async def _hand_over(self) -> None:
        """A successor answers: stop checking and reading, answer what was read, close the ports."""
        await self._stop_sync()
        await self.cache.stop()
        for runner in self._http:
            await runner.cleanup()
        self._http = []

    async def _stop_sync(self) -> None:
        for task in (self._sync, self._handing):
            await cancelled(task)

    async def stop(self) -> None:
        await self.handoff.await_successor()
        await self._stop_sync()
        if self.handoff.successors:
            log.info(
                "leaving the iptables rules and %s's addresses to the node cache after us",
                self.config.interface,
            )
        elif self.config.skip_teardown:
            log.info("leaving the iptables rules and %s's addresses in place", self.config.interface)
        else:
            for err in await asyncio.to_thread(self.node.teardown):
                self._failed(err)
        if not self.handoff.handed_over:
            await self.cache.stop()
        for runner in self._http:
            await runner.cleanup()
        self.handoff.close()
        if self.config.pidfile:
            await asyncio.to_thread(_remove_pidfile, self.config.pidfile)


def _remove_pidfile(path: str) -> None:
    """Unless a successor wrote its own there since."""
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="ascii") as handle:
            if int(handle.read().strip()) != os.getpid():
                return
        os.unlink(path)


def _write_pidfile(path: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
