"""Per-query statistics, cheap enough for the hot path.

Counting through prometheus_client's labelled children costs microseconds per query (label lookup,
locks); here a query costs one dict increment and one bisect, and a custom collector turns the plain
counts into Prometheus families only when /metrics is scraped. Answers on the hot paths are
cheaper still: they add to a ``HitTally`` shared by every answer of their kind, kept next to what
answers them, and ``collect`` reads those when scraped.
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


def qtype_label(qtype: int) -> str:
    return QTYPE_LABELS.get(qtype, "other")


def rcode_label(rcode: int) -> str:
    name: str = RCODE.get(rcode, str(rcode))
    return name


Record = Callable[[str, str, str, float], None]  # proto, qtype label, rcode label, seconds


class HitTally:
    """Answers of one kind (protocol, query type, rcode) that each took less than ``FAST``, and their
    seconds: the hot paths add to it in two attribute updates, the statistics read it when scraped."""

    __slots__ = ("hits", "proto", "qtype", "rcode", "record", "seconds", "slow")

    def __init__(self, proto: str, qtype: str, rcode: str, record: Record | None = None) -> None:
        self.proto = proto
        self.qtype = qtype
        self.rcode = rcode
        self.record = record
        self.hits = 0
        self.seconds = 0.0
        self.slow = 0  # answers of this kind that were recorded one by one instead

    def count(self, seconds: float) -> None:
        if seconds < FAST or self.record is None:
            self.hits += 1
            self.seconds += seconds
        else:  # a slow one (a pause, a busy machine) goes in its histogram bucket
            self.slow += 1
            self.record(self.proto, self.qtype, self.rcode, seconds)


class DnsStats(Collector):
    def __init__(self, server: str) -> None:
        self._server = server
        self._requests: dict[tuple[str, str], int] = {}
        self._responses: dict[str, int] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._duration_sum = 0.0
        self._tallies: dict[tuple[str, int, int], HitTally] = {}
        self._malformed: dict[str, int] = {}
        self._malformed_elsewhere: dict[str, Callable[[], int]] = {}

    def malformed(self, kind: str) -> None:
        """Count a packet that was not a readable query (or a reply that was not a readable reply),
        by kind: the reader's reason, or the caller's. Never called per valid query."""
        self._malformed[kind] = self._malformed.get(kind, 0) + 1

    def malformed_counted_by(self, kind: str, count: Callable[[], int]) -> None:
        """Malformed input of a kind that something else counts (e.g. oversized datagrams, dropped
        before any handler runs), read when scraped."""
        self._malformed_elsewhere[kind] = count

    def malformed_counts(self) -> dict[str, int]:
        counts = dict(self._malformed)
        for kind, count in self._malformed_elsewhere.items():
            counts[kind] = counts.get(kind, 0) + count()
        return counts

    def tally(self, proto: str, qtype: int, rcode: int) -> HitTally:
        """The shared tally for answers of this kind, to keep next to what answers them."""
        key = (proto, qtype, rcode)
        tally = self._tallies.get(key)
        if tally is None:
            tally = HitTally(proto, qtype_label(qtype), rcode_label(rcode), self.record)
            self._tallies[key] = tally
        return tally

    @property
    def tallied_answers(self) -> int:
        """Every answer counted through a ``HitTally``, fast or not."""
        return sum(t.hits + t.slow for t in self._tallies.values())

    def record(self, proto: str, qtype: str, rcode: str, seconds: float) -> None:
        key = (proto, qtype)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._responses[rcode] = self._responses.get(rcode, 0) + 1
        self._buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._duration_sum += seconds

    def _fold(self, tallies: Iterable[HitTally]) -> None:
        for t in tallies:
            key = (t.proto, t.qtype)
            self._requests[key] = self._requests.get(key, 0) + t.hits
            self._responses[t.rcode] = self._responses.get(t.rcode, 0) + t.hits
            self._buckets[0] += t.hits
            self._duration_sum += t.seconds

    def collect(self) -> Iterator[Metric]:
        current = DnsStats(self._server)
        current._requests = dict(self._requests)
        current._responses = dict(self._responses)
        current._buckets = list(self._buckets)
        current._duration_sum = self._duration_sum
        current._fold(t for t in list(self._tallies.values()) if t.hits)
        current._malformed = self.malformed_counts()
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
        malformed = CounterMetricFamily(
            "kubedns_dns_malformed",
            "Packets that were not readable queries (the cache: also upstream replies), by kind.",
            labels=["server", "kind"],
        )
        for kind, count in sorted(self._malformed.items()):
            malformed.add_metric([self._server, kind], count)
        yield malformed
