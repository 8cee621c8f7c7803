"""The manifests' containers start: each one's command and args, as Kubernetes would expand them, are
accepted by our CLIs (``--check-config`` parses and validates the flags, then exits 0, or 2 with a
message)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.upstream_spec import CONTAINERS, UpstreamContainer
from tests.support.manifests import Container, containers, expand
from tests.support.processes import ENTRY_POINTS, run_entry_point

# What Kubernetes injects for the Services of the pod's namespace (enableServiceLinks): the node-local
# cache finds kube-dns-upstream through it. Any address will do for a flag check.
SERVICE_ENV = {"KUBE_DNS_UPSTREAM_SERVICE_HOST": "10.96.0.11", "KUBE_DNS_UPSTREAM_SERVICE_PORT": "53"}
# Containers that are not ours: checked by the schema only.
FOREIGN = {"autoscaler.yaml:Deployment/kube-dns-autoscaler/autoscaler"}
OURS = [c for c in containers() if c.spec["command"][0] in ENTRY_POINTS]


def check_config(container: Container, service_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**service_env, **{k: expand(v, service_env) for k, v in container.env.items()}}
    program, *args = (expand(arg, env) for arg in container.argv)
    if args[:1] == ["serve"]:
        # In the pod, serve finds the API through the service account (KUBERNETES_SERVICE_HOST and
        # the token file under /var/run/secrets, which a test cannot create). Any master URL stands
        # in for it: --check-config validates the flags and never connects.
        args.append("--kube-master-url=http://127.0.0.1:1")
    return run_entry_point(program, *args, "--check-config", env={**os.environ, **env})


def test_every_container_is_checked() -> None:
    assert {c.id for c in containers()} == {c.id for c in OURS} | FOREIGN
    assert {c.spec["name"] for c in OURS} >= {"kubedns", "dnsmasq", "sidecar", "node-cache"}


@pytest.mark.parametrize("container", OURS, ids=lambda c: c.id)
def test_our_cli_accepts_the_container_arguments(container: Container) -> None:
    done = check_config(container, SERVICE_ENV)
    assert done.returncode == 0, f"{' '.join(container.argv)}\nexit {done.returncode}: {done.stderr}"


def test_node_cache_warns_without_the_upstream_service() -> None:
    """Without kube-dns-upstream (created after the DaemonSet's pod started) the flags are still valid:
    nodelocal would run, waiting for the Service, so the check passes and says what is missing."""
    (node_cache,) = [c for c in OURS if c.spec["name"] == "node-cache"]
    done = check_config(node_cache, {})
    assert done.returncode == 0, done.stderr
    assert "KUBE_DNS_UPSTREAM_SERVICE_HOST is not set" in done.stderr


@pytest.mark.parametrize("container", CONTAINERS, ids=lambda c: c.name)
def test_the_upstream_addons_arguments_are_accepted(container: UpstreamContainer) -> None:
    """kube-dns.yaml.in's args after our images' entry points, unchanged (serve's master URL stands in
    for the service account)."""
    program, *args = container.command
    extra = ["--kube-master-url=http://127.0.0.1:1"] if args[0] == "serve" else []
    done = run_entry_point(program, *args, *extra, "--check-config", env={**os.environ, **container.env})
    assert done.returncode == 0, done.stderr
