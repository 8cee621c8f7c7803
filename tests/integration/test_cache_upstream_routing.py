"""Where ``kubedns-py cache`` sends a question: ``--server`` domain rules (longest suffix wins), default
upstreams, ``--resolv-file`` and ``--no-resolv``, the fall-through of a REFUSED domain answer to the
default upstreams, and the kube-dns pod's exact dnsmasq argument list in front of a running serve."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import dns.reversename
import pytest

from tests.support.dig import run_dig
from tests.support.dnsclient import answers, ask
from tests.support.dnsmasq import Dnsmasq, dnsmasq
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, answer, refused, run_in_thread
from tests.support.processes import Running, cache


def a_record(address: str) -> str:
    return "{qname} 300 IN A " + address


@pytest.fixture(scope="module")
def default_ns() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.1")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def example_ns() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.10")))) as ns:
        ns.script("refused.example.test", None, refused())
        yield ns


@pytest.fixture(scope="module")
def sub_ns() -> Iterator[TestNameserver]:
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.20")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def other_ns() -> Iterator[TestNameserver]:
    """Serves two domains given in one flag, /a.test/b.test/ip#port."""
    with run_in_thread(TestNameserver(default=answer(a_record("192.0.2.30")))) as ns:
        yield ns


@pytest.fixture(scope="module")
def routed(
    default_ns: TestNameserver, example_ns: TestNameserver, sub_ns: TestNameserver, other_ns: TestNameserver
) -> Iterator[Running]:
    with cache(
        "--no-resolv",
        f"--server=/sub.example.test/{sub_ns.address}",
        f"--server=/example.test/{example_ns.address}",
        f"--server=/one.test/two.test/{other_ns.address}",
        "--server=/local.example.test/",
        f"--server={default_ns.address}",
    ) as running:
        yield running


def address_of(name: str, port: int) -> str:
    reply = ask(name, "A", port)
    assert reply.rcode() == dns.rcode.NOERROR, reply
    (rrset,) = reply.answer
    return str(rrset[0])


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("www.sub.example.test.", "192.0.2.20"),  # the longer suffix wins whatever the flag order
        ("deep.down.sub.example.test.", "192.0.2.20"),
        ("sub.example.test.", "192.0.2.20"),  # the domain itself
        ("www.example.test.", "192.0.2.10"),
        ("notsub.example.test.", "192.0.2.10"),  # label-aligned: not under sub.example.test
        ("www.one.test.", "192.0.2.30"),
        ("www.two.test.", "192.0.2.30"),
        ("www.notexample.test.", "192.0.2.1"),  # label-aligned: not under example.test
        ("www.elsewhere.org.", "192.0.2.1"),
        ("WWW.Sub.EXAMPLE.Test.", "192.0.2.20"),  # routing ignores case
    ],
)
def test_longest_matching_domain_wins(
    routed: Running,
    default_ns: TestNameserver,
    example_ns: TestNameserver,
    sub_ns: TestNameserver,
    other_ns: TestNameserver,
    name: str,
    address: str,
) -> None:
    assert address_of(name, routed.dns_port) == address
    servers = {
        "192.0.2.1": default_ns,
        "192.0.2.10": example_ns,
        "192.0.2.20": sub_ns,
        "192.0.2.30": other_ns,
    }
    for served, ns in servers.items():
        asked = ns.queries_for(name, "A")
        assert len(asked) == (1 if served == address else 0), (served, asked)


def test_refused_domain_answer_falls_through_to_the_default_upstreams(
    routed: Running, default_ns: TestNameserver, example_ns: TestNameserver
) -> None:
    assert address_of("refused.example.test.", routed.dns_port) == "192.0.2.1"
    example_ns.wait_for_queries(1, "refused.example.test.", "A")
    default_ns.wait_for_queries(1, "refused.example.test.", "A")


def test_a_domain_without_a_server_is_answered_locally(
    routed: Running, default_ns: TestNameserver, example_ns: TestNameserver
) -> None:
    reply = ask("www.local.example.test.", "A", routed.dns_port)
    assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
    assert default_ns.queries_for("www.local.example.test.") == []
    assert example_ns.queries_for("www.local.example.test.") == []


def test_upstream_query_is_recursive_and_uses_edns(routed: Running, default_ns: TestNameserver) -> None:
    address_of("edns.elsewhere.org.", routed.dns_port)
    (query,) = default_ns.queries_for("edns.elsewhere.org.", "A")
    assert query.rd and query.edns and query.transport == "udp"


@pytest.fixture(scope="module")
def resolver_53() -> Iterator[Dnsmasq]:
    """A resolv.conf names servers without ports, so this one listens on port 53 of a loopback address
    of its own (127.x.y.1: any 127/8 address is on lo)."""
    host = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.1"
    with dnsmasq("--address=/resolv.test/192.0.2.53", host=host, port=53) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def resolv_conf(tmp_path_factory: pytest.TempPathFactory, resolver_53: Dnsmasq) -> Path:
    path = tmp_path_factory.mktemp("resolv") / "resolv.conf"
    path.write_text(
        "# written by the test\nsearch default.svc.cluster.local svc.cluster.local\n"
        f"nameserver {resolver_53.host}\noptions ndots:5\n"
    )
    return path


def asked(upstream: Dnsmasq, name: str) -> int:
    return upstream.log_text().count(f"query[A] {name} from")


def test_resolv_file_nameservers_are_the_default_upstreams(
    resolv_conf: Path, resolver_53: Dnsmasq, example_ns: TestNameserver
) -> None:
    with cache(f"--resolv-file={resolv_conf}", f"--server=/example.test/{example_ns.address}") as running:
        assert address_of("www.resolv.test.", running.dns_port) == "192.0.2.53"
        assert address_of("resolv.example.test.", running.dns_port) == "192.0.2.10"
    assert asked(resolver_53, "www.resolv.test") == 1
    assert asked(resolver_53, "resolv.example.test") == 0


def test_no_resolv_ignores_the_resolv_file(
    resolv_conf: Path, resolver_53: Dnsmasq, example_ns: TestNameserver
) -> None:
    with cache(
        "--no-resolv", f"--resolv-file={resolv_conf}", f"--server=/example.test/{example_ns.address}"
    ) as running:
        assert address_of("noresolv.example.test.", running.dns_port) == "192.0.2.10"
        reply = ask("www.noresolv.resolv.test.", "A", running.dns_port)
        assert reply.rcode() != dns.rcode.NOERROR and not reply.answer
    assert asked(resolver_53, "www.noresolv.resolv.test") == 0


# -- the kube-dns pod: dnsmasq's arguments in front of serve, Debian's dnsmasq as the node's resolver --


@pytest.fixture(scope="module")
def node_resolver() -> Iterator[Dnsmasq]:
    with dnsmasq("--address=/www.example.com/192.0.2.7", "--host-record=dns.google,8.8.8.8") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def pod(cluster: Running, node_resolver: Dnsmasq) -> Iterator[Running]:
    kubedns = f"127.0.0.1#{cluster.dns_port}"
    with cache(
        "-k",
        "--cache-size=1000",
        "--no-negcache",
        "--dns-loop-detect",
        "--log-facility=-",
        f"--server=/cluster.local/{kubedns}",
        f"--server=/in-addr.arpa/{kubedns}",
        f"--server=/ip6.arpa/{kubedns}",
        f"--server={node_resolver.address}",
    ) as running:
        yield running


def test_pod_args_answer_cluster_names(pod: Running) -> None:
    reply = ask("myservice.default.svc.cluster.local.", "A", pod.dns_port)
    assert answers(reply) == {"myservice.default.svc.cluster.local. A 10.96.100.10"}
    reply = ask("dual.default.svc.cluster.local.", "AAAA", pod.dns_port)
    assert answers(reply) == {"dual.default.svc.cluster.local. AAAA fd00:10:96::20"}
    srv = run_dig("_http._tcp.myservice.default.svc.cluster.local", "SRV", "+short", port=pod.dns_port)
    assert srv.split() == ["0", "100", "80", "myservice.default.svc.cluster.local."]


def test_pod_args_answer_cluster_ptr(pod: Running) -> None:
    assert run_dig("-x", "10.96.100.10", "+short", port=pod.dns_port).split() == [
        "myservice.default.svc.cluster.local."
    ]
    v6 = dns.reversename.from_address("fd00:10:96::20").to_text()
    assert answers(ask(v6, "PTR", pod.dns_port)) == {f"{v6} PTR dual.default.svc.cluster.local."}


def test_pod_args_send_unknown_reverse_names_to_the_node_resolver(
    pod: Running, node_resolver: Dnsmasq
) -> None:
    """serve REFUSES 8.8.8.8's PTR (not a cluster address); the default upstream answers it."""
    assert run_dig("-x", "8.8.8.8", "+short", port=pod.dns_port).split() == ["dns.google."]
    node_resolver.wait_for_log(r"query\[PTR\] 8\.8\.8\.8\.in-addr\.arpa from 127\.0\.0\.1")


def test_pod_args_answer_external_names(pod: Running, node_resolver: Dnsmasq) -> None:
    assert run_dig("www.example.com", "A", "+short", port=pod.dns_port).split() == ["192.0.2.7"]
    node_resolver.wait_for_log(r"query\[A\] www\.example\.com from 127\.0\.0\.1")


def test_pod_args_do_not_cache_negative_answers(pod: Running, cluster: Running) -> None:
    """--no-negcache: every NXDOMAIN for a cluster name is asked of serve again."""
    name = "nosuch.default.svc.cluster.local."

    def asked_of_serve() -> float:
        return scrape(cluster.metrics_port).get("kubedns_dns_requests_total", type="A")

    before = asked_of_serve()
    for _ in range(3):
        assert ask(name, "A", pod.dns_port).rcode() == dns.rcode.NXDOMAIN
    assert asked_of_serve() - before == 3
