"""``kubedns-probe``'s command line: a bad ``--probe`` or Prometheus flag exits 2 naming the value, and
the kube-dns sidecar's own arguments are accepted (``--check-config``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.dnsclient import KUBERNETES
from tests.support.processes import run_entry_point


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    return run_entry_point("kubedns-probe", *args)


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("--probe=kube-dns,127.0.0.1:10053,example.com", "label 'kube-dns'"),
        ("--probe=k,127.0.0.1:99999,example.com", "server '127.0.0.1:99999'"),
        ("--probe=k,127.0.0.1,example.com,0", "interval '0'"),
        ("--probe=k,127.0.0.1,example.com,5,MX", "type 'MX'"),
        ("--probe=k,127.0.0.1", "expected label,server[:port],name"),
    ],
    ids=["label", "port", "interval", "type", "fields"],
)
def test_cli_exits_2_naming_the_bad_value(flag: str, named: str) -> None:
    done = run_probe(flag, "--check-config")
    assert done.returncode == 2, done.stderr
    assert "kubedns-probe: error:" in done.stderr and named in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_a_label_used_twice_and_bad_prometheus_flags() -> None:
    probe = f"127.0.0.1,{KUBERNETES}"
    done = run_probe(f"--probe=a,{probe}", f"--probe=a,{probe},10", "--check-config")
    assert done.returncode == 2 and "label 'a' is used twice" in done.stderr
    done = run_probe("--prometheus-path=metrics", "--check-config")
    assert done.returncode == 2 and "--prometheus-path 'metrics'" in done.stderr
    done = run_probe("--prometheus-namespace=kube-dns", "--check-config")
    assert done.returncode == 2 and "--prometheus-namespace 'kube-dns'" in done.stderr
    done = run_probe("--prometheus-port=70000", "--check-config")
    assert done.returncode == 2 and "port 70000" in done.stderr


def test_cli_accepts_the_kube_dns_sidecar_manifest() -> None:
    """The sidecar container's args in the kube-dns Deployment, Go flag spellings included."""
    done = run_probe(
        "--v=2",
        "-logtostderr",
        f"--probe=kubedns,127.0.0.1:10053,{KUBERNETES},5,SRV",
        f"--probe=dnsmasq,127.0.0.1:53,{KUBERNETES},5,SRV",
        "--check-config",
    )
    assert done.returncode == 0, done.stderr
    done = run_probe("-v=2", "--logtostderr=true", "-prometheus_port=10054", "--check-config")
    assert done.returncode == 0, done.stderr
