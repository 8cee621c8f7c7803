"""The series that kube-dns's and CoreDNS's dashboards read: scraped from running serve and cache
processes after real queries, with names, labels and bucket bounds as those servers export them, and
passing ``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import dns.message
import dns.query
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.nameservers import TestNameserver, answer, nxdomain, run_in_thread
from tests.support.processes import Running, cache, serve

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


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def samples(text: str, family: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(text) if f.name == family for s in f.samples]


def value(text: str, name: str, **labels: str) -> float:
    found = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def bounds(text: str, histogram: str, **labels: str) -> list[str]:
    les = [
        s.labels["le"]
        for s in samples(text, histogram)
        if s.name == histogram + "_bucket" and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return [str(float(le)) for le in les if le != "+Inf"]


def floats(bounds: list[str]) -> list[str]:
    return [str(float(b)) for b in bounds]


def ask(port: int, name: str, rdtype: str, tcp: bool = False, dnssec: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=port, timeout=3)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=3)


def promtool_lint(text: str) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Running, str]]:
    """serve after 12 answered queries: 5 A (3 of them the same name, so from its memo), 2 AAAA over
    TCP, 2 PTR (one REFUSED: no reverse zone holds it), 3 NXDOMAIN A."""
    with serve() as running:
        port = running.dns_port
        for _ in range(3):
            ask(port, "kubernetes.default.svc.cluster.local.", "A")
        ask(port, "kube-dns.kube-system.svc.cluster.local.", "A")
        ask(port, "kube-dns.kube-system.svc.cluster.local.", "A")
        for _ in range(2):
            ask(port, "kubernetes.default.svc.cluster.local.", "AAAA", tcp=True)
        ask(port, "1.0.96.10.in-addr.arpa.", "PTR")
        ask(port, "99.99.96.10.in-addr.arpa.", "PTR")
        for n in range(3):
            ask(port, f"missing{n}.default.svc.cluster.local.", "A")
        yield running, scrape(running.metrics_port)


def test_serve_exports_kube_dns_series(served: tuple[Running, str]) -> None:
    _, text = served
    prefix = "skydns_skydns_dns_"
    assert value(text, prefix + "request_count_total", system="auth") == 10
    assert value(text, prefix + "request_count_total", system="reverse") == 2
    assert value(text, prefix + "error_count_total", system="auth", cause="nxdomain") == 3
    assert value(text, prefix + "error_count_total", system="reverse", cause="refused") == 1
    assert value(text, prefix + "cachemiss_count_total", cache="response") == 10
    for system, count in (("auth", 10), ("reverse", 2)):
        histogram = prefix + "request_duration_seconds"
        assert bounds(text, histogram, system=system) == floats(SKYDNS_DURATION)
        assert value(text, histogram + "_count", system=system) == count
        histogram = prefix + "response_size_bytes"
        assert bounds(text, histogram, system=system) == floats(SKYDNS_SIZE)
        assert value(text, histogram + "_count", system=system) == count
        assert value(text, histogram + "_bucket", system=system, le="0") == 0
        # Every reply here fits the classic 512-byte UDP limit.
        assert value(text, histogram + "_bucket", system=system, le="512") == count
    mean = value(text, prefix + "response_size_bytes_sum", system="auth") / 10
    assert 50 < mean < 200


def test_serve_response_sizes_are_exact(served: tuple[Running, str]) -> None:
    """The size sum counts each reply's bytes as sent, fast path and memo included."""
    running, text = served
    port = running.dns_port
    before = value(text, "skydns_skydns_dns_response_size_bytes_sum", system="reverse")
    sent = sum(len(ask(port, "1.0.96.10.in-addr.arpa.", "PTR").to_wire()) for _ in range(4))
    after = value(scrape(running.metrics_port), "skydns_skydns_dns_response_size_bytes_sum", system="reverse")
    assert after - before == sent


def test_serve_exposition_passes_promtool(served: tuple[Running, str]) -> None:
    promtool_lint(served[1])


def label_names(text: str) -> dict[str, set[str]]:
    """Series (histograms by their family name) -> the label names their samples carry."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = family.name if family.type == "histogram" else sample.name
            found.setdefault(name, set()).update(k for k in sample.labels if k != "le")
    return found


def check_coredns_series(text: str, expected: dict[str, set[str]]) -> None:
    found = label_names(text)
    for name, labels in expected.items():
        assert found.get(name) == labels, (name, found.get(name))
    assert bounds(text, "coredns_dns_request_duration_seconds") == floats(COREDNS_DURATION)
    for histogram in ("coredns_dns_request_size_bytes", "coredns_dns_response_size_bytes"):
        assert bounds(text, histogram, proto="udp") == floats(COREDNS_SIZE)


def test_serve_exports_coredns_series_only_with_the_flag(served: tuple[Running, str]) -> None:
    assert "coredns_" not in served[1]
    with serve("--coredns-metrics") as running:
        port = running.dns_port
        for _ in range(3):
            ask(port, "kubernetes.default.svc.cluster.local.", "A")
        ask(port, "missing.default.svc.cluster.local.", "A")
        ask(port, "kubernetes.default.svc.cluster.local.", "SRV", tcp=True)
        assert "coredns_dns_do_requests_total" not in scrape(running.metrics_port)  # as CoreDNS: none yet
        for _ in range(6):  # answered from the wire zone, then from the memo
            ask(port, "kube-dns.kube-system.svc.cluster.local.", "A", dnssec=True)
        ask(port, "kube-dns.kube-system.svc.cluster.local.", "TXT", tcp=True, dnssec=True)
        text = scrape(running.metrics_port)
    check_coredns_series(text, COREDNS_LABELS | {"coredns_dns_do_requests_total": CORE})
    where = {"server": f"dns://:{port}", "zone": ".", "view": ""}
    assert value(text, "coredns_dns_do_requests_total", **where) == 7
    assert value(text, "coredns_dns_requests_total", **where, proto="udp", family="1", type="A") == 10
    assert value(text, "coredns_dns_requests_total", **where, proto="tcp", family="1", type="SRV") == 1
    assert value(text, "coredns_dns_responses_total", **where, rcode="NOERROR", plugin="kubernetes") == 11
    assert value(text, "coredns_dns_responses_total", **where, rcode="NXDOMAIN", plugin="kubernetes") == 1
    assert value(text, "coredns_dns_request_duration_seconds_count", **where) == 12
    assert value(text, "coredns_dns_request_size_bytes_count", **where, proto="udp") == 10
    assert value(text, "coredns_dns_response_size_bytes_bucket", **where, proto="tcp", le="511") == 2
    assert "skydns_skydns_dns_request_count_total" in text  # kube-dns's stay
    promtool_lint(text)


def test_cache_exports_coredns_series_with_the_flag() -> None:
    upstream = TestNameserver(default=answer("{qname} 300 IN A 192.0.2.1"))
    upstream.script("gone.example.test", None, nxdomain("example.test"))
    with (
        run_in_thread(upstream) as ns,
        cache("--coredns-metrics", "--no-resolv", f"--server={ns.address}") as c,
    ):
        port = c.dns_port
        for name in ("www.example.test.", "www.example.test.", "www.example.test.", "gone.example.test."):
            ask(port, name, "A")
        ask(port, "gone.example.test.", "A")
        for _ in range(3):  # a miss, then hits
            ask(port, "signed.example.test.", "A", dnssec=True)
        text = scrape(c.metrics_port)
    check_coredns_series(
        text, COREDNS_LABELS | COREDNS_CACHE_LABELS | {"coredns_dns_do_requests_total": CORE}
    )
    assert value(text, "coredns_dns_do_requests_total", server=f"dns://:{port}", zone=".", view="") == 3
    where = {"server": f"dns://:{port}", "zones": ".", "view": ""}
    assert value(text, "coredns_cache_requests_total", **where) == 8
    assert value(text, "coredns_cache_misses_total", **where) == 3
    assert value(text, "coredns_cache_hits_total", **where, type="success") == 4
    assert value(text, "coredns_cache_hits_total", **where, type="denial") == 1
    assert value(text, "coredns_cache_entries", **where, type="success") == 2
    assert value(text, "coredns_cache_entries", **where, type="denial") == 1
    to = ns.address.replace("#", ":")
    assert value(text, "coredns_forward_requests_total", to=to) == 3
    assert value(text, "coredns_forward_responses_total", to=to, rcode="NXDOMAIN") == 1
    assert (
        value(
            text, "coredns_proxy_request_duration_seconds_count", proxy_name="forward", to=to, rcode="NOERROR"
        )
        == 2
    )
    assert (
        value(
            text,
            "coredns_dns_responses_total",
            server=f"dns://:{port}",
            zone=".",
            view="",
            rcode="NXDOMAIN",
            plugin="forward",
        )
        == 2
    )
    promtool_lint(text)
