"""``kubedns-py cache`` flags (dnsmasq's, as the kube-dns pod passes them, plus our additions) and the
frozen config they produce.

Defaults that differ from dnsmasq, and why:

* ``--cache-size`` is 1000 (dnsmasq: 150), the value every kube-dns manifest passes.
* ``--listen-address`` defaults to ``0.0.0.0`` (dnsmasq: every interface, IPv4 and IPv6).
* ``--port=0`` picks a free port (dnsmasq: disables DNS); the tests and ``kubedns-py up`` rely on it.
* ``--log-facility``: only ``-`` (stderr) is supported; anything else logs a warning and uses stderr.

``--max-cache-ttl=0`` means no cap and ``--min-cache-ttl`` is capped at 3600 s, as in dnsmasq.
``--config-period`` defaults to 5 s so that a ConfigMap change applies well within 10 s.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from dataclasses import dataclass

from kubedns_py.cache.servers import StaticServers
from kubedns_py.flags import (
    add_duration_flag,
    add_repeated_flag,
    add_server_flags,
    config_from_args,
    dns_domain,
    duration,
    non_negative_int,
    port,
)
from kubedns_py.net.acl import Network, parse_networks

log = logging.getLogger(__name__)

MAX_TTL = 2**31 - 1
MIN_CACHE_TTL_LIMIT = 3600  # dnsmasq's TTL_FLOOR_LIMIT
# A Pod's resolver opens a TCP connection per question (glibc's use-vc, truncated answers); one Pod
# with more than this many at once is a flood, not a resolver.
MAX_PER_CLIENT = 64
# --autopath without a domain: the cluster domain (cluster.local, or node-local's --cluster-domain).
CLUSTER_DOMAIN = ""


@dataclass(frozen=True)
class CacheConfig:
    port: int
    listen_addresses: tuple[str, ...]
    cache_size: int  # 0 disables caching
    negative_cache: bool
    neg_ttl: int | None  # TTL for negative answers without an SOA; None = do not cache them
    servers: StaticServers
    no_resolv: bool
    resolv_file: str
    dns_forward_max: int
    dns_loop_detect: bool
    log_facility: str
    min_cache_ttl: int
    max_cache_ttl: int  # 0 = no cap
    stale_cache_ttl: float  # 0 disables serve-stale
    config_dir: str | None
    config_period: float
    metrics_port: int
    http_bind_address: str
    tcp_max_connections: int
    tcp_max_per_client: int  # 0: no limit
    local_service: bool  # answer only clients on the subnet of one of this host's interfaces
    allow_from: tuple[Network, ...]  # ... or inside one of these
    lameduck: float
    verbosity: int
    coredns_metrics: bool = False  # also CoreDNS's series, for its dashboards and alerts
    workers: int = 1  # processes answering on the port (``cache.pool``)
    autopath: str | None = None  # the cluster zone whose search paths are shortened; None: off


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    dnsmasq = parser.add_argument_group("dnsmasq-compatible")
    dnsmasq.add_argument(
        "-k", "--keep-in-foreground", action="store_true", help="accepted; we always run in the foreground"
    )
    dnsmasq.add_argument("--port", type=port, default=53, help="DNS port, UDP and TCP (0 picks a free port)")
    add_repeated_flag(
        dnsmasq, "--listen-address", "IP[,IP...]", "address to answer on (repeatable; default 0.0.0.0)"
    )
    dnsmasq.add_argument("--bind-interfaces", action="store_true", help="accepted; we always bind addresses")
    dnsmasq.add_argument(
        "--cache-size", type=non_negative_int, default=1000, help="cached names (default 1000; 0 disables)"
    )
    dnsmasq.add_argument("--no-negcache", action="store_true", help="do not cache NXDOMAIN and NODATA")
    dnsmasq.add_argument(
        "--neg-ttl",
        type=non_negative_int,
        default=None,
        metavar="SECONDS",
        help="TTL for negative answers with no SOA",
    )
    add_repeated_flag(
        dnsmasq,
        ("--server", "--local"),
        "[/DOMAIN/]IP[#PORT]",
        "upstream; /domain/ip#port routes a domain, /domain/ answers it locally (repeatable)",
        dest="server",
    )
    add_repeated_flag(
        parser,
        "--tcp-server",
        "[/DOMAIN/]IP[#PORT]",
        "like --server, but always asked over TCP (node-local caches: no conntrack entries)",
    )
    dnsmasq.add_argument("--no-resolv", action="store_true", help="do not use the resolv-file's nameservers")
    dnsmasq.add_argument("--resolv-file", default="/etc/resolv.conf", metavar="PATH")
    dnsmasq.add_argument(
        "--dns-forward-max", type=non_negative_int, default=150, help="concurrent forwarded queries"
    )
    dnsmasq.add_argument("--dns-loop-detect", action="store_true", help="detect upstreams that forward to us")
    dnsmasq.add_argument("--log-facility", default="-", help="'-' (stderr); other values fall back to stderr")
    dnsmasq.add_argument(
        "--local-service",
        action="store_true",
        help="answer only clients on the subnet of one of this host's interfaces (others get REFUSED)",
    )
    dnsmasq.add_argument("--min-cache-ttl", type=non_negative_int, default=0, metavar="SECONDS")
    dnsmasq.add_argument(
        "--max-cache-ttl", type=non_negative_int, default=0, metavar="SECONDS", help="0: no cap"
    )
    nanny = parser.add_argument_group(
        "dnsmasq-nanny-compatible (its flags go before --, dnsmasq's after; both are ours)"
    )
    nanny.add_argument("--configDir", dest="config_dir", default=None, help="same as --config-dir")
    nanny.add_argument(
        "--syncInterval", dest="config_period", type=duration, default=5.0, help="same as --config-period"
    )
    nanny.add_argument("--restartDnsmasq", nargs="?", const="true", default=None, help=argparse.SUPPRESS)
    nanny.add_argument("--dnsmasqExec", default=None, help=argparse.SUPPRESS)
    nanny.add_argument("--kubednsServer", default=None, help=argparse.SUPPRESS)
    nanny.add_argument("--logInterval", default=None, help=argparse.SUPPRESS)
    ours = parser.add_argument_group("kubedns-py")
    add_duration_flag(
        ours,
        "--stale-cache-ttl",
        3600.0,
        "serve expired answers this long when upstreams fail (default 1h; 0 disables)",
    )
    ours.add_argument("--config-dir", default=None, help="kube-dns ConfigMap directory (stubDomains, ...)")
    add_duration_flag(ours, "--config-period", 5.0, "config-dir poll period")
    ours.add_argument("--metrics-port", type=port, default=9153, help="Prometheus /metrics (0 picks a port)")
    ours.add_argument("--coredns-metrics", action="store_true", help="also export CoreDNS's metric names")
    ours.add_argument(
        "--autopath",
        nargs="?",
        const=CLUSTER_DOMAIN,
        default=None,
        metavar="DOMAIN",
        help="answer a Pod's first search-path question with what its search would find (the cluster"
        " domain, default cluster.local; needs serve with --pods verified)",
    )
    ours.add_argument(
        "--http-bind-address", default="0.0.0.0", help="address for the metrics and health port"
    )
    add_server_flags(parser, MAX_PER_CLIENT, ours)


OBSOLETE = {
    "restartDnsmasq": "there is no dnsmasq process; the cache applies config-dir changes itself",
    "dnsmasqExec": "there is no dnsmasq process; the cache answers itself",
    "kubednsServer": "stub domain nameservers must be IP addresses, so none is looked up",
    "logInterval": "the statistics are on the metrics port and over CHAOS TXT",
}


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def cache_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CacheConfig:
    listen: list[str] = []
    for value in args.listen_address:
        for item in value.split(","):  # dnsmasq takes comma-separated lists too
            address = _ip(item)
            if address is None:
                parser.error(f"--listen-address {item.strip()!r} is not an IP address")
            listen.append(address)
    if _ip(args.http_bind_address) is None:
        parser.error(f"--http-bind-address {args.http_bind_address!r} is not an IP address")
    try:
        servers = StaticServers.parse(args.server, args.tcp_server)
    except ValueError as err:
        parser.error(str(err))
    for flag in ("neg_ttl", "min_cache_ttl", "max_cache_ttl"):
        value = getattr(args, flag)
        if value is not None and value > MAX_TTL:
            parser.error(f"--{flag.replace('_', '-')} {value} is larger than {MAX_TTL}")
    min_ttl = args.min_cache_ttl
    if min_ttl > MIN_CACHE_TTL_LIMIT:
        log.warning("--min-cache-ttl %d capped at %d, as dnsmasq does", min_ttl, MIN_CACHE_TTL_LIMIT)
        min_ttl = MIN_CACHE_TTL_LIMIT
    if args.max_cache_ttl and min_ttl > args.max_cache_ttl:
        parser.error(f"--min-cache-ttl {min_ttl} is larger than --max-cache-ttl {args.max_cache_ttl}")
    if args.dns_forward_max < 1:
        parser.error(f"--dns-forward-max {args.dns_forward_max} must be at least 1")
    if args.config_period <= 0:
        parser.error(f"--config-period {args.config_period:g}s must be positive")
    try:
        allow_from = parse_networks(item for value in args.allow_from for item in value.split(","))
    except ValueError as err:
        parser.error(f"--allow-from: {err}")
    autopath = args.autopath
    if autopath is not None:
        try:
            autopath = dns_domain(autopath or "cluster.local")
        except argparse.ArgumentTypeError as err:
            parser.error(f"--autopath: {err}")
    if args.log_facility != "-":
        log.warning("--log-facility %r is not supported; logging to stderr", args.log_facility)
    return config_from_args(
        CacheConfig,
        args,
        listen_addresses=tuple(dict.fromkeys(listen)) or ("0.0.0.0",),
        negative_cache=not args.no_negcache,
        servers=servers,
        min_cache_ttl=min_ttl,
        allow_from=allow_from,
        verbosity=args.v,
        autopath=autopath,
    )
