"""The dashboards and the alerts against a real Prometheus (Debian's 2.42): ``kubedns-py up
--coredns-metrics`` follows the API server double, Prometheus scrapes its three metrics ports every
second under the job names of deploy/prometheus/prometheus.yaml, with deploy/prometheus/rules.yaml and
the coredns-mixin's alerts loaded. After a few hundred queries through the cache every panel query of
deploy/grafana/kubedns.json returns data (or is one of those empty by design while the pod is healthy),
so does every panel query of the CoreDNS dashboard, and no alert fires."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
import yaml

from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.eventloop import Loop
from tests.support.internet import nameserver
from tests.support.nameservers import TestNameserver, servfail
from tests.support.paths import DASHBOARD, DEMO_CLUSTER, PROMETHEUS_CONFIG, ROOT, RULES
from tests.support.ports import free_ports
from tests.support.processes import Running, start_module, started, stop
from tests.support.prometheus import Prometheus, running_prometheus

# Grafana's variables as the dashboard's "All" selects them; 30s spans the whole run at 1s scrapes.
RATE = "30s"
VARIABLES = {"$__rate_interval": RATE, "$job": ".+", "$instance": ".+"}
# Panel queries that count what is wrong: nothing, while the pod is healthy.
EMPTY_BY_DESIGN = {
    "count by (to) (kubedns_forward_upstream_up": "no upstream is out of service",
    "count by (probe) (kubedns_probe_up": "no probe is failing",
}
# The CoreDNS dashboard as it reads the cache, the container Pods ask (its queries select one job).
COREDNS_DASHBOARD = ROOT / "tests" / "data" / "coredns-dashboard.yaml"
COREDNS_VARIABLES = {"$__rate_interval": RATE, "$job": "kube-dns-cache", "$instance": ".+"}
COREDNS_ALERTS = ROOT / "tests" / "data" / "coredns-mixin-alerts.yaml"
UP_READY_WITHIN = 30.0
PORTS = ("dns", "serve-dns", "serve-health", "serve", "cache", "probe")  # serve/cache/probe: metrics
ROUNDS = 30  # of the questions below and two fresh names, through the cache; every fifth over TCP
CLUSTER = "svc.cluster.local"
QUESTIONS = [
    (f"myservice.default.{CLUSTER}", "A"),
    (f"myservice.default.{CLUSTER}", "AAAA"),
    (f"kubernetes.default.{CLUSTER}", "DO A"),  # a validating client: the DO bit set
    (f"_http._tcp.myservice.default.{CLUSTER}", "SRV"),
    (f"db.shop.{CLUSTER}", "A"),
    (f"search.default.{CLUSTER}", "A"),  # ExternalName: its target comes from upstream
    ("10.100.96.10.in-addr.arpa", "PTR"),
    (f"nosuch.default.{CLUSTER}", "A"),  # NXDOMAIN from serve
    ("www.example.com", "A"),
    ("nosuch.example.com", "A"),  # NXDOMAIN from upstream
]
FAILING = ("broken.example.com", "A")  # SERVFAIL from upstream: asked twice, under 1% of replies
TCP_QUERIES_SENT = ROUNDS // 5 * (len(QUESTIONS) + 2) + 1  # and the warm-up question


def job_ports(ports: dict[str, int]) -> dict[str, list[int]]:
    """The deploy configuration's job names, by the container port each job keeps."""
    jobs = {}
    for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]:
        keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
        kept = re.fullmatch(r"kube-dns;(serve|cache|probe)-metrics", keep["regex"])
        if kept:
            jobs[job["job_name"]] = [ports[kept.group(1)]]
    assert len(jobs) == 3, jobs
    return jobs


def with_variables(expr: str, variables: dict[str, str]) -> str:
    for variable, value in variables.items():
        expr = expr.replace(variable, value)
    return expr


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query with Grafana's variables replaced) for every target of every panel."""
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], with_variables(target["expr"], VARIABLES))
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def coredns_panel_queries() -> list[tuple[str, str]]:
    panels: dict[str, list[str]] = yaml.safe_load(COREDNS_DASHBOARD.read_text())
    return [
        (title, with_variables(expr, COREDNS_VARIABLES)) for title, exprs in panels.items() for expr in exprs
    ]


def ask(port: int, name: str, rdtype: str, tcp: bool = False) -> int:
    dnssec, _, rdtype = rdtype.rpartition(" ")
    query = dns.message.make_query(name, rdtype, want_dnssec=dnssec == "DO")
    send = dns.query.tcp if tcp else dns.query.udp
    return int(send(query, "127.0.0.1", port=port, timeout=3).rcode())


def traffic(cache_port: int) -> dict[str, int]:
    """362 questions: cluster names (some with the DO bit), NXDOMAIN from serve and upstream, hits and
    misses (fresh names each round), every fifth round over TCP, and an upstream that fails one name.
    Rcode counts."""
    rcodes: dict[str, int] = {}
    for round_ in range(ROUNDS):
        fresh = [(f"new{round_}.default.{CLUSTER}", "A"), (f"new{round_}.example.com", "A")]
        for name, rdtype in [*QUESTIONS, *fresh]:
            rcode = dns.rcode.to_text(ask(cache_port, name, rdtype, tcp=round_ % 5 == 0))
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
    for _ in range(2):
        assert ask(cache_port, *FAILING) == dns.rcode.SERVFAIL
    return rcodes


def start_up(api: FakeApiServer, upstream: TestNameserver, ports: dict[str, int]) -> Running:
    args = [
        "up",
        "--address=127.0.0.1",
        f"--cache-port={ports['dns']}",
        f"--serve-port={ports['serve-dns']}",
        f"--serve-health-port={ports['serve-health']}",
        f"--serve-metrics-port={ports['serve']}",
        f"--cache-metrics-port={ports['cache']}",
        f"--probe-port={ports['probe']}",
        f"--kube-master-url={api.url}",
        f"--server={upstream.address}",
        "--coredns-metrics",
    ]
    banner = r"Ctrl-C stops all three"
    return started(start_module("kubedns_py", args), lambda up: up.wait_for_log(banner, UP_READY_WITHIN))


def finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    loop = Loop()
    api = FakeApiServer(bookmark_interval=0.2)
    upstream = nameserver()
    upstream.script(*FAILING, servfail())
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    up: Running | None = None
    try:
        loop.run(api.start())
        loop.run(upstream.start())
        for resource, item in objects.manifest_objects(DEMO_CLUSTER):
            api.create(resource, item)
        up = start_up(api, upstream, ports)
        labels = {"pod": "kube-dns-live", "node": "localhost"}
        directory = tmp_path_factory.mktemp("prometheus")
        rules = [RULES, COREDNS_ALERTS]
        with running_prometheus(directory, job_ports(ports), labels=labels, rules=rules) as prom:
            # Rates need samples from before the traffic: series that the first TCP or DO query
            # creates would otherwise start with the whole traffic counted.
            assert ask(ports["dns"], f"kubernetes.default.{CLUSTER}", "DO A", tcp=True) == dns.rcode.NOERROR
            prom.wait_for_scrapes(prom.scrapes() + 2)
            # An endpoint change with its trigger time, for the DNS programming latency.
            slice_ = objects.changed_endpoint_slice("myservice-live", "myservice", "10.244.9.9", ago=0.2)
            loop.call(api.create, "endpointslices", slice_)
            rcodes = traffic(ports["dns"])
            assert rcodes.keys() == {"NOERROR", "NXDOMAIN"}, rcodes
            prom.wait_for_scrapes(prom.scrapes() + 3)
            # The probe asks every 5 s: both probes ran since the first scrape.
            prom.wait_for(f"count(increase(kubedns_probe_latency_seconds_count[{RATE}]) > 0) == 2")
            yield prom
    finally:
        if up is not None:
            stop(up)
        loop.run(upstream.stop())
        loop.run(api.stop())
        loop.close()


QUERIES = panel_queries()


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{i}:{t}" for i, (t, _) in enumerate(QUERIES)])
def test_dashboard_query_returns_data(prometheus: Prometheus, title: str, expr: str) -> None:
    result = prometheus.query(expr)
    empty_by_design = [why for prefix, why in EMPTY_BY_DESIGN.items() if expr.startswith(prefix)]
    if empty_by_design:
        assert result == [], f"{title}: {empty_by_design[0]}, yet {result}"
    else:
        assert finite(result), f"{title}: no data for {expr}: {result}"


COREDNS_QUERIES = coredns_panel_queries()


@pytest.mark.parametrize(
    ("title", "expr"), COREDNS_QUERIES, ids=[f"{i}:{t}" for i, (t, _) in enumerate(COREDNS_QUERIES)]
)
def test_coredns_dashboard_query_returns_data(prometheus: Prometheus, title: str, expr: str) -> None:
    assert finite(prometheus.query(expr)), f"{title}: no data for {expr}"


def test_coredns_dashboard_counts_the_queries_sent(prometheus: Prometheus) -> None:
    """Not merely some data: the cache's CoreDNS request counter saw every TCP query of the traffic
    (the probe's own questions come over UDP)."""
    (sample,) = prometheus.query('sum(coredns_dns_requests_total{job="kube-dns-cache",proto="tcp"})')
    assert float(sample["value"][1]) == TCP_QUERIES_SENT


def test_empty_by_design_queries_are_on_the_dashboard() -> None:
    for prefix in EMPTY_BY_DESIGN:
        assert any(expr.startswith(prefix) for _, expr in QUERIES), prefix


def test_dashboard_job_variable_lists_the_three_jobs(prometheus: Prometheus) -> None:
    jobs = prometheus.api("label/job/values", **{"match[]": '{__name__=~"kubedns_.+"}'})
    assert set(job_ports({"serve": 0, "cache": 0, "probe": 0})) <= set(jobs)


def test_no_alert_fires(prometheus: Prometheus) -> None:
    """Ours and the coredns-mixin's: every rule loaded, evaluated and healthy, none firing."""
    files = (RULES, COREDNS_ALERTS)
    rules = [r for path in files for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    groups = prometheus.rule_groups()
    assert sum(len(group["rules"]) for group in groups) == len(rules)
    for group in groups:
        assert all(rule["health"] == "ok" for rule in group["rules"]), group["rules"]
        assert not group["lastEvaluation"].startswith("0001-"), f"{group['name']} was evaluated"
    alerts = prometheus.alerts()
    print("pending alerts:", [a["labels"]["alertname"] for a in alerts if a["state"] == "pending"])
    assert [a["labels"] for a in alerts if a["state"] == "firing"] == []
