"""serve's HTTP side: readiness before and after the first sync, liveness, and Prometheus metrics."""

from __future__ import annotations

import time
from pathlib import Path

import dns.rcode

from tests.support.dnsclient import ask
from tests.support.http import http_get
from tests.support.metrics import parse_metrics
from tests.support.paths import DEMO_CLUSTER
from tests.support.processes import serve


def test_before_the_first_sync_cluster_names_get_servfail_and_readiness_is_503(tmp_path: Path) -> None:
    later = tmp_path / "cluster.yaml"  # does not exist yet: no complete sync
    with serve(manifests=[later], ready=False) as server:
        assert http_get(server.health_port, "/readiness")[0] == 503
        assert http_get(server.health_port, "/healthz") == (200, "ok\n")
        for name, rdtype in [
            ("myservice.default.svc.cluster.local.", "A"),
            ("nothing.svc.cluster.local.", "A"),
            ("10.100.96.10.in-addr.arpa.", "PTR"),
        ]:
            assert ask(name, rdtype, server.dns_port).rcode() == dns.rcode.SERVFAIL
        assert ask("example.com.", "A", server.dns_port).rcode() == dns.rcode.REFUSED
        later.write_text(DEMO_CLUSTER.read_text())
        deadline = time.monotonic() + 2.0  # the source polls files every 0.25 s
        while http_get(server.health_port, "/readiness")[0] != 200:
            assert time.monotonic() < deadline, "not ready 2 s after the file appeared"
        assert ask("myservice.default.svc.cluster.local.", "A", server.dns_port).rcode() == dns.rcode.NOERROR


def test_metrics_count_queries_by_type_protocol_and_rcode() -> None:
    with serve() as server:
        for _ in range(3):
            ask("myservice.default.svc.cluster.local.", "A", server.dns_port)
        ask("myservice.default.svc.cluster.local.", "AAAA", server.dns_port, tcp=True)
        ask("nope.default.svc.cluster.local.", "SRV", server.dns_port)
        status, text = http_get(server.metrics_port, "/metrics")
        assert status == 200
        values = parse_metrics(text).samples
        assert (
            values[("kubedns_dns_requests_total", (("proto", "udp"), ("server", "serve"), ("type", "A")))]
            == 3
        )
        assert (
            values[("kubedns_dns_requests_total", (("proto", "tcp"), ("server", "serve"), ("type", "AAAA")))]
            == 1
        )
        assert (
            values[("kubedns_dns_requests_total", (("proto", "udp"), ("server", "serve"), ("type", "SRV")))]
            == 1
        )
        assert values[("kubedns_dns_responses_total", (("rcode", "NOERROR"), ("server", "serve")))] == 4
        assert values[("kubedns_dns_responses_total", (("rcode", "NXDOMAIN"), ("server", "serve")))] == 1
        assert values[("kubedns_dns_request_duration_seconds_count", (("server", "serve"),))] == 5
        assert (
            values[("kubedns_dns_request_duration_seconds_bucket", (("le", "+Inf"), ("server", "serve")))]
            == 5
        )
        assert values[("kubedns_store_objects", (("kind", "Service"),))] == 11
        assert values[("kubedns_store_synced", ())] == 1
        assert ("kubedns_zone_serial", ()) in values
