"""Per-query latency at the same steady load as dnsmasq: p50, p99 and p99.9, for what Pods meet.

Three scenarios, each against Debian's dnsmasq in the same run:

- ``serve-1k``: serve and dnsmasq answering 1,000 ClusterIP names (and 10% NXDOMAIN), as ``serve``;
- ``serve-wide``: the 10,000-service wide mix of ``serve-10k`` (A, AAAA, SRV, search-path variants);
- ``cache-hits``: the cache and dnsmasq as caching forwarders in front of one upstream, 1,000 names
  already cached, as ``cache``.

dnsmasq's capacity is measured first (closed loop); then each server is offered half of it with
``dnsperf -Q``, well below saturation, so the latencies are service time plus ordinary queueing rather
than the backlog of an overloaded server. ``dnsperf -v`` reports every answer's latency; a query lost
counts as slower than any answer. Each round gives its percentiles; a scenario reports the median of
each over the rounds, and its ratio to dnsmasq's.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tests.bench import cache_qps, cluster_gen, cluster_mix, serve_qps
from tests.bench.tools import (
    OURS,
    THEIRS,
    BenchError,
    DnsperfOptions,
    DnsperfResult,
    Measured,
    Verdict,
    cache_pair,
    cpu_split,
    dnsmasq,
    dnsmasq_process,
    load_parser,
    log_problems,
    measure_rounds,
    parse_load_args,
    percentile,
    pin,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
)
from tests.support.ports import HOST
from tests.support.processes import serve

NAME = "latency"
SCENARIOS = ("serve-1k", "serve-wide", "cache-hits")
# Ours at most these multiples of dnsmasq's, percentile by percentile.
TARGET_RATIOS = {"p50": 1.3, "p99": 1.0, "p99.9": 1.5}
LOAD_SHARE = 0.5  # of dnsmasq's measured capacity
KEPT_UP = 0.97  # a server answering less of the offered load was saturated
PERCENTILES = {"p50": 0.50, "p99": 0.99, "p99.9": 0.999}


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.set_defaults(rounds=3)
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="dnsmasq's closed-loop run")
    parser.add_argument(
        "--scenario", choices=SCENARIOS, action="append", help="one scenario (repeatable; default: all)"
    )
    args = parse_load_args(parser, argv)
    if not 0 < args.capacity_seconds <= args.seconds * 2:
        parser.error("--capacity-seconds must be positive and at most twice --seconds")
    return run_bench(NAME, lambda: run(args))


def latency_percentiles(runs: Sequence[DnsperfResult]) -> dict[str, Any]:
    """Milliseconds at each percentile over every query sent (lost ones as infinitely slow)."""
    lost = sum(r.lost for r in runs)
    values = sorted(1000 * s for r in runs for s in r.latencies) + [math.inf] * lost
    summary: dict[str, Any] = {label: percentile(values, share) for label, share in PERCENTILES.items()}
    return summary | {"max": values[-1], "answers": len(values) - lost, "lost": lost}


def latency_summary(measured: Measured) -> dict[str, Any]:
    """``latency_percentiles`` with the QPS answered and the server's CPU share."""
    runtime = sum(r.runtime for r in measured.runs)
    return latency_percentiles(measured.runs) | {
        "qps": sum(r.completed for r in measured.runs) / runtime,
        "server_cpu_percent": 100 * sum(measured.cpu) / runtime,
    }


def print_latencies(summaries: Mapping[str, Mapping[str, Any]]) -> None:
    width = max(9, *map(len, summaries))
    print(
        f"{'server':<{width}} {'QPS':>9} {'p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9} {'lost':>6} {'CPU':>5}"
    )
    for server, s in summaries.items():
        quantiles = " ".join(f"{s[k]:>6.3f} ms" for k in (*PERCENTILES, "max"))
        print(
            f"{server:<{width}} {s['qps']:>9,.0f} {quantiles} {s['lost']:>6} {s['server_cpu_percent']:>4.0f}%"
        )


def overload_problems(summaries: Mapping[str, Mapping[str, Any]], offered: int) -> list[str]:
    """Servers that fell behind the offered load, whose latencies are then mostly queueing."""
    return [
        f"{server} answered {s['qps']:,.0f} of the {offered:,} QPS offered: overloaded, so its latencies are "
        "mostly the queue dnsperf's -q allows"
        for server, s in summaries.items()
        if s["qps"] < KEPT_UP * offered
    ]


@dataclass
class Pair:
    """Our server and dnsmasq, answering the same questions, pinned and checked."""

    ours: str  # our server's name in the tables
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[Any]]
    queries: Path
    described: str
    our_log: Callable[[], str]


@contextmanager
def serve_1k(tmp: Path, server_cpus: tuple[int, ...], load_cpus: tuple[int, ...]) -> Iterator[Pair]:
    shape = cluster_gen.ClusterShape(services=1_000, namespaces=10)
    manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
    workload = serve_qps.derive_workload(manifest, 0.1)
    hosts = write_hosts_file(tmp / "cluster.hosts", workload.records)
    queries = write_query_file(tmp / "queries.txt", serve_qps.query_mix(workload))
    domain, ttl = cluster_mix.DOMAIN, cluster_mix.TTL
    with serve(manifests=[manifest]) as ours, dnsmasq(hosts, domain, ttl, tmp / "dnsmasq.log") as theirs:
        pair = Pair(
            "serve",
            {"serve": ours.dns_port, "dnsmasq": theirs.port},
            {"serve": ours.process, "dnsmasq": theirs.process},
            queries,
            f"{len(workload.records):,} names + {len(workload.missing):,} NXDOMAIN names",
            ours.log_text,
        )
        wait_until_answers(ours.dns_port, next(iter(workload.records)), ours.process)
        for process in pair.processes.values():
            if server_cpus:
                pin(process.pid, server_cpus)
        serve_qps.spot_check(workload, pair.ports)
        yield pair


@contextmanager
def serve_wide(tmp: Path, server_cpus: tuple[int, ...], load_cpus: tuple[int, ...]) -> Iterator[Pair]:
    with cluster_mix.serve_and_dnsmasq(tmp, cluster_mix.SHAPE_10K, server_cpus) as servers:
        yield Pair(
            "serve",
            servers.ports,
            servers.processes,
            servers.queries,
            f"{cluster_mix.SHAPE_10K.services:,} services, {len(servers.mix.questions):,} distinct questions",
            servers.serve.log_text,
        )


@contextmanager
def cache_hits(tmp: Path, server_cpus: tuple[int, ...], load_cpus: tuple[int, ...]) -> Iterator[Pair]:
    known = cache_qps.names(cache_qps.NAMES, "host")
    hosts = write_hosts_file(tmp / "upstream.hosts", known)
    queries = write_query_file(tmp / "queries.txt", [(name, "A") for name in known])
    ttl = cache_qps.UPSTREAM_TTL
    upstream_options = (f"--addn-hosts={hosts}", f"--local-ttl={ttl}", "--local=/example.test/")
    with dnsmasq_process(tmp / "upstream.log", *upstream_options) as upstream:
        wait_until_answers(upstream.port, next(iter(known)), upstream.process)
        if load_cpus:
            pin(upstream.process.pid, load_cpus)  # it only works while the caches fill
        options = (f"--server={HOST}#{upstream.port}", "--cache-size=10000")
        with cache_pair(tmp / "cache.log", options, next(iter(known)), server_cpus) as caches:
            yield Pair(
                OURS,
                caches.ports,
                caches.processes,
                queries,
                f"{len(known):,} names, cached by both in the warm-up",
                caches.ours.log_text,
            )


RUNNERS = {"serve-1k": serve_1k, "serve-wide": serve_wide, "cache-hits": cache_hits}


def round_medians(measured: Measured) -> dict[str, Any]:
    """The median over the rounds of each round's percentiles, with the QPS answered and CPU share."""
    rounds = [latency_percentiles([run]) for run in measured.runs]
    runtime = sum(r.runtime for r in measured.runs)
    medians = {label: statistics.median(r[label] for r in rounds) for label in PERCENTILES}
    return medians | {
        "max": max(r["max"] for r in rounds),
        "lost": sum(r["lost"] for r in rounds),
        "qps": sum(r.completed for r in measured.runs) / runtime,
        "server_cpu_percent": 100 * sum(measured.cpu) / runtime,
        "rounds": rounds,
    }


def measure(scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    closed = DnsperfOptions(seconds=args.capacity_seconds, outstanding=args.outstanding, cpus=load_cpus)
    with (
        shared_tempdir(f"kubedns-bench-latency-{scenario}-") as tmp,
        RUNNERS[scenario](tmp, server_cpus, load_cpus) as pair,
    ):
        # A first pass fills dnsmasq's cache (cache-hits) so that its capacity is its hit rate.
        run_dnsperf(pair.ports[THEIRS], pair.queries, replace(closed, seconds=max(1.0, args.warmup)))
        capacity = run_dnsperf(pair.ports[THEIRS], pair.queries, closed).qps
        offered = round(LOAD_SHARE * capacity)
        steady = replace(closed, seconds=args.seconds, max_qps=offered, latencies=True)
        print(
            f"bench {NAME} {scenario}: {pair.described}; dnsmasq's capacity {capacity:,.0f} QPS, both "
            f"offered {offered:,} QPS (dnsperf -Q {offered} -v), {args.rounds} x {args.seconds:g} s each"
        )
        measured = measure_rounds(pair.ports, pair.processes, pair.queries, steady, args.rounds, args.warmup)
        for server, process in pair.processes.items():
            if process.poll() is not None:
                raise BenchError(f"{server} exited during the run with status {process.returncode}")
        our_log = log_problems(pair.our_log())
    summaries = {server: round_medians(m) for server, m in measured.items()}
    ours, reference = summaries[pair.ours], summaries[THEIRS]
    ratios = {label: ours[label] / reference[label] for label in PERCENTILES}
    verdicts = [
        Verdict(f"{scenario} {label} / dnsmasq's", ratios[label], target, at_most=True)
        for label, target in TARGET_RATIOS.items()
    ]
    print_latencies(summaries)
    for verdict in verdicts:
        print(verdict.line())
    problems = [f"{pair.ours} logged: {line}" for line in our_log[:10]]
    problems += overload_problems(summaries, offered)
    for problem in problems:
        print(f"WARNING: {problem}")
    return {
        "dnsmasq_capacity_qps": capacity,
        "dnsperf": asdict(steady) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "latency_ms": summaries,
        "ratios": ratios,
        "targets": [v.as_dict() for v in verdicts],
        "problems": problems,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    scenarios = args.scenario or list(SCENARIOS)
    results = {scenario: measure(scenario, args) for scenario in scenarios}
    print("median of the rounds, ours / dnsmasq's:")
    print(f"{'scenario':<11} " + " ".join(f"{label:>8}" for label in PERCENTILES))
    for scenario, result in results.items():
        print(f"{scenario:<11} " + " ".join(f"{result['ratios'][label]:>7.2f}x" for label in PERCENTILES))
    return {"benchmark": NAME, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "scenarios": results}
