"""Running the probes: each on its own schedule, staggered so they do not fire together, each answer
judged the same way (NOERROR with at least one answer record passes)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from kubedns_py.dnswire.header import NOERROR, rcode_name
from kubedns_py.ratelimit import RateLimitedLog
from probe.config import ProbeSpec
from probe.dnsquery import QueryError, ask
from probe.metrics import ProbeMetrics

log = logging.getLogger("probe")


@dataclass
class Outcome:
    ok: bool = False
    latency: float = 0.0
    error: str = "waiting for first probe"
    done: bool = False  # False until the first probe finished


async def probe_once(spec: ProbeSpec, within: float) -> Outcome:
    start = time.perf_counter()
    try:
        reply = await ask(spec.host, spec.port, spec.name, spec.qtype, within)
    except QueryError as err:
        return Outcome(False, time.perf_counter() - start, str(err), True)
    latency = time.perf_counter() - start
    if reply.header.rcode != NOERROR:
        return Outcome(False, latency, f"{spec.name} {spec.qtype}: {rcode_name(reply.header.rcode)}", True)
    if not reply.rr:
        return Outcome(False, latency, f"{spec.name} {spec.qtype}: no answer records", True)
    return Outcome(True, latency, "", True)


class Prober:
    def __init__(self, specs: tuple[ProbeSpec, ...], timeout: float, metrics: ProbeMetrics) -> None:
        self.specs = {spec.label: spec for spec in specs}
        self.outcomes = {spec.label: Outcome() for spec in specs}
        self._timeout = timeout
        self._metrics = metrics
        self._limited = RateLimitedLog(log)  # a flapping server must not flood the log

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for spec in self.specs.values():
                tasks.create_task(self._loop(spec), name=f"probe {spec.label}")

    async def _loop(self, spec: ProbeSpec) -> None:
        await asyncio.sleep(random.uniform(0, spec.interval))  # staggered, as the sidecar did
        while True:
            outcome = await probe_once(spec, min(self._timeout, spec.interval))
            previous = self.outcomes[spec.label]
            if outcome.ok != previous.ok or not previous.done:
                level = logging.INFO if outcome.ok else logging.WARNING
                outcome_text = "ok" if outcome.ok else outcome.error
                self._limited.log(
                    level, f"{spec.label} {outcome.ok}", "probe %s: %s", spec.label, outcome_text
                )
            self.outcomes[spec.label] = outcome
            self._metrics.probed(spec.label, outcome.ok, outcome.latency)
            await asyncio.sleep(max(0.0, spec.interval - outcome.latency))
