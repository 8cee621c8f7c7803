"""serve offered twice the load it can take: memory stays put, no answer arrives after its client gave
up, and full speed is back within a second of the load stopping.

serve answers ``serve-10k``'s cluster and question mix (``cluster_mix``), pinned to one CPU and dnsperf
to the other. Its capacity is measured closed-loop first; then dnsperf offers twice that open-loop
(``-Q``) with a 1 s query timeout and a window wide enough that lost queries never hold the sending
back. What is reported, against its target:

* RSS (VmRSS) before the overload and after the recovery check: growth at most 10%;
* answers that came after dnsperf had counted their query lost (its "unexpected id" warnings), next to
  the queries lost: none late. An overloaded server should drop work, not answer it too late to matter;
* recovery: as soon as the overloading dnsperf stops sending, a closed-loop dnsperf reports the QPS of
  every tenth of a second; the first interval at 90% of capacity must end within 1 s (dnsperf's first
  interval always reads 0, so 0.2 s is the best this can show).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tests.bench import cluster_gen, cluster_mix
from tests.bench.tools import (
    BenchError,
    DnsperfOptions,
    DnsperfResult,
    Verdict,
    count_late,
    cpu_split,
    dnsperf_command,
    log_problems,
    memory_mib,
    parse_dnsperf,
    pin,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_query_file,
)
from tests.support.processes import Running, start_serve, stop

NAME = "overload"
TARGET_RSS_GROWTH_PERCENT = 10.0
TARGET_RECOVERY_SECONDS = 1.0
RECOVERED_SHARE = 0.9  # of the closed-loop capacity: full speed, give or take the noise of 0.1 s
PROBE_INTERVAL = 0.1
PROBE_SECONDS = 2.0
PER_CLIENT_OUTSTANDING = 60_000  # dnsperf's query IDs are 16 bits per client (socket)
EXPECTED_RCODES = ("NOERROR", "NXDOMAIN")


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench {NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the overload (max 30)")
    parser.add_argument("--factor", type=float, default=2.0, help="offered load over the capacity")
    parser.add_argument("--timeout", type=float, default=1.0, help="dnsperf -t: when a query is lost")
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="the closed-loop run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured closed-loop run first")
    parser.add_argument("--services", type=int, default=cluster_mix.SHAPE_10K.services)
    parser.add_argument("--namespaces", type=int, default=cluster_mix.SHAPE_10K.namespaces)
    parser.add_argument("--no-pin", action="store_true", help="do not pin serve and dnsperf to CPUs")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 30 or not 0 < args.capacity_seconds <= 15 or not 0 <= args.warmup <= 15:
        parser.error("--seconds must be in (0, 30], --capacity-seconds in (0, 15], --warmup in [0, 15]")
    if args.factor <= 1 or not 0 < args.timeout <= 5:
        parser.error("--factor must be above 1 and --timeout in (0, 5]")
    return run_bench(NAME, lambda: run(args))


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsperf", "dig", "taskset", "stdbuf")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    shape = replace(cluster_mix.SHAPE_10K, services=args.services, namespaces=args.namespaces)
    closed = DnsperfOptions(seconds=args.capacity_seconds, cpus=load_cpus)
    with shared_tempdir("kubedns-bench-overload-") as tmp:
        manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
        mix = cluster_mix.build_mix(manifest)
        queries = write_query_file(tmp / "queries.txt", [(q.name, q.qtype) for q in mix.questions])
        served = start_serve(manifests=[manifest], ready=False)
        try:
            # A 10k-service manifest takes serve a few seconds to load: wait for answers, not readiness.
            wait_until_answers(served.dns_port, next(iter(mix.records)), served.process, timeout=60)
            if server_cpus:
                pin(served.process.pid, server_cpus)
            print(
                f"bench {NAME}: serve on {shape.services:,} services, {len(mix.questions):,} distinct "
                f"questions as in serve-10k; CPUs: serve {server_cpus or 'any'}, dnsperf {load_cpus or 'any'}"
            )
            return measure(args, served, queries, closed, tmp)
        finally:
            stop(served)


def measure(
    args: argparse.Namespace, served: Running, queries: Path, closed: DnsperfOptions, tmp: Path
) -> dict[str, Any]:
    port, pid = served.dns_port, served.process.pid
    if args.warmup:
        run_dnsperf(port, queries, replace(closed, seconds=args.warmup))
    capacity_run = run_dnsperf(port, queries, closed)
    capacity = capacity_run.completed / capacity_run.runtime
    rss_before = memory_mib(pid)["VmRSS"]
    offered = math.ceil(args.factor * capacity)
    window = math.ceil(offered * (args.timeout + 0.5))  # every lost query is held for the timeout
    heavy = replace(
        closed,
        seconds=args.seconds,
        max_qps=offered,
        outstanding=window,
        clients=max(closed.clients, math.ceil(window / PER_CLIENT_OUTSTANDING)),
        timeout=args.timeout,
    )
    probe = replace(closed, seconds=PROBE_SECONDS, timeout=args.timeout, stats_interval=PROBE_INTERVAL)
    print(
        f"capacity (closed loop, -c {closed.clients} -q {closed.outstanding}, {closed.seconds:g} s): "
        f"{capacity:,.0f} QPS; RSS {rss_before:.1f} MiB"
    )
    print(
        f"overload: dnsperf -Q {offered:,} ({args.factor:g}x) -t {args.timeout:g} -q {window:,} "
        f"-c {heavy.clients} for {args.seconds:g} s, then a closed-loop run reporting every "
        f"{PROBE_INTERVAL:g} s"
    )
    loaded, stopped, recovery_run = overload_then_probe(port, queries, heavy, probe, tmp / "dnsperf.err")
    if served.process.poll() is not None:
        raise BenchError(f"serve exited during the run with status {served.process.returncode}")
    rss_after = memory_mib(pid)["VmRSS"]
    recovered_at = next(
        (at for at, qps in recovery_run.intervals if qps >= RECOVERED_SHARE * capacity), math.inf
    )
    figures = report(capacity, offered, loaded, recovery_run, stopped, rss_before, rss_after)
    verdicts = [
        Verdict("RSS growth", figures["rss_growth_percent"], TARGET_RSS_GROWTH_PERCENT, at_most=True),
        Verdict("answers after the client gave up", loaded.late, 0, at_most=True, note=lost_note(loaded)),
        Verdict(
            f"back to {RECOVERED_SHARE:.0%} of capacity after the load stopped",
            recovered_at - stopped,
            TARGET_RECOVERY_SECONDS,
            at_most=True,
        ),
    ]
    print(verdicts[0].line("%"))
    print(verdicts[1].line())
    print(verdicts[2].line(" s"))
    problems = [f"serve logged: {line}" for line in log_problems(served.log_text())[:10]]
    odd = {code: n for code, n in loaded.rcodes.items() if code not in EXPECTED_RCODES}
    if odd:
        problems.append(f"serve answered unexpected rcodes under overload: {odd}")
    if loaded.sent < 0.95 * offered * args.seconds:
        problems.append(
            f"dnsperf sent {loaded.sent / args.seconds:,.0f} QPS, short of the {offered:,} asked: "
            "the load generator, not serve, was the limit"
        )
    for problem in problems:
        print(f"WARNING: {problem}")
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": {"services": args.services, "namespaces": args.namespaces},
        "capacity": capacity_run.as_dict(),
        "overload": loaded.as_dict() | {"dnsperf": asdict(heavy)},
        "recovery": recovery_run.as_dict(),
        "figures": figures,
        "verdicts": [v.as_dict() for v in verdicts],
        "problems": problems,
    }


def overload_then_probe(
    port: int, queries: Path, heavy: DnsperfOptions, probe: DnsperfOptions, errors: Path
) -> tuple[DnsperfResult, float, DnsperfResult]:
    """The overloading run, and the probe started the moment it stops sending (while it still waits
    out its last queries' timeout); the Unix time the sending stopped."""
    args = ["stdbuf", "-oL", *dnsperf_command(port, queries, heavy)]  # its status lines as they come
    with errors.open("w+") as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            assert process.stdout is not None
            head = []
            for line in process.stdout:
                head.append(line)
                if line.startswith("[Status] Testing complete"):
                    stopped = time.time()
                    break
            else:
                raise BenchError(f"{' '.join(args)} ended early:\n{''.join(head)}")
            recovery = run_dnsperf(port, queries, probe)
            # The statistics are small (timeouts are not printed): they wait in the pipe until read,
            # through the buffer the lines above came from, which may hold some of them already.
            process.wait(timeout=(heavy.timeout or 5) + 10)
            rest = process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        late = count_late(stderr.read())
    if process.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited with {process.returncode}")
    return replace(parse_dnsperf("".join(head) + rest), late=late), stopped, recovery


def lost_note(loaded: DnsperfResult) -> str:
    return (
        f"; {loaded.lost:,} of {loaded.sent:,} queries lost ({loaded.lost_percent:.1f}%): dropped, unanswered"
    )


def report(
    capacity: float,
    offered: int,
    loaded: DnsperfResult,
    recovery: DnsperfResult,
    stopped: float,
    rss_before: float,
    rss_after: float,
) -> dict[str, Any]:
    answered_qps = loaded.completed / loaded.runtime
    print(
        f"under overload: sent {loaded.sent / loaded.runtime:,.0f} QPS, answered {answered_qps:,.0f} QPS "
        f"({answered_qps / capacity:.0%} of capacity), avg latency {1000 * loaded.avg_latency:.1f} ms, "
        f"max {1000 * loaded.max_latency:.0f} ms; rcodes {loaded.rcodes}"
    )
    series = ", ".join(f"{at - stopped:+.2f}s {qps / 1000:.0f}k" for at, qps in recovery.intervals[:12])
    print(f"after the load stopped (interval end, QPS): {series}")
    print(f"RSS {rss_before:.1f} MiB before the overload, {rss_after:.1f} MiB after the recovery check")
    return {
        "capacity_qps": capacity,
        "offered_qps": offered,
        "sent_qps": loaded.sent / loaded.runtime,
        "answered_qps": answered_qps,
        "lost": loaded.lost,
        "late": loaded.late,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth_percent": 100 * (rss_after - rss_before) / rss_before,
        "recovery_intervals": [(at - stopped, qps) for at, qps in recovery.intervals],
    }
