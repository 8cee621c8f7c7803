"""serve following a large cluster through the Kubernetes API double: sync time, memory, change latency.

The cluster (default 10,000 Services over 100 namespaces: every other one headless with two
10-endpoint EndpointSlices, so 10,000 slices carry 100,000 endpoints, all published in DNS) is bulk
loaded into ``FakeApiServer``; then the real ``kubedns-py serve`` is started against it as a
subprocess and measured from outside:

1. initial sync: process start to ``/readiness`` 200, split at the first LIST request (before it is
   Python start-up, imports and discovery);
2. VmRSS and VmHWM of the serve process once synced (and again at the end);
3. change-to-answer latency: one API write at a time (a new ClusterIP Service, an endpoint added to
   a slice, then both mixed), each followed by UDP queries back to back until serve gives the new
   answer; the latency runs from just before the write to that first correct reply;
4. sanity: sample answers checked against the generated objects (headless names over TCP) and the
   store's own counts from /metrics.

The double, the readiness poller and the DNS poller share this process's event loop, so a measured
latency includes the double's delivery of the watch event, as it would include a real API server's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import math
import os
import random
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import aiohttp
import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from tests.bench import cluster_gen
from tests.bench.tools import (
    BenchError,
    GcPauses,
    cpu_seconds,
    gc_pauses,
    log_problems,
    memory_mib,
    percentile,
    write_results,
)
from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.ports import HOST
from tests.support.processes import Running, start_serve, stop

NAME = "api"
DOMAIN = "cluster.local"
TARGET_SYNC_SECONDS = 5.0
TARGET_RSS_MIB = 164.0  # Kubernetes memory units (Mi), as a container limit would be written
TARGET_P99_MS = 100.0
CHANGE_DEADLINE = 5.0  # per change: a miss after this, and the phase goes on
PHASE_BUDGET = 15.0  # per phase: keeps the whole run bounded even if every change misses
SYNC_DEADLINE = 30.0
BUSY_CPU_SHARE = 0.8  # serve busy for less of its sync than this: it was waiting for a CPU
SEED = 20240601
# Fresh addresses for the changes, far past anything cluster_gen hands out.
NEW_SERVICE_OFFSET = 500_000
NEW_POD_OFFSET = 4_000_000
PHASES = ("create-service", "add-endpoint", "mixed")
# The scale: 10k services, half headless with two 10-endpoint slices each, so 10k slices carry
# 100k endpoints and every one of them is a DNS record (ClusterIP services publish no endpoints).
SHAPE = cluster_gen.ClusterShape(
    services=10_000, namespaces=100, headless_every=2, slices_per_headless=2, endpoints_per_slice=10
)
SHAPE_FIELDS = ("services", "namespaces", "headless_every", "slices_per_headless", "endpoints_per_slice")
Obj = dict[str, Any]


# -- the cluster ------------------------------------------------------------------------------------


@dataclass
class Cluster:
    namespaces: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    slices: list[Obj] = field(default_factory=list)
    cluster_ips: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, svc) -> IP
    # Headless services: every ready address, and endpoint hostname -> address.
    addresses: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    hosts: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    first_slice: dict[tuple[str, str], str] = field(default_factory=dict)  # the slice changes go to
    pods: list[Obj] = field(default_factory=list)  # watched under --pods verified when any

    @property
    def endpoints(self) -> int:
        return sum(len(obj["endpoints"]) for obj in self.slices)


POD_ADDRESSES = ipaddress.IPv4Network("10.64.0.0/10")  # apart from cluster_gen's endpoint addresses
# What a Pod's spec says about DNS, in turn: most are ClusterFirst; a few tune ndots or search elsewhere.
POD_DNS: tuple[dict[str, Any], ...] = (
    *({} for _ in range(7)),
    {"dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}},
    {"dnsPolicy": "Default"},
    {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
)


def generate_pods(count: int, namespaces: int) -> list[Obj]:
    """Running Pods as the API lists them (trimmed to a typical spec), spread over the namespaces."""
    pods = []
    for i in range(count):
        ip = str(POD_ADDRESSES[i + 1])
        pod = objects.pod(f"app-{i}-7f9c8", ip, f"ns-{i % namespaces}")
        pod["metadata"] |= {
            "labels": {"app": f"app-{i % 500}", "pod-template-hash": "7f9c8"},
            "uid": f"u-{i}",
        }
        pod["spec"] |= POD_DNS[i % len(POD_DNS)] | {"nodeName": f"node-{i % 100}", "restartPolicy": "Always"}
        pod["status"] |= {"hostIP": f"192.168.{i % 100 // 250}.{i % 100 + 1}", "qosClass": "Burstable"}
        pods.append(pod)
    return pods


def generate(shape: cluster_gen.ClusterShape, pods: int = 0) -> Cluster:
    cluster = Cluster(pods=generate_pods(pods, shape.namespaces))
    for obj in cluster_gen.cluster_objects(shape):
        meta = obj["metadata"]
        match obj["kind"]:
            case "Namespace":
                cluster.namespaces.append(obj)
            case "Service":
                cluster.services.append(obj)
                key = (meta["namespace"], meta["name"])
                if obj["spec"]["clusterIP"] != "None":
                    cluster.cluster_ips[key] = obj["spec"]["clusterIP"]
            case "EndpointSlice":
                cluster.slices.append(obj)
                key = (meta["namespace"], meta["labels"]["kubernetes.io/service-name"])
                cluster.first_slice.setdefault(key, meta["name"])
                for endpoint in obj["endpoints"]:
                    address = endpoint["addresses"][0]
                    cluster.addresses.setdefault(key, []).append(address)
                    if "hostname" in endpoint:
                        cluster.hosts.setdefault(key, {})[endpoint["hostname"]] = address
    return cluster


def load(api: FakeApiServer, cluster: Cluster) -> None:
    api.load("namespaces", cluster.namespaces)
    api.load("services", cluster.services)
    api.load("endpointslices", cluster.slices)
    if cluster.pods:
        api.load("pods", cluster.pods)


def fqdn(namespace: str, service: str, host: str | None = None) -> str:
    return f"{host + '.' if host else ''}{service}.{namespace}.svc.{DOMAIN}."


# -- DNS ------------------------------------------------------------------------------------------


def a_records(reply: dns.message.Message) -> frozenset[str]:
    return frozenset(
        rdata.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rdata in rrset
    )


class Asker:
    """One reused UDP socket: a fresh socket per query would add its own set-up to every poll."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: Any = None

    async def __aenter__(self) -> Asker:
        backend = dns.asyncbackend.get_default_backend()
        self._sock = await backend.make_socket(socket.AF_INET, socket.SOCK_DGRAM)  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sock.close()

    async def udp(self, query: dns.message.Message, wait: float) -> dns.message.Message:
        # ignore_unexpected: a reply that arrives after its query timed out must not end the next one.
        return await dns.asyncquery.udp(
            query, HOST, port=self.port, timeout=wait, sock=self._sock, ignore_unexpected=True
        )


def make_query(name: str, rdtype: str = "A") -> dns.message.Message:
    # EDNS with room for 1232 bytes: a 20-address headless answer plus additions stays untruncated.
    return dns.message.make_query(name, rdtype, use_edns=0, payload=1232)


async def tcp_ask(port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.tcp(dns.message.make_query(name, rdtype), HOST, port=port, timeout=3)


# -- 1. initial sync ----------------------------------------------------------------------------------


@dataclass
class Timeline:
    """Seconds since the serve process was started."""

    first_request: float | None = None
    first_list: float | None = None
    all_watching: float | None = None  # every resource listed and watched, as the double saw it
    ready: float | None = None  # /readiness answered 200
    # CPU serve used up to ready: unlike the wall time, other load on the machine hardly moves it.
    cpu_seconds: float | None = None
    bench_cpu_seconds: float | None = None  # this process meanwhile: the double, the pollers


async def _mark(api: FakeApiServer, predicate: Callable[[], bool], start: float) -> float | None:
    try:
        await api.wait_for(predicate, within=SYNC_DEADLINE)
    except TimeoutError:
        return None
    return time.perf_counter() - start


async def start_and_sync(
    api: FakeApiServer, http: aiohttp.ClientSession, *options: str, pods: bool = False
) -> tuple[Running, Timeline]:
    timeline = Timeline()
    resources = ("services", "endpointslices", "namespaces", *(("pods",) if pods else ()))
    flags = (*options, *(("--pods", "verified") if pods else ()))

    def listed() -> bool:
        return any(api.list_requests(r) for r in resources)

    def watching() -> bool:
        return all(api.open_watches(r) for r in resources)

    start, own_cpu = time.perf_counter(), time.process_time()
    # wait_for re-checks after every request the double receives, so each mark is exact to the loop.
    marks = [
        asyncio.create_task(_mark(api, lambda: bool(api.requests), start)),
        asyncio.create_task(_mark(api, listed, start)),
        asyncio.create_task(_mark(api, watching, start)),
    ]
    served: Running | None = None
    try:
        # start_serve blocks until the startup log line; the double must keep serving meanwhile.
        served = await asyncio.to_thread(start_serve, "--kube-master-url", api.url, *flags, manifests=())
        url = f"http://{HOST}:{served.health_port}/readiness"
        while time.perf_counter() - start < SYNC_DEADLINE:
            if served.process.poll() is not None:
                raise BenchError(f"serve exited with status {served.process.returncode}")
            try:
                async with http.get(url) as reply:
                    if reply.status == 200:
                        timeline.ready = time.perf_counter() - start
                        timeline.cpu_seconds = cpu_seconds(served.process.pid)
                        break
            except aiohttp.ClientConnectionError:
                pass  # the process check above tells a dead server from a slow one
            # Each poll costs serve CPU, so poll slowly until its last watch opens, which follows the
            # last list's Synced at once; from then on, poll back to back.
            await asyncio.wait([marks[2]], timeout=0.02)
        else:
            raise BenchError(f"serve not ready after {SYNC_DEADLINE:.0f}s:\n{served.log_text()[-2000:]}")
        timeline.first_request, timeline.first_list, timeline.all_watching = await asyncio.gather(*marks)
        timeline.bench_cpu_seconds = time.process_time() - own_cpu
    except BaseException:
        for task in marks:
            task.cancel()
        if served is not None:
            await asyncio.to_thread(stop, served)
        raise
    return served, timeline


# -- 2. memory ----------------------------------------------------------------------------------------


# -- 3. change latency -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str
    write: Callable[[], object]
    qname: str
    expected: frozenset[str]  # the complete A answer that proves serve has the change


class Changes:
    """Prepares each change (its object and expected answer) before the clock starts."""

    def __init__(self, api: FakeApiServer, cluster: Cluster) -> None:
        self.api = api
        self.cluster = cluster
        self.namespaces = [obj["metadata"]["name"] for obj in cluster.namespaces]
        self.headless = list(cluster.addresses)  # each change takes the next, so answers stay small
        self.created = 0
        self.added = 0

    def create_service(self) -> Change:
        i = self.created
        self.created += 1
        namespace, name = self.namespaces[i % len(self.namespaces)], f"bench-new-{i}"
        ip = str(cluster_gen.SERVICE_CIDR[NEW_SERVICE_OFFSET + i])
        obj = cluster_gen.service(name, namespace, ip)
        return Change(
            "create-service", lambda: self.api.create("services", obj), fqdn(namespace, name), frozenset({ip})
        )

    def add_endpoint(self) -> Change:
        i = self.added
        self.added += 1
        key = self.headless[i % len(self.headless)]
        slice_name = self.cluster.first_slice[key]
        obj = self.api.get("endpointslices", slice_name, key[0])
        if obj is None:
            raise BenchError(f"endpointslice {key[0]}/{slice_name} is missing from the double")
        ip = str(cluster_gen.POD_CIDR[NEW_POD_OFFSET + i])
        endpoint: Obj = {"addresses": [ip], "conditions": {"ready": True}}
        if key in self.cluster.hosts:  # a StatefulSet-style slice names every endpoint
            endpoint["hostname"] = f"{key[1]}-extra-{i}"
            self.cluster.hosts[key][endpoint["hostname"]] = ip
        obj["endpoints"].append(endpoint)
        self.cluster.addresses[key].append(ip)
        expected = frozenset(self.cluster.addresses[key])
        return Change("add-endpoint", lambda: self.api.update("endpointslices", obj), fqdn(*key), expected)

    def plan(self, phase: str, count: int) -> list[Callable[[], Change]]:
        if phase == "create-service":
            return [self.create_service] * count
        if phase == "add-endpoint":
            return [self.add_endpoint] * count
        mixed = [self.create_service, self.add_endpoint] * (count // 2) + [self.create_service] * (count % 2)
        random.Random(SEED).shuffle(mixed)
        return mixed


@dataclass
class Sample:
    kind: str
    seconds: float | None  # None: no correct answer within CHANGE_DEADLINE
    polls: int


async def measure_change(asker: Asker, change: Change) -> Sample:
    query = make_query(change.qname)
    start = time.perf_counter()
    change.write()
    polls = 0
    while (left := start + CHANGE_DEADLINE - time.perf_counter()) > 0:
        try:
            reply = await asker.udp(query, wait=min(left, 1.0))
        except dns.exception.Timeout:
            continue
        polls += 1
        if reply.flags & dns.flags.TC:
            raise BenchError(f"{change.qname}: truncated over UDP; the check would never pass")
        if a_records(reply) == change.expected:
            return Sample(change.kind, time.perf_counter() - start, polls)
    return Sample(change.kind, None, polls)


def latency_summary(samples: Sequence[Sample]) -> dict[str, Any]:
    done = sorted(s.seconds * 1000 for s in samples if s.seconds is not None)
    summary: dict[str, Any] = {
        "changes": len(samples),
        "missed": sum(1 for s in samples if s.seconds is None),
        "mean_polls": sum(s.polls for s in samples) / max(1, len(samples)),
    }
    if done:
        summary |= {
            "p50_ms": percentile(done, 0.50),
            "p90_ms": percentile(done, 0.90),
            "p99_ms": percentile(done, 0.99),
            "max_ms": done[-1],
            "mean_ms": sum(done) / len(done),
        }
    return summary


async def run_phase(asker: Asker, changes: Changes, phase: str, count: int) -> list[Sample]:
    samples: list[Sample] = []
    budget_end = time.perf_counter() + PHASE_BUDGET
    for prepare in changes.plan(phase, count):
        if time.perf_counter() > budget_end:
            break  # reported as fewer changes than asked for
        samples.append(await measure_change(asker, prepare()))
    return samples


# -- 4. sanity -------------------------------------------------------------------------------------


_STORE_OBJECTS = re.compile(r'^kubedns_store_objects\{kind="(\w+)"\} ([\d.e+]+)$', re.M)


async def store_counts(http: aiohttp.ClientSession, served: Running) -> dict[str, int]:
    async with http.get(f"http://{HOST}:{served.metrics_port}/metrics") as reply:
        text = await reply.text()
    return {kind: int(float(value)) for kind, value in _STORE_OBJECTS.findall(text)}


async def sanity(served: Running, cluster: Cluster, counts: dict[str, int]) -> tuple[int, list[str]]:
    """How many names were checked right after the sync, and what was wrong (empty when nothing)."""
    port = served.dns_port
    wrong: list[str] = []
    headless = list(cluster.addresses)
    # The first, a middle and the last headless service, whole answer over TCP (no truncation).
    sample = [headless[0], headless[len(headless) // 2], headless[-1]]
    for key in sample:
        got = a_records(await tcp_ask(port, fqdn(*key)))
        if got != set(cluster.addresses[key]):
            wrong.append(f"{fqdn(*key)} over TCP: {len(got)} addresses, want {len(cluster.addresses[key])}")
    checks: list[tuple[str, frozenset[str]]] = []
    if cluster.hosts:
        key, hosts = next(iter(cluster.hosts.items()))
        host, ip = next(iter(hosts.items()))
        checks.append((fqdn(*key, host), frozenset({ip})))  # a named (StatefulSet-style) endpoint
    unnamed = next((k for k in headless if k not in cluster.hosts), None)
    if unnamed is not None:
        ip = cluster.addresses[unnamed][0]
        checks.append((fqdn(*unnamed, ip.replace(".", "-")), frozenset({ip})))  # a dashed-IP label
    for key, ip in list(cluster.cluster_ips.items())[:: max(1, len(cluster.cluster_ips) // 3)]:
        checks.append((fqdn(*key), frozenset({ip})))
    checks.append((fqdn(cluster.namespaces[0]["metadata"]["name"], "no-such-service"), frozenset()))
    for name, expected in checks:
        reply = await tcp_ask(port, name)
        want_rcode = dns.rcode.NOERROR if expected else dns.rcode.NXDOMAIN
        if reply.rcode() != want_rcode or a_records(reply) != expected:
            seen = f"{dns.rcode.to_text(reply.rcode())} {sorted(a_records(reply))}"
            wrong.append(f"{name}: {seen}, want {dns.rcode.to_text(want_rcode)} {sorted(expected)}")
    # Every endpoint address and cluster IP is owned by a record: the store's reverse index holds them.
    want = {
        "Service": len(cluster.services),
        "EndpointSlice": len(cluster.slices),
        "ServiceRecords": len(cluster.services),
        "ReverseAddresses": cluster.endpoints + len(cluster.cluster_ips),
    }
    wrong += [f"store holds {counts.get(k)} {k}, want {n}" for k, n in want.items() if counts.get(k) != n]
    return len(sample) + len(checks), wrong


# -- the run -------------------------------------------------------------------------------------------


def add_shape_args(parser: argparse.ArgumentParser) -> None:
    for name in SHAPE_FIELDS:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(
            flag, type=int, default=getattr(SHAPE, name), help=f"default {getattr(SHAPE, name)}"
        )


def shape_from_args(args: argparse.Namespace) -> cluster_gen.ClusterShape:
    shape = replace(SHAPE, **{name: getattr(args, name) for name in SHAPE_FIELDS})
    # Every headless service needs a ready endpoint: without one it has no DNS name to check or change.
    if min(getattr(shape, name) for name in SHAPE_FIELDS) < 1:
        raise ValueError(f"{', '.join(SHAPE_FIELDS)} must all be positive")
    return shape


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench api", description=__doc__.split("\n")[0])
    add_shape_args(parser)
    parser.add_argument("--changes", type=int, default=300, help="changes per phase (three phases)")
    parser.add_argument(
        "--pods", type=int, default=0, help="running Pods, followed with --pods verified (default 0: not)"
    )
    args = parser.parse_args(argv)
    try:
        args.shape = shape_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    if args.changes < 1 or not 0 <= args.pods < POD_ADDRESSES.num_addresses - 2:
        parser.error("--changes must be positive, --pods within 10.64.0.0/10")
    return args


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    shape: cluster_gen.ClusterShape = args.shape
    cluster = generate(shape, args.pods)
    print(
        f"bench {NAME}: {len(cluster.services):,} services ({len(cluster.addresses):,} headless), "
        f"{len(cluster.slices):,} endpoint slices, {cluster.endpoints:,} endpoints, "
        f"{len(cluster.namespaces)} namespaces, {len(cluster.pods):,} Pods"
    )
    async with FakeApiServer() as api, aiohttp.ClientSession() as http:
        load(api, cluster)
        # The double and the generated objects are ~1M long-lived objects here: frozen, this process's
        # collector skips them, so its own full collections cannot land inside a measured change.
        gc.collect()
        gc.freeze()
        load_average = os.getloadavg()
        served, timeline = await start_and_sync(api, http, pods=bool(cluster.pods))
        try:
            memory = {"after_sync": memory_mib(served.process.pid)}
            counts = await store_counts(http, served)
            checked, wrong = await sanity(served, cluster, counts)
            if wrong:
                raise BenchError("wrong answers after the sync:\n  " + "\n  ".join(wrong))
            changes = Changes(api, cluster)
            latency: dict[str, list[Sample]] = {}
            async with Asker(served.dns_port) as asker:
                for phase in PHASES:
                    latency[phase] = await run_phase(asker, changes, phase, args.changes)
            memory["after_changes"] = memory_mib(served.process.pid)
            pauses = await asyncio.to_thread(gc_pauses, served.metrics_port)
            if served.process.poll() is not None:
                raise BenchError(f"serve exited during the run with status {served.process.returncode}")
            problems = log_problems(served.log_text())
        finally:
            await asyncio.to_thread(stop, served)
    summaries = {phase: latency_summary(samples) for phase, samples in latency.items()}
    summaries["all"] = latency_summary([s for samples in latency.values() for s in samples])
    results: dict[str, Any] = {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_average_before": load_average,
        "cluster": asdict(shape)
        | {"endpoints": cluster.endpoints, "endpoint_slices": len(cluster.slices), "store_counts": counts}
        | {"pods": len(cluster.pods)},
        "sync_seconds": asdict(timeline),
        "memory_mib": memory,
        "latency": summaries,
        "gc_pauses": asdict(pauses),
        "sanity": {"names_checked": checked, "store_counts_checked": True},
        "serve_log_problems": problems[:20],
    }
    results["targets"] = verdicts(results)
    return results


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ready = results["sync_seconds"]["ready"]
    rss = results["memory_mib"]["after_sync"]["VmRSS"]
    latency = results["latency"]["all"]
    p99_ok = latency["missed"] == 0 and latency.get("p99_ms", math.inf) <= TARGET_P99_MS
    return {
        "sync_seconds": {"value": ready, "target": TARGET_SYNC_SECONDS, "pass": ready <= TARGET_SYNC_SECONDS},
        "rss_mib": {"value": rss, "target": TARGET_RSS_MIB, "pass": rss <= TARGET_RSS_MIB},
        "change_p99_ms": {"value": latency.get("p99_ms"), "target": TARGET_P99_MS, "pass": p99_ok},
    }


def print_report(results: dict[str, Any]) -> None:
    sync, memory, targets = results["sync_seconds"], results["memory_mib"], results["targets"]

    def verdict(name: str) -> str:
        return "PASS" if targets[name]["pass"] else "MISS"

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    def mib(value: float) -> str:
        return f"{value:.1f} MiB"

    rows = [  # label, measured, target, verdict
        ("initial sync: start -> /readiness 200", secs(sync["ready"]), f"<= {TARGET_SYNC_SECONDS:g} s"),
        ("  start -> first API request", secs(sync["first_request"])),
        ("  start -> first LIST", secs(sync["first_list"])),
        ("  start -> all listed and watching", secs(sync["all_watching"])),
        ("  serve CPU time until ready", secs(sync["cpu_seconds"])),
        ("  this process's CPU meanwhile (double, pollers)", secs(sync["bench_cpu_seconds"])),
        ("RSS after sync (VmRSS)", mib(memory["after_sync"]["VmRSS"]), f"<= {TARGET_RSS_MIB:g} MiB"),
        ("  peak RSS until then (VmHWM)", mib(memory["after_sync"]["VmHWM"])),
        ("  RSS after the changes", mib(memory["after_changes"]["VmRSS"])),
    ]
    rows[0] += (verdict("sync_seconds"),)
    rows[6] += (verdict("rss_mib"),)
    for phase, s in results["latency"].items():
        figures = (
            "-" if "p99_ms" not in s else f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f} ms"
        )
        label = f"change -> answer p50/p99/max: {phase} (n={s['changes']}, missed {s['missed']})"
        if phase == "all":
            rows.append((label, figures, f"p99 <= {TARGET_P99_MS:g} ms", verdict("change_p99_ms")))
        else:
            rows.append((label, figures))
    width = max(len(row[0]) for row in rows)
    print(f"{'figure':<{width}}  {'measured':>22}  {'target':<15} result")
    for label, value, *verdict_columns in rows:
        target, result = (*verdict_columns, "", "")[:2]
        print(f"{label:<{width}}  {value:>22}  {target:<15} {result}".rstrip())
    print(
        f"sanity: {results['sanity']['names_checked']} names answered as generated; store counts as expected"
    )
    print(GcPauses(**results["gc_pauses"]).line())
    share = (sync["cpu_seconds"] or 0) / sync["ready"]
    if share < BUSY_CPU_SHARE:
        print(
            f"WARNING: serve had {100 * share:.0f}% of a CPU while syncing (load average before the run "
            f"{results['load_average_before'][0]:.1f} on {results['cpus']} CPUs): other work on the machine "
            "slowed it; its CPU time is the steadier figure"
        )
    for problem in results["serve_log_problems"]:
        print(f"WARNING: serve logged: {problem}")


def main(argv: Sequence[str] = ()) -> int:
    args = parse_args(argv)
    try:
        results = asyncio.run(measure(args))
    except (BenchError, AssertionError) as err:  # AssertionError: serve failed to start (processes.py)
        print(f"bench {NAME}: FAILED: {err}")
        return 1
    print_report(results)
    print(f"results written to {write_results('api_scale', results)}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
