"""``kubedns-py up``: the whole pod on one machine, as three processes wired as in Kubernetes.

serve answers the cluster zone on its port; cache listens where clients ask, sending the cluster and
reverse zones to serve and the rest upstream; probe asks both and polls the cache's statistics. Each
child's log lines are prefixed with its name. Ctrl-C or SIGTERM stops all three; if one dies on its own,
the others are stopped too and ``up`` exits non-zero, so there is never a silent half-pod.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubedns_py.flags import add_logging_flags, add_repeated_flag, add_workers_flag, port
from kubedns_py.serve.config import add_cluster_flags

DEMO_CLUSTER = Path(__file__).resolve().parent.parent / "deploy" / "examples" / "demo-cluster.yaml"
READY_WITHIN = 30.0
STOP_WITHIN = 10.0
CHECK_WITHIN = 60.0


def add_up_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="127.0.0.1", help="where all three listen (default 127.0.0.1)")
    parser.add_argument("--cache-port", type=port, default=1053, help="DNS port clients use (default 1053)")
    parser.add_argument("--serve-port", type=port, default=10053)
    parser.add_argument("--serve-health-port", type=port, default=8081)
    parser.add_argument("--serve-metrics-port", type=port, default=10055)
    parser.add_argument("--cache-metrics-port", type=port, default=9153)
    parser.add_argument("--probe-port", type=port, default=10054)
    add_cluster_flags(parser)  # serve's own: with neither manifests nor a cluster, the demo cluster
    add_repeated_flag(
        parser, "--server", "IP[#PORT]", "upstream servers for other names (default: /etc/resolv.conf)"
    )
    add_workers_flag(parser)  # serve's and the cache's, each
    add_logging_flags(parser)


def child_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    address, domain = args.address, args.domain
    serve = [
        sys.executable,
        "-m",
        "kubedns_py",
        "serve",
        f"--domain={domain}.",
        f"--dns-bind-address={address}",
        f"--dns-port={args.serve_port}",
        f"--http-bind-address={address}",
        f"--healthz-port={args.serve_health_port}",
        f"--metrics-port={args.serve_metrics_port}",
        f"--v={args.v}",
    ]
    # serve's flags as given (serve decides between manifests and a cluster); with neither, the demo.
    serve += [f"--kubeconfig={args.kubeconfig}"] if args.kubeconfig else []
    serve += [f"--kube-master-url={args.kube_master_url}"] if args.kube_master_url else []
    serve += [f"--manifests={path}" for path in ([DEMO_CLUSTER] if on_demo(args) else args.manifests)]
    compat = ["--coredns-metrics"] if args.coredns_metrics else []
    serve += compat
    serve.append(f"--workers={args.workers}")
    to_serve = f"{address}#{args.serve_port}"
    cache = [
        sys.executable,
        "-m",
        "kubedns_py",
        "cache",
        "-k",
        f"--listen-address={address}",
        f"--port={args.cache_port}",
        f"--http-bind-address={address}",
        f"--metrics-port={args.cache_metrics_port}",
        "--dns-loop-detect",
        "--log-facility=-",
        f"--server=/{domain}/{to_serve}",
        f"--server=/in-addr.arpa/{to_serve}",
        f"--server=/ip6.arpa/{to_serve}",
        f"--v={args.v}",
    ]
    cache += [*compat, f"--workers={args.workers}"]
    if args.server:
        cache += ["--no-resolv", *(f"--server={server}" for server in args.server)]
    name = probed_name(args)
    probe = [
        sys.executable,
        "-m",
        "probe",
        f"--probe=kubedns,{address}:{args.serve_port},{name},5,SRV",
        f"--probe=dnsmasq,{address}:{args.cache_port},{name},5,SRV",
        f"--dnsmasq-addr={address}",
        f"--dnsmasq-port={args.cache_port}",
        f"--prometheus-addr={address}",
        f"--prometheus-port={args.probe_port}",
        f"--v={args.v}",
    ]
    return {"serve": serve, "cache": cache, "probe": probe}


async def _relay(name: str, stream: asyncio.StreamReader) -> None:
    async for line in stream:
        sys.stderr.write(f"[{name}] {line.decode(errors='replace')}")
        sys.stderr.flush()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def _wait_ready(urls: list[str], children: dict[str, asyncio.subprocess.Process]) -> bool:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if any(child.returncode is not None for child in children.values()):
            return False
        ready = await asyncio.gather(*(asyncio.to_thread(_http_ok, url) for url in urls))
        if all(ready):
            return True
        await asyncio.sleep(0.2)
    return False


def check(args: argparse.Namespace) -> int:
    """``--check-config``: each child's own check of the command line up would give it, so up's
    flags mean what serve's, the cache's and the probe's say. Prints the problems found, by child;
    the exit status is the worst child's (2 for a bad flag, 1 for a bad file)."""
    status = 0
    for name, command in child_commands(args).items():
        try:
            done = subprocess.run(
                [*command, "--check-config"],
                capture_output=True,
                text=True,
                timeout=CHECK_WITHIN,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"kubedns-py up: {name}: its check did not finish in {CHECK_WITHIN:g}s", file=sys.stderr)
            status = max(status, 1)
            continue
        said = [line for line in done.stderr.splitlines() if line.strip() and not line[0].isspace()]
        for line in said if done.returncode else ():
            if not line.startswith("usage:"):
                print(f"kubedns-py up: {name}: {line.removeprefix(f'kubedns-py {name}: ')}", file=sys.stderr)
        status = max(status, done.returncode)
    return status


def probed_name(args: argparse.Namespace) -> str:
    """The probes' question: the API server's Service, which every cluster has."""
    return f"kubernetes.default.svc.{args.domain}"


def on_demo(args: argparse.Namespace) -> bool:
    """Whether serve gets the demo cluster: neither manifests nor a cluster were given."""
    return not (args.manifests or args.kubeconfig or args.kube_master_url)


def example_questions(args: argparse.Namespace) -> list[str]:
    """What the banner offers to dig: the demo cluster's Services, or else the one name the probes
    ask (the banner waits until both servers answer it), and the cache's statistics."""
    domain = args.domain
    if on_demo(args):
        names = [
            f"myservice.default.svc.{domain}",
            f"_http._tcp.myservice.default.svc.{domain} SRV",
            f"db.shop.svc.{domain}",
            f"search.default.svc.{domain}",
            "-x 10.96.100.10",
        ]
    else:
        names = [probed_name(args)]
    return [*names, "CH TXT hits.bind"]


def banner(args: argparse.Namespace) -> str:
    a = args.address
    dig = f"dig @{a} -p {args.cache_port}"
    return "\n".join(
        [
            "",
            f"kubedns-py is up: cache on {a}:{args.cache_port}, serve on {a}:{args.serve_port}, "
            f"probe on {a}:{args.probe_port}",
            "Try:",
            *(f"  {dig} {question}" for question in example_questions(args)),
            "Health and metrics:",
            f"  curl http://{a}:{args.probe_port}/healthcheck/kubedns",
            f"  curl http://{a}:{args.probe_port}/metrics",
            f"  curl http://{a}:{args.serve_metrics_port}/metrics",
            f"  curl http://{a}:{args.cache_metrics_port}/metrics",
            "Ctrl-C stops all three.",
            "",
        ]
    )


async def supervise(args: argparse.Namespace) -> int:
    children: dict[str, asyncio.subprocess.Process] = {}
    relays = []
    for name, command in child_commands(args).items():
        child = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stderr is not None
        children[name] = child
        relays.append(asyncio.create_task(_relay(name, child.stderr)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    a = args.address
    # Ready means what a user checks next: serve synced, and the probe has seen both servers answer.
    urls = [
        f"http://{a}:{args.serve_health_port}/readiness",
        f"http://{a}:{args.probe_port}/healthcheck/kubedns",
        f"http://{a}:{args.probe_port}/healthcheck/dnsmasq",
    ]
    exits: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(child.wait()): name for name, child in children.items()
    }
    ready = asyncio.create_task(_wait_ready(urls, children))
    stopper = asyncio.create_task(stop.wait())
    pending: set[asyncio.Task[Any]] = {ready, stopper, *exits}
    exit_code = 0
    while True:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if ready in done and ready.result():
            sys.stderr.write(banner(args))
        elif ready in done and all(c.returncode is None for c in children.values()):
            sys.stderr.write(f"up: the pod is not ready after {READY_WITHIN:.0f}s; the logs above say why\n")
        died = [exits[task] for task in done if task in exits]
        if died:
            name = died[0]
            sys.stderr.write(
                f"up: {name} exited with code {children[name].returncode}; stopping the others\n"
            )
            exit_code = 1
            break
        if stopper in done:
            break
    await _stop_all(children)
    for task in (*pending, *relays):
        task.cancel()
    await asyncio.gather(*pending, *relays, return_exceptions=True)
    return exit_code


async def _stop_all(children: dict[str, asyncio.subprocess.Process]) -> None:
    for child in children.values():
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
    for child in children.values():
        try:
            await asyncio.wait_for(child.wait(), STOP_WITHIN)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
