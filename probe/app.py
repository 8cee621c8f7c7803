"""``kubedns-probe``: the probes, the statistics poller, and HTTP for health checks and metrics.

``/healthcheck/<label>`` answers the sidecar's JSON, ``{"IsOk": …, "LatencySeconds": …, "Err": …}``, with
200 when the probe's last run passed and 503 otherwise (503 until the first run finishes); the kube-dns
manifest points the kubedns and dnsmasq containers' liveness probes at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from kubedns_py.net.http import bound_port, metrics_handler, start_http
from kubedns_py.net.sockets import binding
from kubedns_py.ratelimit import SuppressedLines
from probe.config import ProbeConfig
from probe.dnsmasq import StatsPoller
from probe.metrics import ProbeMetrics
from probe.probes import Prober

log = logging.getLogger("probe")


class ProbeApp:
    def __init__(self, config: ProbeConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)  # memory and CPU for the dashboard
        self.registry.register(SuppressedLines())
        self.metrics = ProbeMetrics(self.registry, config.namespace, [p.label for p in config.probes])
        self.prober = Prober(config.probes, config.timeout, self.metrics)
        self.poller = StatsPoller(
            config.dnsmasq_host,
            config.dnsmasq_port,
            config.dnsmasq_poll_interval,
            self.metrics,
            config.timeout,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._http: web.AppRunner | None = None

    async def start(self) -> None:
        routes = {
            "/healthcheck/{label}": self._healthcheck,
            "/healthz": self._healthz,
            self.config.prometheus_path: metrics_handler(self.registry),
        }
        with binding(self.config.prometheus_port, "--prometheus-port"):
            self._http = await start_http(self.config.prometheus_addr, self.config.prometheus_port, routes)
        self._tasks.append(asyncio.create_task(self.prober.run(), name="probes"))
        self._tasks.append(asyncio.create_task(self.poller.run(), name="stats poller"))
        log.info(
            "probing %s; health and metrics on port %d",
            ", ".join(f"{p.label}={p.host}:{p.port} {p.name} {p.qtype}" for p in self.config.probes)
            or "nothing",
            bound_port(self._http),
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.cleanup()

    async def _healthcheck(self, request: web.Request) -> web.Response:
        label = request.match_info["label"]
        outcome = self.prober.outcomes.get(label)
        if outcome is None:
            return web.json_response(
                {"IsOk": False, "LatencySeconds": 0, "Err": f"no probe {label!r}"}, status=404
            )
        body = {"IsOk": outcome.ok, "LatencySeconds": outcome.latency, "Err": outcome.error}
        return web.json_response(body, status=200 if outcome.ok else 503)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text=f"ok ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})\n")
