"""Where things are in this checkout: the project root, test data, and what deploy/ ships."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DEMO_CLUSTER = ROOT / "deploy" / "examples" / "demo-cluster.yaml"

DEPLOY = ROOT / "deploy"
DEPLOY_KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(DEPLOY_KUBERNETES.glob("*.yaml"))
RULES = DEPLOY / "prometheus" / "rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yaml"
DASHBOARD = DEPLOY / "grafana" / "kubedns.json"
