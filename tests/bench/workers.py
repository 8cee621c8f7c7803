"""serve and the cache with ``--workers 2`` against ``--workers 1`` and dnsmasq, unpinned, in one run.

1. QPS and server CPU-seconds per 100k answers (the supervisor's and every worker's CPU): serve on the
   ``serve-10k`` wide mix (10k Services, ~116k distinct questions) against dnsmasq from a hosts file;
   the cache on 1k and on 30k cached names (warmed until a pass adds no miss) against dnsmasq as a
   caching forwarder with the same upstream and size. dnsperf asks on 8 sockets, which SO_REUSEPORT
   spreads over the workers; measured runs take turns between the servers. Nothing is pinned: the
   workers and dnsperf share the machine's cores, so a gain needs cores dnsperf leaves free. The
   ceiling printed is what that sharing allows: with ``s`` and ``d`` the CPU one answer costs the
   server and dnsperf, N workers on C cores answer at most ``min(N, C·s/(s + d))`` times one.
2. serve following the API double at 10k Services / 100k endpoints (``api``'s cluster) with 1 and
   2 workers: total PSS once synced (``/proc/<pid>/smaps_rollup`` of the supervisor and its workers:
   pages shared copy-on-write counted once), and change → answer in every worker: after each API
   write, the new answer is asked from ``SOCKETS`` source ports (the kernel's SO_REUSEPORT hash
   spreads them over the workers; all of them miss one of 2 workers with odds of 2^-15) until every
   one has it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import aiohttp
import dns.exception

from kubedns_py.cache.pool import REPORT_EVERY
from tests.bench import api_scale, cache_qps, cluster_mix
from tests.bench.tools import (
    MAX_SECONDS,
    MISS_OUTSTANDING,
    BenchError,
    DnsperfOptions,
    dnsmasq,
    dnsmasq_process,
    load_parser,
    parse_load_args,
    percentile,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
)
from tests.support.apiserver import FakeApiServer
from tests.support.dnsclient import chaos_number
from tests.support.ports import HOST
from tests.support.processes import cache, start_serve, stop
from tests.support.procfs import child_pids, cpu_seconds, memory_rollup_mib
from tests.support.waiting import wait_until

NAME = "workers"
QPS_GAIN = 1.5  # 2 workers over 1
OVER_DNSMASQ = 1.2  # 2 workers over dnsmasq
CPU_PER_ANSWER = 1.1  # 2 workers' CPU per answer over 1's, at most
PSS_RATIO = 1.5
CHANGE_P99_MS = 100.0
SOCKETS = 16
CACHE_NAMES = (1_000, 30_000)
CACHE_SIZE = 100_000
WARM_PASSES = 30


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__, seconds=6.0)
    parser.add_argument("--workers", type=int, default=2, help="N, compared with 1")
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c (sockets)")
    parser.add_argument("--changes", type=int, default=100, help="API changes per serve")
    parser.add_argument(
        "--parts", default="serve,cache,api", help="which parts to run (serve, cache, api; comma-separated)"
    )
    args = parse_load_args(parser, argv)
    return run_bench(NAME, lambda: run(args))


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the supervisor and its workers)."""
    return sum(cpu_seconds(p) or 0.0 for p in (pid, *child_pids(pid)))


def tree_switches(pid: int) -> int:
    """Context switches (voluntary and not) of a process and its children: how often they slept or
    were pushed off a core."""
    total = 0
    for each in (pid, *child_pids(pid)):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def pss_mib(pid: int) -> float:
    """Proportional set size of a process and its children, MiB: shared pages split between them."""
    return sum(memory_rollup_mib(each)["Pss"] for each in (pid, *child_pids(pid)))


def memory_breakdown(pid: int) -> list[dict[str, float]]:
    """Each process's rollup, the supervisor (or the one process) first: what a worker copied of the
    store it was forked with shows as its Private_Dirty."""
    return [memory_rollup_mib(each) for each in (pid, *child_pids(pid))]


# -- 1. QPS ------------------------------------------------------------------------------------------


def measure(
    pids: dict[str, int], ports: dict[str, int], queries: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Warm-up, then measured rounds taking turns; per server QPS and CPU-seconds per 100k answers."""
    load = DnsperfOptions(seconds=args.seconds, clients=args.clients, threads=2, outstanding=args.outstanding)
    for port in ports.values():
        run_dnsperf(port, queries, replace(load, seconds=args.warmup or 1.0))
    qps: dict[str, list[float]] = {name: [] for name in ports}
    cpu = dict.fromkeys(ports, 0.0)
    dnsperf_cpu = dict.fromkeys(ports, 0.0)
    switches = dict.fromkeys(ports, 0)
    answered = dict.fromkeys(ports, 0)
    lost = dict.fromkeys(ports, 0)
    for _ in range(args.rounds):
        for name, port in ports.items():
            before, switched = tree_cpu(pids[name]), tree_switches(pids[name])
            result = run_dnsperf(port, queries, load)
            cpu[name] += tree_cpu(pids[name]) - before
            switches[name] += tree_switches(pids[name]) - switched
            dnsperf_cpu[name] += result.cpu_seconds
            qps[name].append(result.qps)
            answered[name] += result.completed
            lost[name] += result.lost
    return {
        name: {
            "qps": sum(runs) / len(runs),
            "round_qps": runs,
            "cpu_seconds_per_100k": 1e5 * cpu[name] / max(1, answered[name]),
            "cpu_percent": 100 * cpu[name] / (args.seconds * args.rounds),
            "dnsperf_cpu_percent": 100 * dnsperf_cpu[name] / (args.seconds * args.rounds),
            "switches_per_100k": 1e5 * switches[name] / max(1, answered[name]),
            "lost": lost[name],
        }
        for name, runs in qps.items()
    }


def ceiling(one: dict[str, Any], workers: int, cpus: int) -> float:
    """The most ``workers`` processes can answer over one, from one process's run: each answer costs
    the server ``s`` CPU and dnsperf ``d`` on the same ``cpus``, so one process answers at most ``1/s``
    and ``workers`` at most ``min(workers/s, cpus/(s + d))``."""
    server = one["cpu_seconds_per_100k"]
    load = one["dnsperf_cpu_percent"] / one["cpu_percent"] * server  # dnsperf's CPU per answer alike
    return min(float(workers), cpus * server / (server + load))


def ratios(figures: dict[str, Any], one: str, many: str, theirs: str, workers: int) -> dict[str, float]:
    return {
        "ceiling_many_over_one": ceiling(figures[one], workers, len(os.sched_getaffinity(0))),
        "qps_many_over_one": figures[many]["qps"] / figures[one]["qps"],
        "qps_many_over_dnsmasq": figures[many]["qps"] / figures[theirs]["qps"],
        "cpu_per_answer_many_over_one": figures[many]["cpu_seconds_per_100k"]
        / figures[one]["cpu_seconds_per_100k"],
    }


def serve_part(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    n = args.workers
    with cluster_mix.serve_and_dnsmasq(tmp, cluster_mix.SHAPE_10K, ()) as servers:
        many = start_serve(f"--workers={n}", manifests=[tmp / "cluster.json"], ready=False)
        try:
            wait_until_answers(many.dns_port, next(iter(servers.mix.records)), many.process, timeout=60)
            cluster_mix.spot_check(servers.mix, {"serve": many.dns_port})
            pids = {"serve 1": servers.serve.process.pid, f"serve {n}": many.process.pid}
            ports = {"serve 1": servers.serve.dns_port, f"serve {n}": many.dns_port}
            pids["dnsmasq"], ports["dnsmasq"] = servers.dnsmasq.process.pid, servers.dnsmasq.port
            figures = measure(pids, ports, servers.queries, args)
            servers.check_alive()
        finally:
            stop(many)
    return {"questions": len(servers.mix.questions), "servers": figures} | {
        "ratios": ratios(figures, "serve 1", f"serve {n}", "dnsmasq", n)
    }


def warm(port: int, queries: Path, load: DnsperfOptions) -> int:
    """Passes over every name until one adds no miss; how many it took. Each worker has a cache of its
    own and a name reaches one worker or another by the source port it is asked from: every worker
    misses each name once, so it takes about log2(names) passes more than one process does."""
    one_pass = replace(load, seconds=MAX_SECONDS, max_runs=1, outstanding=MISS_OUTSTANDING)
    for passes in range(1, WARM_PASSES + 1):
        before = chaos_number(port, "misses")
        run_dnsperf(port, queries, one_pass)
        time.sleep(REPORT_EVERY * 1.5)  # the workers' CHAOS reports of the pass's misses have come in
        if chaos_number(port, "misses") == before:
            return passes
    raise BenchError(f"port {port}: still missing after {WARM_PASSES} passes over every name")


def cache_part(tmp: Path, names: int, args: argparse.Namespace) -> dict[str, Any]:
    n = args.workers
    known = cache_qps.names(names, "host")
    probe = next(iter(known))
    hosts = write_hosts_file(tmp / f"upstream-{names}.hosts", known)
    queries = write_query_file(tmp / f"queries-{names}.txt", [(name, "A") for name in known])
    warm_load = DnsperfOptions(seconds=args.seconds, clients=args.clients, threads=2)
    with dnsmasq(hosts, "example.test", cache_qps.UPSTREAM_TTL, tmp / "upstream.log") as upstream:
        options = (f"--server={HOST}#{upstream.port}", f"--cache-size={CACHE_SIZE}")
        with (
            cache(*options, "--no-resolv") as one,
            cache(*options, "--no-resolv", f"--workers={n}") as many,
            dnsmasq_process(tmp / "dnsmasq-cache.log", *options) as theirs,
        ):
            processes: dict[str, subprocess.Popen[Any]] = {
                "cache 1": one.process,
                f"cache {n}": many.process,
                "dnsmasq": theirs.process,
            }
            pids = {name: process.pid for name, process in processes.items()}
            ports = {"cache 1": one.dns_port, f"cache {n}": many.dns_port, "dnsmasq": theirs.port}
            for name, port in ports.items():
                wait_until_answers(port, probe, processes[name])
            passes = {name: warm(port, queries, warm_load) for name, port in ports.items()}
            warm_misses = {name: chaos_number(port, "misses") for name, port in ports.items()}
            figures = measure(pids, ports, queries, args)
            print(
                f"cache, {names:,} names: warm after "
                + ", ".join(f"{name} {passes[name]} passes, {warm_misses[name]:,} misses" for name in ports)
            )
    return {"names": names, "warm_passes": passes, "warm_misses": warm_misses, "servers": figures} | {
        "ratios": ratios(figures, "cache 1", f"cache {n}", "dnsmasq", n)
    }


# -- 2. memory and change latency via the API ---------------------------------------------------------


async def every_worker(askers: list[api_scale.Asker], change: api_scale.Change) -> float | None:
    """Seconds from the write until every socket (every worker behind them) gives the new answer."""
    query = api_scale.make_query(change.qname)
    start = time.perf_counter()
    change.write()
    pending = set(range(len(askers)))
    while pending and (left := start + api_scale.CHANGE_DEADLINE - time.perf_counter()) > 0:
        for i in sorted(pending):
            try:
                reply = await askers[i].udp(query, wait=min(left, 1.0))
            except dns.exception.Timeout:
                continue
            if api_scale.a_records(reply) == change.expected:
                pending.discard(i)
    return None if pending else time.perf_counter() - start


def settled(pid: int, n: int) -> None:
    """Until serve runs its ``n`` workers (none for one): those forked before the sync are gone."""
    wait_until(lambda: len(child_pids(pid)) == (n if n > 1 else 0), 30, "the workers forked after the sync")


async def api_part(args: argparse.Namespace) -> dict[str, Any]:
    shape = api_scale.SHAPE
    cluster = api_scale.generate(shape)
    found: dict[str, Any] = {}
    async with FakeApiServer() as api, aiohttp.ClientSession() as http:
        api_scale.load(api, cluster)
        gc.collect()
        gc.freeze()
        changes = api_scale.Changes(api, cluster)
        for n in (1, args.workers):
            served, timeline = await api_scale.start_and_sync(api, http, f"--workers={n}")
            try:
                # The workers forked before the sync give way to those forked with the store.
                await asyncio.to_thread(settled, served.process.pid, n)
                pss = pss_mib(served.process.pid)
                breakdown = memory_breakdown(served.process.pid)
                seconds: list[float | None] = []
                askers = [api_scale.Asker(served.dns_port) for _ in range(SOCKETS)]
                for asker in askers:
                    await asker.__aenter__()
                try:
                    for make in changes.plan("mixed", args.changes):
                        seconds.append(await every_worker(askers, make()))
                finally:
                    for asker in askers:
                        await asker.__aexit__()
                pss_after = pss_mib(served.process.pid)
            finally:
                await asyncio.to_thread(stop, served)
            done = sorted(1000 * s for s in seconds if s is not None)
            found[f"serve {n}"] = {
                "ready_seconds": timeline.ready,
                "pss_mib": pss,
                "pss_mib_after_changes": pss_after,
                "processes": breakdown,
                "changes": len(seconds),
                "missed": len(seconds) - len(done),
                "p50_ms": percentile(done, 0.5) if done else None,
                "p99_ms": percentile(done, 0.99) if done else None,
                "max_ms": done[-1] if done else None,
            }
    one, many = found["serve 1"], found[f"serve {args.workers}"]
    return {
        "cluster": asdict(shape) | {"endpoints": cluster.endpoints},
        "sockets": SOCKETS,
        "servers": found,
        "pss_many_over_one": many["pss_mib"] / one["pss_mib"],
    }


# -- the run -----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig")
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {"benchmark": NAME, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    results["dnsperf"] = {"seconds": args.seconds, "rounds": args.rounds, "clients": args.clients}
    with shared_tempdir("kubedns-bench-workers-") as tmp:
        if "serve" in parts:
            results["serve"] = serve_part(tmp, args)
            report("serve, 10k wide mix", results["serve"])
        if "cache" in parts:
            for names in CACHE_NAMES:
                results[f"cache {names}"] = cache_part(tmp, names, args)
                report(f"cache, {names:,} names", results[f"cache {names}"])
    if "api" in parts:
        results["api"] = asyncio.run(api_part(args))
        report_api(results["api"], args.workers)
    return results


def report(title: str, part: dict[str, Any]) -> None:
    print(f"{title}:")
    for name, f in part["servers"].items():
        rounds = ", ".join(f"{q:,.0f}" for q in f["round_qps"])
        print(
            f"  {name:<9} {f['qps']:>9,.0f} QPS ({rounds})  {f['cpu_seconds_per_100k']:.2f} CPU-s per 100k "
            f"answers  CPU {f['cpu_percent']:.0f}% (dnsperf {f['dnsperf_cpu_percent']:.0f}%)  "
            f"{f['switches_per_100k']:,.0f} context switches per 100k  lost {f['lost']}"
        )
    r = part["ratios"]
    print(
        f"  {verdict(r['qps_many_over_one'] >= QPS_GAIN)} QPS 2/1 {r['qps_many_over_one']:.2f} (≥ {QPS_GAIN})"
        f"  {verdict(r['qps_many_over_dnsmasq'] >= OVER_DNSMASQ)} 2/dnsmasq {r['qps_many_over_dnsmasq']:.2f}"
        f" (≥ {OVER_DNSMASQ})  {verdict(r['cpu_per_answer_many_over_one'] <= CPU_PER_ANSWER)} CPU per answer"
        f" 2/1 {r['cpu_per_answer_many_over_one']:.2f} (≤ {CPU_PER_ANSWER})"
    )
    print(
        f"  ceiling of 2/1 on this machine, from the one process's and dnsperf's CPU per answer:"
        f" {r['ceiling_many_over_one']:.2f}"
    )


def report_api(part: dict[str, Any], n: int) -> None:
    cluster = part["cluster"]
    print(f"serve via the API, {cluster['services']:,} services / {cluster['endpoints']:,} endpoints:")
    for name, f in part["servers"].items():
        print(
            f"  {name:<8} PSS {f['pss_mib']:.1f} MiB (after changes {f['pss_mib_after_changes']:.1f});"
            f" change → answer on all {SOCKETS} sockets p50 {f['p50_ms']:.1f} p99 {f['p99_ms']:.1f}"
            f" max {f['max_ms']:.1f} ms"
            f" ({f['missed']} of {f['changes']} not within {api_scale.CHANGE_DEADLINE:g} s)"
        )
        each = "; ".join(
            f"Pss {m['Pss']:.1f} Private_Dirty {m['Private_Dirty']:.1f} Rss {m['Rss']:.1f}"
            for m in f["processes"]
        )
        print(f"           by process (MiB, the first is {name}'s main one): {each}")
    p99 = part["servers"][f"serve {n}"]["p99_ms"]
    print(
        f"  {verdict(part['pss_many_over_one'] <= PSS_RATIO)} PSS {n}/1 {part['pss_many_over_one']:.2f}"
        f" (≤ {PSS_RATIO})  {verdict(p99 is not None and p99 <= CHANGE_P99_MS)} change → every worker p99"
        f" ≤ {CHANGE_P99_MS:g} ms"
    )


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"
