"""serve answering the serve-10k question mix while endpoints churn, against the same serve calm.

serve follows the cluster of ``serve-10k`` through the Kubernetes API double, as in ``api``. Runs take
turns between three conditions: calm, then endpoint slices changing 50 and 200 times a second (each
change gives one endpoint of a headless service a new address, as a rolling restart does; spread over
every headless service, so the rebuilt answers are ones the mix asks for). The double and the change
driver run in this process, pinned with dnsperf to the CPU serve does not have. serve's count of
watch events afterwards proves that it took every change in, and a changed service's answer that it
applied them.

A changed endpoint without a hostname is named by its address, so questions for its old name turn
NXDOMAIN as the run goes on: a few thousand of ~116k, in every condition alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench import api_scale, cluster_gen, cluster_mix
from tests.bench.tools import (
    BenchError,
    DnsperfOptions,
    Measured,
    cpu_seconds,
    cpu_split,
    gc_pauses,
    load_parser,
    log_problems,
    lookup,
    parse_load_args,
    pin,
    print_qps_table,
    qps_problems,
    qps_verdict,
    require,
    run_bench,
    run_dnsperf,
    shared_tempdir,
    warm_up,
    write_query_file,
)
from tests.support.apiserver import FakeApiServer
from tests.support.metrics import scrape
from tests.support.processes import Running, stop

NAME = "serve-churn"
TARGET_RATIO = 0.9  # of the calm QPS
RATES = (50, 200)  # endpoint slice changes per second
CALM = "calm"
CATCH_UP_SECONDS = 10.0  # for serve to have every change in after the last run
WATCH_EVENTS = "kubedns_kubernetes_watch_events_total"


def main(argv: Sequence[str] = ()) -> int:
    parser = load_parser(NAME, __doc__)
    parser.add_argument("--services", type=int, default=cluster_mix.SHAPE_10K.services)
    parser.add_argument("--namespaces", type=int, default=cluster_mix.SHAPE_10K.namespaces)
    rates = ",".join(map(str, RATES))
    parser.add_argument("--rates", default=rates, help=f"changes per second, comma-separated ({rates})")
    args = parse_load_args(parser, argv)
    try:
        args.rates = tuple(int(rate) for rate in args.rates.split(","))
    except ValueError:
        parser.error("--rates must be integers")
    if not all(0 < rate <= 1_000 for rate in args.rates):
        parser.error("--rates must be in (0, 1000]")
    return run_bench(NAME, lambda: asyncio.run(measure(args)))


def condition(rate: int) -> str:
    return f"{rate} changes/s" if rate else CALM


class Churn:
    """Rolling restarts, one endpoint at a time, over every endpoint slice in a fixed shuffled order."""

    def __init__(self, api: FakeApiServer, cluster: api_scale.Cluster) -> None:
        self.api = api
        self.slices = [(obj["metadata"]["namespace"], obj["metadata"]["name"]) for obj in cluster.slices]
        random.Random(cluster_mix.SEED).shuffle(self.slices)
        self.changes = 0
        self.last: tuple[str, str] | None = None  # (namespace, service) of the latest change

    def change(self) -> None:
        namespace, name = self.slices[self.changes % len(self.slices)]
        obj = self.api.get("endpointslices", name, namespace)
        if obj is None:
            raise BenchError(f"endpointslice {namespace}/{name} is missing from the double")
        endpoints = obj["endpoints"]
        endpoints[self.changes // len(self.slices) % len(endpoints)]["addresses"] = [
            str(cluster_gen.POD_CIDR[api_scale.NEW_POD_OFFSET + self.changes])
        ]
        self.api.update("endpointslices", obj)
        self.changes += 1
        self.last = (namespace, obj["metadata"]["labels"]["kubernetes.io/service-name"])

    async def run(self, rate: int) -> None:
        """Changes on a fixed schedule until cancelled; late ones are made at once, never skipped."""
        loop = asyncio.get_running_loop()
        start, made = loop.time(), 0
        while True:
            self.change()
            made += 1
            await asyncio.sleep(max(0.0, start + made / rate - loop.time()))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    require("dnsperf", "dig", "taskset")
    server_cpus, load_cpus = cpu_split(not args.no_pin)
    shape = replace(cluster_mix.SHAPE_10K, services=args.services, namespaces=args.namespaces)
    load = DnsperfOptions(seconds=args.seconds, outstanding=args.outstanding, cpus=load_cpus)
    cluster = api_scale.generate(shape)
    with shared_tempdir("kubedns-bench-churn-") as tmp:
        objects = [*cluster.namespaces, *cluster.services, *cluster.slices]
        mix = cluster_mix.build_mix(cluster_gen.write_manifest(tmp / "cluster.json", objects))
        queries = write_query_file(tmp / "queries.txt", [(q.name, q.qtype) for q in mix.questions])
        async with FakeApiServer() as api, aiohttp.ClientSession() as http:
            api_scale.load(api, cluster)
            gc.collect()
            gc.freeze()  # the double's objects: no full collection of them in the middle of a run
            served, timeline = await api_scale.start_and_sync(api, http)
            try:
                if server_cpus:
                    pin(served.process.pid, server_cpus)
                    pin(os.getpid(), load_cpus)  # the double and the churn, away from serve
                checked = await asyncio.to_thread(cluster_mix.spot_check, mix, {"serve": served.dns_port})
                print(
                    f"bench {NAME}: {shape.services:,} services ({len(cluster.slices):,} endpoint slices, "
                    f"{cluster.endpoints:,} endpoints) through the API double, synced in "
                    f"{timeline.ready:.1f} s; {len(mix.questions):,} distinct questions as in serve-10k, "
                    f"{checked} spot-checked"
                )
                churn = Churn(api, cluster)
                measured, made = await run_conditions(served, churn, queries, load, args)
                received = await caught_up(served.metrics_port, churn.changes)
                pauses = await asyncio.to_thread(gc_pauses, served.metrics_port)
                wrong = await check_last_change(api, churn, served.dns_port)
                if served.process.poll() is not None:
                    raise BenchError(f"serve exited during the run with status {served.process.returncode}")
                serve_log = log_problems(served.log_text())
            finally:
                await asyncio.to_thread(stop, served)
    summaries = {label: m.summary() for label, m in measured.items()}
    for label, summary in summaries.items():
        summary["changes_per_second"] = made[label] / sum(r.runtime for r in measured[label].runs)
    verdicts = [
        qps_verdict(f"{condition(rate)} / calm", summaries, condition(rate), CALM, TARGET_RATIO)
        for rate in args.rates
    ]
    problems = [f"serve logged: {line}" for line in serve_log[:10]] + qps_problems(summaries)
    if received < churn.changes:
        problems.append(f"serve received {received:,} endpoint slice changes of {churn.changes:,} made")
    problems += wrong
    print_qps_table(summaries)
    print(
        "changes made per second while measured: "
        + ", ".join(f"{label} {s['changes_per_second']:.1f}" for label, s in summaries.items())
        + f"; serve received {received:,} of {churn.changes:,}"
    )
    for verdict in verdicts:
        print(verdict.line())
    print(pauses.line())
    for problem in problems:
        print(f"WARNING: {problem}")
    return {
        "benchmark": NAME,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cluster": asdict(shape) | {"questions": len(mix.questions), "endpoints": cluster.endpoints},
        "sync_seconds": asdict(timeline),
        "dnsperf": asdict(load) | {"rounds": args.rounds, "warmup_seconds": args.warmup},
        "conditions": summaries,
        "changes": churn.changes,
        "changes_received": received,
        "ratios": [v.as_dict() for v in verdicts],
        "gc_pauses": asdict(pauses),
        "problems": problems,
    }


async def run_conditions(
    served: Running, churn: Churn, queries: Path, load: DnsperfOptions, args: argparse.Namespace
) -> tuple[dict[str, Measured], dict[str, int]]:
    """dnsperf runs taking turns between calm and each rate of change; also the changes made in each."""
    port, pid = served.dns_port, served.process.pid
    rates = (0, *args.rates)
    print(
        f"dnsperf -c {load.clients} -q {load.outstanding}; {args.rounds} x {args.seconds:g} s per condition "
        f"({', '.join(map(condition, rates))}) after a {args.warmup:g} s warm-up"
    )
    await asyncio.to_thread(warm_up, {"serve": port}, queries, load, args.warmup)
    measured = {condition(rate): Measured() for rate in rates}
    made = dict.fromkeys(measured, 0)
    for _ in range(args.rounds):
        for rate in rates:
            before, changes = cpu_seconds(pid), churn.changes
            driver = asyncio.create_task(churn.run(rate)) if rate else None
            try:
                # In a thread: the double must go on serving serve's watches meanwhile.
                result = await asyncio.to_thread(run_dnsperf, port, queries, load)
            finally:
                if driver is not None:
                    driver.cancel()
                    await asyncio.gather(driver, return_exceptions=True)
            measured[condition(rate)].add(result, cpu_seconds(pid) - before)
            made[condition(rate)] += churn.changes - changes
    return measured, made


async def caught_up(metrics_port: int, changes: int) -> int:
    """Endpoint slice changes serve has received, once that is all of them or CATCH_UP_SECONDS passed."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        samples = await asyncio.to_thread(scrape, metrics_port)
        events = samples.get(WATCH_EVENTS, resource="endpointslices", type="MODIFIED")
        received = int(events)
        if received >= changes or time.monotonic() > deadline:
            return received
        await asyncio.sleep(0.1)


async def check_last_change(api: FakeApiServer, churn: Churn, port: int) -> list[str]:
    """The service changed last answers with the addresses its slices now hold."""
    if churn.last is None:
        return []
    namespace, service = churn.last
    slices = (api.get("endpointslices", name, ns) for ns, name in churn.slices if ns == namespace)
    expected = {
        address
        for obj in slices
        if obj is not None and obj["metadata"]["labels"]["kubernetes.io/service-name"] == service
        for endpoint in obj["endpoints"]
        for address in endpoint["addresses"]
    }
    name = api_scale.fqdn(namespace, service)
    got = await asyncio.to_thread(lookup, port, name)
    if got.addresses == expected:
        return []
    return [f"{name} answered {sorted(got.addresses)} after the changes, want {sorted(expected)}"]
