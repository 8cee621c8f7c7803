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

from tests.support.processes import Running, serve

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


def ask(port: int, name: str, rdtype: str, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
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
