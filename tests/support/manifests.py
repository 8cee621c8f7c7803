"""Reading deploy/'s Kubernetes manifests as a test needs them: documents, workloads, containers, and
Kubernetes' ``$(VAR)`` expansion of their command lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import MANIFESTS

Obj = dict[str, Any]
WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}


def documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def find(path: Path, kind: str, name: str) -> Obj:
    matches = [d for d in documents(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{path.name}: expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def by_name(items: list[Obj]) -> dict[str, Obj]:
    return {item["name"]: item for item in items}


@dataclass(frozen=True)
class Container:
    manifest: str  # file name
    workload: str  # Kind/name
    spec: Obj
    init: bool

    @property
    def id(self) -> str:
        return f"{self.manifest}:{self.workload}/{self.spec['name']}"

    @property
    def argv(self) -> list[str]:
        return [*self.spec.get("command", []), *self.spec.get("args", [])]

    @property
    def env(self) -> dict[str, str]:
        """The container's literal env values (the manifests use no valueFrom)."""
        return {e["name"]: e["value"] for e in self.spec.get("env", [])}


def containers() -> Iterator[Container]:
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] not in WORKLOAD_KINDS:
                continue
            workload = f"{doc['kind']}/{doc['metadata']['name']}"
            spec = pod_spec(doc)
            for field, init in (("initContainers", True), ("containers", False)):
                for container in spec.get(field, []):
                    yield Container(path.name, workload, container, init)


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command and args: ``$(VAR)`` from the environment, ``$$`` is a literal
    ``$``, and a reference to an undefined variable is left as it is."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, text)
