"""``kubedns-py cache --autopath`` in front of a real ``serve --pods verified``: a Pod's first search-path
question answered with what its search finds, for clients told apart by their 127.x source address;
everyone else gets the plain answer; serve's records are the caches' alone; the metrics count it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.support.dnsclient import answers, ask
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, nxdomain, run_in_thread
from tests.support.ports import HOST
from tests.support.processes import Running, cache, serve
from tests.support.searchpath import HOST_DOMAIN, ZONE, namespace, pod, service, write_cluster

SHOP_POD = "127.0.0.1"  # ClusterFirst in shop: the standard search list
CUSTOM_POD = "127.0.0.2"  # a dnsConfig with searches of its own
STRANGER = "127.0.0.3"  # no Pod has this address


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    objects = [
        namespace("shop"),
        namespace("bar"),
        service("web", "shop", "10.96.0.20"),
        service("foo", "bar", "10.96.0.30"),
        pod("shop-pod", "shop", SHOP_POD),
        pod("custom", "shop", CUSTOM_POD, dnsConfig={"searches": ["corp.example"]}),
    ]
    manifest = write_cluster(tmp_path_factory.mktemp("cluster") / "cluster.json", objects)
    with serve("--pods", "verified", manifests=[manifest]) as running:
        yield running


@pytest.fixture(scope="module")
def internet() -> Iterator[TestNameserver]:
    ns = TestNameserver(default=nxdomain())
    ns.script("api.example.com", "A", answer("api.example.com 300 IN A 192.0.2.10"))
    ns.script("metrics.example.com", "A", answer("metrics.example.com 300 IN A 192.0.2.11"))
    ns.script(f"intranet.{HOST_DOMAIN}", "A", answer(f"intranet.{HOST_DOMAIN} 300 IN A 192.0.2.20"))
    with run_in_thread(ns) as running:
        yield running


def start(served: Running, internet: TestNameserver, tmp: Path, *flags: str) -> Iterator[Running]:
    resolv = tmp / "resolv.conf"
    resolv.write_text(f"search {HOST_DOMAIN}\n")
    with cache(
        f"--server=/{ZONE}/{HOST}#{served.dns_port}",
        f"--server={internet.address}",
        "--no-resolv",
        f"--resolv-file={resolv}",
        *flags,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def autopath(
    served: Running, internet: TestNameserver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    yield from start(served, internet, tmp_path_factory.mktemp("on"), "--autopath", "--coredns-metrics")


def lookup(running: Running, name: str, source: str = SHOP_POD, tcp: bool = False) -> dns.message.Message:
    return ask(name, "A", running.dns_port, tcp=tcp, source=source)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("x", "target", "address"),
    [
        ("api.example.com", "api.example.com", "192.0.2.10"),
        ("foo.bar", f"foo.bar.svc.{ZONE}", "10.96.0.30"),
        ("intranet", f"intranet.{HOST_DOMAIN}", "192.0.2.20"),
    ],
)
def test_a_pods_first_question_is_answered_with_what_its_search_finds(
    autopath: Running, x: str, target: str, address: str, tcp: bool
) -> None:
    asked = f"{x}.shop.svc.{ZONE}"
    reply = lookup(autopath, asked, tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    assert answers(reply) == {f"{asked}. CNAME {target}.", f"{target}. A {address}"}


def test_a_short_service_name_is_its_plain_answer(autopath: Running) -> None:
    reply = lookup(autopath, f"web.shop.svc.{ZONE}")
    assert answers(reply) == {f"web.shop.svc.{ZONE}. A 10.96.0.20"}


@pytest.mark.parametrize("source", [CUSTOM_POD, STRANGER])
def test_anyone_but_a_pod_with_the_standard_search_gets_the_plain_answer(
    autopath: Running, source: str
) -> None:
    for _ in range(2):  # the second time from the cache: still plain
        reply = lookup(autopath, f"api.example.com.shop.svc.{ZONE}", source)
        assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer


def test_another_namespace_and_a_missing_name_get_the_plain_nxdomain(autopath: Running) -> None:
    for name in (f"api.example.com.bar.svc.{ZONE}", f"nothing.shop.svc.{ZONE}"):
        assert lookup(autopath, name).rcode() == dns.rcode.NXDOMAIN


def test_a_repeated_question_is_answered_alike(autopath: Running) -> None:
    asked = f"intranet.shop.svc.{ZONE}"
    first = lookup(autopath, asked)
    for _ in range(3):  # within the second: from autopath's memo, made of answers the cache holds
        assert answers(lookup(autopath, asked)) == answers(first)


def test_a_cached_nxdomain_never_answers_a_pods_first_question(autopath: Running) -> None:
    asked = f"api.example.com.shop.svc.{ZONE}"
    assert lookup(autopath, asked, STRANGER).rcode() == dns.rcode.NXDOMAIN  # now cached
    for _ in range(3):
        assert answers(lookup(autopath, asked)) == {
            f"{asked}. CNAME api.example.com.",
            "api.example.com. A 192.0.2.10",
        }


def test_serves_records_are_refused_to_clients_and_given_to_the_cache(
    autopath: Running, served: Running
) -> None:
    record = f"_autopath-127-0-0-1.{ZONE}"
    assert ask(record, "TXT", autopath.dns_port).rcode() == dns.rcode.REFUSED
    direct = ask(record, "TXT", served.dns_port)  # from 127.0.0.1: serve's loopback default
    assert answers(direct) == {f'{record}. TXT "search=cluster" "namespace=shop" "ndots=5"'}
    assert ask(record, "TXT", served.dns_port, source="127.0.0.9").rcode() == dns.rcode.NOERROR


def test_metrics_count_lookups_shortened_candidates_and_fallbacks(autopath: Running) -> None:
    before = scrape(autopath.metrics_port)
    lookup(autopath, f"metrics.example.com.shop.svc.{ZONE}")  # a name no other test asks
    lookup(autopath, f"metrics.example.com.shop.svc.{ZONE}", CUSTOM_POD)
    after = scrape(autopath.metrics_port)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("kubedns_cache_autopath_shortened_total") == 1
    assert grew("kubedns_cache_autopath_candidates_total") == 4  # 3 search domains, then the name
    assert grew("kubedns_cache_autopath_fallbacks_total", reason="custom-search") == 1
    assert grew("coredns_autopath_success_total") == 1


def test_without_the_flag_nothing_changes(served: Running, internet: TestNameserver, tmp_path: Path) -> None:
    for running in start(served, internet, tmp_path):
        reply = lookup(running, f"api.example.com.shop.svc.{ZONE}")
        assert reply.rcode() == dns.rcode.NXDOMAIN
        metrics = scrape(running.metrics_port)
        assert metrics.value("kubedns_cache_autopath_shortened_total") == 0  # for one dashboard
        assert "coredns_autopath_success_total" not in metrics.names()


def test_without_negative_caching_a_walk_is_remembered_for_its_second(
    served: Running, internet: TestNameserver, tmp_path: Path
) -> None:
    asked = f"intranet.shop.svc.{ZONE}"
    for running in start(served, internet, tmp_path, "--autopath", "--no-negcache"):
        started = time.monotonic()  # before the walk: its second ends later than a second from now
        first = lookup(running, asked)
        walked = scrape(running.metrics_port).value("kubedns_cache_autopath_candidates_total")
        again = [lookup(running, asked) for _ in range(3)]
        if time.monotonic() - started >= 1.0:
            pytest.skip("the lookups took more than the memory's second")  # a stalled machine
        metrics = scrape(running.metrics_port)
        assert metrics.value("kubedns_cache_autopath_candidates_total") == walked
        assert all(answers(reply) == answers(first) for reply in again)
        assert metrics.value("kubedns_cache_autopath_shortened_total") == 4
        assert walked == 3  # <ns>.svc, svc and the zone: then the node's domain has it
