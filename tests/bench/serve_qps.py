"""serve against Debian's dnsmasq: the same names, the same dnsperf load, in the same run.

A generated cluster (1,000 services over 10 namespaces, every fifth one headless with endpoints) is
served by ``kubedns-py serve`` from its manifest and by dnsmasq from a hosts file holding the very A
records serve derives from that manifest, so both answer the same questions from their own data with
no upstream. The query mix, identical for both, is every name once plus about 10% NXDOMAIN names,
shuffled with a fixed seed; dnsperf loops over it.

dnsperf runs closed-loop (a fixed number of queries outstanding) so it measures the server's capacity
without overload loss. Its average latency is therefore mostly queueing (outstanding / QPS, by
Little's law), comparable between the servers but not a service time.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubedns_py.cluster.objects import Kind, Namespace
from tests.bench import cluster_gen, cluster_mix
from tests.bench.tools import (
    BenchError,
    DnsperfOptions,
    Verdict,
    cpu_split,
    dnsmasq,
    log_problems,
    lookup,
    measure_rounds,
    pin,
    print_qps_table,
    qps_problems,
    require,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
    write_results,
)
from tests.support.processes import serve

NAME = "serve"
DOMAIN, TTL = cluster_mix.DOMAIN, cluster_mix.TTL
TARGET_RATIO = 0.5
MAX_SECONDS = 15.0
SEED = 20240601


@dataclass(frozen=True)
class Workload:
    records: dict[str, tuple[str, ...]]  # name -> IPv4 addresses, as serve derives them
    missing: tuple[str, ...]  # names inside existing namespaces that must be NXDOMAIN


def derive_workload(manifest: Path, nxdomain_share: float) -> Workload:
    store = cluster_mix.load_store(manifest)
    records = cluster_mix.a_records(store)
    namespaces = sorted(ns.name for ns in store.objects(Kind.NAMESPACE) if isinstance(ns, Namespace))
    count = round(len(records) * nxdomain_share / (1 - nxdomain_share))
    missing = tuple(f"missing-{i}.{namespaces[i % len(namespaces)]}.svc.{DOMAIN}" for i in range(count))
    return Workload(records, missing)


def query_mix(workload: Workload) -> list[tuple[str, str]]:
    queries = [(name, "A") for name in [*workload.records, *workload.missing]]
    random.Random(SEED).shuffle(queries)
    return queries


def spot_check(workload: Workload, ports: dict[str, int]) -> int:
    """Ask both servers a sample of names with dig: multi-address (headless) names, a spread of
    single-address names, and misses. Any difference from the data means the comparison is void."""
    names = sorted(workload.records)
    multi = [n for n in names if len(workload.records[n]) > 1][:4]
    single = [n for n in names if len(workload.records[n]) == 1]
    sample = [*multi, *single[:: max(1, len(single) // 12)], *workload.missing[:4]]
    wrong = []
    for name in sample:
        addresses = workload.records.get(name, ())
        expected = ("NOERROR" if addresses else "NXDOMAIN", frozenset(addresses))
        for server, port in ports.items():
            got = lookup(port, name)
            if (got.status, got.addresses) != expected:
                want = f"{expected[0]} {sorted(expected[1])}"
                wrong.append(f"{server}: {name} -> {got.status} {sorted(got.addresses)}, expected {want}")
    if wrong:
        raise BenchError("wrong answers before measuring:\n  " + "\n  ".join(wrong))
    return len(sample)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench serve", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured run (max 15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured run per server first")
    parser.add_argument("--rounds", type=int, default=2, help="measured runs per server, alternating")
    parser.add_argument("--clients", type=int, default=DnsperfOptions.clients, help="dnsperf -c (sockets)")
    parser.add_argument("--threads", type=int, default=DnsperfOptions.threads, help="dnsperf -T")
    parser.add_argument("--outstanding", type=int, default=DnsperfOptions.outstanding, help="dnsperf -q")
    parser.add_argument("--max-qps", type=int, default=None, help="dnsperf -Q (default: unlimited)")
    parser.add_argument("--services", type=int, default=1_000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--nxdomain", type=float, default=0.1, help="share of queries for missing names")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and dnsperf to CPUs")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        parser.error(f"--seconds and --warmup must be at most {MAX_SECONDS:.0f}")
    if args.rounds < 1 or not 0 <= args.nxdomain < 1:
        parser.error("--rounds must be positive and --nxdomain in [0, 1)")
    return args


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    try:
        results = run(args)
    except (BenchError, AssertionError) as err:  # AssertionError: serve failed to start (processes.py)
        print(f"bench {NAME}: FAILED: {err}")
        return 1
    path = write_results(NAME, results)
    print(f"results written to {path}")
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = ((), ()) if args.no_pin else cpu_split()
    shape = cluster_gen.ClusterShape(services=args.services, namespaces=args.namespaces)
    load = DnsperfOptions(
        seconds=args.seconds,
        clients=args.clients,
        threads=args.threads,
        outstanding=args.outstanding,
        max_qps=args.max_qps,
        cpus=load_cpus,
    )
    with shared_tempdir("kubedns-bench-") as tmp:
        manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
        workload = derive_workload(manifest, args.nxdomain)
        hosts = write_hosts_file(tmp / "cluster.hosts", workload.records)
        queries = write_query_file(tmp / "queries.txt", query_mix(workload))
        with serve(manifests=[manifest]) as kd, dnsmasq(hosts, DOMAIN, TTL, tmp / "dnsmasq.log") as dm:
            processes: dict[str, subprocess.Popen[Any]] = {"serve": kd.process, "dnsmasq": dm.process}
            ports = {"serve": kd.dns_port, "dnsmasq": dm.port}
            wait_until_answers(kd.dns_port, next(iter(workload.records)), kd.process)
            if server_cpus:
                for process in processes.values():
                    pin(process.pid, server_cpus)
            checked = spot_check(workload, ports)
            print(
                f"bench {NAME}: {len(workload.records):,} names + {len(workload.missing):,} NXDOMAIN names; "
                f"{checked} spot-checked with dig on both servers"
            )
            print(
                f"dnsperf: -c {load.clients} -T {load.threads} -q {load.outstanding}"
                f"{f' -Q {load.max_qps}' if load.max_qps else ''}, {args.rounds} x {load.seconds:g} s per "
                f"server after a {args.warmup:g} s warm-up; "
                + (
                    f"server on CPU {_cpus(server_cpus)}, dnsperf on {_cpus(load_cpus)}"
                    if server_cpus
                    else "unpinned"
                )
            )
            measured = measure_rounds(ports, processes, queries, load, args.rounds, args.warmup)
            if kd.process.poll() is not None:
                tail = "".join(kd.lines[-20:])
                raise BenchError(f"serve exited during the run with status {kd.process.returncode}:\n{tail}")
            if dm.process.poll() is not None:
                raise BenchError(f"dnsmasq exited during the run with status {dm.process.returncode}")
            serve_log = log_problems(kd.log_text())
    summaries = {server: m.summary() for server, m in measured.items()}
    ratio = summaries["serve"]["qps"] / summaries["dnsmasq"]["qps"]
    problems = [f"serve logged: {line}" for line in serve_log[:10]] + qps_problems(summaries)
    print_qps_table(summaries)
    print(Verdict("serve/dnsmasq QPS ratio", ratio, TARGET_RATIO).line())
    for problem in problems:
        print(f"WARNING: {problem}")
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": asdict(shape) | {"names": len(workload.records), "nxdomain_names": len(workload.missing)},
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "server_cpus": server_cpus,
        "servers": summaries,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "problems": problems,
    }


def _cpus(cpus: Sequence[int]) -> str:
    return ",".join(map(str, cpus))
