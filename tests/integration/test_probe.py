"""``kubedns-probe`` against a running serve and cache: health checks per probe, the dnsmasq-style
statistics polled over CHAOS, and /metrics under the k8s-dns-sidecar's names and today's.

One serve, one cache and one probe process serve most of the module; the probe asks every second, and
one probe waits a year before its first run, so "before the first probe" stays observable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.dnsclient import KUBERNETES, ask, chaos_number
from tests.support.http import WAITING, health, http_get, wait_for_health
from tests.support.metrics import scrape, wait_for_metrics
from tests.support.ports import HOST, free_port
from tests.support.processes import Running, cache, probe, start_module, stop

CACHE_SIZE = 321
YEAR = 365 * 24 * 3600
DNSMASQ_STATS = ("hits", "misses", "evictions", "insertions", "max_size", "errors")


@pytest.fixture(scope="module")
def front(cluster: Running) -> Iterator[Running]:
    to_serve = f"127.0.0.1#{cluster.dns_port}"
    with cache(
        f"--server=/cluster.local/{to_serve}",
        f"--server=/in-addr.arpa/{to_serve}",
        "--no-resolv",
        f"--cache-size={CACHE_SIZE}",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()  # nothing listens there: queries get ICMP port unreachable at once


@pytest.fixture(scope="module")
def sidecar(cluster: Running, front: Running, dead_port: int) -> Iterator[Running]:
    with probe(
        f"--probe=kubedns,127.0.0.1:{cluster.dns_port},{KUBERNETES},1,SRV",
        f"--probe=dnsmasq,127.0.0.1:{front.dns_port},{KUBERNETES},1,SRV",
        f"--probe=later,127.0.0.1:{cluster.dns_port},{KUBERNETES},{YEAR}",
        f"--probe=dead,127.0.0.1:{dead_port},{KUBERNETES},1",
        f"--dnsmasq-port={front.dns_port}",
        "--dnsmasq-poll-interval-ms=100",
    ) as running:
        yield running


# -- health checks -------------------------------------------------------------------------------------


def test_health_check_before_the_first_probe(sidecar: Running) -> None:
    status, body = health(sidecar.http_port, "later")
    assert status == 503
    assert body == {"IsOk": False, "LatencySeconds": 0, "Err": WAITING}
    # A one-second probe starts within its interval (staggered by a random share of it).
    status, body = health(sidecar.http_port, "kubedns")
    assert (status, body["Err"]) in {(503, WAITING), (200, "")}


def test_passing_probe_answers_200_with_its_latency(sidecar: Running) -> None:
    for label in ("kubedns", "dnsmasq"):
        body = wait_for_health(sidecar.http_port, label, 200, 5)
        assert set(body) == {"IsOk", "LatencySeconds", "Err"}
        assert body["IsOk"] is True and body["Err"] == ""
        assert isinstance(body["LatencySeconds"], float) and 0 < body["LatencySeconds"] < 1


def test_probe_of_a_dead_port_fails_and_counts_errors(sidecar: Running, dead_port: int) -> None:
    body = wait_for_health(sidecar.http_port, "dead", 503, 5)
    assert body["IsOk"] is False and f"127.0.0.1:{dead_port}" in body["Err"]
    first = scrape(sidecar.http_port).value("kubedns_probe_dead_errors")
    assert first >= 1
    # Every run counts, under both names.
    metrics = wait_for_metrics(
        sidecar.http_port, lambda m: m.value("kubedns_probe_dead_errors") > first, 5, "more errors"
    )
    assert metrics.value("kubedns_probe_errors_total", probe="dead") == metrics.value(
        "kubedns_probe_dead_errors"
    )
    assert metrics.value("kubedns_probe_up", probe="dead") == 0
    assert metrics.value("kubedns_probe_dead_latency_ms_count") == 0  # only passing runs are timed


def test_unknown_label_is_404(sidecar: Running) -> None:
    status, body = health(sidecar.http_port, "nosuch")
    assert status == 404
    assert body["IsOk"] is False and "nosuch" in body["Err"]


def test_healthz(sidecar: Running) -> None:
    status, body = http_get(sidecar.http_port, "/healthz")
    assert status == 200
    assert re.fullmatch(r"ok \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n", body), body


# -- metrics -------------------------------------------------------------------------------------------


def test_legacy_metric_names(sidecar: Running) -> None:
    wait_for_health(sidecar.http_port, "kubedns", 200, 5)
    metrics = scrape(sidecar.http_port)
    for label in ("kubedns", "dnsmasq", "later", "dead"):
        assert metrics.types[f"kubedns_probe_{label}_latency_ms"] == "histogram"
        assert metrics.types[f"kubedns_probe_{label}_errors"] == "unknown"  # untyped, no _total
    for stat in DNSMASQ_STATS:
        assert metrics.types[f"kubedns_dnsmasq_{stat}"] == "unknown"
    assert metrics.value("kubedns_probe_kubedns_latency_ms_count") >= 1
    # The sidecar's buckets, in milliseconds: 0.25 ms doubling to 8192 ms.
    buckets = {
        float(dict(labels)["le"])
        for name, labels in metrics.samples
        if name == "kubedns_probe_kubedns_latency_ms_bucket"
    }
    assert buckets == {0.25 * 2**k for k in range(16)} | {float("inf")}
    assert metrics.value("kubedns_probe_later_latency_ms_count") == 0
    assert metrics.value("kubedns_probe_later_errors") == 0
    assert metrics.value("kubedns_probe_kubedns_errors") == 0


def test_modern_metric_names(sidecar: Running) -> None:
    for label in ("kubedns", "dnsmasq"):
        wait_for_health(sidecar.http_port, label, 200, 5)
    metrics = scrape(sidecar.http_port)
    assert metrics.types["kubedns_probe_latency_seconds"] == "histogram"
    assert metrics.types["kubedns_probe_errors"] == "counter"
    assert metrics.types["kubedns_probe_up"] == "gauge"
    for label in ("kubedns", "dnsmasq"):
        assert metrics.value("kubedns_probe_up", probe=label) == 1
        assert metrics.value("kubedns_probe_errors_total", probe=label) == 0
        count = metrics.value("kubedns_probe_latency_seconds_count", probe=label)
        assert count >= 1 and count == metrics.value(f"kubedns_probe_{label}_latency_ms_count")
        seconds = metrics.value("kubedns_probe_latency_seconds_sum", probe=label)
        assert seconds * 1000 == pytest.approx(metrics.value(f"kubedns_probe_{label}_latency_ms_sum"))
    assert metrics.value("kubedns_probe_up", probe="later") == 0
    assert metrics.value("kubedns_probe_errors_total", probe="later") == 0


def test_cache_statistics_move_with_the_cache(sidecar: Running, front: Running) -> None:
    metrics = wait_for_metrics(
        sidecar.http_port, lambda m: m.get("kubedns_dnsmasq_max_size") == CACHE_SIZE, 5, "max_size polled"
    )
    hits = metrics.value("kubedns_dnsmasq_hits")
    for _ in range(5):  # one miss (unless a probe got there first), then hits
        assert ask("cart.shop.svc.cluster.local.", "A", front.dns_port).answer
    metrics = wait_for_metrics(
        sidecar.http_port, lambda m: m.value("kubedns_dnsmasq_hits") >= hits + 4, 5, "hits polled"
    )
    assert metrics.value("kubedns_dnsmasq_misses") >= 1
    assert metrics.value("kubedns_dnsmasq_insertions") >= 1
    assert metrics.value("kubedns_dnsmasq_evictions") == 0
    assert metrics.value("kubedns_dnsmasq_errors") == 0
    assert metrics.value("kubedns_dnsmasq_max_size") == CACHE_SIZE
    # What is exported trails the cache's own counters, never leads them.
    for stat, chaos in (("hits", "hits"), ("misses", "misses"), ("insertions", "insertions")):
        assert metrics.value(f"kubedns_dnsmasq_{stat}") <= chaos_number(front.dns_port, chaos)


# -- flags ---------------------------------------------------------------------------------------------


def test_custom_path_namespace_and_a_failing_statistics_poll(cluster: Running) -> None:
    no_cache = free_port()
    with probe(
        f"--probe=kubedns,127.0.0.1:{cluster.dns_port},{KUBERNETES},1,SRV",
        "--prometheus-path=/custom/metrics",
        "--prometheus-namespace=foo",
        f"--dnsmasq-port={no_cache}",
        "--dnsmasq-poll-interval-ms=100",
    ) as running:
        assert http_get(running.http_port, "/metrics")[0] == 404
        wait_for_health(running.http_port, "kubedns", 200, 5)
        metrics = wait_for_metrics(
            running.http_port,
            lambda m: m.value("foo_dnsmasq_errors") >= 2,
            5,
            "failed statistics polls counted",
            path="/custom/metrics",
        )
        assert metrics.types["foo_probe_kubedns_latency_ms"] == "histogram"
        assert metrics.value("foo_probe_kubedns_errors") == 0
        assert metrics.value("foo_probe_latency_seconds_count", probe="kubedns") >= 1
        assert metrics.value("foo_probe_errors_total", probe="kubedns") == 0
        assert metrics.value("foo_probe_up", probe="kubedns") == 1
        for stat in ("hits", "misses", "evictions", "insertions", "max_size"):
            assert metrics.value(f"foo_dnsmasq_{stat}") == 0
        assert not [name for name in metrics.names() if name.startswith("kubedns_")]
        # Failing polls are logged once, not every 100 ms.
        assert running.log_text().count("polling the cache's statistics failed") == 1
        assert stop(running) == 0
    assert "Traceback" not in running.log_text()


def test_a_probe_whose_name_is_no_dns_name_harms_no_other(dead_port: int) -> None:
    """Such a name once passed the flags and its first run ended every probe (an exception out of the
    Prober's TaskGroup). Now it is refused at start; were it not, it must fail alone."""
    bad = "kubernetes..svc.cluster.local"
    running = start_module(
        "probe",
        [
            *("--prometheus-addr", HOST, "--prometheus-port", "0"),
            f"--probe=bad,127.0.0.1:{dead_port},{bad},1",
            f"--probe=good,127.0.0.1:{dead_port},{KUBERNETES},1",
            f"--dnsmasq-port={dead_port}",
        ],
    )
    try:
        # Either refused at start, naming it, or a failing probe of its own: never the end of the others.
        started = running.wait_for_log(r"health and metrics on port (\d+)|kubedns-probe: error: .*")
        if started.group(1) is None:
            assert bad in started.group(0) and running.process.wait(5) == 2
        else:
            port = int(started.group(1))
            # The good probe's runs come at most 1 s apart; the bad one's first run comes within 1 s.
            wait_for_metrics(port, lambda m: m.value("kubedns_probe_good_errors") >= 3, 4.5, "good probing")
            status, body = health(port, "bad")
            assert status == 503 and body["Err"] != WAITING
    finally:
        code = stop(running)
    assert code in (0, 2) and "Traceback" not in running.log_text()
