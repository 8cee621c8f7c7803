"""Keeping the cycle collector's pauses short, and measuring them.

Cluster data is long-lived and free of reference cycles, yet every full collection would walk all of
it: with 100k endpoints that is tens of milliseconds during which no query is answered. So whatever
has survived the first sync is frozen out of the collector's sight (``gc.freeze``), and so is, ten
times a second, whatever survived since: every collection then walks only what was made in the last
tenth of a second (endpoint changes, answers built for new questions), about a millisecond.
Frozen objects are still freed by reference counting when dropped; only a reference cycle that was
alive at a freeze and became garbage later is never reclaimed, which is why each freeze follows a
full collection.

Every collection's duration is observed into ``kubedns_gc_pause_seconds``, by generation; the
longest since the first sync was done goes into ``kubedns_gc_pause_longest_seconds``. The one full
collection that ends the first sync (about 0.2 s at 100k endpoints, before /readiness says 200) is in
the histogram only.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Around the 2 ms that a pause should stay under.
PAUSE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# Young collections every 2,000 allocations instead of 700 (each well under a millisecond); between
# settles the older generations are rarely reached.
THRESHOLDS = (2_000, 10, 10)
SETTLE_EVERY = 0.1  # seconds: under churn and 50k queries a second, each settle walks a few thousand objects
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform == "linux" else None


class GcPauses(Collector):
    def __init__(self) -> None:
        self._started = 0.0
        self._buckets = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self.freezes = 0
        self._serving = False  # the first sync is done: pauses from now on hold up answers

    def install(self) -> None:
        gc.set_threshold(*THRESHOLDS)
        gc.callbacks.append(self._observe)

    def uninstall(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)

    def settle(self) -> None:
        """Collect everything once, then freeze what survived: call when long-lived data has settled."""
        gc.collect()
        gc.freeze()
        self.freezes += 1

    def settle_first(self) -> None:
        """``settle`` after the first sync, and hand the heap its parsing left free back to the system
        (a 100k-endpoint list peaks at about 70 MB more than the data it leaves)."""
        self.settle()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
        self._serving = True

    async def settle_periodically(self) -> None:
        while True:
            await asyncio.sleep(SETTLE_EVERY)
            self.settle()

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        elapsed = time.perf_counter() - self._started
        generation = min(int(info.get("generation", 2)), 2)
        index = next((i for i, bound in enumerate(PAUSE_BUCKETS) if elapsed <= bound), len(PAUSE_BUCKETS))
        self._buckets[generation][index] += 1
        self._sums[generation] += elapsed
        if self._serving:
            self.longest = max(self.longest, elapsed)

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "kubedns_gc_pause_seconds", "Cycle-collector pauses, by generation.", labels=["generation"]
        )
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip((*PAUSE_BUCKETS, float("inf")), self._buckets[generation], strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            pauses.add_metric([str(generation)], buckets, self._sums[generation])
        yield pauses
        yield GaugeMetricFamily(
            "kubedns_gc_pause_longest_seconds",
            "The longest cycle-collector pause so far.",
            value=self.longest,
        )
        yield GaugeMetricFamily(
            "kubedns_gc_frozen_objects",
            "Objects frozen out of the collector's sight.",
            value=gc.get_freeze_count(),
        )
