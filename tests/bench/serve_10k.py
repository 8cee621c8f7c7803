"""serve against dnsmasq on a 10k-service cluster with the questions Pods really ask, in the same run.

The cluster and the question mix are ``cluster_mix``'s: ~116k distinct questions (A, AAAA, SRV by
port and bare, endpoint names, ndots:5 search-path NXDOMAINs, a tenth in mixed case), far more than
any memo of finished replies holds, so serve is measured answering questions it has not just seen.
dnsperf loops over them closed-loop, the server pinned to one CPU and dnsperf to the other; runs take
turns between the servers after a warm-up of each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from tests.bench import cluster_mix
from tests.bench.tools import (
    DnsperfOptions,
    cpu_split,
    load_parser,
    log_problems,
    measure_rounds,
    parse_load_args,
    print_qps_table,
    print_verdicts,
    qps_problems,
    qps_verdict,
    require,
    run_bench,
    shared_tempdir,
)

NAME = "serve-10k"
TARGET_RATIO = 0.8


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.add_argument("--services", type=int, default=cluster_mix.SHAPE_10K.services)
    parser.add_argument("--namespaces", type=int, default=cluster_mix.SHAPE_10K.namespaces)
    args = parse_load_args(parser, argv)
    return run_bench(NAME, lambda: run(args))


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    shape = replace(cluster_mix.SHAPE_10K, services=args.services, namespaces=args.namespaces)
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    with (
        shared_tempdir("kubedns-bench-") as tmp,
        cluster_mix.serve_and_dnsmasq(tmp, shape, server_cpus) as servers,
    ):
        mix = servers.mix
        print(
            f"bench {NAME}: {shape.services:,} services, {len(mix.questions):,} distinct questions "
            f"({mix.census()}); {servers.checked} spot-checked on both servers"
        )
        print(
            f"dnsperf -c {load.clients} -q {load.outstanding}, {args.rounds} x {load.seconds:g} s per server "
            f"after a {args.warmup:g} s warm-up; dnsmasq answers SRV by port NXDOMAIN, bare SRV NODATA"
        )
        measured = measure_rounds(
            servers.ports, servers.processes, servers.queries, load, args.rounds, args.warmup
        )
        servers.check_alive()
        serve_log = log_problems(servers.serve.log_text())
    summaries = {server: m.summary() for server, m in measured.items()}
    verdict = qps_verdict("serve/dnsmasq", summaries, "serve", "dnsmasq", TARGET_RATIO)
    problems = [f"serve logged: {line}" for line in serve_log[:10]] + qps_problems(summaries)
    print_qps_table(summaries)
    print_verdicts([verdict], problems)
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": asdict(shape) | {"questions": len(mix.questions), "census": mix.census()},
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "server_cpus": server_cpus,
        "servers": summaries,
        "ratio": verdict.as_dict(),
        "problems": problems,
    }
