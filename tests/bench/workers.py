"""serve and the cache with ``--workers 1`` against ``--workers N``: the same names, the same dnsperf
load (several sockets, which SO_REUSEPORT spreads over the workers), in the same run, rounds taking
turns. serve answers a generated cluster (as ``serve_qps``); the cache answers the same names from its
cache, filled by a warm-up, in front of one serve. QPS gains need free cores: on a machine with fewer
cores than workers plus dnsperf the figures say what the supervisor's overhead costs, not the gain.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from tests.bench import cluster_gen, serve_qps
from tests.bench.tools import (
    BenchError,
    DnsperfOptions,
    require,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_query_file,
    write_results,
)
from tests.support.processes import cache, serve
from tests.support.procfs import child_pids, cpu_seconds

NAME = "workers"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench {NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="N, compared with 1")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c (sockets)")
    parser.add_argument("--services", type=int, default=1_000)
    return parser.parse_args(argv)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the supervisor and its workers)."""
    return sum(cpu_seconds(p) or 0.0 for p in (pid, *child_pids(pid)))


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (BenchError, AssertionError) as err:
        print(f"bench {NAME}: FAILED: {err}")
        return 1
    print(f"results written to {write_results(NAME, results)}")
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsperf", "dig")
    load = DnsperfOptions(seconds=args.seconds, clients=args.clients, threads=2)
    shape = cluster_gen.ClusterShape(services=args.services, namespaces=10)
    figures: dict[str, dict[str, float]] = {}
    with shared_tempdir("kubedns-bench-") as tmp:
        manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
        workload = serve_qps.derive_workload(manifest, 0.1)
        queries = write_query_file(tmp / "queries.txt", serve_qps.query_mix(workload))
        first = next(iter(workload.records))
        n = f"--workers={args.workers}"
        with (
            serve(manifests=[manifest]) as one,
            serve(n, manifests=[manifest]) as many,
            cache("--no-resolv", f"--server=127.0.0.1#{one.dns_port}", "--cache-size=100000") as c1,
            cache("--no-resolv", f"--server=127.0.0.1#{one.dns_port}", "--cache-size=100000", n) as cn,
        ):
            servers = {
                "serve 1": one,
                f"serve {args.workers}": many,
                "cache 1": c1,
                f"cache {args.workers}": cn,
            }
            for running in servers.values():
                wait_until_answers(running.dns_port, first, running.process)
                run_dnsperf(running.dns_port, queries, replace(load, seconds=2.0))  # fills caches and memos
            qps: dict[str, list[float]] = {name: [] for name in servers}
            cpu: dict[str, float] = dict.fromkeys(servers, 0.0)
            for _ in range(args.rounds):
                for name, running in servers.items():
                    before = tree_cpu(running.process.pid)
                    result = run_dnsperf(running.dns_port, queries, load)
                    cpu[name] += tree_cpu(running.process.pid) - before
                    qps[name].append(result.qps)
    for name, runs in qps.items():
        mean = sum(runs) / len(runs)
        figures[name] = {"qps": mean, "cpu_percent": 100 * cpu[name] / (args.seconds * args.rounds)}
        print(f"{name:<10} {mean:>10,.0f} QPS  {figures[name]['cpu_percent']:>5.0f}% CPU  rounds {runs}")
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": asdict(shape),
        "dnsperf": asdict(load) | {"rounds": args.rounds},
        "servers": figures,
    }
