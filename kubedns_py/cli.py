"""``kubedns-py``: one entry point, a subcommand per container role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvloop
from prometheus_client import CollectorRegistry

from kubedns_py import __version__
from kubedns_py.cache.config import CacheConfig, add_cache_flags, cache_config
from kubedns_py.cluster.zone import PodMode
from kubedns_py.flags import normalize_argv, setup_logging
from kubedns_py.lifecycle import Component, run_until_signalled
from kubedns_py.nodelocal.config import (
    NodeLocalConfig,
    add_nodelocal_flags,
    nodelocal_config,
    upstream_from_env,
)
from kubedns_py.serve.config import ServeConfig, add_serve_flags, serve_config
from kubedns_py.sources.base import Source
from kubedns_py.up import add_up_flags, supervise

log = logging.getLogger("kubedns_py")

SHORT_FLAGS = frozenset({"-k"})  # dnsmasq's keep-in-foreground stays a short flag


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubedns-py", description="Cluster DNS for Kubernetes.")
    parser.add_argument("--version", action="version", version=f"kubedns-py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="answer the cluster zone authoritatively (the kubedns container)"
    )
    add_serve_flags(serve)
    cache = commands.add_parser(
        "cache", help="the caching forwarder in front of serve (the dnsmasq container)"
    )
    add_cache_flags(cache)
    nodelocal = commands.add_parser(
        "nodelocal", help="the cache on every node, set up as NodeLocal DNSCache's node-cache"
    )
    add_nodelocal_flags(nodelocal)
    up = commands.add_parser(
        "up", help="run serve, cache and probe together on this machine, wired as in the pod"
    )
    add_up_flags(up)
    return parser


def make_source(config: ServeConfig, registry: CollectorRegistry) -> Source | str:
    """The source for this config, or a message saying why there is none."""
    if config.manifests:
        from kubedns_py.sources.manifests import ManifestSource

        return ManifestSource(config.manifests)
    from kubedns_py.sources.kube import KubeSettings, KubeSource, have_cluster_config

    try:
        settings = KubeSettings(
            kubeconfig=config.kubeconfig,
            master_url=config.kube_master_url,
            endpoints_api=config.endpoints_api,  # type: ignore[arg-type]  # validated by argparse choices
            watch_pods=config.pods is PodMode.VERIFIED,
            stall_timeout=config.watch_stall_timeout,
        )
    except ValueError as err:
        return str(err)
    if not have_cluster_config(settings):
        return (
            "no cluster to read: give --manifests PATH, or --kubeconfig / --kube-master-url, "
            "or run inside a Pod with a service account"
        )
    return KubeSource(settings, registry)


def run_serve(config: ServeConfig, check_only: bool) -> int:
    registry = CollectorRegistry()
    source = make_source(config, registry)
    if isinstance(source, str):
        print(f"kubedns-py serve: {source}", file=sys.stderr)
        return 2
    if check_only:
        return 0
    from kubedns_py.serve.app import ServeApp

    if config.nameservers or config.config_dir:
        log.info("--nameservers/--config-dir accepted for compatibility; forwarding is the cache's job")
    run(ServeApp(config, source, registry))
    return 0


def run_cache(config: CacheConfig, check_only: bool) -> int:
    if check_only:
        return 0
    from kubedns_py.cache.app import CacheApp

    run(CacheApp(config))
    return 0


def run_nodelocal(config: NodeLocalConfig, check_only: bool) -> int:
    if check_only:
        found = upstream_from_env(config.upstream_service)
        if isinstance(found, str):  # not a flag error: the running command waits for it
            print(f"kubedns-py nodelocal: warning: {found}", file=sys.stderr)
        return 0
    from kubedns_py.nodelocal.app import NodeLocalApp

    run(NodeLocalApp(config))
    return 0


def run(component: Component) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_until_signalled(component))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv, SHORT_FLAGS))
    setup_logging(args.v)
    try:
        if args.command == "serve":
            return run_serve(serve_config(args, parser), args.check_config)
        if args.command == "cache":
            return run_cache(cache_config(args, parser), args.check_config)
        if args.command == "nodelocal":
            return run_nodelocal(nodelocal_config(args, parser), args.check_config)
        if args.command == "up":
            return 0 if args.check_config else asyncio.run(supervise(args))
    except OSError as err:  # a port in use, an address not on this host
        print(f"kubedns-py {args.command}: {err}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
