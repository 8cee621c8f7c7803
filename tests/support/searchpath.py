"""A cluster for search-path tests: the objects serve reads (namespaces, services, Pods with their
dnsPolicy and dnsConfig) written as a manifest, and the search list and resolv.conf a Pod gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ZONE = "cluster.local"
HOST_DOMAIN = "example.internal"  # the node's search domain, last in every Pod's search list


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str, cluster_ip: str) -> dict[str, Any]:
    spec = {"type": "ClusterIP", "clusterIP": cluster_ip, "ports": [{"port": 80, "protocol": "TCP"}]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def pod(name: str, ns: str, ip: str, **spec: Any) -> dict[str, Any]:
    """A running Pod at ``ip``; ``spec`` gives dnsPolicy, dnsConfig, hostNetwork as the API spells them."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def write_cluster(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return path


def search_list(ns: str) -> list[str]:
    """A standard Pod's search domains, as the kubelet writes them."""
    return [f"{ns}.svc.{ZONE}", f"svc.{ZONE}", ZONE, HOST_DOMAIN]


def pod_resolv_conf(nameserver: str, ns: str, ndots: int = 5) -> str:
    return f"nameserver {nameserver}\nsearch {' '.join(search_list(ns))}\noptions ndots:{ndots}\n"
