"""deploy/prometheus/ and deploy/grafana/: the rules and the scrape configuration pass promtool, the
alerts fire as their unit tests say, the dashboard's queries parse, and every metric they use is one
that serve, cache or probe really exposes (all three run here, on loopback, against the API server
double and a scripted upstream)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.dnsclient import ask
from tests.support.eventloop import Loop
from tests.support.metrics import Metrics, scrape
from tests.support.nameservers import TestNameserver, answer
from tests.support.paths import DASHBOARD, DEMO_CLUSTER, PROMETHEUS_CONFIG, ROOT, RULES, RULES_TEST
from tests.support.processes import Running, start_cache, start_probe, start_serve, stop
from tests.support.prometheus import promtool
from tests.support.promql import metric_names
from tests.support.waiting import wait_until

PROMETHEUS_GENERATED = {"up"}  # written by Prometheus for each target, never exposed by one
# The k8s-dns-sidecar's histogram names, kept so kube-dns dashboards still work: promtool's lint
# dislikes the "ms" in them, and nothing else is allowed to fail it.
LEGACY_LINT = re.compile(r"^kubedns_probe_\w+_latency_ms metric names should not contain abbreviated units$")
PANEL_TOPICS = ("type", "protocol", "rcode", "hit ratio", "cache size", "upstream", "probe", "memory", "cpu")


# -- rules and configuration ---------------------------------------------------------------------------


def test_rules_pass_promtool() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_alerts_fire_as_their_unit_tests_say() -> None:
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_says_what_to_check() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert len(alerts) == len([r for r in rules if "alert" in r]), "alert names are unique"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert len(rule["annotations"].get("runbook", "")) > 40, f"{name}: no runbook"
        assert rule["annotations"].get("summary"), name
    exprs = " ".join(r["expr"] for r in rules)
    for required in (
        'absent(up{job="kube-dns-serve"} == 1)',
        "kubedns_probe_up == 0",
        "kubedns_kubernetes_since_last_contact_seconds > 300",
        "rate(kubedns_cache_forward_rejected_total[5m])",
        'rcode="SERVFAIL"',
        "histogram_quantile(0.99",
    ):
        assert required in exprs


def header_command(path: Path) -> list[str]:
    """The command the file's header comments give for checking it (``#   promtool ...``)."""
    (command,) = [
        line.removeprefix("#").split() for line in path.read_text().splitlines() if line.startswith("#   ")
    ]
    return command


def header_quotes(path: Path, message: str) -> bool:
    header = " ".join(
        line.removeprefix("#").strip() for line in path.read_text().splitlines() if line.startswith("#")
    )
    return f'"{message}"' in header


DEBIAN_PROMTOOL = "field kubernetes_sd_configs not found"  # Debian builds it without Kubernetes discovery


def test_scrape_configuration_passes_the_check_its_header_names() -> None:
    program, *args = header_command(PROMETHEUS_CONFIG)
    assert program == "promtool" and args == ["check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))]
    done = promtool(*args, cwd=ROOT)
    if done.returncode != 0 and DEBIAN_PROMTOOL in done.stdout + done.stderr:
        assert header_quotes(PROMETHEUS_CONFIG, DEBIAN_PROMTOOL), "the header says which promtool fails so"
        pytest.skip(
            "this promtool has no Kubernetes service discovery (Debian's, as the header says): "
            "the file is checked with a static target instead"
        )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_configuration_passes_promtool_with_a_static_target(tmp_path: Path) -> None:
    """Everything but the discovery, with any promtool: each job's pod discovery swapped for a static
    target."""
    parsed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in parsed["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] == "pod"
        job["static_configs"] = [{"targets": ["127.0.0.1:9153"]}]
    config = tmp_path / "prometheus.yaml"
    config.write_text(yaml.safe_dump(parsed))
    shutil.copy(RULES, tmp_path / RULES.name)  # rule_files are relative to the configuration
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {job["job_name"] for job in parsed["scrape_configs"]}
    rule_jobs = set(re.findall(r'job="([^"]+)"', RULES.read_text()))
    assert rule_jobs <= jobs, "the alerts name jobs the scrape configuration defines"


# -- the dashboard -----------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_dashboard_structure() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in PANEL_TOPICS:
        assert topic in titles, topic


def grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$job", ".+").replace("$instance", ".+")


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses every query (Grafana's variables replaced), written as recording rules."""
    queries = [grafana_to_promql(e) for e in dashboard_exprs()]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            selector = re.fullmatch(r"label_values\((.*), *\w+\)", variable["definition"])
            assert selector, variable["definition"]
            queries.append(grafana_to_promql(selector.group(1)))
    records = [{"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) > 1',
            {"a_bucket"},
        ),
        ('absent(up{job="x"} == 1)', {"up"}),
        ("sum(rate(a_total[5m])) by (job) / on(job) group_left(instance) b", {"a_total", "b"}),
        ('count by (to) (c{le="0.5", x="sum(y)"} == 0) offset 1h and d', {"c", "d"}),
        ("e:recorded + 1e3 * f", {"e:recorded", "f"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# -- the real components -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposition() -> Iterator[dict[str, Metrics]]:
    """/metrics of serve (following the API double), cache and probe after some real traffic; serve and
    the cache with CoreDNS's series too."""
    loop = Loop()
    api = FakeApiServer(bookmark_interval=0.2)
    upstream = TestNameserver()
    upstream.script("www.example.com", "A", answer("www.example.com. 300 IN A 192.0.2.1"))
    running: list[Running] = []
    config_dir = tempfile.TemporaryDirectory()
    try:
        loop.run(api.start())
        for resource, item in objects.manifest_objects(DEMO_CLUSTER):
            api.create(resource, item)
        loop.run(upstream.start())
        serve = start_serve("--kube-master-url", api.url, "--coredns-metrics", manifests=())
        running.append(serve)
        wait_until(lambda: scrape(serve.metrics_port).get("kubedns_store_synced") == 1, 10, "serve to sync")
        # A watched endpoint change with its trigger time: the DNS programming latency histogram.
        slice_ = objects.changed_endpoint_slice("myservice-x", "myservice", "10.244.9.9", ago=1.0)
        loop.call(api.create, "endpointslices", slice_)
        cache = start_cache(
            *(f"--server=/{zone}/127.0.0.1#{serve.dns_port}" for zone in ("cluster.local", "in-addr.arpa")),
            "--no-resolv",
            f"--server={upstream.address}",
            "--config-dir",
            config_dir.name,
            "--no-negcache",
            "--coredns-metrics",
        )
        running.append(cache)
        for name in ("www.example.com.", "www.example.com.", "myservice.default.svc.cluster.local."):
            assert ask(name, "A", cache.dns_port).answer, name  # a forward, a hit, a cluster name
        ask("myservice.default.svc.cluster.local.", "AAAA", serve.dns_port)
        probe = start_probe(
            f"--probe=kubedns,127.0.0.1:{serve.dns_port},kubernetes.default.svc.cluster.local,1,SRV",
            f"--probe=dnsmasq,127.0.0.1:{cache.dns_port},kubernetes.default.svc.cluster.local,1,SRV",
            "--dnsmasq-port",
            str(cache.dns_port),
            "--dnsmasq-poll-interval-ms",
            "200",
        )
        running.append(probe)
        wait_until(lambda: passing(scrape(probe.metrics_port)), 10, "both probes to pass")
        programming = "kubedns_kubernetes_dns_programming_duration_seconds_count"
        wait_until(lambda: programming in scrape(serve.metrics_port).names(), 10, "the programming latency")
        yield {
            name: scrape(r.metrics_port) for name, r in zip(("serve", "cache", "probe"), running, strict=True)
        }
    finally:
        for process in reversed(running):
            stop(process)
        loop.run(upstream.stop())
        loop.run(api.stop())
        loop.close()
        config_dir.cleanup()


def passing(probe: Metrics) -> bool:
    return all(probe.get("kubedns_probe_up", probe=label) == 1 for label in ("kubedns", "dnsmasq"))


def used_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is used (dashboard panel or alert)."""
    used: dict[str, set[str]] = {}
    board = dashboard()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(rule.get("alert") or rule.get("record"))
    return used


def test_dashboard_and_alerts_use_only_exposed_metrics(exposition: dict[str, Metrics]) -> None:
    exposed: dict[str, str] = {}
    for metrics in exposition.values():
        exposed.update(metrics.sample_types)
    used = used_metrics()
    assert len(used) >= 20, sorted(used)
    missing = {
        name: sorted(where)
        for name, where in used.items()
        if name not in exposed and name not in PROMETHEUS_GENERATED
    }
    assert not missing, f"used but exposed by no component: {missing}"
    for name in used:
        if name.endswith(("_bucket", "_sum", "_count")) and name in exposed:
            assert exposed[name] == "histogram", f"{name} is not part of a histogram"


def test_coredns_programming_duration_is_exposed(exposition: dict[str, Metrics]) -> None:
    """CoreDNS's name for the DNS programming latency, with its buckets (1 ms doubling, 20 of them)
    and service_kind, read from the API source's own histogram."""
    name = "coredns_kubernetes_dns_programming_duration_seconds"
    serve = exposition["serve"]
    assert serve.types[name] == "histogram"
    buckets = [s for s in serve.families[name] if s.name == name + "_bucket"]
    assert {s.labels["service_kind"] for s in buckets} == {"cluster_ip", "headless_with_selector"}
    assert [float(s.labels["le"]) for s in buckets if s.labels["service_kind"] == "cluster_ip"][:-1] == [
        0.001 * 2**i for i in range(20)
    ]
    ours = serve.families["kubedns_kubernetes_dns_programming_duration_seconds"]
    assert [s.value for s in buckets] == [s.value for s in ours if s.name.endswith("_bucket")]


def test_process_metrics_are_exposed(exposition: dict[str, Metrics]) -> None:
    """The dashboard's memory and CPU panels read process_resident_memory_bytes and
    process_cpu_seconds_total, which prometheus_client's ProcessCollector provides on Linux, but only
    in the registry it is registered with."""
    wanted = {name for name in used_metrics() if name.startswith("process_")}
    assert wanted == {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    lacking = sorted(c for c, metrics in exposition.items() if not wanted <= metrics.names())
    assert not lacking, f"{', '.join(lacking)} export no process_* metrics"


@pytest.mark.parametrize("component", ["serve", "cache", "probe"])
def test_live_metrics_pass_promtool(exposition: dict[str, Metrics], component: str) -> None:
    done = promtool("check", "metrics", stdin=exposition[component].text)
    problems = [
        line.strip()
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and not LEGACY_LINT.match(line.strip())
    ]
    assert done.returncode == 0 or (done.returncode == 3 and not problems), "\n".join(problems)
    assert not problems, "\n".join(problems)
