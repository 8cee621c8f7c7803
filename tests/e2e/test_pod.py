"""The whole pod, its three containers started as separately as Kubernetes starts them: serve on a fixed
port, the cache in front of it (cluster and reverse zones to serve, the rest to a test nameserver), and
the probe asking both every second.

Clients only ever talk to the cache, so every record kind is asked through it with dig. Then serve is
killed and started again on the same port, as the kubelet restarts a crashed container, and the probe's
health check and metrics follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.dig import Dig, dig
from tests.support.dnsclient import KUBERNETES
from tests.support.http import health, wait_for_health
from tests.support.internet import WWW_ADDRESS, nameserver
from tests.support.metrics import scrape, wait_for_metrics
from tests.support.nameservers import run_in_thread
from tests.support.ports import free_port
from tests.support.processes import Running, cache, probe, start_serve, stop

SVC = "svc.cluster.local"
SOA = "ns.dns.cluster.local. hostmaster.cluster.local."


@dataclass
class Pod:
    serve: Running
    serve_port: int
    cache: Running
    probe: Running

    @property
    def cache_port(self) -> int:
        return self.cache.dns_port


@pytest.fixture(scope="module")
def pod() -> Iterator[Pod]:
    serve_port = free_port()  # fixed, so a restarted serve comes back where the cache and probe look
    with run_in_thread(nameserver()) as upstream:
        serve = start_serve("--dns-port", str(serve_port))
        the_pod: Pod | None = None
        try:
            to_serve = f"127.0.0.1#{serve_port}"
            with (
                cache(
                    f"--server=/cluster.local/{to_serve}",
                    f"--server=/in-addr.arpa/{to_serve}",
                    f"--server=/ip6.arpa/{to_serve}",
                    f"--server={upstream.address}",
                    "--no-resolv",
                ) as front,
                probe(
                    f"--probe=kubedns,127.0.0.1:{serve_port},{KUBERNETES},1,SRV",
                    f"--probe=dnsmasq,127.0.0.1:{front.dns_port},{KUBERNETES},1,SRV",
                    f"--dnsmasq-port={front.dns_port}",
                    "--dnsmasq-poll-interval-ms=200",
                ) as sidecar,
            ):
                the_pod = Pod(serve, serve_port, front, sidecar)
                yield the_pod
        finally:
            stop(the_pod.serve if the_pod is not None else serve)  # the test may have restarted it


# -- every record kind, through the cache ---------------------------------------------------------------


def nxdomain_or_nodata(status: str, reply: Dig) -> None:
    assert reply.status == status, reply.text
    assert reply.answer == []
    ((zone, rtype, soa),) = reply.authority
    assert (zone, rtype) == ("cluster.local.", "SOA") and soa.startswith(SOA)
    assert soa.split()[-1] == "30"  # the SOA minimum: how long the negative answer may be cached


CASES: dict[str, tuple[tuple[str, ...], object]] = {
    "A": ((f"myservice.default.{SVC}",), {("A", "10.96.100.10")}),
    "A dual-stack": ((f"dual.default.{SVC}", "A"), {("A", "10.96.100.20")}),
    "AAAA dual-stack": ((f"dual.default.{SVC}", "AAAA"), {("AAAA", "fd00:10:96::20")}),
    "SRV": (
        (f"_http._tcp.myservice.default.{SVC}", "SRV"),
        {("SRV", f"0 100 80 myservice.default.{SVC}.")},
    ),
    "SRV headless": (
        (f"_postgres._tcp.db.shop.{SVC}", "SRV"),
        {("SRV", f"0 50 5432 db-0.db.shop.{SVC}."), ("SRV", f"0 50 5432 db-1.db.shop.{SVC}.")},
    ),
    "headless A": ((f"db.shop.{SVC}",), {("A", "10.244.2.10"), ("A", "10.244.2.11")}),
    "headless hostname": ((f"db-1.db.shop.{SVC}",), {("A", "10.244.2.11")}),
    "ExternalName": (
        (f"search.default.{SVC}",),
        {("CNAME", "www.example.com."), ("A", WWW_ADDRESS)},
    ),
    "PTR cluster IP": (("-x", "10.96.100.10"), {("PTR", f"myservice.default.{SVC}.")}),
    "PTR headless endpoint": (("-x", "10.244.2.10"), {("PTR", f"db-0.db.shop.{SVC}.")}),
    "PTR IPv6 cluster IP": (("-x", "fd00:10:96::20"), {("PTR", f"dual.default.{SVC}.")}),
    "TXT dns-version": (("dns-version.cluster.local", "TXT"), {("TXT", '"1.1.0"')}),
    "NXDOMAIN": ((f"nosuch.default.{SVC}",), "NXDOMAIN"),
    "NXDOMAIN unready headless": ((f"cold.shop.{SVC}",), "NXDOMAIN"),
    "NODATA": ((f"myservice.default.{SVC}", "TXT"), "NOERROR"),
    "NODATA empty non-terminal": ((f"shop.{SVC}",), "NOERROR"),
    "upstream name": (("www.example.com",), {("A", WWW_ADDRESS)}),
}


@pytest.mark.parametrize("kind", CASES)
def test_record_kinds_through_the_cache(pod: Pod, kind: str) -> None:
    args, expected = CASES[kind]
    reply = dig(*args, port=pod.cache_port)
    if isinstance(expected, str):
        nxdomain_or_nodata(expected, reply)
        return
    assert reply.status == "NOERROR", reply.text
    assert "ra" in reply.flags  # the cache recurses for its clients
    assert {(rtype, data) for _, rtype, data in reply.answer} == expected


def test_srv_carries_its_targets_addresses(pod: Pod) -> None:
    reply = dig(f"_postgres._tcp.db.shop.{SVC}", "SRV", port=pod.cache_port)
    assert {(name, rtype, data) for name, rtype, data in reply.additional} == {
        (f"db-0.db.shop.{SVC}.", "A", "10.244.2.10"),
        (f"db-1.db.shop.{SVC}.", "A", "10.244.2.11"),
    }


def test_tcp_through_the_cache(pod: Pod) -> None:
    reply = dig("+tcp", f"db.shop.{SVC}", port=pod.cache_port)
    assert reply.status == "NOERROR" and reply.data("A") == {"10.244.2.10", "10.244.2.11"}


# -- serve dies and comes back ------------------------------------------------------------------------


def test_probe_follows_serve_going_down_and_coming_back(pod: Pod) -> None:
    port = pod.probe.http_port
    for label in ("kubedns", "dnsmasq"):
        wait_for_health(port, label, 200, 5)
    before = scrape(port)
    assert before.value("kubedns_probe_kubedns_errors") == 0

    pod.serve.process.kill()  # as a crashed container
    pod.serve.process.wait(5)
    body = wait_for_health(port, "kubedns", 503, 5)
    assert body["IsOk"] is False and f"127.0.0.1:{pod.serve_port}" in body["Err"]
    down = wait_for_metrics(port, lambda m: m.value("kubedns_probe_kubedns_errors") >= 2, 5, "errors")
    assert down.value("kubedns_probe_errors_total", probe="kubedns") == down.value(
        "kubedns_probe_kubedns_errors"
    )
    assert down.value("kubedns_probe_up", probe="kubedns") == 0
    # The cache still answers what it holds, so clients and the dnsmasq probe never noticed.
    assert dig(f"myservice.default.{SVC}", port=pod.cache_port).data("A") == {"10.96.100.10"}
    assert health(port, "dnsmasq")[0] == 200

    pod.serve = start_serve("--dns-port", str(pod.serve_port))  # the kubelet's restart, same port
    wait_for_health(port, "kubedns", 200, 5)
    after = scrape(port)
    assert after.value("kubedns_probe_up", probe="kubedns") == 1
    errors = after.value("kubedns_probe_kubedns_errors")
    assert errors >= down.value("kubedns_probe_kubedns_errors")  # counters never go back
    assert after.value("kubedns_probe_errors_total", probe="kubedns") == errors
    assert after.value("kubedns_probe_kubedns_latency_ms_count") > before.value(
        "kubedns_probe_kubedns_latency_ms_count"
    )
    # And names the cache had not seen reach the new serve.
    assert dig(f"cart.shop.{SVC}", port=pod.cache_port).data("A") == {"10.96.200.5"}
