"""A random-subdomain flood through the cache: its QPS, the cache's memory, a second client's hits.

One dnsmasq plays the authoritative upstream of ``flood.test`` (``--auth-zone``): 1,000,000 distinct
random names under it are NXDOMAIN with the zone's SOA (negative TTL 300 s, so each is cached and the
cache fills), while 100 ``hot-<i>.flood.test`` names are A records. In front of it sit
``kubedns-py cache`` and dnsmasq with the same ``--cache-size``: 1000 (kube-dns's) and then 100000, a
fresh pair each. Both caches first learn the hot names; then each in turn takes the flood, one
closed-loop pass of ``dnsperf -n 1`` over the names (``-q`` below ``--dns-forward-max``) cut short
after ``--max-seconds`` (75 s: a cache slower than 13k QPS gets through fewer names, as printed), while:

* a second dnsperf asks the hot names at a modest steady rate (``-Q``, ``-v``) for as long as the
  flood lasts: p50/p99/p99.9 of those hits (a hot name the flood pushed out of the cache is fetched
  again, and counts with its forwarding time);
* the cache's VmRSS is sampled every half second; the flood runs as the first 100,000 names then the
  rest, so RSS after 100k and after all names are read between the two, and the peak is VmHWM.

Targets, for ``kubedns-py cache``: RSS after all names within 10% of RSS after 100k (the cache is full
by then, so memory stays put), RSS at most 64 MiB at the default size, hot names' p99 at most 2 ms.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.bench import latency
from tests.bench.tools import (
    MISS_OUTSTANDING,
    OURS,
    THEIRS,
    BenchError,
    CachePair,
    DnsperfOptions,
    DnsperfResult,
    Verdict,
    cache_pair,
    cpu_seconds,
    cpu_split,
    dnsmasq_process,
    log_problems,
    memory_mib,
    pin,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
)
from tests.support.dnsclient import chaos_number
from tests.support.ports import HOST

NAME = "cache-flood"
ZONE = "flood.test"
NEGATIVE_TTL = 300  # the SOA's TTL and minimum (--auth-ttl): flood names stay cached for the run
FLOOD_NAMES = 1_000_000
FIRST_PART = 100_000  # RSS is read after this many names, and again after all of them
HOT_NAMES = 100
HOT_QPS = 2_000
HOT_RUN_SECONDS = 2.0  # the second client's runs, repeated while the flood lasts
RSS_INTERVAL = 0.5
SIZES = (1_000, 100_000)
DEFAULT_SIZE = 1_000  # the cache's default --cache-size, as every kube-dns manifest passes
MAX_FLOOD_SECONDS = 300.0
TARGET_RSS_GROWTH_PERCENT = 10.0
TARGET_RSS_MIB = 64.0
TARGET_HOT_P99_MS = 2.0
SEED = 20240601
RSS_COLUMNS = ("rss_before_mib", "rss_after_first_mib", "rss_after_all_mib", "rss_peak_mib")


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench {NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=FLOOD_NAMES, help="distinct flood names")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="--cache-size values, a fresh pair each"
    )
    parser.add_argument("--hot-qps", type=int, default=HOT_QPS, help="the second client's rate")
    parser.add_argument("--max-seconds", type=float, default=75.0, help="bound on each server's flood")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the caches and dnsperf to CPUs")
    args = parser.parse_args(argv)
    if not FIRST_PART < args.names <= 5_000_000 or not 0 < args.max_seconds <= MAX_FLOOD_SECONDS:
        parser.error(
            f"--names must be in ({FIRST_PART}, 5000000], --max-seconds in (0, {MAX_FLOOD_SECONDS:g}]"
        )
    if args.hot_qps < 1 or min(args.sizes) < 1:
        parser.error("--hot-qps and --sizes must be positive")
    return run_bench(NAME, lambda: run(args))


def flood_names(count: int) -> list[str]:
    """Distinct names under ZONE, each label random as an attacker's are (the index keeps them apart)."""
    rng = random.Random(SEED)
    return [f"{rng.getrandbits(48):012x}{i:x}.{ZONE}" for i in range(count)]


def hot_names() -> dict[str, tuple[str]]:
    return {f"hot-{i}.{ZONE}": (f"198.18.0.{i + 1}",) for i in range(HOT_NAMES)}


@dataclass
class Flooded:
    """One cache under the flood."""

    parts: list[DnsperfResult] = field(default_factory=list)  # the first FIRST_PART names, then the rest
    rss_before: float = 0.0  # MiB, with only the hot names cached
    rss_after_parts: list[float] = field(default_factory=list)  # MiB
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the flood, MiB)
    rss_peak: float = 0.0  # VmHWM: the most the process ever held
    hot: list[DnsperfResult] = field(default_factory=list)
    cpu_seconds: float = 0.0
    misses: int = 0  # questions forwarded during the flood, the flood's own included

    def summary(self) -> dict[str, Any]:
        runtime = sum(r.runtime for r in self.parts)
        names = sum(r.sent for r in self.parts)
        return {
            "names": names,
            "qps": sum(r.completed for r in self.parts) / runtime,
            "seconds": runtime,
            "lost": sum(r.lost for r in self.parts),
            "rcodes": {code: sum(r.rcodes.get(code, 0) for r in self.parts) for code in self._codes()},
            "server_cpu_percent": 100 * self.cpu_seconds / runtime,
            "rss_before_mib": self.rss_before,
            "rss_after_first_mib": self.rss_after_parts[0],
            "rss_after_all_mib": self.rss_after_parts[-1],
            "rss_growth_percent": 100 * (self.rss_after_parts[-1] / self.rss_after_parts[0] - 1),
            "rss_peak_mib": self.rss_peak,
            "rss_samples_mib": self.rss,
            "qps_per_second": [qps for r in self.parts for _, qps in r.intervals],
            # Forwarded beyond the flood's own names: hot names it pushed out of the cache.
            "hot_refetched": max(0, self.misses - names),
            "hot": latency.latency_percentiles(self.hot)
            | {"qps": sum(r.completed for r in self.hot) / sum(r.runtime for r in self.hot)}
            | {"rcodes": self._hot_rcodes()},
        }

    def _codes(self) -> list[str]:
        return sorted({code for r in self.parts for code in r.rcodes})

    def _hot_rcodes(self) -> dict[str, int]:
        return {
            code: sum(r.rcodes.get(code, 0) for r in self.hot)
            for code in {c for r in self.hot for c in r.rcodes}
        }


def hot_client(
    port: int, queries: Path, load: DnsperfOptions, done: threading.Event, limit: float
) -> list[DnsperfResult]:
    """Short steady runs over the hot names until ``done`` (or ``limit`` seconds have passed); one
    at least."""
    runs: list[DnsperfResult] = []
    for _ in range(int(limit / load.seconds) + 1):
        runs.append(run_dnsperf(port, queries, load))
        if done.is_set():
            break
    return runs


def flood(
    port: int, pid: int, parts: Sequence[Path], load: DnsperfOptions, hot: DnsperfOptions, hot_queries: Path
) -> Flooded:
    """The flood's parts one after the other, with the hot client and RSS samples alongside."""
    flooded = Flooded(rss_before=memory_mib(pid)["VmRSS"])
    done = threading.Event()
    start = time.monotonic()
    cpu_before = cpu_seconds(pid)
    misses_before = chaos_number(port, "misses")
    with ThreadPoolExecutor(2) as pool:
        hot_runs = pool.submit(hot_client, port, hot_queries, hot, done, load.seconds + 30)
        try:
            for part in parts:
                left = load.seconds - (time.monotonic() - start)
                if left <= 0:
                    break
                running = pool.submit(run_dnsperf, port, part, replace(load, seconds=left))
                while not wait([running], timeout=RSS_INTERVAL).done:
                    flooded.rss.append((time.monotonic() - start, memory_mib(pid)["VmRSS"]))
                flooded.parts.append(running.result())
                flooded.rss_after_parts.append(memory_mib(pid)["VmRSS"])
        finally:
            done.set()
        flooded.hot = hot_runs.result()
    flooded.rss_peak = memory_mib(pid)["VmHWM"]
    flooded.cpu_seconds = cpu_seconds(pid) - cpu_before
    flooded.misses = chaos_number(port, "misses") - misses_before
    return flooded


def warm_hot(pair: CachePair, queries: Path, load: DnsperfOptions) -> None:
    """Both caches learn the hot names; a second pass must not miss."""
    one_pass = replace(load, max_runs=1, max_qps=None)
    for server, port in pair.ports.items():
        run_dnsperf(port, queries, one_pass)
        before = chaos_number(port, "misses")
        run_dnsperf(port, queries, one_pass)
        if chaos_number(port, "misses") != before:
            raise BenchError(f"{server} missed hot names already asked")


def dnsmasq_cache_size(log: Path) -> str:
    """The cache size dnsmasq says it started with (its build may cap what it is given)."""
    text = log.read_text(errors="replace")
    found = [line.rsplit("cachesize", 1)[1].strip() for line in text.splitlines() if "cachesize" in line]
    return found[-1] if found else "?"


def run(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsmasq", "dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    load = DnsperfOptions(
        seconds=args.max_seconds, outstanding=MISS_OUTSTANDING, max_runs=1, cpus=load_cpus, stats_interval=1.0
    )
    hot_load = DnsperfOptions(
        seconds=HOT_RUN_SECONDS,
        clients=1,
        outstanding=MISS_OUTSTANDING,
        max_qps=args.hot_qps,
        latencies=True,
        cpus=load_cpus,
    )
    hot = hot_names()
    probe = next(iter(hot))
    results: dict[str, Any] = {}
    with shared_tempdir("kubedns-bench-flood-") as tmp:
        names = flood_names(args.names)
        parts = [
            write_query_file(tmp / "flood-first.txt", [(name, "A") for name in names[:FIRST_PART]]),
            write_query_file(tmp / "flood-rest.txt", [(name, "A") for name in names[FIRST_PART:]]),
        ]
        del names
        hosts = write_hosts_file(tmp / "upstream.hosts", hot)
        hot_queries = write_query_file(tmp / "hot.txt", [(name, "A") for name in hot])
        upstream_options = (
            f"--addn-hosts={hosts}",
            f"--auth-zone={ZONE}",
            f"--auth-server=ns.{ZONE},{HOST}",  # authoritative for queries to this address: SOA in NXDOMAIN
            f"--auth-ttl={NEGATIVE_TTL}",
        )
        with dnsmasq_process(tmp / "upstream.log", *upstream_options) as upstream:
            wait_until_answers(upstream.port, probe, upstream.process)
            if load_cpus:
                pin(upstream.process.pid, load_cpus)
            print(
                f"bench {NAME}: {args.names:,} distinct names under {ZONE} (NXDOMAIN with SOA, negative "
                f"TTL {NEGATIVE_TTL} s), one closed-loop pass (-q {load.outstanding}, at most "
                f"{args.max_seconds:g} s); meanwhile {HOT_NAMES} cached names asked at {args.hot_qps:,} QPS"
            )
            for size in args.sizes:
                log = tmp / f"cache-{size}.log"
                options = (f"--server={HOST}#{upstream.port}", f"--cache-size={size}")
                with cache_pair(log, options, probe, server_cpus) as pair:
                    warm_hot(pair, hot_queries, hot_load)
                    summaries = {
                        server: flood(
                            port, pair.processes[server].pid, parts, load, hot_load, hot_queries
                        ).summary()
                        for server, port in pair.ports.items()
                    }
                    pair.check_alive()
                    ours_log = log_problems(pair.ours.log_text())
                    results[str(size)] = report(
                        size, args.names, args.hot_qps, summaries, dnsmasq_cache_size(log), ours_log
                    )
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "names": args.names,
        "negative_ttl": NEGATIVE_TTL,
        "dnsperf": {"flood": asdict(load), "hot": asdict(hot_load)},
        "sizes": results,
    }


def report(
    size: int,
    names: int,
    hot_qps: int,
    summaries: dict[str, dict[str, Any]],
    theirs_size: str,
    ours_log: list[str],
) -> dict[str, Any]:
    print(f"--cache-size={size} (dnsmasq reports cachesize {theirs_size})")
    print(
        f"  {'cache':<17} {'flood QPS':>9} {'CPU':>5} {'RSS before':>10} {'RSS 100k':>10} {'RSS all':>10} "
        f"{'peak':>10} "
        f"{'hot p50':>9} {'p99':>9} {'p99.9':>9} {'hot lost':>8} {'refetched':>9}"
    )
    for server, s in summaries.items():
        rss = " ".join(f"{s[k]:>6.1f} MiB" for k in RSS_COLUMNS)
        hot = " ".join(f"{s['hot'][k]:>6.3f} ms" for k in latency.PERCENTILES)
        print(
            f"  {server:<17} {s['qps']:>9,.0f} {s['server_cpu_percent']:>4.0f}% {rss} {hot} "
            f"{s['hot']['lost']:>8} {s['hot_refetched']:>9,}"
        )
    ours, theirs = summaries[OURS], summaries[THEIRS]
    print(f"  flood QPS ratio cache/dnsmasq: {ours['qps'] / theirs['qps']:.2f}")
    verdicts = [
        Verdict(
            f"  --cache-size={size}: cache RSS growth (%) from 100k names to {ours['names']:,}",
            ours["rss_growth_percent"],
            TARGET_RSS_GROWTH_PERCENT,
            at_most=True,
        ),
        Verdict(
            f"  --cache-size={size}: cache hot names p99 (ms)",
            ours["hot"]["p99"],
            TARGET_HOT_P99_MS,
            at_most=True,
        ),
    ]
    if size == DEFAULT_SIZE:
        verdicts.append(
            Verdict(
                f"  --cache-size={size}: cache peak RSS (MiB)",
                ours["rss_peak_mib"],
                TARGET_RSS_MIB,
                at_most=True,
            )
        )
    for verdict in verdicts:
        print(verdict.line())
    problems = [f"cache logged: {line}" for line in ours_log[:10]]
    for server, s in summaries.items():
        odd = {code: n for code, n in s["rcodes"].items() if code != "NXDOMAIN"}
        if odd:
            problems.append(f"{server} answered flood names with {odd}")
        if s["lost"]:
            problems.append(f"{server} lost {s['lost']:,} flood queries")
        if s["names"] < names:
            problems.append(
                f"{server} got through {s['names']:,} of the {names:,} names within the time bound"
            )
        if s["hot"]["qps"] < latency.KEPT_UP * hot_qps:
            problems.append(
                f"{server} answered the second client {s['hot']['qps']:,.0f} of its {hot_qps:,} QPS"
            )
        if s["hot"]["rcodes"].keys() - {"NOERROR"}:
            problems.append(f"{server} answered hot names with {s['hot']['rcodes']}")
    for problem in problems:
        print(f"  WARNING: {problem}")
    return {
        "dnsmasq_cachesize": theirs_size,
        "servers": summaries,
        "flood_qps_ratio": ours["qps"] / theirs["qps"],
        "verdicts": [v.as_dict() for v in verdicts],
        "problems": problems,
    }
