"""deploy/kubernetes/: every document is valid against the Kubernetes API schemas (offline), and the
objects fit together as the kube-dns addon's did (names, selectors, ports, probes, security)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kubedns_py.cache.app import FINISH_WITHIN
from kubedns_py.flags import duration
from kubedns_py.nodelocal.handoff import HANDOVER_WAIT
from tests.support import dockerfile
from tests.support.manifests import Obj, by_name, containers, documents, find, pod_spec
from tests.support.paths import DEPLOY, DEPLOY_KUBERNETES, MANIFESTS, ROOT
from tests.support.processes import ENTRY_POINTS

# Schemas shipped by kubernetes-validate; 1.30 is the oldest release still commonly run that has every
# field we use (the sysctl has been safe since 1.22, autoscaling/v2 and policy/v1 since 1.23).
KUBERNETES_VERSION = "1.30"
KUBE_DNS = DEPLOY_KUBERNETES / "kube-dns.yaml"
NODELOCAL = DEPLOY_KUBERNETES / "nodelocal.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGE = f"kubedns-py:{PYPROJECT['project']['version']}"
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_the_manifests_are_there() -> None:
    assert {p.name for p in MANIFESTS} >= {"kube-dns.yaml", "nodelocal.yaml", "autoscaler.yaml", "hpa.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_document_validates_against_the_kubernetes_schemas(path: Path) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (a dev dependency: pip install kubernetes-validate)",
    )
    problems = []
    for doc in documents(path):
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{what}: at {where or '(top)'}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append(f"{what}: {err}")
    assert not problems, "\n".join(problems)


def test_kube_dns_pod_matches_the_addon() -> None:
    deployment = find(KUBE_DNS, "Deployment", "kube-dns")
    spec = pod_spec(deployment)
    assert deployment["spec"]["selector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert spec["serviceAccountName"] == "kube-dns"
    assert spec["dnsPolicy"] == "Default"
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in spec["tolerations"]
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "10%", "maxUnavailable": 0}

    pod = by_name(spec["containers"])
    assert list(pod) == ["kubedns", "dnsmasq", "sidecar"]
    assert pod["kubedns"]["command"] == ["kubedns-py", "serve"]
    assert pod["kubedns"]["args"][:4] == [
        "--domain=cluster.local.",
        "--dns-port=10053",
        "--config-dir=/kube-dns-config",
        "--v=2",
    ]
    assert pod["kubedns"]["env"] == [{"name": "PROMETHEUS_PORT", "value": "10055"}]
    assert pod["dnsmasq"]["command"] == ["kubedns-py", "cache"]
    assert pod["dnsmasq"]["args"] == [
        "-k",
        "--cache-size=1000",
        "--no-negcache",
        "--dns-loop-detect",
        "--log-facility=-",
        "--server=/cluster.local/127.0.0.1#10053",
        "--server=/in-addr.arpa/127.0.0.1#10053",
        "--server=/ip6.arpa/127.0.0.1#10053",
        "--config-dir=/kube-dns-config",
        "--metrics-port=9153",
        "--lameduck=5s",
    ]
    assert pod["sidecar"]["command"] == ["kubedns-probe"]
    assert pod["sidecar"]["args"] == [
        "--v=2",
        "--probe=kubedns,127.0.0.1:10053,kubernetes.default.svc.cluster.local,5,SRV",
        "--probe=dnsmasq,127.0.0.1:53,kubernetes.default.svc.cluster.local,5,SRV",
    ]

    def ports(name: str) -> set[tuple[int, str]]:
        return {(p["containerPort"], p["protocol"]) for p in pod[name]["ports"]}

    assert ports("kubedns") == {(10053, "UDP"), (10053, "TCP"), (10055, "TCP"), (8081, "TCP")}
    assert ports("dnsmasq") == {(53, "UDP"), (53, "TCP"), (9153, "TCP")}
    assert ports("sidecar") == {(10054, "TCP")}

    def http(probe: Obj) -> tuple[str, int]:
        return probe["httpGet"]["path"], probe["httpGet"]["port"]

    assert http(pod["kubedns"]["livenessProbe"]) == ("/healthcheck/kubedns", 10054)
    assert http(pod["kubedns"]["readinessProbe"]) == ("/readiness", 8081)
    assert http(pod["dnsmasq"]["livenessProbe"]) == ("/healthcheck/dnsmasq", 10054)
    assert http(pod["sidecar"]["livenessProbe"]) == ("/metrics", 10054)
    for container in pod.values():
        liveness = container["livenessProbe"]
        assert (liveness["initialDelaySeconds"], liveness["timeoutSeconds"]) == (60, 5)
        assert liveness["failureThreshold"] == 5

    assert pod["kubedns"]["resources"] == {
        "limits": {"memory": "170Mi"},
        "requests": {"cpu": "100m", "memory": "70Mi"},
    }
    assert pod["dnsmasq"]["resources"]["requests"]["cpu"] == "150m"
    assert pod["sidecar"]["resources"]["requests"]["cpu"] == "10m"
    for container in pod.values():
        assert "memory" in container["resources"]["limits"], container["name"]
        assert "cpu" not in container["resources"]["limits"], "CPU throttling is DNS latency"


@pytest.mark.parametrize("path", [KUBE_DNS, NODELOCAL], ids=lambda p: p.name)
def test_dns_containers_answer_through_a_lame_duck_period_the_grace_period_covers(path: Path) -> None:
    (workload,) = [d for d in documents(path) if d["kind"] in ("Deployment", "DaemonSet")]
    spec = pod_spec(workload)
    dns = [c for c in spec["containers"] if c["command"][-1] in ("serve", "cache", "nodelocal")]
    assert dns
    for container in dns:
        lameduck = [duration(a.split("=", 1)[1]) for a in container["args"] if a.startswith("--lameduck=")]
        assert lameduck == [5.0], container["name"]
        # The lame-duck period replaces a preStop sleep, which would only delay it.
        assert "preStop" not in container.get("lifecycle", {}), container["name"]
        readiness = container.get("readinessProbe", {}).get("httpGet", {})
        if not spec.get("hostNetwork"):  # behind a Service: readiness is what takes it out
            assert readiness.get("path") == "/readiness", container["name"]
    assert spec["terminationGracePeriodSeconds"] >= 5.0 + FINISH_WITHIN + 2


def test_kube_dns_runs_unprivileged() -> None:
    spec = pod_spec(find(KUBE_DNS, "Deployment", "kube-dns"))
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    # Port 53 without any capability: the pod's unprivileged port range starts at 53.
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"} in pod_security["sysctls"]
    lowest = min(p["containerPort"] for c in spec["containers"] for p in c["ports"])
    assert lowest == 53
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
    # The API token reaches the kubedns container only.
    assert spec["automountServiceAccountToken"] is False
    token_mounts = {
        c["name"]
        for c in spec["containers"]
        for m in c.get("volumeMounts", [])
        if m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    }
    assert token_mounts == {"kubedns"}


def _ports_by_name(spec: Obj) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for port in container.get("ports", []):
            if "name" in port:
                assert port["name"] not in found, f"port name {port['name']} used twice in the pod"
                found[port["name"]] = (port["containerPort"], port.get("protocol", "TCP"))
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_pod_port_names_are_unique_and_valid(path: Path) -> None:
    for doc in documents(path):
        if "template" in doc.get("spec", {}):
            for name in _ports_by_name(pod_spec(doc)):
                assert len(name) <= 15 and _IANA_SVC_NAME.match(name), f"invalid port name {name!r}"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_reach_declared_ports_of_the_pods_they_select() -> None:
    workloads = [d for path in MANIFESTS for d in documents(path) if d["kind"] in {"Deployment", "DaemonSet"}]
    services = [d for path in MANIFESTS for d in documents(path) if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {"kube-dns", "kube-dns-upstream"}
    for service in services:
        selected = [
            w
            for w in workloads
            if _selects(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert [w["metadata"]["name"] for w in selected] == ["kube-dns"], service["metadata"]["name"]
        ports = _ports_by_name(pod_spec(selected[0]))
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in ports, f"{service['metadata']['name']}: no container port named {target}"
            assert ports[target][1] == port["protocol"], f"{target}: protocol differs"


def test_kube_dns_service_and_disruption_budget() -> None:
    service = find(KUBE_DNS, "Service", "kube-dns")
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    ports = {(p["port"], p["protocol"]) for p in service["spec"]["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (9153, "TCP"), (10054, "TCP"), (10055, "TCP")}
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in {p for p, _ in ports}
    budget = find(KUBE_DNS, "PodDisruptionBudget", "kube-dns")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}}}


def test_probes_and_the_readiness_port_are_served_by_the_pod() -> None:
    for path in MANIFESTS:
        for doc in documents(path):
            if "template" not in doc.get("spec", {}):
                continue
            spec = pod_spec(doc)
            ports = {port for port, _ in _ports_by_name(spec).values()}
            if spec.get("hostNetwork"):  # it declares none: the health port its flags name
                ports = {int(c["args"][c["args"].index("-health-port") + 1]) for c in spec["containers"]}
            for container in spec["containers"]:
                for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if kind in container and "httpGet" in container[kind]:
                        port = container[kind]["httpGet"]["port"]
                        assert port in ports, f"{path.name}: {container['name']} {kind} on undeclared {port}"


def test_rbac_grants_what_serve_watches_and_nothing_else() -> None:
    role = find(KUBE_DNS, "ClusterRole", "kubedns-py")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {
        (group, resource, verb)
        for group, resource in [
            ("", "services"),
            ("", "endpoints"),
            ("", "namespaces"),
            ("discovery.k8s.io", "endpointslices"),
        ]
        for verb in ("list", "watch")
    }
    assert granted == expected
    assert "resources: [pods]" in KUBE_DNS.read_text(), "the --pods verified option is documented"
    binding = find(KUBE_DNS, "ClusterRoleBinding", "kubedns-py")
    assert binding["roleRef"]["name"] == "kubedns-py"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"}]
    assert find(KUBE_DNS, "ServiceAccount", "kube-dns")["metadata"]["namespace"] == "kube-system"


def test_the_kube_dns_config_map_is_empty_and_mounted_where_the_cache_reads_it() -> None:
    config_map = find(KUBE_DNS, "ConfigMap", "kube-dns")
    assert not config_map.get("data")
    text = KUBE_DNS.read_text()
    assert "stubDomains" in text and "upstreamNameservers" in text
    spec = pod_spec(find(KUBE_DNS, "Deployment", "kube-dns"))
    volume = by_name(spec["volumes"])["kube-dns-config"]
    assert volume["configMap"] == {"name": "kube-dns", "optional": True}
    mounts = {m["name"]: m["mountPath"] for m in by_name(spec["containers"])["dnsmasq"]["volumeMounts"]}
    assert mounts["kube-dns-config"] == "/kube-dns-config"


def test_node_local_daemonset() -> None:
    names = [(d["kind"], d["metadata"]["name"]) for d in documents(NODELOCAL)]
    # The Service first: the DaemonSet's args use the variables Kubernetes injects for it.
    assert names.index(("Service", "kube-dns-upstream")) < names.index(("DaemonSet", "node-local-dns"))
    daemonset = find(NODELOCAL, "DaemonSet", "node-local-dns")
    # The new pod starts beside the old one, which stops once the new one has taken over.
    assert daemonset["spec"]["updateStrategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert daemonset["spec"]["minReadySeconds"] > 0
    spec = pod_spec(daemonset)
    assert spec["hostNetwork"] is True
    # Declared ports are host ports on the host network: the surge pod would not fit beside the old.
    assert all("ports" not in c for c in [*spec.get("initContainers", []), *spec["containers"]])
    assert spec["dnsPolicy"] == "Default"
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert "initContainers" not in spec, "nodelocal sets up the interface itself"
    (cache,) = spec["containers"]
    assert cache["command"] == ["kubedns-py", "nodelocal"]
    args = cache["args"]
    # node-cache's flags first, as its manifest passes them; the cache's after --.
    assert args[: args.index("--")][:4] == [
        "-localip",
        "169.254.20.10,10.96.0.10",
        "-upstreamsvc",
        "kube-dns-upstream",
    ]
    cluster_ip = find(KUBE_DNS, "Service", "kube-dns")["spec"]["clusterIP"]
    assert args[1].split(",")[1] == cluster_ip, "the kube-dns ClusterIP is intercepted"
    assert "--resolv-file=/etc/resolv.conf" in args
    capabilities = cache["securityContext"]["capabilities"]
    assert capabilities == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}
    assert cache["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["name"]: m["mountPath"] for m in cache["volumeMounts"]}
    assert mounts["xtables-lock"] == "/run/xtables.lock"
    metrics_port = next(int(a.split("=")[1]) for a in args if a.startswith("--metrics-port="))
    assert daemonset["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    health_port = int(args[args.index("-health-port") + 1])
    # The lame-duck period, a successor still starting taking over, the misses being answered.
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= 5.0 + HANDOVER_WAIT + FINISH_WITHIN + 2
    assert cache["livenessProbe"]["httpGet"] == {
        "host": "169.254.20.10",
        "path": "/health",
        "port": health_port,
        "scheme": "HTTP",
    }
    text = NODELOCAL.read_text()
    assert "--cluster-dns=169.254.20.10" in text, "the optional kubelet change is documented"


def test_autoscalers_target_the_kube_dns_deployment() -> None:
    autoscaler = DEPLOY_KUBERNETES / "autoscaler.yaml"
    params = find(autoscaler, "ConfigMap", "kube-dns-autoscaler")["data"]["linear"]
    linear = json.loads(params)
    assert linear["min"] >= 2 and linear["coresPerReplica"] > 0 and linear["nodesPerReplica"] > 0
    deployment = find(autoscaler, "Deployment", "kube-dns-autoscaler")
    (container,) = pod_spec(deployment)["containers"]
    command = container["command"]
    assert "--target=Deployment/kube-dns" in command
    assert "--configmap=kube-dns-autoscaler" in command
    default = next(c for c in command if c.startswith("--default-params="))
    json.loads(default.split("=", 1)[1])
    hpa = find(DEPLOY_KUBERNETES / "hpa.yaml", "HorizontalPodAutoscaler", "kube-dns")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "kube-dns",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    # What they scale exists, with CPU requests for the HPA's utilization to be computed against.
    kube_dns = find(KUBE_DNS, "Deployment", "kube-dns")
    assert all("cpu" in c["resources"]["requests"] for c in pod_spec(kube_dns)["containers"])


def test_containers_run_our_image_and_entry_points() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert set(ENTRY_POINTS) == set(scripts)
    foreign = {"autoscaler.yaml:Deployment/kube-dns-autoscaler/autoscaler"}
    for container in containers():
        if container.id in foreign:
            continue
        assert container.spec["image"] == IMAGE, container.id
        program = container.spec["command"][0]
        assert program in scripts or container.init, f"{container.id}: {program} is not an entry point"


def test_dockerfile_is_one_slim_non_root_image_with_every_entry_point() -> None:
    every = dockerfile.stages()
    names = [stage.name for stage in every]
    for index, stage in enumerate(every):
        assert stage.base == "python:3.11-slim" or stage.base in names[:index], stage.base
    for op, arg in dockerfile.instructions():
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    runs = " ".join(arg for op, arg in dockerfile.instructions() if op == "RUN")
    assert "pip install" in runs and " ." in runs, "the project is installed with pip install ."
    assert "iproute2" in runs and "iptables" in runs, "kubedns-py nodelocal runs ip and iptables"
    assert "gcc" in runs, "setup.py compiles the hot path"
    default = every[-1]  # what a build without --target makes: the image our manifests use
    uid = default.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user, checkable by runAsNonRoot"
    spec = pod_spec(find(KUBE_DNS, "Deployment", "kube-dns"))
    assert spec["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_builds_the_addons_three_images() -> None:
    """One target per Go image of the addon, each with the entry point its container's args are
    written for; only the nanny's runs as root, as the nanny image did (see upstream_spec)."""
    scripts = set(PYPROJECT["project"]["scripts"])
    entry_points = {
        name: dockerfile.target(name).entrypoint for name in ("kube-dns", "dnsmasq-nanny", "sidecar")
    }
    assert entry_points == {
        "kube-dns": ["kubedns-py", "serve"],
        "dnsmasq-nanny": ["kubedns-py", "cache"],
        "sidecar": ["kubedns-probe"],
    }
    assert {program for program, *_ in entry_points.values()} <= scripts
    roots = [stage.name for stage in dockerfile.stages() if stage.user.startswith("0")]
    assert roots == ["dnsmasq-nanny"]


def test_yaml_has_no_tabs_or_trailing_spaces() -> None:
    offenders: list[Any] = []
    for path in [*MANIFESTS, *sorted((DEPLOY / "prometheus").glob("*.yaml"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "\t" in line or line != line.rstrip():
                offenders.append(f"{path.name}:{number}")
    assert not offenders
