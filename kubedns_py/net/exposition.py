"""One /metrics for a component run as several processes: every process's text exposition, parsed and
merged into one series per (name, labels).

Most series add up: counters, histograms, and gauges of things each process holds (cache entries,
open connections, resident memory, CPU seconds). The few that would mean nothing summed are merged
otherwise: constant information (``*_info``) and limits each process shares, by the largest; whether
something is up, by the smallest (an upstream one worker took out of service shows as out); when the
oldest process started (and a counter was created), by the smallest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

Combine = Callable[[float, float], float]


def _rule(name: str) -> Combine:
    if name.endswith("_info") or name in ("process_max_fds", "kubedns_gc_pause_longest_seconds"):
        return max
    if name.endswith(("_up", "_created")) or name == "process_start_time_seconds":
        return min
    return _add


def _add(a: float, b: float) -> float:
    return a + b


class _Merged(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge(texts: Iterable[str]) -> bytes:
    """The text expositions merged as the module says, in the order families first appear."""
    families: dict[str, Metric] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                samples[family.name] = {}
            merged = samples[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                merged[key] = _rule(sample.name)(merged[key], sample.value) if key in merged else sample.value
    for name, family in families.items():
        family.samples = [Sample(n, dict(labels), value) for (n, labels), value in samples[name].items()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families.values()))
    return generate_latest(registry)
