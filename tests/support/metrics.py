"""Reading a Prometheus text exposition (with prometheus_client's own parser), scraped from one of our
components' /metrics.

    metrics = scrape(running.metrics_port)
    metrics.get("kubedns_cache_hits_total")          # 0 when there is no such sample
    metrics.value("kubedns_forward_upstream_up", to=upstream.address)   # KeyError when there is none
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.http import http_get
from tests.support.waiting import wait_for

Labels = tuple[tuple[str, str], ...]


@dataclass
class Metrics:
    """One exposition: its text, each family's type and samples, and every sample keyed by (sample
    name, sorted labels)."""

    text: str = field(repr=False)
    types: dict[str, str] = field(default_factory=dict)
    families: dict[str, list[Sample]] = field(default_factory=dict, repr=False)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    sample_types: dict[str, str] = field(default_factory=dict)  # sample name -> its family's type

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``; KeyError when there is none."""
        wanted = set(labels.items())
        values = [v for (n, got), v in self.samples.items() if n == name and wanted <= set(got)]
        if not values:
            raise KeyError(f"no sample {name}{labels or ''} among {sorted(self.names())}")
        return sum(values)

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        try:
            return self.value(name, **labels)
        except KeyError:
            return default

    def names(self) -> set[str]:
        return set(self.sample_types)


def parse_metrics(text: str) -> Metrics:
    metrics = Metrics(text)
    for family in text_string_to_metric_families(text):
        metrics.types[family.name] = family.type
        metrics.families[family.name] = family.samples
        for sample in family.samples:
            metrics.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
            metrics.sample_types[sample.name] = family.type
    return metrics


def scrape(port: int, path: str = "/metrics") -> Metrics:
    status, text = http_get(port, path)
    assert status == 200, f"GET {path}: {status} {text[:200]}"
    return parse_metrics(text)


def wait_for_metrics(
    port: int, accept: Callable[[Metrics], bool], timeout: float, what: str, path: str = "/metrics"
) -> Metrics:
    return wait_for(lambda: scrape(port, path), accept, timeout, what)
