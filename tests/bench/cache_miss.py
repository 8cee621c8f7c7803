"""Every query a miss: kubedns-py cache against dnsmasq forwarding each question upstream.

One dnsmasq plays the upstream, knowing 1,000 names only as A records (a hosts file under
``--local=/example.test/``): AAAA for them is NOERROR with no records and no SOA, a NODATA that neither
cache may store, so every question is forwarded. In front of it sit ``kubedns-py cache`` and a second
dnsmasq with the same flags, asked AAAA for those names. First their capacity: closed-loop runs taking
turns, ``dnsperf -q`` below ``--dns-forward-max`` (150) so that neither refuses a question for want of
a slot. Then the latency of a miss: both offered half of dnsmasq's measured QPS (``dnsperf -Q -v``),
p50/p99/p99.9 as in ``latency``. The upstream's own capacity, answering the same questions directly on
the caches' CPU, is measured first to show it is not the limit.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from tests.bench import cache_qps, latency
from tests.bench.tools import (
    MISS_OUTSTANDING,
    OURS,
    THEIRS,
    BenchError,
    DnsperfOptions,
    Verdict,
    cache_pair,
    cpu_split,
    dnsmasq,
    load_parser,
    lookup,
    measure_rounds,
    parse_load_args,
    pin,
    print_qps_table,
    print_upstream_cpu,
    print_verdicts,
    qps_problems,
    qps_verdict,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    warm_up,
    write_hosts_file,
    write_query_file,
)
from tests.support.dnsclient import chaos_number
from tests.support.ports import HOST

NAME = "cache-miss"
TARGET_RATIO = 1.0
TARGET_P99_RATIO = 1.3  # ours at most this multiple of dnsmasq's
NAMES = 1_000


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.set_defaults(outstanding=MISS_OUTSTANDING)
    parser.add_argument("--names", type=int, default=NAMES)
    args = parse_load_args(parser, argv)
    if not 0 < args.names <= 60_000:  # cache_qps.names' addresses
        parser.error("--names must be in (0, 60000]")
    return run_bench(NAME, lambda: run(args))


def check_uncached(ports: Mapping[str, int], name: str) -> None:
    """Each cache answers ``name`` AAAA with NODATA and asks the upstream again every time."""
    for server, port in ports.items():
        before = chaos_number(port, "misses")
        for _ in range(2):
            got = lookup(port, name, "AAAA")
            if (got.status, got.records) != ("NOERROR", 0):
                raise BenchError(
                    f"{server}: {name} AAAA -> {got.status} with {got.records} records, want NODATA"
                )
        if chaos_number(port, "misses") - before != 2:
            raise BenchError(f"{server} cached {name} AAAA (NODATA without SOA): it must forward every time")


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    closed = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    known = cache_qps.names(args.names, "a-only")
    probe = next(iter(known))
    with shared_tempdir("kubedns-bench-cachemiss-") as tmp:
        hosts = write_hosts_file(tmp / "upstream.hosts", known)
        queries = write_query_file(tmp / "queries.txt", [(name, "AAAA") for name in known])
        with dnsmasq(hosts, "example.test", cache_qps.UPSTREAM_TTL, tmp / "upstream.log") as upstream:
            if server_cpus:
                pin(upstream.process.pid, server_cpus)
            alone = run_dnsperf(upstream.port, queries, closed)
            if server_cpus:
                pin(upstream.process.pid, load_cpus)  # beside dnsperf, leaving the caches their CPU
            options = (f"--server={HOST}#{upstream.port}", "--cache-size=1000")
            with cache_pair(tmp / "cache.log", options, probe, server_cpus) as pair:
                check_uncached(pair.ports, probe)
                print(
                    f"bench {NAME}: AAAA for {len(known):,} names the upstream has only as A (NODATA, "
                    f"no SOA: never cached); upstream alone on one CPU {alone.qps:,.0f} QPS; "
                    f"{args.rounds} x {args.seconds:g} s each, -q {args.outstanding}"
                )
                warm_up(pair.ports, queries, closed, args.warmup)
                ports = pair.ports.items()
                misses = {server: chaos_number(port, "misses") for server, port in ports}
                measured = measure_rounds(
                    pair.ports, pair.processes, queries, closed, args.rounds, 0, (upstream.process.pid,)
                )
                missed = {server: chaos_number(port, "misses") - misses[server] for server, port in ports}
                summaries = {
                    server: m.summary() | {"misses_measured": missed[server]}
                    for server, m in measured.items()
                }
                capacity = summaries[THEIRS]["qps"]
                offered = round(latency.LOAD_SHARE * capacity)
                steady = replace(closed, max_qps=offered, latencies=True)
                print_qps_table(summaries)
                print_upstream_cpu(summaries, "the upstream")
                print(
                    "questions forwarded while measured: "
                    + ", ".join(f"{s} {n:,} of {summaries[s]['completed']:,}" for s, n in missed.items())
                )
                print(f"offering both {offered:,} QPS (half dnsmasq's), dnsperf -Q {offered} -v")
                timed = measure_rounds(pair.ports, pair.processes, queries, steady, args.rounds, 0)
                pair.check_alive()
    latencies = {server: latency.latency_summary(m) for server, m in timed.items()}
    latency.print_latencies(latencies)
    verdicts = [
        qps_verdict("cache/dnsmasq miss", summaries, OURS, THEIRS, TARGET_RATIO),
        Verdict(
            "cache p99 / dnsmasq p99 at half dnsmasq's miss capacity",
            latencies[OURS]["p99"] / latencies[THEIRS]["p99"],
            TARGET_P99_RATIO,
            at_most=True,
        ),
    ]
    problems = qps_problems(summaries, ("NOERROR",))
    problems += latency.overload_problems(latencies, offered)
    if alone.qps < 1.5 * max(s["qps"] for s in summaries.values()):
        problems.append(f"the upstream alone answered {alone.qps:,.0f} QPS: it may have been the limit")
    print_verdicts(verdicts, problems)
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "names": len(known),
        "upstream_alone": alone.as_dict(),
        "dnsperf": asdict(closed) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "servers": summaries,
        "offered_qps": offered,
        "latency_ms": latencies,
        "verdicts": [v.as_dict() for v in verdicts],
        "problems": problems,
    }
