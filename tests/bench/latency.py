"""Per-query latency of serve and dnsmasq at the same steady load: p50, p99 and p99.9.

Same cluster, question mix and reference as ``serve-10k``. dnsmasq's capacity is measured first
(closed loop); then each server is offered half of it with ``dnsperf -Q``, well below saturation, so
the latencies are service time plus ordinary queueing rather than the backlog of an overloaded
server. ``dnsperf -v`` reports every answer's latency; a query lost counts as slower than any answer.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from tests.bench import cluster_mix
from tests.bench.tools import (
    DnsperfOptions,
    DnsperfResult,
    Measured,
    Verdict,
    cpu_split,
    load_parser,
    log_problems,
    measure_rounds,
    parse_load_args,
    percentile,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
)

NAME = "latency"
TARGET_P99_RATIO = 1.3  # serve's p99 at most this multiple of dnsmasq's
TARGET_P999_MS = 2.0
LOAD_SHARE = 0.5  # of dnsmasq's measured capacity
KEPT_UP = 0.97  # a server answering less of the offered load was saturated
PERCENTILES = {"p50": 0.50, "p99": 0.99, "p99.9": 0.999}


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="dnsmasq's closed-loop run")
    parser.add_argument("--services", type=int, default=cluster_mix.SHAPE_10K.services)
    parser.add_argument("--namespaces", type=int, default=cluster_mix.SHAPE_10K.namespaces)
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    shape = replace(cluster_mix.SHAPE_10K, services=args.services, namespaces=args.namespaces)
    closed = DnsperfOptions(seconds=args.capacity_seconds, outstanding=args.outstanding, cpus=load_cpus)
    with (
        shared_tempdir("kubedns-bench-latency-") as tmp,
        cluster_mix.serve_and_dnsmasq(tmp, shape, server_cpus) as servers,
    ):
        print(
            f"bench {NAME}: {shape.services:,} services, {len(servers.mix.questions):,} distinct questions "
            f"as in serve-10k; {servers.checked} spot-checked on both servers"
        )
        capacity = run_dnsperf(servers.ports["dnsmasq"], servers.queries, closed).qps
        offered = round(LOAD_SHARE * capacity)
        steady = replace(closed, seconds=args.seconds, max_qps=offered, latencies=True)
        print(
            f"dnsmasq's capacity {capacity:,.0f} QPS; offering both {offered:,} QPS "
            f"(dnsperf -Q {offered} -v), {args.rounds} x {args.seconds:g} s each "
            f"after a {args.warmup:g} s warm-up"
        )
        measured = measure_rounds(
            servers.ports, servers.processes, servers.queries, steady, args.rounds, args.warmup
        )
        servers.check_alive()
        serve_log = log_problems(servers.serve.log_text())
    summaries = {server: latency_summary(m) for server, m in measured.items()}
    serve, reference = summaries["serve"], summaries["dnsmasq"]
    verdicts = [
        Verdict("serve p99 / dnsmasq p99", serve["p99"] / reference["p99"], TARGET_P99_RATIO, at_most=True),
        Verdict("serve p99.9 (ms)", serve["p99.9"], TARGET_P999_MS, at_most=True),
    ]
    print_latencies(summaries)
    for verdict in verdicts:
        print(verdict.line())
    problems = [f"serve logged: {line}" for line in serve_log[:10]]
    problems += overload_problems(summaries, offered)
    for problem in problems:
        print(f"WARNING: {problem}")
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": asdict(shape) | {"questions": len(servers.mix.questions)},
        "dnsmasq_capacity_qps": capacity,
        "dnsperf": asdict(steady) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "latency_ms": summaries,
        "targets": [v.as_dict() for v in verdicts],
        "problems": problems,
    }
