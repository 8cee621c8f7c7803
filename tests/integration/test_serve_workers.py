"""``kubedns-py serve --workers N``: one source, N processes answering on one port. Every worker
answers the same data with the same SOA serial, follows each change the source delivers, and a dead
one comes back with the data as it is now; one /metrics sums their traffic and counts the store once."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.support.dnsclient import answers, ask
from tests.support.metrics import scrape
from tests.support.paths import DEMO_CLUSTER
from tests.support.processes import Running, serve, stop
from tests.support.procfs import alive, child_pids, memory_rollup_mib
from tests.support.searchpath import ZONE, namespace, service, write_cluster
from tests.support.waiting import wait_for, wait_until

WORKERS = 2
ASKED = 30  # each from its own socket: the kernel spreads them over the workers by source port
NAME = "myservice.default.svc.cluster.local."
SERVICES = 20_000
PRIVATE_MIB = 10.0


def views(running: Running) -> set[tuple[frozenset[str], int]]:
    """(answer, SOA serial) as each of ASKED fresh sockets sees them: one element when all agree."""
    seen = set()
    for _ in range(ASKED):
        found = frozenset(answers(ask(NAME, "A", running.dns_port)))
        serial = ask("cluster.local.", "SOA", running.dns_port).answer[0][0].serial
        seen.add((found, serial))
    return seen


def test_every_worker_follows_every_change_with_one_serial(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    shutil.copy(DEMO_CLUSTER, cluster)
    with serve(f"--workers={WORKERS}", manifests=[tmp_path]) as server:
        # Those forked before the first sync stop once their successors are ready, as serve is.
        server.wait_until(lambda: len(child_pids(server.process.pid)) == WORKERS, 5, "one generation")
        ((first, serial),) = views(server)
        assert first == {f"{NAME} A 10.96.100.10"}
        cluster.write_text(DEMO_CLUSTER.read_text().replace("10.96.100.10", "10.96.100.99"))
        changed = wait_for(
            lambda: views(server), lambda v: len(v) == 1 and v != {(first, serial)}, 5, "a change"
        )
        ((now, new_serial),) = changed
        assert now == {f"{NAME} A 10.96.100.99"} and new_serial > serial


def test_a_worker_that_dies_comes_back_with_the_data_as_it_is_now(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    shutil.copy(DEMO_CLUSTER, cluster)
    with serve(f"--workers={WORKERS}", manifests=[tmp_path]) as server:
        cluster.write_text(DEMO_CLUSTER.read_text().replace("10.96.100.10", "10.96.100.42"))
        wait_until(lambda: views(server) == {(frozenset({f"{NAME} A 10.96.100.42"}), _serial(server))}, 5)
        before = child_pids(server.process.pid)
        os.kill(before[0], signal.SIGKILL)
        server.wait_for_log(rf"serve worker \d \(pid {before[0]}\) was killed by SIGKILL; restarting it")
        now = wait_for(
            lambda: child_pids(server.process.pid),
            lambda p: len(p) == WORKERS and before[0] not in p,
            10,
            "restart",
        )
        wait_until(lambda: scrape(server.metrics_port).get("kubedns_workers") == WORKERS, 5, "both answering")
        assert views(server) == {(frozenset({f"{NAME} A 10.96.100.42"}), _serial(server))}
        assert stop(server) == 0
        assert not any(alive(pid) for pid in now)
        assert "Traceback" not in server.log_text()


def _serial(running: Running) -> int:
    serial: int = ask("cluster.local.", "SOA", running.dns_port).answer[0][0].serial
    return serial


def test_one_metrics_port_sums_the_traffic_and_counts_the_store_once() -> None:
    with serve() as single:
        store = scrape(single.metrics_port).value("kubedns_store_objects", kind="Service")
    with serve(f"--workers={WORKERS}") as server:
        before = scrape(server.metrics_port).get("kubedns_dns_requests_total", type="A")
        for _ in range(ASKED):
            ask(NAME, "A", server.dns_port)
        metrics = scrape(server.metrics_port)
        assert metrics.value("kubedns_dns_requests_total", type="A") - before == ASKED
        assert metrics.value("kubedns_store_objects", kind="Service") == store
        assert metrics.value("kubedns_build_info") == 1
        assert metrics.value("kubedns_workers") == WORKERS
        assert metrics.value("kubedns_store_synced") == 1


def test_workers_share_the_answers_built_before_they_were_forked(tmp_path: Path) -> None:
    objects = [namespace(f"ns-{n}") for n in range(10)]
    for i in range(SERVICES):
        objects.append(service(f"svc-{i}", f"ns-{i % 10}", f"10.96.{i // 250}.{i % 250 + 1}"))
    write_cluster(tmp_path / "cluster.json", objects)
    with serve(f"--workers={WORKERS}", manifests=[tmp_path]) as server:
        assert ask(f"svc-1.ns-1.svc.{ZONE}.", "A", server.dns_port).answer
        workers = child_pids(server.process.pid)
        assert len(workers) == WORKERS
        for pid in workers:
            memory = memory_rollup_mib(pid)
            # A worker that built a node per Service itself (reading the whole store on the way)
            # held 16 MiB of its own at 20k Services; with the supervisor's, 4.
            assert memory["Private_Dirty"] < PRIVATE_MIB, memory
