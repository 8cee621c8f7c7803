"""Per-query statistics, cheap enough for the hot path.

Counting through prometheus_client's labelled children costs microseconds per query (label lookup,
locks); here a query costs one dict increment and one bisect, and a custom collector turns the plain
counts into Prometheus families only when /metrics is scraped. Repeated answers (a memo hit) are
cheaper still: their owner tallies them on the memoised reply itself and hands the tallies over with
``fold``, or lets ``collect`` read the ones not yet handed over through ``watch``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from dnslib import QTYPE, RCODE
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# CoreDNS's request-duration buckets: 0.25 ms doubling 16 times (to ~8 s).
DURATION_BUCKETS = tuple(0.00025 * 2**k for k in range(16))
# The query types worth a label of their own; the rest count as "other", keeping cardinality bounded.
QTYPE_LABELS = {
    getattr(QTYPE, name): name
    for name in (
        "A",
        "AAAA",
        "CNAME",
        "MX",
        "NS",
        "PTR",
        "SOA",
        "SRV",
        "TXT",
        "ANY",
        "AXFR",
        "IXFR",
        "HTTPS",
        "SVCB",
        "DS",
        "DNSKEY",
    )
}


# Answers faster than the first bucket's bound may be tallied in bulk: they all land in that bucket.
FAST = DURATION_BUCKETS[0]
Tally = tuple[str, str, str, int, float]  # proto, qtype label, rcode label, answers, their seconds


def qtype_label(qtype: int) -> str:
    return QTYPE_LABELS.get(qtype, "other")


def rcode_label(rcode: int) -> str:
    name: str = RCODE.get(rcode, str(rcode))
    return name


class DnsStats(Collector):
    def __init__(self, server: str) -> None:
        self._server = server
        self._requests: dict[tuple[str, str], int] = {}
        self._responses: dict[str, int] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._pending: list[Callable[[], Iterable[Tally]]] = []
        self._fast: dict[int, int] = {}  # qtype << 6 | rcode << 1 | tcp -> answers under FAST
        self._fast_seconds = 0.0

    def tally(self, qtype: int, rcode: int, tcp: bool, seconds: float) -> None:
        """Count one answer by numbers; only a slow one pays for labels and a bucket search now."""
        if seconds < FAST:
            key = qtype << 6 | rcode << 1 | tcp
            self._fast[key] = self._fast.get(key, 0) + 1
            self._fast_seconds += seconds
        else:
            self.record("tcp" if tcp else "udp", qtype_label(qtype), rcode_label(rcode), seconds)

    def record(self, proto: str, qtype: str, rcode: str, seconds: float) -> None:
        key = (proto, qtype)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._responses[rcode] = self._responses.get(rcode, 0) + 1
        self._buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._duration_sum += seconds

    def fold(self, tallies: Iterable[Tally]) -> None:
        """Take over bulk tallies of answers that each took less than ``FAST``."""
        for proto, qtype, rcode, count, seconds in tallies:
            key = (proto, qtype)
            self._requests[key] = self._requests.get(key, 0) + count
            self._responses[rcode] = self._responses.get(rcode, 0) + count
            self._buckets[0] += count
            self._duration_sum += seconds

    def _fast_tallies(self) -> list[Tally]:
        tallies: list[Tally] = [
            ("tcp" if key & 1 else "udp", qtype_label(key >> 6), rcode_label(key >> 1 & 0x1F), count, 0.0)
            for key, count in self._fast.items()
        ]
        if tallies:  # their time in one sum: the histogram keeps no per-answer times
            proto, qtype, rcode, count, _ = tallies[0]
            tallies[0] = (proto, qtype, rcode, count, self._fast_seconds)
        return tallies

    def watch(self, pending: Callable[[], Iterable[Tally]]) -> None:
        """Tallies not folded yet, to add at scrape time."""
        self._pending.append(pending)

    def collect(self) -> Iterator[Metric]:
        current = DnsStats(self._server)
        current._requests = dict(self._requests)
        current._responses = dict(self._responses)
        current._buckets = list(self._buckets)
        current._duration_sum = self._duration_sum
        current.fold(self._fast_tallies())
        for pending in self._pending:
            current.fold(pending())
        return current._families()

    def _families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "kubedns_dns_requests", "DNS queries received.", labels=["server", "proto", "type"]
        )
        for (proto, qtype), count in sorted(self._requests.items()):
            requests.add_metric([self._server, proto, qtype], count)
        yield requests
        responses = CounterMetricFamily(
            "kubedns_dns_responses", "DNS responses sent, by response code.", labels=["server", "rcode"]
        )
        for rcode, count in sorted(self._responses.items()):
            responses.add_metric([self._server, rcode], count)
        yield responses
        cumulative, buckets = 0, []
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), self._buckets, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
        duration = HistogramMetricFamily(
            "kubedns_dns_request_duration_seconds",
            "Time from reading a query to having its reply.",
            labels=["server"],
        )
        duration.add_metric([self._server], buckets, self._duration_sum)
        yield duration
