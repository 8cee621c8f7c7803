"""The upstream kube-dns pod (``kube-dns.yaml.in``) with our three images: each container's args
verbatim after its image's entry point (read from deploy/Dockerfile), on the pod's own ports, in a
network namespace of their own:

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import yaml

from tests.support import apiserver_objects as objects
from tests.support import dockerfile
from tests.support.apiserver import FakeApiServer
from tests.support.http import http_status
from tests.support.paths import ROOT
from tests.support.processes import ENTRY_POINTS
from tests.support.waiting import wait_for

DOMAIN = "cluster.local"
# The addon's deployment with our three images (nothing else changed), and the values its template
# variables get.
SPEC = ROOT / "tests" / "data" / "kube-dns.yaml.in"
TEMPLATE = {"__DNS__DOMAIN__": DOMAIN, "__DNS__MEMORY__LIMIT__": "170Mi"}
IMAGE_PREFIX = "kubedns-py-"  # then the Dockerfile target the image is built from
SERVICE_IP = "10.96.3.3"
PROBE_DEADLINE = 30.0  # the sidecar's first probe comes within its 5 s interval


@dataclass(frozen=True)
class UpstreamContainer:
    name: str
    command: list[str]  # the image's entry point, then the container's args
    env: dict[str, str]
    uid: int  # the container's runAsUser, else its image's USER
    gid: int
    capabilities: list[str]  # all dropped but these
    probes: dict[str, tuple[int, str]]  # liveness/readiness → (port, path)

    def privileges(self, switch_user: bool) -> list[str]:
        """setpriv's arguments to run a command as the container would: its user and group (when
        ``switch_user``), and what is left of the capabilities (a non-root user keeps none across
        exec anyway)."""
        keep = "".join(f",+{cap.lower()}" for cap in self.capabilities)
        ids = [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"] if switch_user else []
        return ["setpriv", *ids, f"--bounding-set=-all{keep}", "--"]

    def can_run_here(self) -> bool:
        """Whether the container's user can reach this checkout and its interpreter (a clone under
        a directory only root may enter cannot be run as uid 1001)."""
        if self.uid == 0:
            return True
        check = [*self.privileges(switch_user=True), sys.executable, "-c", "import kubedns_py, probe"]
        return subprocess.run(check, cwd=ROOT, capture_output=True, timeout=30, check=False).returncode == 0


def upstream_containers() -> list[UpstreamContainer]:
    text = SPEC.read_text()
    for variable, value in TEMPLATE.items():
        text = text.replace(variable, value)
    pod = yaml.safe_load(text)["spec"]["template"]["spec"]
    containers = []
    for spec in pod["containers"]:
        image = spec["image"].rsplit(":", 1)[0]
        stage = dockerfile.target(image.removeprefix(IMAGE_PREFIX))
        probes = {
            kind.removesuffix("Probe"): (spec[kind]["httpGet"]["port"], spec[kind]["httpGet"]["path"])
            for kind in ("livenessProbe", "readinessProbe")
            if kind in spec
        }
        env = {item["name"]: item["value"] for item in spec.get("env", [])}
        context = spec.get("securityContext", {})
        image_uid, _, image_gid = stage.user.partition(":")
        uid = int(context.get("runAsUser", image_uid))
        gid = int(context.get("runAsGroup", image_gid or uid))
        added = context.get("capabilities", {}).get("add", [])
        command = [*stage.entrypoint, *spec["args"]]
        containers.append(UpstreamContainer(spec["name"], command, env, uid, gid, added, probes))
    return containers


CONTAINERS = upstream_containers()
# The pod's probes: "container kind" → (port, path).
PROBES = {f"{c.name} {kind}": where for c in CONTAINERS for kind, where in c.probes.items()}


def argv(command: list[str]) -> list[str]:
    """The command as the image runs it: the program is our package's entry point."""
    program, *args = command
    return [*ENTRY_POINTS[program], *args]


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


def statuses() -> dict[str, int]:
    return {name: http_status(*where) for name, where in PROBES.items()}


async def probe_statuses() -> dict[str, int]:
    """Each probe's status once all answer 200, or as they are at the deadline. Polled: the sidecar's
    probes run on their own clock, with nothing to await."""

    def all_200(codes: dict[str, int]) -> bool:
        return all(code == 200 for code in codes.values())

    try:
        return await asyncio.to_thread(wait_for, statuses, all_200, PROBE_DEADLINE, "the probes", 0.2)
    except AssertionError:
        return await asyncio.to_thread(statuses)  # the test compares them with all 200s


async def ask(name: str, tcp: bool) -> list[str]:
    query = dns.message.make_query(name, "A")
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    reply = await send(query, "127.0.0.1", port=53, timeout=5)
    return [f"{dns.rcode.to_text(reply.rcode())}"] + [str(rr) for rrset in reply.answer for rr in rrset]


def start(work: Path, api_url: str, switch_users: bool) -> list[subprocess.Popen[bytes]]:
    children = []
    for container in CONTAINERS:
        command = [*container.privileges(switch_users and container.uid != 0), *argv(container.command)]
        if container.command[:2] == ["kubedns-py", "serve"]:
            # In a cluster serve finds the API through its service account; here, the double's URL.
            command.append(f"--kube-master-url={api_url}")
        with (work / f"{container.name}.log").open("wb") as log:
            env = {**os.environ, **container.env}
            children.append(subprocess.Popen(command, cwd=ROOT, stderr=log, env=env))
    return children


def privileges(pid: int) -> dict[str, str]:
    """The real user and the effective capabilities (hex) a running process has."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return {"uid": "exited", "caps": "exited"}
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return {"uid": fields["Uid"].split()[0], "caps": fields["CapEff"].strip()}


def stop(children: list[subprocess.Popen[bytes]]) -> list[int]:
    for child in children:
        child.send_signal(signal.SIGTERM)
    return [child.wait(timeout=15) for child in children]


async def drive(work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with FakeApiServer() as api:
        load_cluster(api)
        report["users_switched"] = all(c.can_run_here() for c in CONTAINERS)
        children = start(work, api.url, report["users_switched"])
        try:
            report["probes"] = await probe_statuses()
            name = f"myservice.default.svc.{DOMAIN}."
            report["udp"] = await ask(name, tcp=False)
            report["tcp"] = await ask(name, tcp=True)
            report["running"] = [child.poll() is None for child in children]
            pairs = zip(CONTAINERS, children, strict=True)
            report["privileges"] = {c.name: privileges(child.pid) for c, child in pairs}
        finally:
            report["exits"] = await asyncio.to_thread(stop, children)
    return report


if __name__ == "__main__":
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(asyncio.run(drive(Path(sys.argv[1])))))
