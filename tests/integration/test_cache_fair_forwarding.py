"""``--dns-forward-max`` shared fairly among routes: a flood of outside names towards upstreams that
never answer takes its routes' shares only, and cluster names not in the cache still get answers from
their own upstream meanwhile. Rejections are counted per route.

The flood comes from one UDP socket with a bounded window of questions outstanding, more than the whole
budget, so without fair shares the dead routes would hold every slot.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.support.flood import flood
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, dead, run_in_thread
from tests.support.ports import HOST
from tests.support.processes import Running, cache
from tests.support.waiting import wait_until

FLOOD_NAMES = 5000
FLOOD_WINDOW = 300  # questions outstanding at once: twice the default --dns-forward-max
FLOOD_REPLY_TIMEOUT = 5.0  # above the cache's 2 s upstream timeout: every question gets a reply
CLUSTER_NAMES = 100
CLUSTER_CONCURRENCY = 10
REJECTED = "kubedns_cache_forward_rejected_total"


@pytest.fixture(scope="module")
def cluster_ns() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer("{qname} 30 IN A 10.96.0.10"))) as ns:
        yield ns


@pytest.fixture(scope="module")
def black_holes() -> Iterator[tuple[TestNameserver, TestNameserver]]:
    with (
        run_in_thread(TestNameserver(default=dead())) as default_ns,
        run_in_thread(TestNameserver(default=dead())) as stub_ns,
    ):
        yield default_ns, stub_ns


@pytest.fixture(scope="module")
def fair(cluster_ns: TestNameserver, black_holes: tuple[TestNameserver, TestNameserver]) -> Iterator[Running]:
    default_ns, stub_ns = black_holes
    with cache(
        "--no-resolv",
        f"--server=/cluster.local/{cluster_ns.address}",
        f"--server=/stub.example/{stub_ns.address}",
        f"--server={default_ns.address}",
    ) as running:
        yield running


async def ask_cluster(port: int, names: list[str]) -> list[int]:
    limit = asyncio.Semaphore(CLUSTER_CONCURRENCY)

    async def one(name: str) -> int:
        async with limit:
            reply = await dns.asyncquery.udp(dns.message.make_query(name, "A"), HOST, port=port, timeout=3)
            return reply.rcode()

    return await asyncio.gather(*(one(name) for name in names))


def both_dead_routes_rejecting(running: Running) -> bool:
    samples = scrape(running.metrics_port)
    return all(samples.get(REJECTED, route=route) > 0 for route in (".", "stub.example"))


async def test_a_flood_towards_dead_upstreams_leaves_cluster_names_their_share(
    fair: Running, cluster_ns: TestNameserver
) -> None:
    # Outside names, alternately for the dead default upstream and the dead stub domain.
    suffixes = itertools.cycle(["outside.test", "stub.example"])
    names = [f"n{i}.{suffix}." for i, suffix in zip(range(FLOOD_NAMES), suffixes, strict=False)]
    flooding = asyncio.create_task(flood(fair.dns_port, names, FLOOD_WINDOW, FLOOD_REPLY_TIMEOUT))
    try:
        await asyncio.to_thread(wait_until, lambda: both_dead_routes_rejecting(fair), 10)
        cluster_names = [f"svc{i}.team.svc.cluster.local." for i in range(CLUSTER_NAMES)]
        rcodes = await ask_cluster(fair.dns_port, cluster_names)
        assert not flooding.done(), "the flood ended before the cluster names were asked"
        assert rcodes == [dns.rcode.NOERROR] * CLUSTER_NAMES
        assert len(cluster_ns.queries) >= CLUSTER_NAMES  # each one a miss, asked upstream
    finally:
        flooded = await flooding  # bounded: every question gets a reply or gives up within 5 s

    # Every reply to an outside name is SERVFAIL; on a busy machine a few replies may come after the
    # flood's own patience ran out, and those are not what this test is about.
    answered = [rcode for rcode in flooded if rcode is not None]
    assert set(answered) == {dns.rcode.SERVFAIL}, "outside names get SERVFAIL and nothing else"
    assert len(answered) >= 0.99 * FLOOD_NAMES
    after = await asyncio.to_thread(scrape, fair.metrics_port)
    assert after.get(REJECTED, route="cluster.local") == 0
    assert after.get(REJECTED, route=".") > 0 and after.get(REJECTED, route="stub.example") > 0
    assert after.get("kubedns_forward_inflight") == 0
    assert fair.process.poll() is None and "Traceback" not in fair.log_text()
