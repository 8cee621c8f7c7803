"""A running serve follows its manifest files: changes show within a second, bad files change nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.dnsclient import answers, ask
from tests.support.paths import DEMO_CLUSTER
from tests.support.processes import serve
from tests.support.waiting import wait_until

NAME = "myservice.default.svc.cluster.local."


def wait_for_answer(port: int, name: str, expected: set[str], deadline: float = 1.0) -> float:
    """Ask until the answer matches; returns how long it took."""
    return wait_until(
        lambda: answers(ask(name, "A", port)) == expected, deadline, f"{name} answering {expected}", 0
    )


def test_change_is_served_within_one_second(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    shutil.copy(DEMO_CLUSTER, cluster)
    with serve(manifests=[tmp_path]) as server:
        assert answers(ask(NAME, "A", server.dns_port)) == {f"{NAME} A 10.96.100.10"}
        serial = ask("cluster.local.", "SOA", server.dns_port).answer[0][0].serial
        cluster.write_text(DEMO_CLUSTER.read_text().replace("10.96.100.10", "10.96.100.99"))
        wait_for_answer(server.dns_port, NAME, {f"{NAME} A 10.96.100.99"})
        assert ask("cluster.local.", "SOA", server.dns_port).answer[0][0].serial > serial


def test_broken_file_logs_once_and_keeps_serving(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    shutil.copy(DEMO_CLUSTER, cluster)
    with serve(manifests=[cluster]) as server:
        cluster.write_text("items: [\n")
        line = server.wait_for_log(r"ERROR .*cluster\.yaml: cannot parse")
        assert "keeping the data it last gave" in line.string
        assert answers(ask(NAME, "A", server.dns_port)) == {f"{NAME} A 10.96.100.10"}
        cluster.write_text(DEMO_CLUSTER.read_text().replace("10.96.100.10", "10.96.100.11"))
        wait_for_answer(server.dns_port, NAME, {f"{NAME} A 10.96.100.11"})
        assert server.log_text().count("cannot parse") == 1
