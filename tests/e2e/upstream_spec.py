"""The upstream kube-dns pod (``kube-dns.yaml.in``) with our images: its three containers' command lines
verbatim, on the pod's own ports, in a network namespace of their own:

    unshare -n python -m tests.e2e.upstream_spec WORK_DIR

brings ``lo`` up, serves the API double on 127.0.0.1 inside the namespace, starts the three
containers, waits for the pod's probes to answer 200, asks through port 53, prints a JSON report on
stdout, and stops everything. Logs go to WORK_DIR.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode

from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.paths import ROOT

DOMAIN = "cluster.local"
KUBEDNS = [
    "kubedns-py",
    "serve",
    f"--domain={DOMAIN}.",
    "--dns-port=10053",
    "--config-dir=/kube-dns-config",
    "--v=2",
]
KUBEDNS_ENV = {"PROMETHEUS_PORT": "10055"}
DNSMASQ = [
    "kubedns-py",
    "cache",
    "-v=2",
    "-logtostderr",
    "-configDir=/etc/k8s/dns/dnsmasq-nanny",
    "-restartDnsmasq=true",
    "--",
    "-k",
    "--cache-size=1000",
    "--no-negcache",
    "--dns-loop-detect",
    "--log-facility=-",
    f"--server=/{DOMAIN}/127.0.0.1#10053",
    "--server=/in-addr.arpa/127.0.0.1#10053",
    "--server=/ip6.arpa/127.0.0.1#10053",
]
SIDECAR = [
    "kubedns-probe",
    "--v=2",
    "--logtostderr",
    f"--probe=kubedns,127.0.0.1:10053,kubernetes.default.svc.{DOMAIN},5,SRV",
    f"--probe=dnsmasq,127.0.0.1:53,kubernetes.default.svc.{DOMAIN},5,SRV",
]
# The pod's probes: container → (port, path).
PROBES = {
    "kubedns liveness": (10054, "/healthcheck/kubedns"),
    "kubedns readiness": (8081, "/readiness"),
    "dnsmasq liveness": (10054, "/healthcheck/dnsmasq"),
    "sidecar liveness": (10054, "/metrics"),
}
SERVICE_IP = "10.96.3.3"
PROBE_DEADLINE = 30.0  # the sidecar's first probe comes within its 5 s interval
ENTRY_POINTS = {"kubedns-py": "kubedns_py", "kubedns-probe": "probe"}


def argv(command: list[str]) -> list[str]:
    """The command as the image runs it: the program is our package's entry point."""
    program, *args = command
    return [sys.executable, "-m", ENTRY_POINTS[program], *args]


def load_cluster(api: FakeApiServer) -> None:
    https = (("https", 443, "TCP"),)
    api.create("services", objects.service("kubernetes", cluster_ip="10.96.0.1", ports=https))
    api.create(
        "endpoints", objects.endpoints("kubernetes", ["192.168.0.10"], ports=(("https", 6443, "TCP"),))
    )
    api.create(
        "endpointslices",
        objects.endpoint_slice("kubernetes", "kubernetes", ["192.168.0.10"], ports=(("https", 6443, "TCP"),)),
    )
    api.create("services", objects.service("myservice", cluster_ip=SERVICE_IP))


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
            code: int = reply.status
            return code
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


async def probe_statuses() -> dict[str, int]:
    """Each probe's status once all answer 200, or as they are at the deadline."""
    deadline = time.monotonic() + PROBE_DEADLINE
    while True:
        codes = {name: await asyncio.to_thread(status, *where) for name, where in PROBES.items()}
        if all(code == 200 for code in codes.values()) or time.monotonic() > deadline:
            return codes
        await asyncio.sleep(0.2)  # the sidecar's probes run on their own clock: nothing to await


async def ask(name: str, tcp: bool) -> list[str]:
    query = dns.message.make_query(name, "A")
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    reply = await send(query, "127.0.0.1", port=53, timeout=5)
    return [f"{dns.rcode.to_text(reply.rcode())}"] + [str(rr) for rrset in reply.answer for rr in rrset]


def start(work: Path, api_url: str) -> list[subprocess.Popen[bytes]]:
    # In a cluster serve finds the API through its service account; here, the double's URL.
    commands = [
        ("kubedns", [*argv(KUBEDNS), f"--kube-master-url={api_url}"], KUBEDNS_ENV),
        ("dnsmasq", argv(DNSMASQ), {}),
        ("sidecar", argv(SIDECAR), {}),
    ]
    children = []
    for name, command, env in commands:
        with (work / f"{name}.log").open("wb") as log:
            children.append(subprocess.Popen(command, cwd=ROOT, stderr=log, env={**os.environ, **env}))
    return children


def stop(children: list[subprocess.Popen[bytes]]) -> list[int]:
    for child in children:
        child.send_signal(signal.SIGTERM)
    return [child.wait(timeout=15) for child in children]


async def drive(work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with FakeApiServer() as api:
        load_cluster(api)
        children = start(work, api.url)
        try:
            report["probes"] = await probe_statuses()
            name = f"myservice.default.svc.{DOMAIN}."
            report["udp"] = await ask(name, tcp=False)
            report["tcp"] = await ask(name, tcp=True)
            report["running"] = [child.poll() is None for child in children]
        finally:
            report["exits"] = await asyncio.to_thread(stop, children)
    return report


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(asyncio.run(drive(Path(sys.argv[1])))))
