"""Reusable benchmark plumbing around Debian's DNS tools: a dnsmasq reference server, dig checks,
dnsperf runs and their parsed statistics (per-query latencies too), rounds taking turns between servers,
CPU pinning, target verdicts and the JSON results directory."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tests.support.dig import dig
from tests.support.metrics import scrape
from tests.support.paths import ROOT
from tests.support.ports import HOST, free_port
from tests.support.processes import Running, cache
from tests.support.procfs import cpu_seconds as process_cpu_seconds
from tests.support.waiting import wait_until

RESULTS_DIR = ROOT / "bench-results"


class BenchError(RuntimeError):
    """Something needed to run the benchmark failed; the results would be meaningless."""


def require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise BenchError(
            f"missing programs: {', '.join(missing)} (Debian: dnsmasq dnsperf bind9-dnsutils util-linux)"
        )


@contextmanager
def shared_tempdir(prefix: str) -> Iterator[Path]:
    """A temporary directory others may read: dnsmasq reads its hosts file after dropping root."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


# -- command lines -------------------------------------------------------------------------------

MAX_SECONDS = 15.0  # per dnsperf run, so that every benchmark stays bounded


def load_parser(name: str, doc: str, seconds: float = 8.0, warmup: float = 2.0) -> argparse.ArgumentParser:
    """The options every dnsperf benchmark takes; ``parse_load_args`` checks their bounds."""
    parser = argparse.ArgumentParser(prog=f"python -m tests.bench {name}", description=doc.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=seconds, help="length of each measured run (max 15)")
    parser.add_argument("--warmup", type=float, default=warmup, help="unmeasured run per server first")
    parser.add_argument("--rounds", type=int, default=2, help="measured runs per server, taking turns")
    parser.add_argument("--outstanding", type=int, default=DnsperfOptions.outstanding, help="dnsperf -q")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the servers and dnsperf to CPUs")
    return parser


def parse_load_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        parser.error(f"--seconds and --warmup must be at most {MAX_SECONDS:.0f}")
    if args.rounds < 1 or args.outstanding < 1:
        parser.error("--rounds and --outstanding must be positive")
    return args


def run_bench(name: str, run: Callable[[], Mapping[str, Any]]) -> int:
    """Run one benchmark and write its results; 1 when it could not run (a slow result is not a failure)."""
    try:
        results = run()
    except (BenchError, AssertionError) as err:  # AssertionError: a server failed to start (processes.py)
        print(f"bench {name}: FAILED: {err}")
        return 1
    print(f"results written to {write_results(name, results)}")
    return 0


# -- CPU placement ---------------------------------------------------------------------------------


def cpu_split(pinned: bool = True) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(server CPUs, load generator CPUs): one CPU for the server, the rest for dnsperf, so neither
    steals the other's core. Both empty (no pinning) on a single CPU, where pinning would only
    serialise them, or when not ``pinned``."""
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    return (cpus[:1], cpus[1:]) if pinned and len(cpus) > 1 else ((), ())


def pin(pid: int, cpus: Collection[int]) -> None:
    """Pin every thread of a running process (threads started later inherit the mask)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    seconds = process_cpu_seconds(pid)
    if seconds is None:
        raise BenchError(f"process {pid} is gone")
    return seconds


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak RSS) of a process, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024  # reported in kB (KiB)
    return found


# -- dig -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    status: str  # NOERROR, NXDOMAIN, ... ("" when no reply came)
    addresses: frozenset[str]  # of the type asked, for A and AAAA
    records: int = 0  # answer records of any type


def lookup(port: int, name: str, qtype: str = "A") -> Lookup:
    require("dig")
    reply = dig(name, qtype, port=port)
    return Lookup(reply.status, frozenset(reply.data(qtype)), len(reply.answer))


def wait_until_answers(
    port: int,
    name: str,
    process: subprocess.Popen[Any],
    statuses: Collection[str] | None = ("NOERROR",),
    timeout: float = 10.0,
) -> None:
    """Poll until ``name`` gets one of ``statuses`` (None: any reply at all). serve answers SERVFAIL
    until its data has loaded, so waiting for its port to open is not enough."""

    def answered() -> bool:
        if process.poll() is not None:
            raise BenchError(f"the server on port {port} exited with status {process.returncode}")
        status = lookup(port, name).status
        return bool(status) and (statuses is None or status in statuses)

    try:
        wait_until(answered, timeout, f"port {port} answering {name}", interval=0.1)
    except AssertionError as failed:
        raise BenchError(str(failed)) from None


# -- dnsmasq -------------------------------------------------------------------------------------


def write_hosts_file(path: Path, records: Mapping[str, Sequence[str]]) -> Path:
    """An /etc/hosts-style file, one line per address, world-readable for dnsmasq's own user."""
    path.write_text("".join(f"{ip} {name}\n" for name, ips in records.items() for ip in ips), "ascii")
    path.chmod(0o644)
    return path


@dataclass
class Dnsmasq:
    process: subprocess.Popen[bytes]
    port: int


@contextmanager
def dnsmasq_process(log: Path, *options: str) -> Iterator[Dnsmasq]:
    """Debian's dnsmasq on a free loopback port with no upstream, hosts or config file of its own,
    plus ``options``; its log goes to ``log``. Stopped on exit."""
    require("dnsmasq")
    port = free_port()
    args = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file=",  # no pid file: several instances may run at once
        "--log-facility=-",  # stderr, captured in ``log``
        "--no-resolv",
        "--no-hosts",
        f"--port={port}",
        f"--listen-address={HOST}",
        "--bind-interfaces",
        *options,
    ]
    with log.open("ab") as err:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        yield Dnsmasq(process, port)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def dnsmasq(hosts_file: Path, domain: str, ttl: int, log: Path) -> Iterator[Dnsmasq]:
    """dnsmasq answering only from ``hosts_file``, misses under ``domain`` answered NXDOMAIN locally
    instead of being forwarded. Yields once it answers."""
    options = (f"--addn-hosts={hosts_file}", f"--local=/{domain}/", f"--local-ttl={ttl}")  # TTL as serve's
    with dnsmasq_process(log, *options) as server:
        try:
            wait_until_answers(server.port, domain, server.process, statuses=None)
        except BenchError as failed:
            raise BenchError(f"dnsmasq: {failed}\n{log.read_text(errors='replace')[-2000:]}") from failed
        yield server


# -- two caching forwarders -------------------------------------------------------------------------

OURS, THEIRS = "kubedns-py cache", "dnsmasq"


@dataclass
class CachePair:
    ours: Running
    theirs: Dnsmasq

    @property
    def ports(self) -> dict[str, int]:
        return {OURS: self.ours.dns_port, THEIRS: self.theirs.port}

    @property
    def processes(self) -> dict[str, subprocess.Popen[Any]]:
        return {OURS: self.ours.process, THEIRS: self.theirs.process}

    def check_alive(self) -> None:
        for server, process in self.processes.items():
            if process.poll() is not None:
                raise BenchError(f"{server} exited during the run with status {process.returncode}")


@contextmanager
def cache_pair(log: Path, options: Sequence[str], probe: str, cpus: Collection[int]) -> Iterator[CachePair]:
    """``kubedns-py cache`` and dnsmasq as caching forwarders given the same dnsmasq-style ``options``
    (``--server=...``, ``--cache-size=...``), each answering ``probe`` and pinned to ``cpus`` (if any)
    once this yields. dnsmasq logs to ``log``."""
    with cache(*options, "--no-resolv") as ours, dnsmasq_process(log, *options) as theirs:
        pair = CachePair(ours, theirs)
        for process, port in zip(pair.processes.values(), pair.ports.values(), strict=True):
            wait_until_answers(port, probe, process)
            if cpus:
                pin(process.pid, cpus)
        yield pair


# -- dnsperf -------------------------------------------------------------------------------------


def write_query_file(path: Path, queries: Iterable[tuple[str, str]]) -> Path:
    """dnsperf's input: one ``name type`` per line."""
    path.write_text("".join(f"{name} {qtype}\n" for name, qtype in queries), "ascii")
    return path


# Queries in flight when each may be a miss: below both caches' --dns-forward-max (150), past which
# a cache turns questions away at once instead of forwarding them.
MISS_OUTSTANDING = 100


@dataclass(frozen=True)
class DnsperfOptions:
    seconds: float = 8.0
    clients: int = 4  # sockets (source ports), not threads
    threads: int = 1  # a sender + receiver thread pair; enough for the single CPU dnsperf gets when pinned
    # Closed loop: enough in flight to keep a pinned server busy, yet below the ~190 small datagrams a
    # default 208 KiB receive buffer holds; beyond that the kernel drops the excess, dnsperf counts it
    # lost and waits out its 5 s timeout at the end, and the real window shrinks to the buffer anyway.
    outstanding: int = 160
    max_qps: int | None = None
    max_runs: int | None = None  # dnsperf -n: stop after this many passes through the file
    cpus: tuple[int, ...] = ()  # run dnsperf pinned to these CPUs (empty: anywhere)
    latencies: bool = False  # dnsperf -v: keep every answered query's latency
    timeout: float | None = None  # dnsperf -t: seconds before a query counts as lost (its default: 5)
    stats_interval: float | None = None  # dnsperf -S: print the QPS of every interval of this length


@dataclass(frozen=True)
class DnsperfResult:
    sent: int
    completed: int
    lost: int
    qps: float
    runtime: float
    avg_latency: float  # seconds
    min_latency: float
    max_latency: float
    rcodes: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # dnsperf's own CPU time: near its CPUs' full share, it was the bottleneck
    late: int = 0  # answers that came after their query had timed out (counted lost)
    latencies: tuple[float, ...] = field(default=(), repr=False)  # seconds, with DnsperfOptions.latencies
    intervals: tuple[tuple[float, float], ...] = ()  # with DnsperfOptions.stats_interval: parse_intervals

    @property
    def lost_percent(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    def as_dict(self) -> dict[str, Any]:
        figures = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latencies"}
        return figures | {"rcodes": dict(self.rcodes), "lost_percent": self.lost_percent}


_DNSPERF_FIELDS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "runtime": r"Run time \(s\):\s+([\d.]+)",
    "latency": r"Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)",
}
_RCODE = re.compile(r"([A-Z]+) (\d+) \(")


def parse_dnsperf(text: str) -> DnsperfResult:
    found: dict[str, re.Match[str]] = {}
    for key, pattern in _DNSPERF_FIELDS.items():
        match = re.search(pattern, text)
        if match is None:
            raise BenchError(f"dnsperf printed no {key!r} statistic:\n{text[-2000:]}")
        found[key] = match
    rcodes_line = re.search(r"Response codes:([^\n]*)", text)
    rcodes = {code: int(n) for code, n in _RCODE.findall(rcodes_line.group(1) if rcodes_line else "")}
    return DnsperfResult(
        sent=int(found["sent"].group(1)),
        completed=int(found["completed"].group(1)),
        lost=int(found["lost"].group(1)),
        qps=float(found["qps"].group(1)),
        runtime=float(found["runtime"].group(1)),
        avg_latency=float(found["latency"].group(1)),
        min_latency=float(found["latency"].group(2)),
        max_latency=float(found["latency"].group(3)),
        rcodes=rcodes,
    )


def parse_latencies(text: str) -> tuple[float, ...]:
    """Seconds per answered query from dnsperf -v's ``> RCODE name type latency`` lines; a lost query
    (``> T ...``) has none."""
    answered = (line for line in text.splitlines() if line.startswith("> ") and not line.startswith("> T "))
    return tuple(float(line.rsplit(" ", 1)[1]) for line in answered)


_LATE = "received a response with an unexpected (maybe timed out) id"


def count_late(stderr: str) -> int:
    """Answers dnsperf received for queries it had already given up on (one warning each)."""
    return stderr.count(_LATE)


def dnsperf_command(port: int, query_file: Path, options: DnsperfOptions) -> list[str]:
    require("dnsperf")
    args = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(query_file), "-l", str(options.seconds)]
    args += ["-c", str(options.clients), "-T", str(options.threads), "-q", str(options.outstanding)]
    if options.max_qps:
        args += ["-Q", str(options.max_qps)]
    if options.max_runs:
        args += ["-n", str(options.max_runs)]
    if options.latencies:
        args.append("-v")
    if options.timeout is not None:
        # A timeout worth setting expires many queries: one line each would bury the statistics
        # (they came out garbled among 100k of them); the lost are counted there all the same.
        args += ["-t", str(options.timeout), "-O", "suppress=timeouts"]
    if options.stats_interval is not None:
        args += ["-S", str(options.stats_interval)]
    if options.cpus:
        args = ["taskset", "-c", ",".join(map(str, options.cpus)), *args]
    return args


_INTERVAL = re.compile(r"^(\d+\.\d+): ([\d.]+)$", re.MULTILINE)


def parse_intervals(text: str) -> list[tuple[float, float]]:
    """dnsperf -S's lines: (Unix time at the end of each interval, QPS answered within it)."""
    return [(float(at), float(qps)) for at, qps in _INTERVAL.findall(text)]


def run_dnsperf(port: int, query_file: Path, options: DnsperfOptions) -> DnsperfResult:
    args = dnsperf_command(port, query_file, options)
    before = _children_cpu()
    # dnsperf stops sending at -l and then waits up to its 5 s query timeout for stragglers.
    done = subprocess.run(args, capture_output=True, text=True, timeout=options.seconds + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited with {done.returncode}:\n{done.stderr}{done.stdout}")
    result = replace(
        parse_dnsperf(done.stdout), cpu_seconds=_children_cpu() - before, late=count_late(done.stderr)
    )
    if options.stats_interval is not None:
        result = replace(result, intervals=tuple(parse_intervals(done.stdout)))
    return replace(result, latencies=parse_latencies(done.stdout)) if options.latencies else result


def _children_cpu() -> float:
    """CPU time of every child waited for so far; the servers are not reaped until they stop."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value at or above ``share`` of the samples."""
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


# -- measured rounds -----------------------------------------------------------------------------

SATURATED_CPU_PERCENT = 85  # below this the closed loop did not keep the server busy


@dataclass
class Measured:
    """One server's measured dnsperf runs and the CPU seconds each took of the server, and of the
    servers behind it (its upstreams, whose CPU share shows whether they were the limit)."""

    runs: list[DnsperfResult] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    upstream_cpu: list[float] = field(default_factory=list)

    def add(self, result: DnsperfResult, server_cpu: float, upstream_cpu: float = 0.0) -> None:
        self.runs.append(result)
        self.cpu.append(server_cpu)
        self.upstream_cpu.append(upstream_cpu)

    def summary(self) -> dict[str, Any]:
        sent = sum(r.sent for r in self.runs)
        completed = sum(r.completed for r in self.runs)
        runtime = sum(r.runtime for r in self.runs)
        return {
            "qps": completed / runtime,
            # Per CPU-second of the server: steadier than QPS when other work takes the server's CPU.
            "queries_per_cpu_second": completed / max(1e-9, sum(self.cpu)),
            "avg_latency_ms": 1000 * sum(r.avg_latency * r.completed for r in self.runs) / max(1, completed),
            "sent": sent,
            "completed": completed,
            "lost": sum(r.lost for r in self.runs),
            "lost_percent": 100 * sum(r.lost for r in self.runs) / max(1, sent),
            "server_cpu_percent": 100 * sum(self.cpu) / runtime,
            "upstream_cpu_percent": 100 * sum(self.upstream_cpu) / runtime,
            "dnsperf_cpu_percent": 100 * sum(r.cpu_seconds for r in self.runs) / runtime,
            "round_qps": [r.qps for r in self.runs],
            "rcodes": {code: sum(r.rcodes.get(code, 0) for r in self.runs) for code in self._codes()},
            "runs": [r.as_dict() for r in self.runs],
        }

    def _codes(self) -> list[str]:
        return sorted({code for r in self.runs for code in r.rcodes})


def warm_up(ports: Mapping[str, int], queries: Path, load: DnsperfOptions, seconds: float) -> None:
    """An unmeasured run per server."""
    if seconds:
        for port in ports.values():
            run_dnsperf(port, queries, replace(load, seconds=seconds))


def measure_rounds(
    ports: Mapping[str, int],
    processes: Mapping[str, subprocess.Popen[Any]],
    queries: Path,
    load: DnsperfOptions,
    rounds: int,
    warmup: float,
    upstreams: Collection[int] = (),
) -> dict[str, Measured]:
    """A warm-up per server (memos and caches fill on first ask), then measured runs taking turns, so
    a burst of other work on the machine hits both servers rather than one. The CPU time of the
    ``upstreams`` (pids) is charged to the server measured meanwhile."""
    warm_up(ports, queries, load, warmup)
    measured = {server: Measured() for server in ports}
    for _ in range(rounds):
        for server, port in ports.items():
            before = cpu_seconds(processes[server].pid)
            behind = sum(map(cpu_seconds, upstreams))
            result = run_dnsperf(port, queries, load)
            server_cpu = cpu_seconds(processes[server].pid) - before
            measured[server].add(result, server_cpu, sum(map(cpu_seconds, upstreams)) - behind)
    return measured


def print_upstream_cpu(summaries: Mapping[str, Mapping[str, Any]], upstreams: str) -> None:
    """The CPU share the servers behind each cache took while it was measured."""
    shares = ", ".join(f"{server} {s['upstream_cpu_percent']:.0f}%" for server, s in summaries.items())
    print(f"{upstreams} CPU while measured (of one CPU, shared with dnsperf): {shares}")


def log_problems(text: str) -> list[str]:
    """Lines of a kubedns-py log that mean something went wrong."""
    words = (" ERROR ", " WARNING ", " CRITICAL ", "Traceback")
    return [line.rstrip() for line in text.splitlines() if any(word in line for word in words)]


def qps_problems(
    summaries: Mapping[str, Mapping[str, Any]], expected_rcodes: Collection[str] = ("NOERROR", "NXDOMAIN")
) -> list[str]:
    """What makes a QPS comparison suspect: odd rcodes, losses, a server that was not kept busy."""
    problems = []
    for server, summary in summaries.items():
        odd = {code: n for code, n in summary["rcodes"].items() if code not in expected_rcodes}
        if odd:
            problems.append(f"{server} answered unexpected rcodes under load: {odd}")
        if summary["server_cpu_percent"] < SATURATED_CPU_PERCENT:
            problems.append(
                f"{server} used {summary['server_cpu_percent']:.0f}% of a CPU, so its QPS is below capacity: "
                "dnsperf was the limit if its CPU is near 100% per CPU it had, else other work interfered"
            )
        if summary["lost"]:
            problems.append(f"{server} lost {summary['lost']:,} queries ({summary['lost_percent']:.3f}%)")
    return problems


def print_verdicts(verdicts: Sequence[Verdict], problems: Sequence[str]) -> None:
    for verdict in verdicts:
        print(verdict.line())
    for problem in problems:
        print(f"WARNING: {problem}")


def print_qps_table(summaries: Mapping[str, Mapping[str, Any]]) -> None:
    width = max(9, *map(len, summaries))
    header = (
        f"{'server':<{width}} {'QPS':>10} {'avg latency':>12} {'lost %':>7} {'server CPU':>10} "
        f"{'q/CPU-s':>9} {'dnsperf CPU':>11}"
    )
    print(f"{header}  QPS per round")
    for server, s in summaries.items():
        rounds = ", ".join(f"{q:,.0f}" for q in s["round_qps"])
        print(
            f"{server:<{width}} {s['qps']:>10,.0f} {s['avg_latency_ms']:>9.3f} ms {s['lost_percent']:>6.2f}% "
            f"{s['server_cpu_percent']:>9.0f}% {s['queries_per_cpu_second']:>9,.0f} "
            f"{s['dnsperf_cpu_percent']:>10.0f}%  {rounds}"
        )


# -- targets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    label: str
    value: float
    target: float
    at_most: bool = False  # the target is a ceiling (latency) rather than a floor (a QPS ratio)
    note: str = ""  # printed after the verdict

    @property
    def passed(self) -> bool:
        return self.value <= self.target if self.at_most else self.value >= self.target

    def line(self, unit: str = "") -> str:
        bound = "<=" if self.at_most else ">="
        figures = f"{self.value:.2f}{unit} (target {bound} {self.target:g}{unit})"
        return f"{self.label}: {figures} {'PASS' if self.passed else 'MISS'}{self.note}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"pass": self.passed}


def qps_verdict(
    label: str, summaries: Mapping[str, Mapping[str, Any]], ours: str, theirs: str, target: float
) -> Verdict:
    """``ours``'s QPS over ``theirs``'s against ``target``, noting the ratio of queries per server
    CPU-second too: the steadier of the two when other work on the machine shares the server's CPU."""
    a, b = summaries[ours], summaries[theirs]
    per_cpu = a["queries_per_cpu_second"] / b["queries_per_cpu_second"]
    note = f"; per server CPU-second {per_cpu:.2f}"
    return Verdict(f"{label} QPS ratio", a["qps"] / b["qps"], target, note=note)


# -- results -------------------------------------------------------------------------------------


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")
    return path


TARGET_GC_PAUSE_MS = 2.0


@dataclass(frozen=True)
class GcPauses:
    """serve's own account of its cycle-collector pauses (``kubedns_gc_pause_*``) over a whole run."""

    longest_ms: float
    collections: int
    over_target: int  # pauses longer than TARGET_GC_PAUSE_MS, to within the histogram's buckets

    def line(self) -> str:
        verdict = "PASS" if self.longest_ms <= TARGET_GC_PAUSE_MS else "MISS"
        target = f"{TARGET_GC_PAUSE_MS:g} ms"
        return (
            f"longest collector pause since the sync {self.longest_ms:.2f} ms (target <= {target}) "
            f"{verdict}; "
            f"{self.collections:,} collections, {self.over_target} above {target} (the sync's own included)"
        )


def gc_pauses(metrics_port: int) -> GcPauses:
    samples = scrape(metrics_port)
    total = samples.get("kubedns_gc_pause_seconds_count")
    within = samples.get("kubedns_gc_pause_seconds_bucket", le=str(TARGET_GC_PAUSE_MS / 1000))
    longest = samples.get("kubedns_gc_pause_longest_seconds") * 1000
    return GcPauses(longest, int(total), int(total - within))
