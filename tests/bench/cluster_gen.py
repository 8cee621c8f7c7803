"""Deterministic synthetic clusters for benchmarks: plain Kubernetes-shaped dicts (``apiVersion``,
``kind``, and only the fields DNS reads), so the same objects can be written as a manifest for
``serve --manifests`` or fed to an API server double.

Addresses are derived from each object's index, never drawn at random, so two runs with the same
shape produce byte-identical manifests and answers.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")
POD_CIDR = ipaddress.IPv4Network("10.128.0.0/9")
SERVICE_PORTS = (("http", 80, "TCP"), ("metrics", 9090, "TCP"))
ENDPOINT_PORTS = (("http", 8080, "TCP"), ("metrics", 9090, "TCP"))


@dataclass(frozen=True)
class ClusterShape:
    services: int = 1_000
    namespaces: int = 10
    headless_every: int = 5  # every n-th service is headless (0: none)
    slices_per_headless: int = 1
    endpoints_per_slice: int = 3
    # Every other headless service names its endpoints (StatefulSet style); the rest get dashed-IP labels.
    hostnames_every: int = 2


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str, cluster_ip: str | None) -> Obj:
    """A ClusterIP service; ``cluster_ip=None`` makes it headless."""
    ip = cluster_ip or "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in SERVICE_PORTS],
        },
    }


def endpoint_slice(
    name: str, ns: str, service_name: str, addresses: list[str], hostnames: list[str] | None = None
) -> Obj:
    endpoints: list[Obj] = []
    for index, address in enumerate(addresses):
        endpoint: Obj = {"addresses": [address], "conditions": {"ready": True}}
        if hostnames is not None:
            endpoint["hostname"] = hostnames[index]
        endpoints.append(endpoint)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ENDPOINT_PORTS],
    }


def cluster_objects(shape: ClusterShape = ClusterShape()) -> Iterator[Obj]:
    """Namespaces ``ns-<k>``, then services ``svc-<i>`` spread round-robin over them, each headless one
    followed by its endpoint slices. A generator, so a 100k-object cluster need not sit in memory twice."""
    if shape.services + 1 >= SERVICE_CIDR.num_addresses:
        raise ValueError(f"{shape.services} services do not fit in {SERVICE_CIDR}")
    for k in range(shape.namespaces):
        yield namespace(f"ns-{k}")
    next_pod = 1
    for i in range(shape.services):
        ns, name = f"ns-{i % shape.namespaces}", f"svc-{i}"
        if not (shape.headless_every and i % shape.headless_every == 0):
            yield service(name, ns, str(SERVICE_CIDR[i + 1]))
            continue
        yield service(name, ns, None)
        named = bool(shape.hostnames_every) and (i // shape.headless_every) % shape.hostnames_every == 0
        for s in range(shape.slices_per_headless):
            count = shape.endpoints_per_slice
            addresses = [str(POD_CIDR[next_pod + j]) for j in range(count)]
            hostnames = [f"{name}-{s * count + j}" for j in range(count)] if named else None
            next_pod += count
            yield endpoint_slice(f"{name}-{s:05d}", ns, name, addresses, hostnames)


def write_manifest(path: Path, objects: Iterator[Obj] | list[Obj]) -> Path:
    """Write objects as one ``kind: List`` JSON file (JSON loads far faster than YAML at 100k objects)."""
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}), "utf-8")
    return path
