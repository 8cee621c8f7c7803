"""Builders for the Kubernetes API objects the tests feed the API server double: plain JSON dicts shaped
as the real API serves them (only the fields DNS reads, plus what kubernetes-asyncio's models require)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
RESOURCE_OF_KIND = {
    "Namespace": "namespaces",
    "Service": "services",
    "EndpointSlice": "endpointslices",
    "Endpoints": "endpoints",
    "Pod": "pods",
}


def _meta(name: str, namespace: str | None, **extra: Any) -> Obj:
    meta: Obj = {"name": name, **{k: v for k, v in extra.items() if v}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace(name: str) -> Obj:
    return {"metadata": _meta(name, None), "status": {"phase": "Active"}}


def service(
    name: str,
    ns: str = "default",
    cluster_ip: str | None = "10.0.0.1",
    ports: tuple[tuple[str, int, str], ...] = (("http", 80, "TCP"),),
) -> Obj:
    """A ClusterIP service; ``cluster_ip=None`` makes it headless."""
    ip = cluster_ip or "None"
    return {
        "metadata": _meta(name, ns),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
        },
    }


def changed_endpoint_slice(name: str, service_name: str, address: str, ago: float) -> Obj:
    """A slice whose last change (its trigger-time annotation, whole seconds as the controller
    writes it) was ``ago`` seconds before now: one sample of the DNS programming latency."""
    changed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=ago)
    return endpoint_slice(name, service_name, [address], trigger_time=changed.strftime("%Y-%m-%dT%H:%M:%SZ"))


def endpoint_slice(
    name: str,
    service_name: str,
    addresses: list[str],
    ns: str = "default",
    ready: bool = True,
    trigger_time: str | None = None,
    ports: tuple[tuple[str, int, str], ...] = (("http", 8080, "TCP"),),
) -> Obj:
    annotations = {"endpoints.kubernetes.io/last-change-trigger-time": trigger_time} if trigger_time else None
    return {
        "metadata": _meta(
            name, ns, labels={"kubernetes.io/service-name": service_name}, annotations=annotations
        ),
        "addressType": "IPv6" if addresses and ":" in addresses[0] else "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }


def endpoints(
    name: str,
    addresses: list[str],
    ns: str = "default",
    ports: tuple[tuple[str, int, str], ...] = (("http", 8080, "TCP"),),
) -> Obj:
    return {
        "metadata": _meta(name, ns),
        "subsets": [
            {
                "addresses": [{"ip": a} for a in addresses],
                "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            }
        ],
    }


def pod(name: str, ip: str, ns: str = "default") -> Obj:
    return {
        "metadata": _meta(name, ns),
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/app"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def manifest_objects(path: Path) -> Iterator[tuple[str, Obj]]:
    """(resource, object) for each item of a manifest List, to ``create`` in the API server double."""
    for item in yaml.safe_load(path.read_text())["items"]:
        yield RESOURCE_OF_KIND[item["kind"]], item
