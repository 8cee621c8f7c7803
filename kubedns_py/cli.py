"""``kubedns-py``: one entry point, a subcommand per container role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvloop
from prometheus_client import CollectorRegistry

from kubedns_py import __version__
from kubedns_py.cache.flags import OBSOLETE as CACHE_OBSOLETE
from kubedns_py.cache.flags import CacheConfig, add_cache_flags, cache_config
from kubedns_py.cluster.zone import PodMode
from kubedns_py.flags import normalize_argv, setup_logging, warn_obsolete
from kubedns_py.lifecycle import Component, run_until_signalled
from kubedns_py.nodelocal.config import (
    NodeLocalConfig,
    add_nodelocal_flags,
    nodelocal_config,
    upstream_from_env,
)
from kubedns_py.serve.config import OBSOLETE as SERVE_OBSOLETE
from kubedns_py.serve.config import ServeConfig, add_serve_flags, serve_config
from kubedns_py.sources.base import Source
from kubedns_py.up import add_up_flags, supervise
from kubedns_py.up import check as check_up

log = logging.getLogger("kubedns_py")

SHORT_FLAGS = frozenset({"-k"})  # dnsmasq's keep-in-foreground stays a short flag
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("serve", "answer the cluster zone authoritatively (the kubedns container)", add_serve_flags),
    ("cache", "the caching forwarder in front of serve (the dnsmasq container)", add_cache_flags),
    ("nodelocal", "the cache on every node, set up as NodeLocal DNSCache's node-cache", add_nodelocal_flags),
    (
        "up",
        "run serve, cache and probe together on this machine, wired as in the pod "
        "(on the demo cluster unless given --manifests or a cluster)",
        add_up_flags,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubedns-py", description="Cluster DNS for Kubernetes.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"kubedns-py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, what, add_flags in COMMANDS:
        add_flags(commands.add_parser(name, help=what, allow_abbrev=False))
    return parser


class NoSource(Exception):
    """Why serve has no source, and the exit status that says so: 2 for a bad flag, 1 for nothing
    to read (as for any other configuration problem)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def make_source(config: ServeConfig, registry: CollectorRegistry) -> Source:
    """The source for this config; raises NoSource saying why there is none."""
    if config.manifests:
        from kubedns_py.sources.manifests import ManifestSource

        return ManifestSource(config.manifests)
    from kubedns_py.sources.kube.client import KubeSettings, have_cluster_config
    from kubedns_py.sources.kube.source import KubeSource

    try:
        settings = KubeSettings(
            kubeconfig=config.kubeconfig,
            master_url=config.kube_master_url,
            endpoints_api=config.endpoints_api,  # type: ignore[arg-type]  # validated by argparse choices
            watch_pods=config.pods is PodMode.VERIFIED,
            stall_timeout=config.watch_stall_timeout,
            coredns_metrics=config.coredns_metrics,
        )
    except ValueError as err:
        raise NoSource(str(err), 2) from None
    if not have_cluster_config(settings):
        raise NoSource(
            "no cluster to read: give --manifests PATH, or --kubeconfig / --kube-master-url, "
            "or run inside a Pod with a service account",
            1,
        )
    return KubeSource(settings, registry)


def run_serve(config: ServeConfig, check_only: bool) -> int:
    registry = CollectorRegistry()
    try:
        source = make_source(config, registry)
    except NoSource as err:
        print(f"kubedns-py serve: {err}", file=sys.stderr)
        return err.status
    if check_only:
        return _report("serve", cluster_problems(config.manifests, config.kubeconfig, config.kube_master_url))
    from kubedns_py.serve.app import ServeApp

    if config.nameservers or config.config_dir:
        log.info("--nameservers/--config-dir accepted for compatibility; forwarding is the cache's job")
    run(ServeApp(config, source, registry))
    return 0


def cluster_problems(manifests: Sequence[Path], kubeconfig: str | None, master_url: str | None) -> list[str]:
    from kubedns_py.checks import kubeconfig_problem, manifest_problems
    from kubedns_py.sources.kube.client import KubeSettings

    if manifests:
        return manifest_problems(manifests)
    problem = kubeconfig_problem(KubeSettings(kubeconfig=kubeconfig, master_url=master_url))
    return [problem] if problem else []


def _report(command: str, problems: list[str]) -> int:
    for problem in problems:
        print(f"kubedns-py {command}: {problem}", file=sys.stderr)
    return 1 if problems else 0


def run_cache(config: CacheConfig, check_only: bool) -> int:
    if check_only:
        from kubedns_py.checks import config_dir_problem, resolv_file_problem

        problems = [
            config_dir_problem(config.config_dir) if config.config_dir else None,
            None if config.no_resolv else resolv_file_problem(config.resolv_file),
        ]
        return _report("cache", [p for p in problems if p])
    if config.workers > 1:
        from kubedns_py.cache.pool import CachePool

        run(CachePool(config))
    else:
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


def subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    return parser


def command_line(argv: Sequence[str]) -> list[str]:
    """The dnsmasq-nanny spelling ``cache NANNY-FLAGS -- DNSMASQ-FLAGS`` is one list of cache flags."""
    if argv[:1] == ["cache"] and "--" in argv:
        split = list(argv).index("--")
        argv = [*argv[:split], *argv[split + 1 :]]
    return normalize_argv(argv, SHORT_FLAGS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(command_line(sys.argv[1:] if argv is None else argv))
    sub = subcommand_parser(parser, args.command)
    if extra:  # the subcommand's usage, not the top level's
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(args.v)
    try:
        if args.command == "serve":
            warn_obsolete(args, SERVE_OBSOLETE)
            return run_serve(serve_config(args, sub), args.check_config)
        if args.command == "cache":
            warn_obsolete(args, CACHE_OBSOLETE)
            return run_cache(cache_config(args, sub), args.check_config)
        if args.command == "nodelocal":
            return run_nodelocal(nodelocal_config(args, sub), args.check_config)
        if args.command == "up":
            if args.check_config:
                return check_up(args)
            return asyncio.run(supervise(args))
    except OSError as err:  # a port in use, an address not on this host
        print(f"kubedns-py {args.command}: {err}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
