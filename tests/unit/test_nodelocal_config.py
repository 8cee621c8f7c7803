"""``kubedns-py nodelocal`` flags: node-cache's manifest arguments parse (single-dash, Go booleans), the
cache's flags after ``--`` go to the cache parser, and the upstream Service is found as node-cache finds
it."""

from __future__ import annotations

import argparse

import pytest

from kubedns_py.cache.servers import StaticServers, Upstream
from kubedns_py.flags import normalize_argv
from kubedns_py.nodelocal.config import (
    NodeLocalConfig,
    add_nodelocal_flags,
    nodelocal_config,
    upstream_from_env,
    with_upstream,
)

# The arguments node-cache's addon manifest passes, with our cache flags after --.
NODE_CACHE_ARGS = [
    "-localip",
    "169.254.20.10,10.0.0.10",
    "-conf",
    "/etc/Corefile",
    "-upstreamsvc",
    "kube-dns-upstream",
    "-health-port",
    "8080",
    "-setupiptables=false",
    "-skipteardown",
    "-syncinterval=30s",
    "-metrics-listen-address=0.0.0.0:9353",
    "--",
    "--cache-size=10000",
    "--metrics-port=9253",
]


def parse(argv: list[str]) -> NodeLocalConfig:
    parser = argparse.ArgumentParser(prog="kubedns-py nodelocal")
    add_nodelocal_flags(parser)
    return nodelocal_config(parser.parse_args(normalize_argv(argv)), parser)


def test_node_cache_arguments_parse(caplog: pytest.LogCaptureFixture) -> None:
    config = parse(NODE_CACHE_ARGS)
    assert "-conf /etc/Corefile ignored" in caplog.text
    assert config.local_ips == ("169.254.20.10", "10.0.0.10")
    assert config.cache.listen_addresses == config.local_ips
    assert (config.health_port, config.sync_interval) == (8080, 30.0)
    assert (config.setup_interface, config.setup_iptables, config.skip_teardown) == (True, False, True)
    assert (config.metrics_host, config.metrics_port) == ("0.0.0.0", 9353)
    assert (config.cache.cache_size, config.cache.metrics_port) == (10000, 9253)
    assert config.interface == "nodelocaldns" and config.upstream_service == "kube-dns-upstream"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-localip=169.254.20.10,nope"], "'nope' is not an IP address"),
        (["-localip=169.254.20.10", "-setupiptables=maybe"], "invalid boolean"),
        (["-localip=169.254.20.10", "-metrics-listen-address=9353"], "is not IP:PORT"),
        (["-localip=169.254.20.10", "-interfacename=a/b"], "not an interface name"),
        (["-localip=169.254.20.10", "--", "--listen-address=10.0.0.1"], "with -localip"),
        (["-localip=169.254.20.10", "--", "--cache-size=-1"], "negative"),
    ],
)
def test_bad_flags_are_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cache_workers_are_the_caches() -> None:
    assert parse(["-localip=169.254.20.10", "--", "--workers=2"]).cache.workers == 2


def test_upstream_service_from_its_environment_variables() -> None:
    env = {"KUBE_DNS_UPSTREAM_SERVICE_HOST": "10.96.0.11", "KUBE_DNS_UPSTREAM_SERVICE_PORT": "5353"}
    assert upstream_from_env("kube-dns-upstream", env) == Upstream("10.96.0.11", 5353, tcp=True)
    assert upstream_from_env("kube-dns-upstream", {"KUBE_DNS_UPSTREAM_SERVICE_HOST": "fd00::a"}) == Upstream(
        "fd00::a", 53, tcp=True
    )
    missing = upstream_from_env("kube-dns-upstream", {})
    assert isinstance(missing, str) and "KUBE_DNS_UPSTREAM_SERVICE_HOST is not set" in missing


def test_cluster_zones_added_without_overriding_flag_routes() -> None:
    upstream = Upstream("10.96.0.11", 53, tcp=True)
    mine = Upstream("10.1.1.1")
    servers = with_upstream(StaticServers.parse(["/in-addr.arpa/10.1.1.1"]), "cluster.local", upstream)
    assert dict(servers.domains) == {
        "in-addr.arpa": (mine,),
        "cluster.local": (upstream,),
        "ip6.arpa": (upstream,),
    }


def test_autopath_after_the_dashes_takes_the_cluster_domain() -> None:
    argv = [*NODE_CACHE_ARGS[:-3], "--cluster-domain=corp.local", "--", "--autopath"]
    assert parse(argv).cache.autopath == "corp.local"
    assert parse([*NODE_CACHE_ARGS, "--autopath=other.local"]).cache.autopath == "other.local"
    assert parse(NODE_CACHE_ARGS).cache.autopath is None
