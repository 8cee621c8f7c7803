"""A ConfigMap with 201 stub domains leaves every route enough of ``--dns-forward-max``: the stub
domains naming the same servers share one part of the budget, so they cannot reserve it all away
from cluster.local (before, each route kept one slot and about 90% of cluster names got SERVFAIL).

About 300 questions a second (ten outstanding against upstreams taking 30 ms), half for cluster names
and half spread over the stub domains, are every one answered from their upstreams.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.support.flood import flood
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, run_in_thread, slow
from tests.support.processes import Running, cache

STUB_DOMAINS = 201
UPSTREAM_DELAY = 0.03
WINDOW = 10  # outstanding at once: about 10 / 30 ms ≈ 300 a second
QUESTIONS = 900
REPLY_TIMEOUT = 5.0  # above the cache's 2 s upstream timeout


def slow_nameserver(address: str) -> TestNameserver:
    return TestNameserver(default=slow(UPSTREAM_DELAY, answer("{qname} 30 IN A " + address)))


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[TestNameserver, list[TestNameserver]]]:
    cluster_ns = slow_nameserver("10.96.0.10")
    stub_ns = [slow_nameserver(f"192.0.2.{i}") for i in range(1, 4)]
    with contextlib.ExitStack() as stack:
        for ns in (cluster_ns, *stub_ns):
            stack.enter_context(run_in_thread(ns))
        yield cluster_ns, stub_ns


def stub_domain(i: int) -> str:
    return f"stub{i}.example"


@pytest.fixture(scope="module")
def crowded(
    tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[TestNameserver, list[TestNameserver]]
) -> Iterator[Running]:
    cluster_ns, stub_ns = upstreams
    directory: Path = tmp_path_factory.mktemp("kube-dns-config")
    stubs = {stub_domain(i): [stub_ns[i % len(stub_ns)].hostport] for i in range(STUB_DOMAINS)}
    (directory / "stubDomains").write_text(json.dumps(stubs))
    with cache(
        "--no-resolv",
        f"--server=/cluster.local/{cluster_ns.address}",
        f"--server=/in-addr.arpa/{cluster_ns.address}",
        f"--server=/ip6.arpa/{cluster_ns.address}",
        f"--config-dir={directory}",
    ) as running:
        running.wait_for_log(rf"config-dir \S+: loaded: {STUB_DOMAINS} stub domains")
        yield running


async def test_cluster_and_stub_names_are_answered_beside_201_stub_domains(
    crowded: Running, upstreams: tuple[TestNameserver, list[TestNameserver]]
) -> None:
    names = [
        f"svc{i}.team.svc.cluster.local." if i % 2 else f"q{i}.{stub_domain(i % STUB_DOMAINS)}."
        for i in range(QUESTIONS)
    ]
    rcodes = await flood(crowded.dns_port, names, WINDOW, REPLY_TIMEOUT)

    servfail = rcodes.count(dns.rcode.SERVFAIL)
    assert servfail == 0, f"{servfail} of {QUESTIONS} questions got SERVFAIL"
    assert rcodes.count(dns.rcode.NOERROR) >= 0.99 * QUESTIONS
    cluster_ns, _ = upstreams
    assert len(cluster_ns.queries_for(None)) >= 0.99 * QUESTIONS / 2  # each one a miss, asked upstream
    assert scrape(crowded.metrics_port).get("kubedns_forward_inflight") == 0
