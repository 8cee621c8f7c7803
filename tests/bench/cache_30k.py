"""kubedns-py cache against dnsmasq as caching forwarders holding 30k names: cache-hit QPS.

One dnsmasq plays the upstream, answering 30,000 names from a hosts file with a one-hour TTL. In front
of it, ``kubedns-py cache`` and a second dnsmasq, both ``--cache-size=100000``. Each is warmed by
passes over every name until a pass adds no miss (CHAOS ``misses.bind``), so the measured runs are
pure hits over a working set far larger than the 1k of ``cache``; the misses counter is read again
after them to prove it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tests.bench import cache_qps
from tests.bench.tools import (
    MAX_SECONDS,
    MISS_OUTSTANDING,
    OURS,
    THEIRS,
    BenchError,
    DnsperfOptions,
    cache_pair,
    cpu_split,
    dnsmasq,
    load_parser,
    measure_rounds,
    parse_load_args,
    pin,
    print_qps_table,
    print_verdicts,
    qps_problems,
    qps_verdict,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    write_hosts_file,
    write_query_file,
)
from tests.support.dnsclient import chaos_number
from tests.support.ports import HOST

NAME = "cache-30k"
TARGET_RATIO = 0.8
NAMES = 30_000
CACHE_SIZE = 100_000
WARM_PASSES = 4  # the first pass misses everything; later ones only what the upstream was slow to give


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__, warmup=0.0)
    parser.add_argument("--names", type=int, default=NAMES)
    args = parse_load_args(parser, argv)
    if not 0 < args.names <= CACHE_SIZE:
        parser.error(f"--names must be in (0, {CACHE_SIZE}]")
    return run_bench(NAME, lambda: run(args))


def warm(port: int, queries: Path, load: DnsperfOptions) -> int:
    """Passes over every name until one adds no miss; how many it took."""
    one_pass = replace(load, seconds=MAX_SECONDS, max_runs=1, outstanding=MISS_OUTSTANDING)
    for passes in range(1, WARM_PASSES + 1):
        before = chaos_number(port, "misses")
        run_dnsperf(port, queries, one_pass)
        if chaos_number(port, "misses") == before:
            return passes
    raise BenchError(f"port {port}: still missing after {WARM_PASSES} passes over every name")


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    known = cache_qps.names(args.names, "host")
    probe = next(iter(known))
    with shared_tempdir("kubedns-bench-cache30k-") as tmp:
        hosts = write_hosts_file(tmp / "upstream.hosts", known)
        queries = write_query_file(tmp / "queries.txt", [(name, "A") for name in known])
        with dnsmasq(hosts, "example.test", cache_qps.UPSTREAM_TTL, tmp / "upstream.log") as upstream:
            if server_cpus:
                pin(upstream.process.pid, load_cpus)  # it only works while the caches warm
            options = (f"--server={HOST}#{upstream.port}", f"--cache-size={CACHE_SIZE}")
            with cache_pair(tmp / "cache.log", options, probe, server_cpus) as pair:
                passes = {server: warm(port, queries, load) for server, port in pair.ports.items()}
                misses = {server: chaos_number(port, "misses") for server, port in pair.ports.items()}
                print(
                    f"bench {NAME}: {len(known):,} names, --cache-size={CACHE_SIZE}; warm after "
                    + ", ".join(f"{server} {n} passes" for server, n in passes.items())
                    + f"; {args.rounds} x {args.seconds:g} s each"
                )
                measured = measure_rounds(pair.ports, pair.processes, queries, load, args.rounds, args.warmup)
                pair.check_alive()
                ports = pair.ports.items()
                missed = {server: chaos_number(port, "misses") - misses[server] for server, port in ports}
    summaries = {server: m.summary() | {"misses_measured": missed[server]} for server, m in measured.items()}
    verdict = qps_verdict("cache/dnsmasq cache-hit", summaries, OURS, THEIRS, TARGET_RATIO)
    problems = qps_problems(summaries, ("NOERROR",))
    problems += [f"{server} missed {n:,} times while measured" for server, n in missed.items() if n]
    print_qps_table(summaries)
    print_verdicts([verdict], problems)
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "names": len(known),
        "cache_size": CACHE_SIZE,
        "warm_passes": passes,
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "servers": summaries,
        "ratio": verdict.as_dict(),
        "problems": problems,
    }
