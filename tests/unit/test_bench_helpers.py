"""The benchmarks' pure parts: dnsperf's per-query lines, percentiles, verdicts and the question mixes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench import cluster_gen, cluster_mix, ndots_storm, workers
from tests.bench.tools import Verdict, count_late, parse_intervals, parse_latencies, percentile

DNSPERF_VERBOSE = """[Status] Sending queries (to 127.0.0.1:5399)
> NOERROR a.cluster.local A 0.000122
> NXDOMAIN b.cluster.local AAAA 0.000044
> T c.cluster.local A
[Status] Testing complete (end of file)
"""


def test_latencies_of_answered_queries_only() -> None:
    assert parse_latencies(DNSPERF_VERBOSE) == (0.000122, 0.000044)


def test_interval_rates_and_late_answers() -> None:
    stdout = "[Status] Started\n1796023256.722150: 0.000011\n1796023256.922580: 113416.155266\n"
    assert parse_intervals(stdout) == [(1796023256.722150, 0.000011), (1796023256.922580, 113416.155266)]
    stderr = "Warning: received a response with an unexpected (maybe timed out) id: 0\n" * 3
    assert count_late(stderr) == 3 and count_late("") == 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 0.5) == 500
    assert percentile(values, 0.999) == 999
    assert percentile([1.0, math.inf], 0.99) == math.inf


def test_verdicts_as_floor_and_ceiling() -> None:
    assert Verdict("ratio", 0.8, 0.8).passed
    assert not Verdict("ratio", 0.79, 0.8).passed
    assert Verdict("p99.9", 2.0, 2.0, at_most=True).line(" ms").endswith("PASS")
    assert Verdict("p99.9", 2.1, 2.0, at_most=True).line().endswith("MISS")


def test_cluster_mix(tmp_path: Path) -> None:
    shape = cluster_gen.ClusterShape(services=50, namespaces=5)
    manifest = cluster_gen.write_manifest(tmp_path / "c.json", cluster_gen.cluster_objects(shape))
    mix = cluster_mix.build_mix(manifest)
    questions = {(q.name.lower(), q.qtype) for q in mix.questions}
    assert len(questions) == len(mix.questions)  # every question distinct
    base = "svc-1.ns-1.svc.cluster.local"
    assert {(base, "A"), (base, "AAAA"), (base, "SRV"), (f"_http._tcp.{base}", "SRV")} <= questions
    for name in (f"{base}.ns-1.svc.cluster.local", f"{base}.svc.cluster.local", f"{base}.cluster.local"):
        assert {(name, "A"), (name, "AAAA")} <= questions
    mixed = sum(1 for q in mix.questions if q.name != q.name.lower())
    assert mixed == round(cluster_mix.MIXED_CASE_SHARE * len(mix.questions))
    assert all(q.name.lower() in mix.records for q in mix.questions if q.kind == cluster_mix.ENDPOINT)


def test_ndots_storm_order() -> None:
    assert ndots_storm.storm(["ext-0.example.test"], 3)[::2] == [
        ("ext-0.example.test.ns-0.svc.cluster.local", "A"),
        ("ext-0.example.test.svc.cluster.local", "A"),
        ("ext-0.example.test.cluster.local", "A"),
        ("ext-0.example.test", "A"),
    ]


def test_the_workers_ceiling_is_what_the_load_generator_leaves_of_the_cores() -> None:
    # dnsperf as costly per answer as the server: two workers on two cores can only match one.
    same = {"cpu_seconds_per_100k": 0.7, "cpu_percent": 90.0, "dnsperf_cpu_percent": 90.0}
    assert workers.ceiling(same, 2, 2) == pytest.approx(1.0)
    # A third of the server's cost: 1.5, the most a second worker may add on two shared cores.
    third = {"cpu_seconds_per_100k": 0.9, "cpu_percent": 90.0, "dnsperf_cpu_percent": 30.0}
    assert workers.ceiling(third, 2, 2) == pytest.approx(1.5)
    assert workers.ceiling(third, 2, 8) == 2.0  # cores to spare: the workers are the limit
