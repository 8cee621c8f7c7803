"""Histograms kept as plain per-bucket counts (cheap to add to on a hot path, bounded whatever is
observed) and exported in Prometheus's cumulative form when scraped."""

from __future__ import annotations

from collections.abc import Sequence


def cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus histogram buckets from per-bucket counts (the last one past every bound)."""
    total, buckets = 0, list[tuple[str, float]]()
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        buckets.append((str(bound) if bound != float("inf") else "+Inf", total))
    return buckets
