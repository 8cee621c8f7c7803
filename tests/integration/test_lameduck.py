"""Graceful shutdown: on SIGTERM with ``--lameduck``, /readiness turns 503 at once while DNS goes on
answering for that long; then the process stops reading, answers what it had read, and exits 0."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.support.http import readiness
from tests.support.nameservers import TestNameserver, answer, run_in_thread, slow
from tests.support.ports import HOST
from tests.support.processes import Running, cache, start_cache, start_serve, stop

LAMEDUCK = 2.0
DNSPERF_SECONDS = 1  # sent right after SIGTERM, so it ends well inside the lame-duck window
NAMES = [
    "kubernetes.default.svc.cluster.local A",
    "myservice.default.svc.cluster.local A",
    "_http._tcp.myservice.default.svc.cluster.local SRV",
    "nothing.default.svc.cluster.local A",
]


def sigterm_under_load(running: Running, port: int, health_port: int, tmp_path: Path) -> None:
    """dnsperf against ``port`` across a SIGTERM: nothing lost, 503 meanwhile, then exit status 0."""
    if shutil.which("dnsperf") is None:
        pytest.skip("dnsperf is not installed")
    queries = tmp_path / "queries"
    queries.write_text("\n".join(NAMES) + "\n")
    assert readiness(health_port) == 200
    # Line-buffered, so that its "Sending queries" line comes when it starts, not when it ends.
    command = ["stdbuf", "-oL", "dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries)]
    command += ["-l", str(DNSPERF_SECONDS), "-Q", "3000", "-c", "4", "-t", "1"]
    perf = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert perf.stdout is not None
    output = ""
    while "Sending queries" not in output and (line := perf.stdout.readline()):
        output += line  # its clock starts with the first query sent
    signalled = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    running.wait_for_log("not ready; answering")
    assert readiness(health_port) == 503
    output += perf.stdout.read()
    assert perf.wait(5) == 0, output
    finished = time.monotonic() - signalled
    assert finished < LAMEDUCK, "dnsperf must end inside the lame-duck window"
    assert running.process.poll() is None, "stopped before the lame-duck period was over"
    assert "Queries lost:         0 " in output, output
    completed = int(output.split("Queries completed:")[1].split()[0])
    assert completed >= 1000, output
    assert running.process.wait(LAMEDUCK + 5) == 0
    assert time.monotonic() - signalled >= LAMEDUCK
    assert "Traceback" not in running.log_text()


def test_serve_answers_every_query_through_its_lame_duck_period(tmp_path: Path) -> None:
    running = start_serve(f"--lameduck={LAMEDUCK:g}s")
    try:
        sigterm_under_load(running, running.dns_port, running.health_port, tmp_path)
    finally:
        stop(running)


def test_cache_answers_every_query_through_its_lame_duck_period(cluster: Running, tmp_path: Path) -> None:
    running = start_cache("--no-resolv", f"--server=127.0.0.1#{cluster.dns_port}", f"--lameduck={LAMEDUCK:g}")
    try:
        sigterm_under_load(running, running.dns_port, running.metrics_port, tmp_path)
    finally:
        stop(running)


def test_cache_answers_forwarded_queries_in_flight_when_it_stops() -> None:
    upstream = TestNameserver(default=slow(1.0, answer("@ 300 IN A 192.0.2.9")))
    with run_in_thread(upstream), cache("--no-resolv", f"--server={upstream.address}") as running:
        query = dns.message.make_query("slow.lameduck.test.", "A")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(query.to_wire(), (HOST, running.dns_port))
            upstream.wait_for_queries(1, "slow.lameduck.test.", timeout=5)
            running.process.send_signal(signal.SIGTERM)
            reply = dns.message.from_wire(client.recv(4096))
        assert reply.id == query.id and reply.answer
        assert running.process.wait(10) == 0


def test_idle_tcp_clients_do_not_hold_up_or_spoil_the_exit() -> None:
    serve_query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
    cache_query = dns.message.make_query("hits.bind", "TXT", "CH")  # answered by the cache itself
    for running, query in (
        (start_serve(), serve_query),
        (start_cache("--no-resolv", "--server=127.0.0.1#9"), cache_query),
    ):
        with socket.create_connection((HOST, running.dns_port), timeout=5):
            # Accepted before SIGTERM: connections are accepted in order, and a later one was answered.
            dns.query.tcp(query, HOST, port=running.dns_port, timeout=5)
            assert stop(running) == 0
        assert "Traceback" not in running.log_text(), running.log_text()[-3000:]
