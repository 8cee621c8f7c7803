"""Who may ask: ``--allow-from`` on serve and the cache, ``--local-service`` on the cache. Clients are
told apart by source address on loopback (127.0.0.1 and 127.0.0.2 are both this host's)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, run_in_thread
from tests.support.ports import HOST
from tests.support.processes import Running, cache, serve

ALLOWED, STRANGER = "127.0.0.2", "127.0.0.1"
CLUSTER_NAME = "kubernetes.default.svc.cluster.local."


def ask_from(source: str, port: int, name: str, tcp: bool = False, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, HOST, port=port, timeout=3, source=source)
    return dns.query.udp(query, HOST, port=port, timeout=3, source=source)


@pytest.fixture(scope="module")
def upstream() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer("@ 300 IN A 192.0.2.7"))) as ns:
        yield ns


@pytest.fixture(scope="module")
def guarded_cache(upstream: TestNameserver) -> Iterator[Running]:
    with cache("--no-resolv", f"--server={upstream.address}", f"--allow-from={ALLOWED}/32") as running:
        yield running


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cache_refuses_strangers_without_forwarding(
    guarded_cache: Running, upstream: TestNameserver, tcp: bool
) -> None:
    name = f"stranger-{'tcp' if tcp else 'udp'}.acl.test."
    before = scrape(guarded_cache.metrics_port).get("kubedns_dns_refused_clients_total", server="cache")
    reply = ask_from(STRANGER, guarded_cache.dns_port, name, tcp)
    assert reply.rcode() == dns.rcode.REFUSED
    assert reply.question[0].name.to_text() == name and not reply.answer
    assert upstream.queries_for(name) == []
    after = scrape(guarded_cache.metrics_port).get("kubedns_dns_refused_clients_total", server="cache")
    assert after == before + 1

    allowed = ask_from(ALLOWED, guarded_cache.dns_port, name, tcp)
    assert allowed.rcode() == dns.rcode.NOERROR and allowed.answer
    assert len(upstream.queries_for(name)) == 1


def test_cache_refuses_strangers_cached_answers_too(guarded_cache: Running) -> None:
    name = "cached.acl.test."
    assert ask_from(ALLOWED, guarded_cache.dns_port, name).answer  # now cached
    for _ in range(3):  # the verdict, once remembered, still refuses
        assert ask_from(STRANGER, guarded_cache.dns_port, name).rcode() == dns.rcode.REFUSED
    assert ask_from(ALLOWED, guarded_cache.dns_port, name).answer


def test_cache_local_service_answers_this_host(upstream: TestNameserver) -> None:
    with cache("--no-resolv", f"--server={upstream.address}", "--local-service") as running:
        for source in (STRANGER, ALLOWED):  # 127.0.0.0/8 is loopback's subnet
            assert ask_from(source, running.dns_port, "local.acl.test.").answer
        running.wait_for_log(r"answering clients in .*127\.0\.0\.0/8")


def test_cache_without_an_acl_answers_anyone_and_counts_no_refusals(upstream: TestNameserver) -> None:
    with cache("--no-resolv", f"--server={upstream.address}") as running:
        assert ask_from(STRANGER, running.dns_port, "anyone.acl.test.").answer
        samples = scrape(running.metrics_port)
        assert samples.value("kubedns_dns_refused_clients_total", server="cache") == 0  # present, and 0


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_serve_refuses_strangers(tcp: bool) -> None:
    with serve(f"--allow-from={ALLOWED}/32,10.0.0.0/8") as running:
        refused = ask_from(STRANGER, running.dns_port, CLUSTER_NAME, tcp)
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        allowed = ask_from(ALLOWED, running.dns_port, CLUSTER_NAME, tcp)
        assert allowed.rcode() == dns.rcode.NOERROR and allowed.answer
        samples = scrape(running.metrics_port)
        assert samples.get("kubedns_dns_refused_clients_total", server="serve") == 1
        assert samples.get("kubedns_dns_responses_total", rcode="REFUSED") == 1


def test_bad_allow_from_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kubedns_py", "cache", "--allow-from=10.0.0.0/33", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "--allow-from" in done.stderr
