"""Where serve's initial sync spends its time and memory, for the cluster ``api_scale`` benchmarks.

``python -m tests.bench.scale_tools [cpu|gc|memory|imports] [--top N]`` runs serve's own code path in this
process (``KubeSource`` feeding a ``Store``, against the API server double in the same event loop) so
that cProfile and tracemalloc can see inside it; ``imports`` measures, in fresh interpreters, what
importing serve costs before any data arrives. Figures are for finding the big items, not for quoting:
cProfile roughly doubles the run time of this call-heavy code.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from kubedns_py.cluster.store import Store
from kubedns_py.sources.kube.client import KubeSettings
from kubedns_py.sources.kube.source import KubeSource
from tests.bench import api_scale, cluster_gen
from tests.support.apiserver import FakeApiServer
from tests.support.paths import ROOT

SYNC_DEADLINE = 60.0


async def sync_in_process(shape: cluster_gen.ClusterShape, profiler: cProfile.Profile | None = None) -> Store:
    """List the whole cluster through KubeSource into a Store; tracing (if on) covers only the sync."""
    cluster = api_scale.generate(shape)
    async with FakeApiServer() as api:
        api_scale.load(api, cluster)
        del cluster
        gc.collect()  # the generated objects are gone; don't charge their collection to the sync
        source = KubeSource(KubeSettings(master_url=api.url), CollectorRegistry())
        store = Store(required=source.kinds)
        synced = asyncio.Event()
        store.subscribe(
            lambda _changed: synced.set() if store.synced else None
        )  # the store calls it per batch
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        task = asyncio.create_task(source.run(store.apply))
        try:
            async with asyncio.timeout(SYNC_DEADLINE):
                await synced.wait()
        finally:
            if profiler is not None:
                profiler.disable()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        print(f"in-process sync: {time.perf_counter() - start:.2f} s, store {store.counts()}")
    return store


def profile_cpu(shape: cluster_gen.ClusterShape, top: int) -> None:
    profiler = cProfile.Profile()
    asyncio.run(sync_in_process(shape, profiler))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(r"kubedns_py|json|aiohttp", top)
    stats.sort_stats("cumulative").print_stats(r"kubedns_py", top)


def profile_memory(shape: cluster_gen.ClusterShape, top: int) -> None:
    """What the synced store keeps, by file and by allocating line (serve's code only)."""
    tracemalloc.start()
    store = asyncio.run(sync_in_process(shape))
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/kubedns_py/*")])
    tracemalloc.stop()
    for group, limit in (("filename", 10), ("lineno", top)):
        stats = snapshot.statistics(group)
        print(f"\nkept after sync, by {group} (total {sum(s.size for s in stats) / 2**20:.1f} MiB):")
        for stat in stats[:limit]:
            frame = stat.traceback[0]
            where = frame.filename.split("/kubedns_py/")[-1] + (
                f":{frame.lineno}" if group == "lineno" else ""
            )
            print(f"  {stat.size / 2**20:7.2f} MiB {stat.count:>9,} blocks  {where}")
    del store


def gc_cost(shape: cluster_gen.ClusterShape) -> None:
    """The sync with the cyclic collector timed per generation, then again with it off: a store
    growing to ~1.5M tracked objects sets off a full collection at every 25% of growth."""
    started: list[float] = []
    spent: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent[info["generation"]].append(time.perf_counter() - started.pop())

    gc.callbacks.append(timer)
    try:
        asyncio.run(sync_in_process(shape))
    finally:
        gc.callbacks.remove(timer)
    for generation, times in spent.items():
        print(f"  generation {generation}: {len(times):>5} collections, {sum(times):.2f} s")
    gc.disable()
    try:
        print("again with the collector off:")
        asyncio.run(sync_in_process(shape))
    finally:
        gc.enable()


# VmRSS, not ru_maxrss: Linux carries the peak over from the forked parent through exec.
_IMPORT_PROBE = """
import sys, time
start = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
rss = int(status["VmRSS"].split()[0]) / 1024
print(f"{time.perf_counter() - start:.2f} s, RSS {rss:.1f} MiB")
"""
IMPORT_SETS = {
    "python alone": [],
    "serve with --manifests": ["kubedns_py.cli", "kubedns_py.serve.app", "kubedns_py.sources.manifests"],
    "serve with the API": ["kubedns_py.cli", "kubedns_py.serve.app", "kubedns_py.sources.kube.source"],
    "kubernetes_asyncio alone": ["kubernetes_asyncio.client"],
}


def import_costs() -> None:
    """Time and RSS of importing each module set in a fresh interpreter: start-up cost serve
    pays before its first request, and memory it keeps whatever the cluster size."""
    for label, modules in IMPORT_SETS.items():
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, *modules],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        print(f"{label:<26} {done.stdout.strip()}")


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.scale_tools", description=__doc__)
    parser.add_argument("what", nargs="?", choices=("cpu", "gc", "memory", "imports"), default="cpu")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    api_scale.add_shape_args(parser)
    args = parser.parse_args(argv)
    shape = api_scale.shape_from_args(args)
    if args.what == "cpu":
        profile_cpu(shape, args.top)
    elif args.what == "gc":
        gc_cost(shape)
    elif args.what == "memory":
        profile_memory(shape, args.top)
    else:
        import_costs()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
