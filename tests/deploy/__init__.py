"""Checks of deploy/: the manifests, the image recipe, the dashboard and the alerts an operator applies.

Shared helpers live here: reading the manifests, Kubernetes' ``$(VAR)`` expansion, and pulling metric
names out of PromQL.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
RULES = DEPLOY / "prometheus" / "rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yaml"
DASHBOARD = DEPLOY / "grafana" / "kubedns.json"

# Our entry points (pyproject's [project.scripts]) and how to run them from this checkout.
ENTRY_POINTS = {
    "kubedns-py": [sys.executable, "-m", "kubedns_py"],
    "kubedns-probe": [sys.executable, "-m", "probe"],
}

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


# -- PromQL ----------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_.:$])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\(?)")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions (followed by
    ``(``), keywords, label names (inside ``{}`` or grouping clauses), durations or numbers."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.groups()
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
