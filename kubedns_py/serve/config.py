"""``kubedns-py serve`` flags (the kube-dns container's, plus our additions) and the frozen config
they produce."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from kubedns_py.cluster.zone import PodMode
from kubedns_py.flags import (
    add_duration_flag,
    add_repeated_flag,
    add_server_flags,
    config_from_args,
    dns_domain,
    non_negative_int,
    port,
)
from kubedns_py.net.acl import Network, parse_networks

# serve's TCP clients are caches: a node-local cache asks over TCP, one connection per question, with up
# to its --dns-forward-max (150) in flight.
MAX_PER_CLIENT = 256


@dataclass(frozen=True)
class ServeConfig:
    domain: str
    dns_bind_address: str
    dns_port: int
    healthz_port: int
    metrics_port: int
    http_bind_address: str
    kubeconfig: str | None
    kube_master_url: str | None
    config_dir: str | None
    nameservers: str | None
    initial_sync_timeout: float
    manifests: tuple[Path, ...]
    pods: PodMode
    ttl: int
    endpoints_api: str
    watch_stall_timeout: float
    tcp_max_connections: int
    tcp_max_per_client: int  # 0: no limit
    allow_from: tuple[Network, ...]  # empty: anyone may ask
    lameduck: float
    verbosity: int
    coredns_metrics: bool = False  # also CoreDNS's series, for its dashboards and alerts
    workers: int = 1  # processes answering on the DNS port (``serve.pool``)


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Which cluster serve answers for and how it reports it: shared by ``serve`` and ``up``."""
    parser.add_argument(
        "--domain", type=dns_domain, default="cluster.local", help="cluster domain (default cluster.local.)"
    )
    parser.add_argument("--kubecfg-file", "--kubeconfig", dest="kubeconfig", default=None)
    parser.add_argument(
        "--kube-master-url", default=None, help="API server URL; environment variables expand"
    )
    add_repeated_flag(
        parser,
        "--manifests",
        "PATH",
        "YAML/JSON file or directory of cluster objects, instead of the API (repeatable; reloaded)",
        type=Path,
    )
    parser.add_argument("--coredns-metrics", action="store_true", help="also export CoreDNS's metric names")


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    add_cluster_flags(parser)
    parser.add_argument("--dns-bind-address", default="0.0.0.0", help="address for DNS over UDP and TCP")
    parser.add_argument("--dns-port", type=port, default=10053)
    parser.add_argument("--healthz-port", type=port, default=8081, help="serves /readiness and /healthz")
    parser.add_argument(
        "--metrics-port",
        type=port,
        default=None,
        help="Prometheus /metrics (default: $PROMETHEUS_PORT, else 10055)",
    )
    parser.add_argument(
        "--http-bind-address", default="0.0.0.0", help="address for the health and metrics ports"
    )
    parser.add_argument(
        "--config-dir",
        default=None,
        help="kube-dns ConfigMap directory; accepted for compatibility (upstreams are the cache's job)",
    )
    parser.add_argument(
        "--nameservers",
        default=None,
        help="accepted for compatibility; serve never forwards (the cache does)",
    )
    compat = parser.add_argument_group("kube-dns flags that no longer apply (each logs a warning)")
    compat.add_argument("--config-map", default=None, help="see --config-dir")
    compat.add_argument("--config-map-namespace", default=None, help="see --config-dir")
    compat.add_argument("--config-period", default=None, help="see --config-dir")
    compat.add_argument("--federations", default=None, help="federation DNS is gone")
    compat.add_argument("--profiling", nargs="?", const="true", default=None, help="no pprof in Python")
    add_duration_flag(parser, "--initial-sync-timeout", 60.0)
    parser.add_argument("--pods", choices=[m.value for m in PodMode], default=PodMode.INSECURE.value)
    parser.add_argument(
        "--ttl", type=non_negative_int, default=30, help="TTL of every record, and the SOA minimum"
    )
    parser.add_argument("--endpoints-api", choices=["auto", "endpointslices", "endpoints"], default="auto")
    add_duration_flag(
        parser,
        "--watch-stall-timeout",
        90.0,
        "restart an API watch that sent nothing, not even a bookmark, for this long (default 90s)",
    )
    add_server_flags(parser, MAX_PER_CLIENT)


OBSOLETE = {
    "config_map": "serve reads no ConfigMap; mount it and give the cache --config-dir",
    "config_map_namespace": "serve reads no ConfigMap; mount it and give the cache --config-dir",
    "config_period": "serve reads no config dir; the cache polls it (its --config-period)",
    "federations": "federation DNS was removed from Kubernetes; the names are not served",
    "profiling": "there is no pprof endpoint",
}


def serve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    if args.ttl > 2**31 - 1:
        parser.error("--ttl is too large")
    metrics_port = args.metrics_port
    if metrics_port is None:
        env = os.environ.get("PROMETHEUS_PORT")
        try:
            metrics_port = port(env) if env else 10055
        except argparse.ArgumentTypeError as err:
            parser.error(f"PROMETHEUS_PORT: {err}")
    try:
        allow_from = parse_networks(item for value in args.allow_from for item in value.split(","))
    except ValueError as err:
        parser.error(f"--allow-from: {err}")
    master = args.kube_master_url or None  # environment variables expand where it is used
    return config_from_args(
        ServeConfig,
        args,
        metrics_port=metrics_port,
        kube_master_url=master,
        manifests=tuple(args.manifests),
        pods=PodMode(args.pods),
        allow_from=allow_from,
        verbosity=args.v,
    )
