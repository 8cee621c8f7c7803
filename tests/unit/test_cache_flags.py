"""``kubedns-py cache`` flags: the kube-dns manifest's dnsmasq arguments parse, bad values are named."""

from __future__ import annotations

import argparse
import logging

import pytest

from kubedns_py.cache.flags import CacheConfig, add_cache_flags, cache_config
from kubedns_py.cache.servers import Upstream
from kubedns_py.flags import normalize_argv

MANIFEST_ARGS = [
    "-k",
    "--cache-size=1000",
    "--no-negcache",
    "--dns-loop-detect",
    "--log-facility=-",
    "--server=/cluster.local/127.0.0.1#10053",
    "--server=/in-addr.arpa/127.0.0.1#10053",
    "--server=/ip6.arpa/127.0.0.1#10053",
]


def parse(argv: list[str]) -> CacheConfig:
    parser = argparse.ArgumentParser(prog="kubedns-py cache")
    add_cache_flags(parser)
    return cache_config(parser.parse_args(normalize_argv(argv)), parser)


def test_the_kube_dns_manifest_arguments_parse() -> None:
    config = parse(MANIFEST_ARGS)
    kubedns = (Upstream("127.0.0.1", 10053),)
    assert dict(config.servers.domains) == {
        "cluster.local": kubedns,
        "in-addr.arpa": kubedns,
        "ip6.arpa": kubedns,
    }
    assert config.servers.default == ()
    assert config.cache_size == 1000
    assert not config.negative_cache
    assert config.dns_loop_detect
    assert config.log_facility == "-"


def test_defaults() -> None:
    config = parse([])
    assert config.port == 53
    assert config.listen_addresses == ("0.0.0.0",)
    assert config.cache_size == 1000
    assert config.negative_cache
    assert config.neg_ttl is None
    assert not config.no_resolv
    assert config.resolv_file == "/etc/resolv.conf"
    assert config.dns_forward_max == 150
    assert (config.min_cache_ttl, config.max_cache_ttl) == (0, 0)
    assert config.stale_cache_ttl == 3600
    assert config.config_dir is None
    assert config.config_period == 5
    assert config.metrics_port == 9153
    assert config.http_bind_address == "0.0.0.0"
    assert config.verbosity == 0


def test_every_flag_takes_a_value() -> None:
    config = parse(
        [
            "--keep-in-foreground",
            "--bind-interfaces",
            "--port=0",
            "--listen-address=127.0.0.1,::1",
            "--listen-address",
            "10.0.0.10",
            "--cache-size=0",
            "--neg-ttl=30",
            "--server=8.8.8.8",
            "--server=[fd00::1]#5353",
            "--local=/local.only/",
            "--no-resolv",
            "--resolv-file=/tmp/resolv.conf",
            "--dns-forward-max=1",
            "--min-cache-ttl=5",
            "--max-cache-ttl=300",
            "--stale-cache-ttl=0",
            "--config-dir=/kube-dns-config",
            "--config-period=1m",
            "--metrics-port=0",
            "--http-bind-address=127.0.0.1",
            "-v=3",
        ]
    )
    assert config.port == 0
    assert config.listen_addresses == ("127.0.0.1", "::1", "10.0.0.10")
    assert config.cache_size == 0
    assert config.neg_ttl == 30
    assert config.servers.default == (Upstream("8.8.8.8"), Upstream("fd00::1", 5353))
    assert dict(config.servers.domains) == {"local.only": ()}
    assert config.no_resolv
    assert config.resolv_file == "/tmp/resolv.conf"
    assert config.dns_forward_max == 1
    assert (config.min_cache_ttl, config.max_cache_ttl) == (5, 300)
    assert config.stale_cache_ttl == 0
    assert config.config_dir == "/kube-dns-config"
    assert config.config_period == 60
    assert config.metrics_port == 0
    assert config.http_bind_address == "127.0.0.1"
    assert config.verbosity == 3


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--port=65536"], "65536"),
        (["--port=dns"], "'dns'"),
        (["--metrics-port=-1"], "--metrics-port"),
        (["--cache-size=-5"], "--cache-size"),
        (["--cache-size=lots"], "'lots'"),
        (["--neg-ttl=-1"], "--neg-ttl"),
        (["--min-cache-ttl=-1"], "--min-cache-ttl"),
        (["--max-cache-ttl=9999999999"], "--max-cache-ttl 9999999999"),
        (
            ["--min-cache-ttl=60", "--max-cache-ttl=30"],
            "--min-cache-ttl 60 is larger than --max-cache-ttl 30",
        ),
        (["--dns-forward-max=0"], "--dns-forward-max 0"),
        (["--listen-address=127.0.0.1,localhost"], "--listen-address 'localhost'"),
        (["--http-bind-address=any"], "--http-bind-address 'any'"),
        (["--stale-cache-ttl=forever"], "'forever'"),
        (["--config-period=0s"], "--config-period 0s"),
        (["--server=dns.google"], '--server=dns.google: "dns.google" is not an IP address'),
        (["--server=/acme.local/1.2.3.x"], '"1.2.3.x" is not an IP address'),
        (["--server=8.8.8.8#99999"], '--server=8.8.8.8#99999: "8.8.8.8#99999": port "99999"'),
        (["--server=/bad domain/1.2.3.4"], '"bad domain" is not a domain name'),
        (["--server=1.2.3.4@eth0"], "--server=1.2.3.4@eth0: source addresses and interfaces"),
        (["--server=/#/"], "/#/ needs a server address"),
        (["--server=/acme.local"], "expected /domain/[address]"),
    ],
)
def test_bad_values_exit_naming_them(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_log_facility_other_than_stderr_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = parse(["--log-facility=/var/log/dnsmasq.log"])
    assert config.log_facility == "/var/log/dnsmasq.log"
    assert "not supported; logging to stderr" in caplog.text


def test_min_cache_ttl_is_capped_at_an_hour_as_dnsmasq_does(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse(["--min-cache-ttl=7200"]).min_cache_ttl == 3600
    assert "capped" in caplog.text


def test_short_k_survives_normalisation() -> None:
    assert normalize_argv(["-k", "-v=2"]) == ["-k", "--v=2"]
    assert parse(["-k"]).port == 53


def test_autopath_is_off_unless_asked_and_takes_the_cluster_domain() -> None:
    assert parse(MANIFEST_ARGS).autopath is None
    assert parse([*MANIFEST_ARGS, "--autopath"]).autopath == "cluster.local"
    assert parse([*MANIFEST_ARGS, "--autopath=Example.Org."]).autopath == "example.org"


def test_an_autopath_domain_that_is_no_domain_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--autopath=not a domain"])
    assert "--autopath" in capsys.readouterr().err
