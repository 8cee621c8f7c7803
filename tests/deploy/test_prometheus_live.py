"""The dashboard and the alerts against a real Prometheus (Debian's 2.42): ``kubedns-py up`` follows the
API server double, Prometheus scrapes its three metrics ports every second under the job names of
deploy/prometheus/prometheus.yaml with deploy/prometheus/rules.yaml loaded, and after a few hundred
queries through the cache every panel query of deploy/grafana/kubedns.json returns data (or is one of
those empty by design while the pod is healthy) and no alert fires."""

from __future__ import annotations

import datetime
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
from tests.support.paths import DASHBOARD, DEMO_CLUSTER, PROMETHEUS_CONFIG, RULES
from tests.support.ports import free_port
from tests.support.processes import Running as Process
from tests.support.processes import start_module, stop
from tests.support.prometheus import Prometheus, running_prometheus

# Grafana's variables as the dashboard's "All" selects them; 30s spans the whole run at 1s scrapes.
RATE = "30s"
VARIABLES = {"$__rate_interval": RATE, "$job": ".+", "$instance": ".+"}
# Panel queries that count what is wrong: nothing, while the pod is healthy.
EMPTY_BY_DESIGN = {
    "count by (to) (kubedns_forward_upstream_up": "no upstream is out of service",
    "count by (probe) (kubedns_probe_up": "no probe is failing",
}
UP_READY_WITHIN = 30.0
PORTS = ("dns", "serve-dns", "serve-health", "serve", "cache", "probe")  # serve/cache/probe: metrics
ROUNDS = 30  # of the questions below, through the cache: 330 queries
CLUSTER = "svc.cluster.local"
QUESTIONS = [
    (f"myservice.default.{CLUSTER}", "A"),
    (f"myservice.default.{CLUSTER}", "AAAA"),
    (f"_http._tcp.myservice.default.{CLUSTER}", "SRV"),
    (f"db.shop.{CLUSTER}", "A"),
    (f"search.default.{CLUSTER}", "A"),  # ExternalName: its target comes from upstream
    ("10.100.96.10.in-addr.arpa", "PTR"),
    (f"nosuch.default.{CLUSTER}", "A"),  # NXDOMAIN from serve
    ("www.example.com", "A"),
    ("nosuch.example.com", "A"),  # NXDOMAIN from upstream
]
FAILING = ("broken.example.com", "A")  # SERVFAIL from upstream: asked twice, under 1% of replies


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


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query with Grafana's variables replaced) for every target of every panel."""
    board = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def ask(port: int, name: str, rdtype: str, tcp: bool = False) -> int:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return int(send(query, "127.0.0.1", port=port, timeout=3).rcode())


def traffic(cache_port: int) -> dict[str, int]:
    """332 questions: cluster names, NXDOMAIN from serve and upstream, hits and misses (fresh names
    each round), every fifth round over TCP, and an upstream that fails one name. Rcode counts."""
    rcodes: dict[str, int] = {}
    for round_ in range(ROUNDS):
        fresh = [(f"new{round_}.default.{CLUSTER}", "A"), (f"new{round_}.example.com", "A")]
        for name, rdtype in [*QUESTIONS, *fresh]:
            rcode = dns.rcode.to_text(ask(cache_port, name, rdtype, tcp=round_ % 5 == 0))
            rcodes[rcode] = rcodes.get(rcode, 0) + 1
    for _ in range(2):
        assert ask(cache_port, *FAILING) == dns.rcode.SERVFAIL
    return rcodes


def start_up(api: FakeApiServer, upstream: TestNameserver, ports: dict[str, int]) -> Process:
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
    ]
    up = start_module("kubedns_py", args)
    try:
        up.wait_for_log(r"Ctrl-C stops all three", UP_READY_WITHIN)
    except BaseException:
        stop(up)
        raise
    return up


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
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(PORTS):
        ports = {name: free_port() for name in PORTS}
    up: Process | None = None
    try:
        loop.run(api.start())
        loop.run(upstream.start())
        for resource, item in objects.manifest_objects(DEMO_CLUSTER):
            api.create(resource, item)
        up = start_up(api, upstream, ports)
        labels = {"pod": "kube-dns-live", "node": "localhost"}
        directory = tmp_path_factory.mktemp("prometheus")
        with running_prometheus(directory, job_ports(ports), labels=labels, rules=[RULES]) as prom:
            prom.wait_for_scrapes(2)  # rates need samples from before the traffic
            # An endpoint change with its trigger time, for the DNS programming latency.
            changed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(milliseconds=200)
            stamp = changed.strftime("%Y-%m-%dT%H:%M:%SZ")
            slice_ = objects.endpoint_slice("myservice-live", "myservice", ["10.244.9.9"], trigger_time=stamp)

            async def create() -> None:
                api.create("endpointslices", slice_)

            loop.run(create())
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


def test_empty_by_design_queries_are_on_the_dashboard() -> None:
    for prefix in EMPTY_BY_DESIGN:
        assert any(expr.startswith(prefix) for _, expr in QUERIES), prefix


def test_dashboard_job_variable_lists_the_three_jobs(prometheus: Prometheus) -> None:
    jobs = prometheus.api("label/job/values", **{"match[]": '{__name__=~"kubedns_.+"}'})
    assert set(job_ports({"serve": 0, "cache": 0, "probe": 0})) <= set(jobs)


def test_no_alert_fires(prometheus: Prometheus) -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    (group,) = prometheus.rule_groups()
    assert len(group["rules"]) == len(rules)
    assert all(rule["health"] == "ok" for rule in group["rules"]), group["rules"]
    assert not group["lastEvaluation"].startswith("0001-"), "the rules were evaluated"
    alerts = prometheus.alerts()
    print("pending alerts:", [a["labels"]["alertname"] for a in alerts if a["state"] == "pending"])
    assert [a["labels"] for a in alerts if a["state"] == "firing"] == []
