"""``python -m tests.fuzz [--inputs N] [--seed S]``: the long fuzz (``make fuzz``), in one process.

Every generated packet (``tests.support.junk``) goes to the reader, to serve's answerer (the demo
cluster loaded) and to the cache's UDP handler (a cache with no upstreams: misses become SERVFAIL
at once); each reply is checked against the packet's verdict. Prints the inputs, the verdicts, the
failures (wrong replies) and crashes (exceptions, or handler failures the servers logged), and the
time; exits non-zero on any failure or crash.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.store import Store
from kubedns_py.cluster.zone import PodMode, Zone
from kubedns_py.dnswire.reader import read
from kubedns_py.net.stats import DnsStats
from kubedns_py.serve.answerer import Answerer
from kubedns_py.sources.manifests import ManifestSource
from tests.support.frontends import cache_frontend
from tests.support.junk import check, expected, named, packets
from tests.support.paths import DEMO_CLUSTER

SHOWN_FAILURES = 10
MISS_TURNS = 20


class Crashes(logging.Handler):
    """Counts the failures the handlers catch and log themselves (never a crash of the process)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def serve_answerer() -> tuple[Answerer, DnsStats]:
    source = ManifestSource([DEMO_CLUSTER])
    store = Store(required=source.kinds)
    store.apply(source.poll())
    zone = Zone(store, "cluster.local", 30, PodMode.INSECURE)
    stats = DnsStats("serve")
    return Answerer(zone, WireZone(zone, store), stats), stats


async def fuzz(inputs: int, seed: int) -> int:
    crashes = Crashes()
    logging.getLogger().addHandler(crashes)
    answerer, serve_stats = serve_answerer()
    frontend, cache_stats, _ = cache_frontend(timeout=1.0)
    later: dict[int, bytes] = {}
    on_datagram = frontend.udp_handler(lambda reply, addr: later.__setitem__(addr, reply))
    verdicts: Counter[str] = Counter()
    failures: list[str] = []
    exceptions = 0
    started = time.perf_counter()
    for n, packet in enumerate(packets(seed, inputs)):
        data = named(packet, n)
        verdict = expected(data, datagram=False)  # handlers in-process: no datagram size limit
        verdicts[verdict] += 1
        try:
            read(data)
            serve_reply = answerer.answer(data)
            cache_reply = on_datagram(data, n)
            for _ in range(MISS_TURNS):  # a miss: its task answers within a few turns of the loop
                if cache_reply is not None or verdict == "none":
                    break
                await asyncio.sleep(0)
                cache_reply = later.pop(n, None)
        except Exception as err:  # a crash: the handlers must never raise
            exceptions += 1
            failures.append(f"{data.hex()}: {type(err).__name__}: {err}")
            continue
        for server, reply in (("serve", serve_reply), ("cache", cache_reply)):
            problem = check(data, reply, verdict, servfail_ok=server == "cache")
            if problem is not None:
                failures.append(f"{server} {verdict} {data.hex()}: {problem}")
    await frontend.close()
    elapsed = time.perf_counter() - started
    logging.getLogger().removeHandler(crashes)
    print(f"inputs={inputs} seed={seed} time={elapsed:.1f}s ({inputs / elapsed:,.0f}/s)")
    print("verdicts: " + " ".join(f"{v}={c}" for v, c in sorted(verdicts.items())))
    for name, stats in (("serve", serve_stats), ("cache", cache_stats)):
        kinds = stats.malformed_counts()
        print(f"{name} malformed: " + " ".join(f"{k}={c}" for k, c in sorted(kinds.items())))
    print(f"failures={len(failures)} crashes={exceptions + crashes.count}")
    for line in failures[:SHOWN_FAILURES]:
        print("  " + line)
    return 1 if failures or exceptions or crashes.count else 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(fuzz(args.inputs, args.seed))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
