"""A Pod's ndots:5 storm with and without autopath: lookups per second as the client sees them.

The Pod (at 127.0.0.1, dnsperf's address, in namespace ns-0, ClusterFirst) looks up external names
``ext-<i>.example.test`` with the standard search list (``ns-0.svc.cluster.local svc.cluster.local
cluster.local example.internal``): A and AAAA under each search domain, then the name itself, 10
questions a lookup. With autopath the cache answers the first two with what the search finds, so a
lookup is 2 questions. Three servers, each as kube-dns deploys its cache (``--no-negcache``), routing
cluster.local to one ``serve --pods verified`` and every other name to a dnsmasq upstream:

- ``autopath``: ``kubedns-py cache --autopath`` (the node's search domain from its resolv-file), sent
  the 2 questions of each lookup;
- ``ours``: the same cache without ``--autopath``, sent the 10;
- ``dnsmasq``: Debian's dnsmasq, sent the 10.

Lookups per second = answered questions per second / questions per lookup. ``--negcache`` runs the
three with negative caching, as node-local caches run.

Autopath remembers the answers it built for a second. With the default 500 names each name comes back
many times a second, so most lookups are answered from that memory (the storm of a Pod that keeps
asking for the same few names); with ``--names 50000`` a name comes back only after several seconds,
so every lookup walks its candidates again (the storm of Pods whose names never repeat soon).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tests.bench import cluster_gen, cluster_mix
from tests.bench.ndots_storm import external_names
from tests.bench.tools import (
    BenchError,
    DnsperfOptions,
    Measured,
    Verdict,
    cpu_seconds,
    cpu_split,
    dnsmasq_process,
    load_parser,
    log_problems,
    parse_load_args,
    pin,
    print_qps_table,
    print_verdicts,
    qps_problems,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
)
from tests.support.dnsclient import answers, ask
from tests.support.ports import HOST
from tests.support.processes import cache, serve
from tests.support.searchpath import HOST_DOMAIN, pod

NAME = "autopath"
TARGET_RATIO = 3.0  # client lookups per second, autopath over without
EXTERNAL_NAMES = 500
UPSTREAM_TTL = 3600
MAX_NAMES = 50_000
NAMESPACE = "ns-0"


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.add_argument("--names", type=int, default=EXTERNAL_NAMES, help="external names")
    parser.add_argument(
        "--negcache", action="store_true", help="cache negative answers, as node-local caches do"
    )
    args = parse_load_args(parser, argv)
    if not 0 < args.names <= MAX_NAMES:
        parser.error(f"--names must be in (0, {MAX_NAMES}]")
    return run_bench(NAME, lambda: run(args))


def cache_size(names: int) -> int:
    """Room for every answer the storm keeps (each name's A and AAAA, serve's record), with slack."""
    return max(10_000, 4 * names)


def search_list(name: str) -> list[str]:
    """What the Pod tries for ``name``, in its order."""
    return [*cluster_mix.search_path(name, NAMESPACE), f"{name}.{HOST_DOMAIN}", name]


def lookups(names: Sequence[str], autopath: bool) -> list[tuple[str, str]]:
    """The questions the Pod sends: A and AAAA per candidate; with autopath, the first candidate's."""
    questions = []
    for name in names:
        for candidate in search_list(name)[: 1 if autopath else None]:
            questions += [(candidate, "A"), (candidate, "AAAA")]
    return questions


def spot_check(port: int, records: dict[str, tuple[str, str]]) -> int:
    wrong = []
    sample = list(records)[:: max(1, len(records) // 5)]
    for name in sample:
        for qtype, address in zip(("A", "AAAA"), records[name], strict=True):
            asked = search_list(name)[0]
            got = answers(ask(asked, qtype, port))
            want = {f"{asked}. CNAME {name}.", f"{name}. {qtype} {address}"}
            if got != want:
                wrong.append(f"{asked} {qtype} -> {sorted(got)}, want {sorted(want)}")
    if wrong:
        raise BenchError("wrong autopath answers before measuring:\n  " + "\n  ".join(wrong))
    return 2 * len(sample)


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    shape = cluster_gen.ClusterShape()
    records = external_names(args.names)
    with shared_tempdir("kubedns-bench-autopath-") as tmp:
        objects = [*cluster_gen.cluster_objects(shape), pod("bench-client", NAMESPACE, HOST)]
        manifest = cluster_gen.write_manifest(tmp / "cluster.json", objects)
        hosts = write_hosts_file(tmp / "upstream.hosts", records)
        files = {
            server: write_query_file(tmp / f"{server}.txt", lookups(list(records), server == "autopath"))
            for server in ("autopath", "ours", "dnsmasq")
        }
        per_lookup = {server: len(lookups(["x"], server == "autopath")) for server in files}
        resolv = tmp / "resolv.conf"
        resolv.write_text(f"search {HOST_DOMAIN}\n")
        upstream_options = (
            f"--addn-hosts={hosts}",
            f"--local-ttl={UPSTREAM_TTL}",
            "--local=/example.test/",
            f"--local=/{HOST_DOMAIN}/",
        )
        with (
            serve("--pods", "verified", manifests=[manifest]) as served,
            dnsmasq_process(tmp / "upstream.log", *upstream_options) as upstream,
        ):
            probe = next(iter(records))
            wait_until_answers(upstream.port, probe, upstream.process)
            if load_cpus:
                for pid in (served.process.pid, upstream.process.pid):
                    pin(pid, load_cpus)
            options = (
                f"--server=/{cluster_mix.DOMAIN}/{HOST}#{served.dns_port}",
                f"--server={HOST}#{upstream.port}",
                f"--cache-size={cache_size(args.names)}",
                # The upstream's NXDOMAINs carry no SOA: --neg-ttl keeps them (both caches take it).
                *(("--neg-ttl=60",) if args.negcache else ("--no-negcache",)),
            )
            with (
                cache(*options, "--no-resolv", f"--resolv-file={resolv}", "--autopath") as autopath,
                cache(*options, "--no-resolv") as ours,
                dnsmasq_process(tmp / "cache.log", *options) as theirs,
            ):
                ports = {"autopath": autopath.dns_port, "ours": ours.dns_port, "dnsmasq": theirs.port}
                processes = {"autopath": autopath.process, "ours": ours.process, "dnsmasq": theirs.process}
                for server, port in ports.items():
                    wait_until_answers(port, probe, processes[server])
                    if server_cpus:
                        pin(processes[server].pid, server_cpus)
                checked = spot_check(ports["autopath"], records)
                print(
                    f"bench {NAME}: {len(records):,} external names from a Pod in {NAMESPACE}; a lookup is "
                    f"{per_lookup['ours']} questions, {per_lookup['autopath']} with autopath; {checked} "
                    f"autopath answers spot-checked; {args.rounds} x {args.seconds:g} s each after a "
                    f"{args.warmup:g} s warm-up"
                )
                measured = measure(ports, processes, files, load, args.rounds, args.warmup)
                for server, process in processes.items():
                    if process.poll() is not None:
                        raise BenchError(f"{server} exited during the run with status {process.returncode}")
            serve_log = log_problems(served.log_text())
    summaries = {server: m.summary() for server, m in measured.items()}
    for server, summary in summaries.items():
        summary["questions_per_lookup"] = per_lookup[server]
        summary["lookups_per_second"] = summary["qps"] / per_lookup[server]
    rate = {server: s["lookups_per_second"] for server, s in summaries.items()}
    verdicts = [
        Verdict("lookups/s autopath over without", rate["autopath"] / rate["ours"], TARGET_RATIO),
        Verdict("lookups/s autopath over dnsmasq", rate["autopath"] / rate["dnsmasq"], TARGET_RATIO),
    ]
    problems = [f"serve logged: {line}" for line in serve_log[:10]] + qps_problems(summaries)
    print_qps_table(summaries)
    print("lookups per second: " + ", ".join(f"{s} {r:,.0f}" for s, r in rate.items()))
    print_verdicts(verdicts, problems)
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "external_names": len(records),
        "negative_caching": args.negcache,
        "cluster": asdict(shape),
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "servers": summaries,
        "ratios": [v.as_dict() for v in verdicts],
        "problems": problems,
    }


def measure(
    ports: dict[str, int],
    processes: dict[str, Any],
    files: dict[str, Path],
    load: DnsperfOptions,
    rounds: int,
    warmup: float,
) -> dict[str, Measured]:
    """A warm-up per server, then measured runs taking turns, each server with its own questions."""
    for server, port in ports.items():
        if warmup:
            run_dnsperf(port, files[server], replace(load, seconds=warmup))
    measured = {server: Measured() for server in ports}
    for _ in range(rounds):
        for server, port in ports.items():
            before = cpu_seconds(processes[server].pid)
            result = run_dnsperf(port, files[server], load)
            measured[server].add(result, cpu_seconds(processes[server].pid) - before)
    return measured
