"""Polling the cache's statistics over CHAOS TXT (``hits.bind`` etc.), as the sidecar polled dnsmasq.

Each answer must be one TXT record holding one integer. The values are counters in the cache; what is
exported grows by the difference since the last poll. A value lower than the last one means the cache
restarted and counted from zero since: then the whole value is new, and the exported counters never go
backwards.
"""

from __future__ import annotations

import asyncio
import logging

from kubedns_py.dnswire.header import TXT
from kubedns_py.ratelimit import RateLimitedLog
from probe.dnsquery import QueryError, ask
from probe.metrics import ProbeMetrics

log = logging.getLogger("probe.dnsmasq")

STATS = {
    "hits": "hits",
    "misses": "misses",
    "evictions": "evictions",
    "insertions": "insertions",
    "max_size": "cachesize",
}


class StatsPoller:
    def __init__(self, host: str, port: int, interval: float, metrics: ProbeMetrics, timeout: float) -> None:
        self._host = host
        self._port = port
        self._interval = interval
        self._metrics = metrics
        self._timeout = timeout
        self._last: dict[str, int] = {}
        self.failing = False
        self._limited = RateLimitedLog(log)  # a flapping cache must not flood the log

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._interval)

    async def poll(self) -> None:
        try:
            values = {stat: await self._read(name) for stat, name in STATS.items()}
        except (QueryError, ValueError) as err:
            self._metrics.dnsmasq_errors += 1
            if not self.failing:
                self._limited.warning("poll failed", "polling the cache's statistics failed: %s", err)
            self.failing = True
            return
        if self.failing:
            self._limited.log(logging.INFO, "poll works", "polling the cache's statistics works again")
        self.failing = False
        for stat, value in values.items():
            if stat == "max_size":
                self._metrics.dnsmasq[stat] = value
                continue
            previous = self._last.get(stat, 0)
            self._metrics.dnsmasq[stat] += value - previous if value >= previous else value
            self._last[stat] = value

    async def _read(self, name: str) -> int:
        reply = await ask(self._host, self._port, f"{name}.bind.", "TXT", self._timeout, qclass="CH")
        records = [rr for rr in reply.rr if rr.rtype == TXT]
        if len(records) != 1 or len(records[0].rdata.data) != 1:
            raise ValueError(f"{name}.bind: expected one TXT record with one string")
        return int(records[0].rdata.data[0].decode())
