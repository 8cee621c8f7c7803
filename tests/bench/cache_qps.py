"""kubedns-py cache against Debian's dnsmasq as caching forwarders: the same upstream, the same names,
the same dnsperf load, in the same run.

One dnsmasq instance plays the upstream, answering 1,000 external names from a hosts file. In front of
it sit the two caches under test: ``kubedns-py cache --server=<upstream>`` and a second dnsmasq with
``--server=<upstream> --cache-size=10000``. A warm-up fills both caches, so the measured runs are pure
cache hits. Then the latency a cache adds on a miss: fresh names asked one at a time through each
cache and straight at the upstream, medians compared.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import dns.message
import dns.query

from tests.bench.tools import (
    OURS,
    THEIRS,
    BenchError,
    DnsperfOptions,
    DnsperfResult,
    Verdict,
    cache_pair,
    cpu_seconds,
    cpu_split,
    dnsmasq_process,
    pin,
    require,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
    write_results,
)
from tests.support.ports import HOST

NAME = "cache"
TARGET_RATIO = 0.5
MAX_SECONDS = 15.0
NAMES = 1_000
MISS_SAMPLES = 200
UPSTREAM_TTL = 3600  # nothing expires during the run


def names(count: int, prefix: str) -> dict[str, tuple[str, ...]]:
    return {f"{prefix}-{i}.example.test": (f"198.18.{i // 250}.{i % 250 + 1}",) for i in range(count)}


def miss_latency(port: int, fresh: Sequence[str]) -> float:
    """Median seconds for names nobody asked before (one query at a time, so no queueing)."""
    timings = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in fresh:
            query = dns.message.make_query(name, "A")
            start = time.perf_counter()
            reply = dns.query.udp(query, HOST, port=port, timeout=2, sock=sock)
            timings.append(time.perf_counter() - start)
            if not reply.answer:
                raise BenchError(f"{name}: no answer on port {port}")
    return statistics.median(timings)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench cache", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured run (max 15)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--outstanding", type=int, default=DnsperfOptions.outstanding, help="dnsperf -q")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the servers and dnsperf to CPUs")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or not 0 < args.warmup <= MAX_SECONDS or args.rounds < 1:
        parser.error(f"--seconds and --warmup must be in (0, {MAX_SECONDS:.0f}], --rounds positive")
    return args


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
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = ((), ()) if args.no_pin else cpu_split()
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    known = names(NAMES, "host")
    fresh = names(MISS_SAMPLES * 3, "fresh")
    with shared_tempdir("kubedns-bench-cache-") as tmp:
        hosts = write_hosts_file(tmp / "upstream.hosts", known | fresh)
        queries = write_query_file(tmp / "queries.txt", [(name, "A") for name in known])
        upstream_options = (f"--addn-hosts={hosts}", f"--local-ttl={UPSTREAM_TTL}", "--local=/example.test/")
        with dnsmasq_process(tmp / "upstream.log", *upstream_options) as up:
            upstream, upstream_port = up.process, up.port
            wait_until_answers(upstream_port, next(iter(known)), upstream)
            options = (f"--server={HOST}#{upstream_port}", "--cache-size=10000")
            with cache_pair(tmp / "cache.log", options, next(iter(known)), server_cpus) as pair:
                processes, ports = pair.processes, pair.ports
                if server_cpus:
                    pin(upstream.pid, load_cpus)  # the upstream only works during warm-up and misses
                for port in ports.values():  # fill both caches
                    run_dnsperf(port, queries, replace(load, seconds=args.warmup))
                runs: dict[str, list[DnsperfResult]] = {server: [] for server in ports}
                cpu: dict[str, float] = dict.fromkeys(ports, 0.0)
                for _ in range(args.rounds):
                    for server, port in ports.items():
                        before = cpu_seconds(processes[server].pid)
                        runs[server].append(run_dnsperf(port, queries, load))
                        cpu[server] += cpu_seconds(processes[server].pid) - before
                fresh_names = list(fresh)
                direct = miss_latency(upstream_port, fresh_names[:MISS_SAMPLES])
                miss = {
                    OURS: miss_latency(ports[OURS], fresh_names[MISS_SAMPLES : 2 * MISS_SAMPLES]),
                    THEIRS: miss_latency(ports[THEIRS], fresh_names[2 * MISS_SAMPLES :]),
                }
    summary: dict[str, dict[str, Any]] = {
        server: {
            "qps": sum(r.completed for r in results) / sum(r.runtime for r in results),
            "lost": sum(r.lost for r in results),
            "server_cpu_percent": 100 * cpu[server] / sum(r.runtime for r in results),
            "rcodes": {code: sum(r.rcodes.get(code, 0) for r in results) for code in ("NOERROR", "SERVFAIL")},
            "miss_added_ms": 1000 * (miss[server] - direct),
            "runs": [r.as_dict() for r in results],
        }
        for server, results in runs.items()
    }
    ratio = summary[OURS]["qps"] / summary[THEIRS]["qps"]
    print(f"bench {NAME}: {NAMES:,} names, all hits after warm-up; {args.rounds} x {args.seconds:g} s each")
    print(f"{'cache':<17} {'hit QPS':>10} {'lost':>6} {'CPU':>5} {'added on a miss':>16}")
    for server, s in summary.items():
        print(
            f"{server:<17} {s['qps']:>10,.0f} {s['lost']:>6} {s['server_cpu_percent']:>4.0f}% "
            f"{s['miss_added_ms']:>13.3f} ms"
        )
    print(f"upstream answered a fresh name directly in {1000 * direct:.3f} ms (median)")
    print(Verdict("cache/dnsmasq cache-hit QPS ratio", ratio, TARGET_RATIO).line())
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "names": NAMES,
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "servers": summary,
        "direct_miss_ms": 1000 * direct,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
    }
