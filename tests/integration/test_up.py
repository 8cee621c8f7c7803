"""``kubedns-py up``: serve, cache and probe as three processes wired as in the pod.

Every port is given explicitly (free ones picked here) and the upstream is a test nameserver. The banner
is read back and its ``dig`` lines are run as printed; its health check and metrics URLs answer; Ctrl-C,
SIGINT and SIGTERM stop all three children and exit 0; a child that dies, or cannot start, takes the
pod down, non-zero.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.dig import Dig, dig_command
from tests.support.http import health, http_get, wait_for_health
from tests.support.internet import WWW_ADDRESS, nameserver
from tests.support.metrics import wait_for_metrics
from tests.support.nameservers import TestNameserver, run_in_thread
from tests.support.paths import DEMO_CLUSTER
from tests.support.ports import free_ports
from tests.support.processes import Running, start_module
from tests.support.procfs import alive, child_pids, command_line, pids_with_argument

PORT_FLAGS = (
    "--cache-port",
    "--serve-port",
    "--serve-health-port",
    "--serve-metrics-port",
    "--cache-metrics-port",
    "--probe-port",
)
READY_WITHIN = 20.0
STOP_WITHIN = 15.0
BANNER_HELD = 8.0  # seconds the banner must not come while the probes fail


@dataclass
class Up:
    running: Running
    ports: dict[str, int]
    children: dict[str, int]  # name -> pid

    @property
    def pid(self) -> int:
        return self.running.process.pid

    def banner_lines(self, command: str) -> list[str]:
        text = self.running.log_text()
        return re.findall(rf"^\s+({command} .+)$", text[text.index("kubedns-py is up") :], re.M)


def launch(upstream: TestNameserver, *extra: str, new_session: bool = False, **chosen: int) -> Up:
    """``kubedns-py up`` on free ports (or those ``chosen``, by flag name: ``serve_port=...``)."""
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    ports |= {"--" + flag.replace("_", "-"): port for flag, port in chosen.items()}
    args = ["up", "--address", "127.0.0.1", *(f"{flag}={port}" for flag, port in ports.items())]
    args += [f"--server={upstream.address}", *extra]
    running = start_module("kubedns_py", args, new_session=new_session)
    return Up(running, ports, {})


def start_up(upstream: TestNameserver, *extra: str, new_session: bool = False) -> Up:
    """``kubedns-py up``, once it printed its banner."""
    up = launch(upstream, *extra, new_session=new_session)
    running = up.running
    try:
        running.wait_for_log(r"Ctrl-C stops all three", READY_WITHIN)
        running.http_port = up.ports["--probe-port"]
        for pid in child_pids(up.pid):
            role = next(word for word in ("serve", "cache", "probe") if word in command_line(pid))
            up.children[role] = pid
        assert set(up.children) == {"serve", "cache", "probe"}, up.children
    except BaseException:
        stop_up(up)
        raise
    return up


def stop_up(up: Up) -> int:
    """Stop ``up`` (SIGTERM) if it runs, and make sure none of its children outlives the test."""
    process = up.running.process
    children = set(up.children.values()) | set(child_pids(up.pid) if process.poll() is None else [])
    if process.poll() is None:
        process.terminate()
    try:
        code = process.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(STOP_WITHIN)
    for pid in children:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return code


@contextlib.contextmanager
def running_up(upstream: TestNameserver, *extra: str, new_session: bool = False) -> Iterator[Up]:
    up = start_up(upstream, *extra, new_session=new_session)
    try:
        yield up
    finally:
        stop_up(up)


def assert_all_gone(up: Up) -> None:
    for role, pid in up.children.items():
        assert not alive(pid), f"{role} (pid {pid}) still runs"
    # Nothing else holds the pod's ports either (as `pgrep -f` with the unique ports would show).
    serve_port, cache_port = up.ports["--serve-port"], up.ports["--cache-port"]
    assert pids_with_argument(f"--dns-port={serve_port}") == []
    assert pids_with_argument(f"--port={cache_port}") == []
    assert pids_with_argument(f"--prometheus-port={up.ports['--probe-port']}") == []


@pytest.fixture(scope="module")
def upstream() -> Iterator[TestNameserver]:
    with run_in_thread(nameserver()) as ns:
        yield ns


@pytest.fixture(scope="module")
def pod(upstream: TestNameserver) -> Iterator[Up]:
    with running_up(upstream) as up:
        yield up


# -- what the banner offers ----------------------------------------------------------------------------

CLUSTER = "svc.cluster.local"
DIGS = {
    f"myservice.default.{CLUSTER}": "cluster name",
    f"_http._tcp.myservice.default.{CLUSTER} SRV": "SRV",
    f"db.shop.{CLUSTER}": "headless",
    f"search.default.{CLUSTER}": "ExternalName",
    "-x 10.96.100.10": "PTR",
    "CH TXT hits.bind": "statistics",
}


def check_answer(kind: str, reply: Dig) -> None:
    assert reply.status == "NOERROR", reply.text
    if kind == "cluster name":
        assert reply.answer == [(f"myservice.default.{CLUSTER}.", "A", "10.96.100.10")]
    elif kind == "SRV":
        assert reply.data("SRV") == {f"0 100 80 myservice.default.{CLUSTER}."}
    elif kind == "headless":
        assert reply.data("A") == {"10.244.2.10", "10.244.2.11"}  # the ready endpoints only
    elif kind == "ExternalName":
        assert reply.data("CNAME") == {"www.example.com."}
        assert reply.data("A") == {WWW_ADDRESS}  # the target, from the upstream
    elif kind == "PTR":
        assert reply.answer == [("10.100.96.10.in-addr.arpa.", "PTR", f"myservice.default.{CLUSTER}.")]
    elif kind == "statistics":
        (value,) = reply.data("TXT")
        assert re.fullmatch(r'"\d+"', value)


def test_banner_offers_digs_through_the_cache(pod: Up) -> None:
    lines = pod.banner_lines("dig")
    prefix = f"dig @127.0.0.1 -p {pod.ports['--cache-port']} "
    assert all(line.startswith(prefix) for line in lines), lines
    assert set(DIGS) <= {line.removeprefix(prefix) for line in lines}
    for line in lines:  # and any the banner may offer beyond these
        assert dig_command(line).status == "NOERROR", line


@pytest.mark.parametrize("question", DIGS, ids=list(DIGS.values()))
def test_banner_dig_answers(pod: Up, upstream: TestNameserver, question: str) -> None:
    (line,) = [line for line in pod.banner_lines("dig") if line.endswith(f" {question}")]
    check_answer(DIGS[question], dig_command(line))
    if DIGS[question] == "ExternalName":
        assert upstream.queries_for("www.example.com.", "A")  # the target came from upstream


def test_banner_offers_only_digs_that_fit_the_manifests_given(
    upstream: TestNameserver, tmp_path: Path
) -> None:
    """Someone's own manifests: not the demo cluster's names, but the Service the probes ask for."""
    cluster = yaml.safe_load(DEMO_CLUSTER.read_text())
    mine = {("Namespace", "default"), ("Namespace", "shop"), ("Service", "kubernetes"), ("Service", "db")}
    cluster["items"] = [i for i in cluster["items"] if (i["kind"], i["metadata"]["name"]) in mine]
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cluster))
    with running_up(upstream, f"--manifests={tmp_path / 'mine.yaml'}") as up:
        lines = up.banner_lines("dig")
        prefix = f"dig @127.0.0.1 -p {up.ports['--cache-port']} "
        assert [line.removeprefix(prefix) for line in lines] == [
            f"kubernetes.default.{CLUSTER}",
            "CH TXT hits.bind",
        ]
        for line in lines:
            assert dig_command(line).status == "NOERROR", line


def test_banner_health_check_and_metrics(pod: Up) -> None:
    probe_port = pod.ports["--probe-port"]
    urls = pod.banner_lines("curl")
    assert urls[0] == f"curl http://127.0.0.1:{probe_port}/healthcheck/kubedns"
    # The probe asks every 5 s, its first run at a random moment within that.
    body = wait_for_health(probe_port, "kubedns", 200, 8)
    assert body["IsOk"] is True and body["Err"] == ""
    for url in urls[1:]:
        match = re.fullmatch(r"curl http://127\.0\.0\.1:(\d+)(/\S+)", url)
        assert match, url
        status, text = http_get(int(match.group(1)), match.group(2))
        assert status == 200 and "# TYPE" in text, url
    # The probe's metrics: its own and the cache's statistics (polled every 5 s; the first poll may come
    # before the cache listens).
    metrics = wait_for_metrics(
        probe_port, lambda m: m.get("kubedns_dnsmasq_max_size") == 1000, 12, "cache polled"
    )
    assert metrics.value("kubedns_probe_kubedns_latency_ms_count") >= 1
    assert metrics.value("kubedns_probe_up", probe="kubedns") == 1
    # (A first run before serve listened may have failed: the three start together.)
    errors = metrics.value("kubedns_probe_kubedns_errors")
    assert metrics.value("kubedns_probe_errors_total", probe="kubedns") == errors <= 1
    for name in ("hits", "misses", "insertions", "evictions", "errors"):
        assert f"kubedns_dnsmasq_{name}" in metrics.names()
    assert wait_for_health(probe_port, "dnsmasq", 200, 8)["IsOk"] is True


def test_child_logs_are_prefixed(pod: Up) -> None:
    text = pod.running.log_text()
    for role in ("serve", "cache", "probe"):
        assert re.search(rf"^\[{role}\] \S+ \S+ INFO ", text, re.M), role


# -- stopping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "Ctrl-C"])
def test_signal_stops_all_three(upstream: TestNameserver, how: str) -> None:
    with running_up(upstream, new_session=how == "Ctrl-C") as up:
        if how == "Ctrl-C":  # the terminal signals the whole foreground process group
            os.killpg(up.pid, signal.SIGINT)
        else:
            up.running.process.send_signal(getattr(signal, how))
        assert up.running.process.wait(STOP_WITHIN) == 0, up.running.log_text()[-2000:]
        assert_all_gone(up)
        text = up.running.log_text()
        for role in ("serve", "cache", "probe"):  # each stopped cleanly, not killed
            assert re.search(rf"^\[{role}\] .* stopping$", text, re.M), role
        assert "exited" not in text and "Traceback" not in text


def test_a_child_that_dies_takes_the_pod_down(upstream: TestNameserver) -> None:
    with running_up(upstream) as up:
        (serve_pid,) = pids_with_argument(f"--dns-port={up.ports['--serve-port']}")
        assert serve_pid == up.children["serve"]
        os.kill(serve_pid, signal.SIGKILL)
        code = up.running.process.wait(STOP_WITHIN)
        text = up.running.log_text()
        assert code != 0
        assert "up: serve exited with code -9; stopping the others" in text
        assert_all_gone(up)


def test_a_child_that_cannot_start_takes_the_pod_down(upstream: TestNameserver) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        up = launch(upstream, serve_port=port)
        try:
            code = up.running.process.wait(READY_WITHIN)
        finally:
            stop_up(up)
    text = up.running.log_text()
    assert code == 1, text
    assert f"[serve] kubedns-py serve: [Errno 98] port {port} (--dns-port): Address already in use" in text
    assert "up: serve exited with code 1; stopping the others" in text
    assert "kubedns-py is up" not in text
    assert_all_gone(up)


def test_banner_waits_until_the_probe_saw_both_servers_answer(
    upstream: TestNameserver, tmp_path: Path
) -> None:
    # A cluster without the API server's Service: the probes' question (its SRV) is NXDOMAIN for good.
    cluster = yaml.safe_load(DEMO_CLUSTER.read_text())
    api = {("Service", "kubernetes"), ("Endpoints", "kubernetes")}
    cluster["items"] = [i for i in cluster["items"] if (i["kind"], i["metadata"]["name"]) not in api]
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    up = launch(upstream, f"--manifests={tmp_path / 'cluster.yaml'}")
    try:
        # serve, cache and probe's own HTTP are up within a few seconds; the banner must still not come.
        deadline = time.monotonic() + BANNER_HELD
        while time.monotonic() < deadline and "kubedns-py is up" not in up.running.log_text():
            time.sleep(0.1)
        # The pod itself is up: only the probes fail.
        assert up.running.process.poll() is None, up.running.log_text()
        assert http_get(up.ports["--serve-health-port"], "/readiness")[0] == 200
        status, body = health(up.ports["--probe-port"], "kubedns")
        assert status == 503, body
        assert "kubedns-py is up" not in up.running.log_text(), body
    finally:
        stop_up(up)
