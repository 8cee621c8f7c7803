"""``kubedns-py cache --workers N``: N processes answering on one port, their statistics (CHAOS and
/metrics) summed, a dead worker restarted on the same sockets, loops found by any worker taken out of
every one, and the supervisor exiting as one process would."""

from __future__ import annotations

import os
import resource
import signal
import socket
from collections.abc import Iterator

import dns.rcode
import pytest

from tests.support.dnsclient import answers, ask, chaos, chaos_number
from tests.support.dnsmasq import Dnsmasq
from tests.support.metrics import scrape
from tests.support.nameservers import TestNameserver
from tests.support.ports import HOST
from tests.support.processes import Running, cache, run_entry_point, stop
from tests.support.procfs import alive, child_pids
from tests.support.waiting import wait_for, wait_until

WORKERS = 2
ASKED = 30  # each from its own socket: the kernel spreads them over the workers by source port


@pytest.fixture(scope="module")
def pool(upstream: TestNameserver) -> Iterator[Running]:
    with cache(
        "--no-resolv", f"--server={upstream.address}", f"--workers={WORKERS}", "--cache-size=100"
    ) as c:
        yield c


def workers(running: Running) -> list[int]:
    return child_pids(running.process.pid)


def test_every_worker_answers_and_chaos_counts_them_all(pool: Running, upstream: TestNameserver) -> None:
    assert len(workers(pool)) == WORKERS
    before = {stat: chaos_number(pool.dns_port, stat) for stat in ("hits", "misses")}
    for _ in range(ASKED):
        assert answers(ask("same.workers.test.", "A", pool.dns_port)) == {"same.workers.test. A 192.0.2.1"}

    def moved() -> dict[str, int]:
        return {stat: chaos_number(pool.dns_port, stat) - before[stat] for stat in before}

    # Each worker has its own cache: the first question each one is asked is a miss, so two misses
    # prove both answered (one worker alone would have made one).
    wait_for(moved, lambda m: m == {"hits": ASKED - WORKERS, "misses": WORKERS}, 5, "hits and misses summed")
    assert chaos_number(pool.dns_port, "cachesize") == WORKERS * 100
    expected = [f"{upstream.address} {WORKERS} 0"]
    wait_for(lambda: chaos(pool.dns_port, "servers.bind"), lambda s: s == expected, 5, "servers summed")


def test_one_metrics_port_sums_the_workers(pool: Running) -> None:
    before = scrape(pool.metrics_port).get("kubedns_dns_requests_total", type="AAAA")
    for i in range(ASKED):
        ask(f"summed{i}.workers.test.", "AAAA", pool.dns_port)
    metrics = scrape(pool.metrics_port)
    assert metrics.value("kubedns_dns_requests_total", type="AAAA") - before == ASKED
    assert metrics.value("kubedns_workers") == WORKERS
    assert metrics.value("kubedns_cache_capacity") == WORKERS * 100
    # The same in every process: not summed.
    assert metrics.value("process_max_fds") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert metrics.value("process_resident_memory_bytes") > 0


def test_a_worker_that_dies_is_restarted_on_the_same_port(upstream: TestNameserver) -> None:
    with cache("--no-resolv", f"--server={upstream.address}", f"--workers={WORKERS}") as running:
        first = workers(running)
        os.kill(first[0], signal.SIGKILL)
        now = wait_for(
            lambda: workers(running), lambda w: len(w) == WORKERS and first[0] not in w, 10, "a new worker"
        )
        assert first[1] in now
        running.wait_for_log(rf"cache worker \d \(pid {first[0]}\) was killed by SIGKILL; restarting it")
        wait_until(
            lambda: scrape(running.metrics_port).get("kubedns_worker_restarts_total") == 1, 5, "counted"
        )
        for i in range(ASKED):
            assert ask(f"after{i}.workers.test.", "A", running.dns_port).rcode() == dns.rcode.NOERROR
        assert stop(running) == 0
        assert not any(alive(pid) for pid in now)
        assert "Traceback" not in running.log_text()


def test_a_port_another_program_holds_fails_as_without_workers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind((HOST, 0))
        port = held.getsockname()[1]
        done = run_entry_point(
            "kubedns-py",
            "cache",
            f"--listen-address={HOST}",
            f"--port={port}",
            "--metrics-port=0",
            "--workers=2",
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"port {port} (--port): " in done.stderr and "in use" in done.stderr


def test_a_loop_any_worker_sees_takes_the_upstream_out_of_every_worker(
    looped_port: int, loop: Dnsmasq, upstream: TestNameserver
) -> None:
    args = ("--no-resolv", "--dns-loop-detect", f"--server={loop.address}", f"--server={upstream.address}")
    with cache(*args, f"--port={looped_port}", f"--workers={WORKERS}") as running:
        running.wait_for_log("forwarding loop")

        def up() -> float:
            return scrape(running.metrics_port).value("kubedns_forward_upstream_up", to=loop.address)

        # Merged by the smallest: 0 only while one worker has it out; then every worker's log says so.
        wait_until(lambda: up() == 0, 5, "the looping upstream out of service")
        wait_until(lambda: running.log_text().count("forwarding loop") == WORKERS, 5, "every worker told")
        for i in range(ASKED):
            assert answers(ask(f"noloop{i}.workers.test.", "A", running.dns_port)) == {
                f"noloop{i}.workers.test. A 192.0.2.1"
            }
