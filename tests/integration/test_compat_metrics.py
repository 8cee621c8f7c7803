"""The series that kube-dns's and CoreDNS's dashboards read: scraped from running serve and cache
processes after real queries, with names, labels and bucket bounds as those servers export them, and
passing ``promtool check metrics``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsclient import ask
from tests.support.metrics import Metrics, scrape
from tests.support.nameservers import TestNameserver, answer, nxdomain, run_in_thread
from tests.support.processes import Running, cache, serve
from tests.support.prometheus import promtool

SKYDNS_DURATION = [
    "0.001",
    "0.003",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1",
    "2.5",
    "5",
    "10",
]
COREDNS_DURATION = [str(0.00025 * 2**k) for k in range(16)]
COREDNS_SIZE = [
    "0",
    "100",
    "200",
    "300",
    "400",
    "511",
    "1023",
    "2047",
    "4095",
    "8291",
    "16000",
    "32000",
    "48000",
    "64000",
]
CORE = {"server", "zone", "view"}
# Label names of each CoreDNS series, as CoreDNS exports them (histograms: besides "le").
COREDNS_LABELS = {
    "coredns_build_info": {"version", "revision", "goversion"},
    "coredns_dns_requests_total": CORE | {"proto", "family", "type"},
    "coredns_dns_responses_total": CORE | {"rcode", "plugin"},
    "coredns_dns_request_duration_seconds": CORE,
    "coredns_dns_request_size_bytes": CORE | {"proto"},
    "coredns_dns_response_size_bytes": CORE | {"proto"},
}
CACHE = {"server", "zones", "view"}
COREDNS_CACHE_LABELS = {
    "coredns_cache_entries": CACHE | {"type"},
    "coredns_cache_hits_total": CACHE | {"type"},
    "coredns_cache_misses_total": CACHE,
    "coredns_cache_requests_total": CACHE,
    "coredns_cache_prefetch_total": CACHE,
    "coredns_cache_served_stale_total": CACHE,
    "coredns_cache_evictions_total": CACHE | {"type"},
    "coredns_forward_requests_total": {"to"},
    "coredns_forward_responses_total": {"to", "rcode"},
    "coredns_forward_request_duration_seconds": {"to", "rcode"},
    "coredns_forward_healthcheck_failures_total": {"to"},
    "coredns_forward_max_concurrent_rejects_total": set(),
    "coredns_proxy_request_duration_seconds": {"proxy_name", "to", "rcode"},
    "coredns_proxy_healthcheck_failures_total": {"proxy_name", "to"},
}
SKYDNS_SIZE = ["0", "512", "1024", "1500", "2048", *(str(b) for b in range(4096, 65537, 4096))]


def bounds(metrics: Metrics, histogram: str, **labels: str) -> list[str]:
    les = [
        s.labels["le"]
        for s in metrics.families[histogram]
        if s.name == histogram + "_bucket" and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return [str(float(le)) for le in les if le != "+Inf"]


def floats(bounds: list[str]) -> list[str]:
    return [str(float(b)) for b in bounds]


def promtool_lint(text: str) -> None:
    done = promtool("check", "metrics", stdin=text)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Running, Metrics]]:
    """serve after 12 answered queries: 5 A (3 of them the same name, so from its memo), 2 AAAA over
    TCP, 2 PTR (one REFUSED: no reverse zone holds it), 3 NXDOMAIN A."""
    with serve() as running:
        port = running.dns_port
        for _ in range(3):
            ask("kubernetes.default.svc.cluster.local.", "A", port)
        ask("kube-dns.kube-system.svc.cluster.local.", "A", port)
        ask("kube-dns.kube-system.svc.cluster.local.", "A", port)
        for _ in range(2):
            ask("kubernetes.default.svc.cluster.local.", "AAAA", port, tcp=True)
        ask("1.0.96.10.in-addr.arpa.", "PTR", port)
        ask("99.99.96.10.in-addr.arpa.", "PTR", port)
        for n in range(3):
            ask(f"missing{n}.default.svc.cluster.local.", "A", port)
        yield running, scrape(running.metrics_port)


def test_serve_exports_kube_dns_series(served: tuple[Running, Metrics]) -> None:
    _, metrics = served
    prefix = "skydns_skydns_dns_"
    assert metrics.value(prefix + "request_count_total", system="auth") == 10
    assert metrics.value(prefix + "request_count_total", system="reverse") == 2
    assert metrics.value(prefix + "error_count_total", system="auth", cause="nxdomain") == 3
    assert metrics.value(prefix + "error_count_total", system="reverse", cause="refused") == 1
    assert metrics.value(prefix + "cachemiss_count_total", cache="response") == 10
    for system, count in (("auth", 10), ("reverse", 2)):
        histogram = prefix + "request_duration_seconds"
        assert bounds(metrics, histogram, system=system) == floats(SKYDNS_DURATION)
        assert metrics.value(histogram + "_count", system=system) == count
        histogram = prefix + "response_size_bytes"
        assert bounds(metrics, histogram, system=system) == floats(SKYDNS_SIZE)
        assert metrics.value(histogram + "_count", system=system) == count
        assert metrics.value(histogram + "_bucket", system=system, le="0") == 0
        # Every reply here fits the classic 512-byte UDP limit.
        assert metrics.value(histogram + "_bucket", system=system, le="512") == count
    mean = metrics.value(prefix + "response_size_bytes_sum", system="auth") / 10
    assert 50 < mean < 200


def test_serve_response_sizes_are_exact(served: tuple[Running, Metrics]) -> None:
    """The size sum counts each reply's bytes as sent, fast path and memo included."""
    running, metrics = served
    port = running.dns_port
    before = metrics.value("skydns_skydns_dns_response_size_bytes_sum", system="reverse")
    sent = sum(len(ask("1.0.96.10.in-addr.arpa.", "PTR", port).to_wire()) for _ in range(4))
    after = scrape(running.metrics_port).value("skydns_skydns_dns_response_size_bytes_sum", system="reverse")
    assert after - before == sent


def test_serve_exposition_passes_promtool(served: tuple[Running, Metrics]) -> None:
    promtool_lint(served[1].text)


def label_names(metrics: Metrics) -> dict[str, set[str]]:
    """Series (histograms by their family name) -> the label names their samples carry."""
    found: dict[str, set[str]] = {}
    for family, samples in metrics.families.items():
        for sample in samples:
            if sample.name.endswith("_created"):
                continue
            name = family if metrics.types[family] == "histogram" else sample.name
            found.setdefault(name, set()).update(k for k in sample.labels if k != "le")
    return found


def check_coredns_series(metrics: Metrics, expected: dict[str, set[str]]) -> None:
    found = label_names(metrics)
    for name, labels in expected.items():
        assert found.get(name) == labels, (name, found.get(name))
    assert bounds(metrics, "coredns_dns_request_duration_seconds") == floats(COREDNS_DURATION)
    for histogram in ("coredns_dns_request_size_bytes", "coredns_dns_response_size_bytes"):
        assert bounds(metrics, histogram, proto="udp") == floats(COREDNS_SIZE)


def test_serve_exports_coredns_series_only_with_the_flag(served: tuple[Running, Metrics]) -> None:
    assert "coredns_" not in served[1].text
    with serve("--coredns-metrics") as running:
        port = running.dns_port
        for _ in range(3):
            ask("kubernetes.default.svc.cluster.local.", "A", port)
        ask("missing.default.svc.cluster.local.", "A", port)
        ask("kubernetes.default.svc.cluster.local.", "SRV", port, tcp=True)
        assert (
            "coredns_dns_do_requests_total" not in scrape(running.metrics_port).text
        )  # as CoreDNS: none yet
        for _ in range(6):  # answered from the wire zone, then from the memo
            ask("kube-dns.kube-system.svc.cluster.local.", "A", port, want_dnssec=True)
        ask("kube-dns.kube-system.svc.cluster.local.", "TXT", port, tcp=True, want_dnssec=True)
        metrics = scrape(running.metrics_port)
    check_coredns_series(metrics, COREDNS_LABELS | {"coredns_dns_do_requests_total": CORE})
    where = {"server": f"dns://:{port}", "zone": ".", "view": ""}
    assert metrics.value("coredns_dns_do_requests_total", **where) == 7
    assert metrics.value("coredns_dns_requests_total", **where, proto="udp", family="1", type="A") == 10
    assert metrics.value("coredns_dns_requests_total", **where, proto="tcp", family="1", type="SRV") == 1
    assert metrics.value("coredns_dns_responses_total", **where, rcode="NOERROR", plugin="kubernetes") == 11
    assert metrics.value("coredns_dns_responses_total", **where, rcode="NXDOMAIN", plugin="kubernetes") == 1
    assert metrics.value("coredns_dns_request_duration_seconds_count", **where) == 12
    assert metrics.value("coredns_dns_request_size_bytes_count", **where, proto="udp") == 10
    assert metrics.value("coredns_dns_response_size_bytes_bucket", **where, proto="tcp", le="511") == 2
    assert "skydns_skydns_dns_request_count_total" in metrics.text  # kube-dns's stay
    promtool_lint(metrics.text)


def test_cache_exports_coredns_series_with_the_flag() -> None:
    upstream = TestNameserver(default=answer("{qname} 300 IN A 192.0.2.1"))
    upstream.script("gone.example.test", None, nxdomain("example.test"))
    with (
        run_in_thread(upstream) as ns,
        cache("--coredns-metrics", "--no-resolv", f"--server={ns.address}") as c,
    ):
        port = c.dns_port
        for name in ("www.example.test.", "www.example.test.", "www.example.test.", "gone.example.test."):
            ask(name, "A", port)
        ask("gone.example.test.", "A", port)
        for _ in range(3):  # a miss, then hits
            ask("signed.example.test.", "A", port, want_dnssec=True)
        metrics = scrape(c.metrics_port)
    check_coredns_series(
        metrics, COREDNS_LABELS | COREDNS_CACHE_LABELS | {"coredns_dns_do_requests_total": CORE}
    )
    assert metrics.value("coredns_dns_do_requests_total", server=f"dns://:{port}", zone=".", view="") == 3
    where = {"server": f"dns://:{port}", "zones": ".", "view": ""}
    assert metrics.value("coredns_cache_requests_total", **where) == 8
    assert metrics.value("coredns_cache_misses_total", **where) == 3
    assert metrics.value("coredns_cache_hits_total", **where, type="success") == 4
    assert metrics.value("coredns_cache_hits_total", **where, type="denial") == 1
    assert metrics.value("coredns_cache_entries", **where, type="success") == 2
    assert metrics.value("coredns_cache_entries", **where, type="denial") == 1
    to = ns.address.replace("#", ":")
    assert metrics.value("coredns_forward_requests_total", to=to) == 3
    assert metrics.value("coredns_forward_responses_total", to=to, rcode="NXDOMAIN") == 1
    assert (
        metrics.value(
            "coredns_proxy_request_duration_seconds_count", proxy_name="forward", to=to, rcode="NOERROR"
        )
        == 2
    )
    assert (
        metrics.value(
            "coredns_dns_responses_total",
            server=f"dns://:{port}",
            zone=".",
            view="",
            rcode="NXDOMAIN",
            plugin="forward",
        )
        == 2
    )
    promtool_lint(metrics.text)
