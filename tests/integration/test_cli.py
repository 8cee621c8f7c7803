"""The command line: clear errors for bad input, kube-dns flag spellings, --check-config."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import DEMO_CLUSTER, ROOT, serve


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubedns_py", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_no_cluster_source_exits_with_a_clear_message() -> None:
    done = run("serve", "--check-config", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "no cluster to read" in done.stderr and "--manifests" in done.stderr


def test_bad_flags_name_the_value() -> None:
    done = run("serve", "--dns-port", "70000", "--manifests", str(DEMO_CLUSTER))
    assert done.returncode == 2 and "port 70000 is outside 0-65535" in done.stderr
    done = run("serve", "--domain", "bad_domain!", "--manifests", str(DEMO_CLUSTER))
    assert done.returncode == 2 and "'bad_domain!' is not a valid DNS domain" in done.stderr
    done = run("serve", "--initial-sync-timeout", "soon", "--manifests", str(DEMO_CLUSTER))
    assert done.returncode == 2 and "invalid duration 'soon'" in done.stderr
    done = run("serve", "--pods", "maybe", "--manifests", str(DEMO_CLUSTER))
    assert done.returncode == 2 and "invalid choice: 'maybe'" in done.stderr


def test_kube_dns_manifest_spellings_are_accepted() -> None:
    done = run(
        "serve",
        "--domain=cluster.local.",
        "--dns-port=10053",
        "--config-dir=/kube-dns-config",
        "-v=2",
        "-logtostderr",
        "--initial_sync_timeout=60s",
        "--manifests",
        str(DEMO_CLUSTER),
        "--check-config",
    )
    assert done.returncode == 0, done.stderr


def test_port_in_use_is_reported_not_raised() -> None:
    with serve() as server:
        done = run(
            "serve",
            "--manifests",
            str(DEMO_CLUSTER),
            "--dns-bind-address",
            "127.0.0.1",
            "--dns-port",
            str(server.dns_port),
        )
    assert done.returncode == 1 and "Address already in use" in done.stderr and "Traceback" not in done.stderr


def test_prometheus_port_environment_variable() -> None:
    with serve(env={"PROMETHEUS_PORT": "0"}) as server:
        assert server.metrics_port > 0
    done = run("serve", "--manifests", str(DEMO_CLUSTER), "--check-config", env={"PROMETHEUS_PORT": "x"})
    assert done.returncode == 2 and "PROMETHEUS_PORT" in done.stderr
