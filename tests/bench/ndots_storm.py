"""The ndots:5 storm through the cache: kubedns-py cache -> serve against dnsmasq -> the same serve.

A Pod with the default ``ndots:5`` looking up an external name ``ext-<i>.example.test`` first tries
it under each search domain (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``),
each an NXDOMAIN from serve, then the name itself, which the upstream answers; A and AAAA each, so 8
questions per name, for 500 names. Both caches get the same flags: ``--server=/cluster.local/`` to
one ``kubedns-py serve`` and every other name to a dnsmasq upstream answering the external names
from a hosts file. Once warm, the caches answer the misses (negative, from serve's SOA, 30 s) as
often as the hits, and refresh them from serve as they expire.

``ndots-storm-nonegcache`` gives both caches ``--no-negcache`` too, as the kube-dns pod does, so every
search-path NXDOMAIN (6 questions in 8) is a miss forwarded to serve.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tests.bench import cluster_gen, cluster_mix
from tests.bench.tools import (
    MISS_OUTSTANDING,
    OURS,
    THEIRS,
    BenchError,
    DnsperfOptions,
    cache_pair,
    cpu_split,
    dnsmasq_process,
    load_parser,
    log_problems,
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
    shared_tempdir,
    wait_until_answers,
    warm_up,
    write_hosts_file,
    write_query_file,
)
from tests.support.dnsclient import chaos_number
from tests.support.ports import HOST
from tests.support.processes import serve

NAME = "ndots-storm"
NAME_NO_NEGCACHE = "ndots-storm-nonegcache"
TARGET_RATIO = 1.0
EXTERNAL_NAMES = 500
UPSTREAM_TTL = 3600
CACHE_SIZE = 10_000  # the kube-dns manifests' value; holds the storm's 4,000 questions


def main(argv: Sequence[str] = ()) -> int:
    return bench(NAME, argv, negcache=True)


def main_no_negcache(argv: Sequence[str] = ()) -> int:
    return bench(NAME_NO_NEGCACHE, argv, negcache=False)


def bench(name: str, argv: Sequence[str], negcache: bool) -> int:
    parser = load_parser(name, __doc__)
    if not negcache:  # most questions are misses
        parser.set_defaults(outstanding=MISS_OUTSTANDING)
    parser.add_argument("--names", type=int, default=EXTERNAL_NAMES, help="external names")
    args = parse_load_args(parser, argv)
    if not 0 < args.names <= 2_500:  # 8 questions each must fit the cache
        parser.error("--names must be in (0, 2500]")
    return run_bench(name, lambda: run(name, args, negcache))


def external_names(count: int) -> dict[str, tuple[str, str]]:
    """Each name with one IPv4 and one IPv6 address, so that A and AAAA are both positive upstream."""
    addresses = [(f"198.51.{i // 250}.{i % 250 + 1}", f"2001:db8::{i + 1:x}") for i in range(count)]
    return {f"ext-{i}.example.test": pair for i, pair in enumerate(addresses)}


def storm(names: Sequence[str], namespaces: int) -> list[tuple[str, str]]:
    """What Pods spread over ``namespaces`` send for each name, in the order glibc sends it."""
    questions = []
    for i, name in enumerate(names):
        for candidate in [*cluster_mix.search_path(name, f"ns-{i % namespaces}"), name]:
            questions += [(candidate, "A"), (candidate, "AAAA")]
    return questions


def spot_check(ports: dict[str, int], records: dict[str, tuple[str, str]], namespaces: int) -> int:
    wrong = []
    sample = list(records)[:: max(1, len(records) // 5)]
    for i, name in enumerate(sample):
        v4, v6 = records[name]
        misses = cluster_mix.search_path(name, f"ns-{i % namespaces}")
        expected = [(n, "A", "NXDOMAIN", frozenset[str]()) for n in misses]
        expected += [(name, "A", "NOERROR", frozenset({v4})), (name, "AAAA", "NOERROR", frozenset({v6}))]
        for qname, qtype, status, addresses in expected:
            for server, port in ports.items():
                got = lookup(port, qname, qtype)
                if (got.status, got.addresses) != (status, addresses):
                    seen = f"{got.status} {sorted(got.addresses)}"
                    wrong.append(f"{server}: {qname} {qtype} -> {seen}, want {status} {sorted(addresses)}")
    if wrong:
        raise BenchError("wrong answers before measuring:\n  " + "\n  ".join(wrong))
    return len(sample) * 5


def run(name: str, args: argparse.Namespace, negcache: bool) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    shape = cluster_gen.ClusterShape()
    records = external_names(args.names)
    with shared_tempdir("kubedns-bench-ndots-") as tmp:
        manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
        hosts = write_hosts_file(tmp / "upstream.hosts", records)
        queries = write_query_file(tmp / "queries.txt", storm(list(records), shape.namespaces))
        upstream_options = (f"--addn-hosts={hosts}", f"--local-ttl={UPSTREAM_TTL}", "--local=/example.test/")
        with (
            serve(manifests=[manifest]) as served,
            dnsmasq_process(tmp / "upstream.log", *upstream_options) as upstream,
        ):
            probe = next(iter(records))
            wait_until_answers(upstream.port, probe, upstream.process)
            if load_cpus:  # serve and the upstream only work on the caches' misses
                for pid in (served.process.pid, upstream.process.pid):
                    pin(pid, load_cpus)
            options = (
                f"--server=/{cluster_mix.DOMAIN}/{HOST}#{served.dns_port}",
                f"--server={HOST}#{upstream.port}",
                f"--cache-size={CACHE_SIZE}",
                *(() if negcache else ("--no-negcache",)),
            )
            with cache_pair(tmp / "cache.log", options, probe, server_cpus) as pair:
                checked = spot_check(pair.ports, records, shape.namespaces)
                print(
                    f"bench {name}: {len(records):,} external names, {8 * len(records):,} questions "
                    f"(4 names x A/AAAA each, 3 of them NXDOMAIN from serve"
                    f"{'' if negcache else ', never cached: --no-negcache'}); {checked} spot-checked "
                    f"through both caches; {args.rounds} x {args.seconds:g} s each after a {args.warmup:g} s "
                    "warm-up"
                )
                warm_up(pair.ports, queries, load, args.warmup)
                ports = pair.ports.items()
                misses = {server: chaos_number(port, "misses") for server, port in ports}
                behind = (served.process.pid, upstream.process.pid)
                measured = measure_rounds(pair.ports, pair.processes, queries, load, args.rounds, 0, behind)
                missed = {server: chaos_number(port, "misses") - misses[server] for server, port in ports}
                pair.check_alive()
            if served.process.poll() is not None:
                raise BenchError(f"serve exited during the run with status {served.process.returncode}")
            serve_log = log_problems(served.log_text())
    summaries = {server: m.summary() | {"misses_measured": missed[server]} for server, m in measured.items()}
    verdict = qps_verdict("cache/dnsmasq", summaries, OURS, THEIRS, TARGET_RATIO)
    problems = [f"serve logged: {line}" for line in serve_log[:10]] + qps_problems(summaries)
    print_qps_table(summaries)
    print_upstream_cpu(summaries, "serve and the upstream")
    print("misses forwarded while measured: " + ", ".join(f"{s} {n:,}" for s, n in missed.items()))
    print_verdicts([verdict], problems)
    return {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "negative_cache": negcache,
        "external_names": len(records),
        "questions": 8 * len(records),
        "cluster": asdict(shape),
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "servers": summaries,
        "ratio": verdict.as_dict(),
        "problems": problems,
    }
