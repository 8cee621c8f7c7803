"""The questions Pods ask of a large cluster, and serve with its dnsmasq reference set up to answer them.

For every service ``<svc>.<ns>.svc.cluster.local`` of a generated cluster the mix holds: A and AAAA
(the cluster is IPv4 only, so AAAA is NODATA); SRV for each named port (``_http._tcp.<svc>...``) and
for the bare service name, as health probes ask; a headless service's endpoint names (A); and the
search-path misses a Pod with ``ndots:5`` in namespace ``<ns>`` sends before the name itself (A and
AAAA of ``<name>.<ns>.svc.cluster.local``, ``<name>.svc.cluster.local`` and ``<name>.cluster.local``,
all NXDOMAIN). A tenth of the questions are spelled in mixed case, as resolvers using 0x20
randomisation send them, so no memo keyed on the query bytes sees them twice.

The dnsmasq reference answers from a hosts file holding the very A records serve derives. It gets no
SRV records: its ``--srv-host`` entries live in one linked list scanned per query, and 40k of them
cut it from ~80k to ~1k QPS for every question type, so it answers ``_port._proto`` names NXDOMAIN
and bare service names NODATA instead.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubedns_py.cluster.objects import Kind, Service
from kubedns_py.cluster.store import Store
from kubedns_py.sources.manifests import ManifestSource
from tests.bench import cluster_gen
from tests.bench.tools import (
    BenchError,
    Dnsmasq,
    Lookup,
    dnsmasq,
    lookup,
    pin,
    wait_until_answers,
    write_hosts_file,
    write_query_file,
)
from tests.support.processes import Running, start_serve, stop

DOMAIN = "cluster.local"
TTL = 30  # serve's default --ttl, given to dnsmasq too so replies match
SEED = 20240601
MIXED_CASE_SHARE = 0.1
# 10k services over 100 namespaces, every fifth headless with three endpoints: ~116k questions.
SHAPE_10K = cluster_gen.ClusterShape(services=10_000, namespaces=100)

# Question kinds, and the rcode each server gives them (with an answer, or NODATA).
ADDRESS, NODATA, SRV, SRV_BARE, ENDPOINT, SEARCH = "A", "AAAA", "SRV", "SRV bare", "endpoint A", "search"
EXPECTED: dict[str, dict[str, tuple[str, bool]]] = {
    "serve": {
        ADDRESS: ("NOERROR", True),
        NODATA: ("NOERROR", False),
        SRV: ("NOERROR", True),
        SRV_BARE: ("NOERROR", True),
        ENDPOINT: ("NOERROR", True),
        SEARCH: ("NXDOMAIN", False),
    },
    "dnsmasq": {
        ADDRESS: ("NOERROR", True),
        NODATA: ("NOERROR", False),
        SRV: ("NXDOMAIN", False),
        SRV_BARE: ("NOERROR", False),
        ENDPOINT: ("NOERROR", True),
        SEARCH: ("NXDOMAIN", False),
    },
}


@dataclass(frozen=True)
class Question:
    name: str
    qtype: str
    kind: str


@dataclass(frozen=True)
class ClusterMix:
    records: dict[str, tuple[str, ...]]  # name -> IPv4 addresses, as serve derives them
    questions: list[Question]  # shuffled; MIXED_CASE_SHARE of them in mixed case

    def census(self) -> str:
        kinds = Counter(q.kind for q in self.questions)
        mixed = sum(1 for q in self.questions if q.name != q.name.lower())
        return ", ".join(f"{n:,} {kind}" for kind, n in kinds.items()) + f"; {mixed:,} in mixed case"


def load_store(manifest: Path) -> Store:
    """The manifest through serve's own source and store, so the reference gets exactly serve's data."""
    store = Store(required=Kind)
    store.apply(ManifestSource([manifest]).poll())
    return store


def services(store: Store) -> list[Service]:
    return [s for s in store.objects(Kind.SERVICE) if isinstance(s, Service)]


def a_records(store: Store) -> dict[str, tuple[str, ...]]:
    """Every owner name with IPv4 addresses: service names and headless services' endpoint names."""
    records: dict[str, tuple[str, ...]] = {}
    for service in services(store):
        found = store.service(service.namespace, service.name)
        if found is None:  # e.g. a headless service without ready endpoints: NXDOMAIN
            continue
        base = f"{service.name}.{service.namespace}.svc.{DOMAIN}"
        for name, ips in [(base, found.addresses)] + [(f"{h}.{base}", a) for h, a in found.hosts.items()]:
            v4 = tuple(ip for ip in ips if ":" not in ip)
            if v4:
                records[name] = v4
    return records


def search_path(name: str, namespace: str) -> list[str]:
    """The names glibc tries before ``name`` itself for a Pod in ``namespace`` (ndots:5)."""
    return [f"{name}.{suffix}" for suffix in (f"{namespace}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN)]


def mixed_case(name: str, rng: random.Random) -> str:
    spelled = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return spelled if spelled != name else name.upper()


def build_mix(manifest: Path) -> ClusterMix:
    store = load_store(manifest)
    questions: list[Question] = []
    for service in services(store):
        found = store.service(service.namespace, service.name)
        if found is None:
            continue
        base = f"{service.name}.{service.namespace}.svc.{DOMAIN}"
        questions += [Question(base, "A", ADDRESS), Question(base, "AAAA", NODATA)]
        questions += [Question(f"_{port}._{proto}.{base}", "SRV", SRV) for port, proto in found.srv]
        questions.append(Question(base, "SRV", SRV_BARE))
        questions += [Question(f"{host}.{base}", "A", ENDPOINT) for host in found.hosts]
        for name in search_path(base, service.namespace):
            questions += [Question(name, "A", SEARCH), Question(name, "AAAA", SEARCH)]
    rng = random.Random(SEED)
    for i in rng.sample(range(len(questions)), round(MIXED_CASE_SHARE * len(questions))):
        q = questions[i]
        questions[i] = Question(mixed_case(q.name, rng), q.qtype, q.kind)
    rng.shuffle(questions)
    return ClusterMix(a_records(store), questions)


def spot_check(mix: ClusterMix, ports: dict[str, int], per_kind: int = 4) -> int:
    """Ask each server a few questions of every kind (mixed case among them) with dig; any answer not
    as EXPECTED, or A records other than the data, voids the comparison."""
    sample: dict[str, list[Question]] = {}
    for q in mix.questions:
        picked = sample.setdefault(q.kind, [])
        if len(picked) < per_kind:
            picked.append(q)
    wrong = []
    for q in (q for picked in sample.values() for q in picked):
        for server, port in ports.items():
            status, has_answer = EXPECTED[server][q.kind]
            addresses = None
            if q.qtype == "A" and has_answer:
                addresses = frozenset(mix.records.get(q.name.lower(), ()))
            got = lookup(port, q.name, q.qtype)
            if not _as_expected(got, status, has_answer, addresses):
                want = f"{status} {'with' if has_answer else 'without'} answers"
                seen = f"{got.status}, {got.records} records {sorted(got.addresses)}"
                wrong.append(f"{server}: {q.name} {q.qtype} -> {seen}; expected {want}")
    if wrong:
        raise BenchError("wrong answers before measuring:\n  " + "\n  ".join(wrong))
    return sum(map(len, sample.values()))


def _as_expected(got: Lookup, status: str, has_answer: bool, addresses: frozenset[str] | None) -> bool:
    if got.status != status or bool(got.records) != has_answer:
        return False
    return addresses is None or got.addresses == addresses


# -- serve and dnsmasq on one mix --------------------------------------------------------------------


@dataclass
class MixServers:
    mix: ClusterMix
    queries: Path  # dnsperf's input
    serve: Running
    dnsmasq: Dnsmasq
    checked: int  # questions spot-checked on both

    @property
    def ports(self) -> dict[str, int]:
        return {"serve": self.serve.dns_port, "dnsmasq": self.dnsmasq.port}

    @property
    def processes(self) -> dict[str, subprocess.Popen[Any]]:
        return {"serve": self.serve.process, "dnsmasq": self.dnsmasq.process}

    def check_alive(self) -> None:
        if self.serve.process.poll() is not None:
            tail = "".join(self.serve.lines[-20:])
            status = self.serve.process.returncode
            raise BenchError(f"serve exited during the run with status {status}:\n{tail}")
        if self.dnsmasq.process.poll() is not None:
            raise BenchError(f"dnsmasq exited during the run with status {self.dnsmasq.process.returncode}")


@contextmanager
def serve_and_dnsmasq(
    tmp: Path, shape: cluster_gen.ClusterShape, server_cpus: tuple[int, ...]
) -> Iterator[MixServers]:
    """The cluster as a manifest for serve and a hosts file for dnsmasq, both running (pinned to
    ``server_cpus`` when given) and spot-checked, and the mix as dnsperf's input."""
    manifest = cluster_gen.write_manifest(tmp / "cluster.json", cluster_gen.cluster_objects(shape))
    mix = build_mix(manifest)
    hosts = write_hosts_file(tmp / "cluster.hosts", mix.records)
    queries = write_query_file(tmp / "queries.txt", [(q.name, q.qtype) for q in mix.questions])
    with ExitStack() as stack:
        # A 10k-service manifest takes serve a few seconds to load: wait for answers, not readiness.
        served = start_serve(manifests=[manifest], ready=False)
        stack.callback(stop, served)
        reference = stack.enter_context(dnsmasq(hosts, DOMAIN, TTL, tmp / "dnsmasq.log"))
        wait_until_answers(served.dns_port, next(iter(mix.records)), served.process, timeout=60)
        if server_cpus:
            for process in (served.process, reference.process):
                pin(process.pid, server_cpus)
        servers = MixServers(mix, queries, served, reference, 0)
        servers.checked = spot_check(mix, servers.ports)
        yield servers
