"""What the cache sends upstream: --tcp-server routes asked over TCP only (how a node-local cache
reaches the cluster DNS without UDP conntrack entries), and questions passed on unchanged."""

from __future__ import annotations

from kubedns_py.cache.servers import StaticServers, Upstream
from tests.support.dnsclient import answers, ask
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver, refused, run_in_thread
from tests.support.processes import cache, serve


def test_tcp_servers_parse_beside_udp_ones() -> None:
    static = StaticServers.parse(["/a.local/10.0.0.1"], ["/cluster.local/10.0.0.2#5353", "10.0.0.3"])
    assert static.domains["a.local"] == (Upstream("10.0.0.1", 53),)
    assert static.domains["cluster.local"] == (Upstream("10.0.0.2", 5353, tcp=True),)
    assert static.default == (Upstream("10.0.0.3", 53, tcp=True),)


def serve_requests(metrics_port: int, proto: str) -> float:
    return scrape(metrics_port).get("kubedns_dns_requests_total", proto=proto)


def test_the_cluster_zone_is_asked_over_tcp() -> None:
    with (
        serve() as server,
        cache(f"--tcp-server=/cluster.local/127.0.0.1#{server.dns_port}", "--no-resolv") as front,
    ):
        reply = ask("myservice.default.svc.cluster.local.", "A", front.dns_port)
        assert answers(reply) == {"myservice.default.svc.cluster.local. A 10.96.100.10"}
        assert serve_requests(server.metrics_port, "tcp") == 1
        assert serve_requests(server.metrics_port, "udp") == 0


def test_query_types_reach_the_upstream_unchanged() -> None:
    # HTTPS is type 65 (0x0041, an ASCII 'A'): the cache compares names case-insensitively, never types.
    with (
        run_in_thread(TestNameserver(refused())) as upstream,
        cache(f"--server={upstream.address}", "--no-resolv") as front,
    ):
        ask("www.example.com.", "HTTPS", front.dns_port)
        assert [q.rtype for q in upstream.wait_for_queries(1, name="www.example.com.")] == ["HTTPS"]
