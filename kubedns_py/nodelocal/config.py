"""``kubedns-py nodelocal`` flags: node-cache's own (single-dash as its manifest spells them), then the
cache's flags after ``--``.

The cluster zones go to the ``-upstreamsvc`` Service over TCP; its ClusterIP comes from the variable
Kubernetes injects for it (``KUBE_DNS_UPSTREAM_SERVICE_HOST`` for ``kube-dns-upstream``), as node-cache
reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import re
from collections.abc import Mapping

from kubedns_py.cache.flags import CLUSTER_DOMAIN, CacheConfig, add_cache_flags, cache_config
from kubedns_py.cache.servers import StaticServers, Upstream, parse_upstream
from kubedns_py.flags import add_duration_flag, add_logging_flags, port

log = logging.getLogger(__name__)

REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # IFNAMSIZ less the NUL


@dataclasses.dataclass(frozen=True)
class NodeLocalConfig:
    local_ips: tuple[str, ...]
    upstream_service: str
    health_port: int
    setup_interface: bool
    setup_iptables: bool
    interface: str
    sync_interval: float
    skip_teardown: bool
    metrics_host: str
    metrics_port: int
    pidfile: str | None
    cluster_domain: str
    cache: CacheConfig  # listening on every local IP, without the cluster routes (see with_upstream)


def _bool(text: str) -> bool:
    """Go's strconv.ParseBool, as node-cache's flags take ``-setupiptables=false``."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def add_nodelocal_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("node-cache-compatible")
    group.add_argument(
        "--localip",
        required=True,
        metavar="IP[,IP...]",
        help="addresses to answer on: the link-local address, and the kube-dns ClusterIP to intercept it",
    )
    group.add_argument(
        "--upstreamsvc",
        default="kube-dns-upstream",
        metavar="NAME",
        help="Service for the cluster zones, found through <NAME>_SERVICE_HOST (default kube-dns-upstream)",
    )
    group.add_argument("--health-port", type=port, default=8080, help="/health port (default 8080)")
    for name, what in (("setupinterface", "the interface and its addresses"), ("setupiptables", "iptables")):
        group.add_argument(
            f"--{name}",
            type=_bool,
            nargs="?",
            const=True,
            default=True,
            metavar="BOOL",
            help=f"manage {what}",
        )
    group.add_argument("--interfacename", default="nodelocaldns", help="interface for the local IPs")
    add_duration_flag(group, "--syncinterval", 60.0, "re-check period (default 60s)")
    group.add_argument(
        "--skipteardown",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="leave the rules and addresses in place on exit",
    )
    group.add_argument(
        "--metrics-listen-address",
        default="0.0.0.0:9353",
        metavar="HOST:PORT",
        help="Prometheus /metrics (default 0.0.0.0:9353)",
    )
    group.add_argument("--pidfile", default=None, metavar="PATH", help="write the process id here")
    group.add_argument(
        "--conf",
        default=None,
        metavar="PATH",
        help="node-cache's Corefile: accepted and ignored (give the cache's flags after --)",
    )
    group.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="the cluster zone sent upstream (default cluster.local)",
    )
    add_logging_flags(parser)
    parser.add_argument("cache_args", nargs=argparse.REMAINDER, help="-- then the cache's flags")


def _host_port(text: str) -> tuple[str, int] | None:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return None
    try:
        return str(ipaddress.ip_address(host)), int(port_text)
    except ValueError:
        return None


def nodelocal_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> NodeLocalConfig:
    local_ips: list[str] = []
    for item in args.localip.split(","):
        try:
            local_ips.append(str(ipaddress.ip_address(item.strip())))
        except ValueError:
            parser.error(f"-localip {item.strip()!r} is not an IP address")
    if not _IFNAME.fullmatch(args.interfacename):
        parser.error(f"-interfacename {args.interfacename!r} is not an interface name")
    if args.syncinterval <= 0:
        parser.error(f"-syncinterval {args.syncinterval:g}s must be positive")
    metrics = _host_port(args.metrics_listen_address)
    if metrics is None:
        parser.error(f"-metrics-listen-address {args.metrics_listen_address!r} is not IP:PORT")
    if args.conf is not None:
        log.warning("-conf %s ignored: no Corefile is read; the cache's flags follow --", args.conf)
    cache_args = list(args.cache_args)
    if cache_args[:1] == ["--"]:
        cache_args = cache_args[1:]
    cache_parser = argparse.ArgumentParser(prog="kubedns-py nodelocal --")
    add_cache_flags(cache_parser)
    cache_args_ns = cache_parser.parse_args(cache_args)
    if cache_args_ns.autopath == CLUSTER_DOMAIN:
        cache_args_ns.autopath = args.cluster_domain
    # --check-config (or -v) after -- counts too: it is where a manifest check appends it.
    args.check_config = args.check_config or cache_args_ns.check_config
    args.v = max(args.v, cache_args_ns.v)
    cache = cache_config(cache_args_ns, cache_parser)
    if set(cache.listen_addresses) != {"0.0.0.0"}:
        parser.error("give the addresses with -localip, not --listen-address")
    return NodeLocalConfig(
        local_ips=tuple(dict.fromkeys(local_ips)),
        upstream_service=args.upstreamsvc,
        health_port=args.health_port,
        setup_interface=args.setupinterface,
        setup_iptables=args.setupiptables,
        interface=args.interfacename,
        sync_interval=args.syncinterval,
        skip_teardown=args.skipteardown,
        metrics_host=metrics[0],
        metrics_port=metrics[1],
        pidfile=args.pidfile,
        cluster_domain=args.cluster_domain.lower().removesuffix("."),
        cache=dataclasses.replace(cache, listen_addresses=tuple(dict.fromkeys(local_ips))),
    )


def service_env_name(service: str) -> str:
    """Kubernetes' variable for a Service's ClusterIP: upper-case, dashes to underscores."""
    return service.upper().replace("-", "_") + "_SERVICE_HOST"


def upstream_from_env(service: str, environ: Mapping[str, str] = os.environ) -> Upstream | str:
    """The Service's ClusterIP and port as an upstream asked over TCP, or why there is none."""
    host_var = service_env_name(service)
    port_var = host_var.removesuffix("_HOST") + "_PORT"
    host = environ.get(host_var, "").strip()
    if not host:
        return f"{host_var} is not set (the {service} Service did not exist when this container started)"
    spec = f"{host}#{environ.get(port_var, '').strip() or 53}"
    try:
        upstream = parse_upstream(f"[{host}]#{spec.rpartition('#')[2]}" if ":" in host else spec)
    except ValueError as err:
        return f"{host_var}/{port_var}: {err}"
    return dataclasses.replace(upstream, tcp=True)


def with_upstream(servers: StaticServers, cluster_domain: str, upstream: Upstream) -> StaticServers:
    """The cache's servers plus the cluster zones to ``upstream``; routes the flags give win."""
    domains = dict(servers.domains)
    for zone in (cluster_domain, *REVERSE_ZONES):
        domains.setdefault(zone, (upstream,))
    return dataclasses.replace(servers, domains=domains)
