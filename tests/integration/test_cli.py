"""The command line: clear errors for bad input, kube-dns flag spellings, --check-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import DEMO_CLUSTER, ROOT
from tests.support.processes import run_entry_point, serve


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_entry_point("kubedns-py", *args, env=env)


@pytest.mark.parametrize("check", [True, False], ids=["--check-config", "run"])
def test_no_cluster_source_exits_1_with_a_clear_message(check: bool) -> None:
    """Nothing to read is a problem with the configuration (1), not a bad flag (2)."""
    done = run("serve", *(["--check-config"] if check else []), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    assert "no cluster to read" in done.stderr and "--manifests" in done.stderr
    done = run("serve", "--kube-master-url=nowhere", "--check-config", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "--kube-master-url 'nowhere' needs a scheme and a host" in done.stderr


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
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"port {server.dns_port} (--dns-port): " in done.stderr and "in use" in done.stderr


def test_metrics_port_in_use_names_its_flag() -> None:
    with serve() as server:
        done = run(
            "cache", "--port=0", "--http-bind-address=127.0.0.1", f"--metrics-port={server.metrics_port}"
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"port {server.metrics_port} (--metrics-port): " in done.stderr


def test_prometheus_port_environment_variable() -> None:
    with serve(env={"PROMETHEUS_PORT": "0"}) as server:
        assert server.metrics_port > 0
    done = run("serve", "--manifests", str(DEMO_CLUSTER), "--check-config", env={"PROMETHEUS_PORT": "x"})
    assert done.returncode == 2 and "PROMETHEUS_PORT" in done.stderr


@pytest.mark.parametrize("command", ["serve", "cache", "up"])
def test_each_subcommand_prints_its_own_usage(command: str) -> None:
    done = run(command, "--bogus")
    assert done.returncode == 2
    assert done.stderr.startswith(f"usage: kubedns-py {command} ")
    assert f"kubedns-py {command}: error: unrecognized arguments: --bogus" in done.stderr


def test_abbreviated_flags_are_refused() -> None:
    done = run("serve", "--manifests", str(DEMO_CLUSTER), "--dns-p=10053", "--check-config")
    assert done.returncode == 2 and "unrecognized arguments: --dns-p=10053" in done.stderr
    probe = subprocess.run(
        [sys.executable, "-m", "probe", "--prob=a,127.0.0.1,x", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert probe.returncode == 2 and "unrecognized arguments: --prob=a,127.0.0.1,x" in probe.stderr


def test_check_config_reads_the_manifests(tmp_path: Path) -> None:
    bad = tmp_path / "cluster" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("kind: Service\nmetadata: [\n")
    done = run("serve", "--manifests", str(bad.parent), "--check-config")
    assert done.returncode == 1 and f"--manifests {bad}: cannot parse" in done.stderr
    missing = tmp_path / "nothing.yaml"
    done = run("serve", "--manifests", str(DEMO_CLUSTER), "--manifests", str(missing), "--check-config")
    assert done.returncode == 1 and f"--manifests {missing}: no such file" in done.stderr


def test_check_config_reads_the_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n")
    done = run("serve", "--kubeconfig", str(kubeconfig), "--check-config")
    assert done.returncode == 1 and f"--kubeconfig {kubeconfig}: " in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_reads_the_cache_config_dir(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    assert run("cache", f"-configDir={absent}", "--check-config").returncode == 0
    (tmp_path / "upstreamNameservers").write_text("")
    assert run("cache", f"--config-dir={tmp_path}", "--check-config").returncode == 0
    (tmp_path / "stubDomains").write_text('{"acme.local": ["not-an-ip"]}')
    done = run("cache", f"--config-dir={tmp_path}", "--check-config")
    assert done.returncode == 1 and f"--config-dir {tmp_path / 'stubDomains'}: " in done.stderr
    assert "not-an-ip" in done.stderr


def test_flags_that_no_longer_apply_warn_once_each() -> None:
    done = run(
        "serve",
        "--manifests",
        str(DEMO_CLUSTER),
        "--federations=myfed=example.com",
        "--config-map=kube-dns",
        "--config-map-namespace=kube-system",
        "--alsologtostderr",
        "--log_dir=/tmp",
        "--vmodule=dns=4",
        "--stderrthreshold=2",
        "--check-config",
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 3, warnings
    assert any("--federations ignored: federation" in line for line in warnings)


def test_check_config_reads_the_resolv_file_unless_told_not_to(tmp_path: Path) -> None:
    missing = tmp_path / "resolv.conf"
    done = run("cache", f"--resolv-file={missing}", "--check-config")
    assert done.returncode == 1 and f"--resolv-file {missing}: No such file" in done.stderr
    assert run("cache", f"--resolv-file={missing}", "--no-resolv", "--check-config").returncode == 0


def test_up_check_config_reads_the_manifests(tmp_path: Path) -> None:
    assert run("up", "--check-config").returncode == 0  # the demo cluster
    missing = tmp_path / "cluster.yaml"
    done = run("up", "--manifests", str(missing), "--check-config")
    assert done.returncode == 1 and f"--manifests {missing}: no such file" in done.stderr


def test_up_check_config_is_each_childs_own_check() -> None:
    """up hands its flags to the cache and serve: their own checks judge them, named by child."""
    done = run("up", "--server=192.0.2.1#notaport", "--check-config")
    assert done.returncode == 2 and "kubedns-py up: cache: error: --server=" in done.stderr, done.stderr
    done = run("up", "--domain=bad_domain", "--check-config")
    assert done.returncode == 2 and "'bad_domain' is not a valid DNS domain" in done.stderr
