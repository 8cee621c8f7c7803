"""Per-query statistics, cheap enough for the hot path.

Counting through prometheus_client's labelled children costs microseconds per query (label lookup,
locks); here a query costs a few dict increments and bisects, and collectors turn the plain counts
(``Counts``) into Prometheus families only when /metrics is scraped: ours, kube-dns's
(``serve.skydns``) and CoreDNS's (``net.coredns``). Answers on the hot paths are cheaper still: they
add to a ``HitTally`` shared by every answer of their kind and sizes, kept next to what answers them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.buckets import cumulative
from kubedns_py.dnswire.header import Type, rcode_name

# CoreDNS's request-duration buckets: 0.25 ms doubling 16 times (to ~8 s).
DURATION_BUCKETS = tuple(0.00025 * 2**k for k in range(16))
# The query types worth a label of their own (CoreDNS's); the rest count as "other", keeping
# cardinality bounded.
QTYPE_LABELS = {
    Type[name].value: name
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
        "NSEC",
        "NSEC3",
        "RRSIG",
    )
}


# kube-dns's (SkyDNS's) request-duration buckets: 1 ms, 3 ms, then Prometheus's defaults.
SKYDNS_DURATION_BUCKETS = (0.001, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SKYDNS_SIZE_BUCKETS = (0, 512, 1024, 1500, 2048, *range(4096, 65537, 4096))
COREDNS_SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000)
# Sizes are counted by the bucket they fall in among both schemes' bounds, so each scheme's histogram
# is exact and the counts stay bounded whatever sizes arrive.
SIZE_BOUNDS = tuple(sorted({*SKYDNS_SIZE_BUCKETS, *COREDNS_SIZE_BUCKETS}))
# Answers faster than the first bucket's bound may be tallied in bulk: they all land in that bucket
# (and in SkyDNS's first, 1 ms, too).
FAST = DURATION_BUCKETS[0]
# Distinct (protocol, type, rcode, reply size, query size) kinds given a tally of their own; past it,
# new kinds share the tally of their size buckets (found with a bisect: slower, still bounded).
MAX_TALLY_KEYS = 50_000


def qtype_label(qtype: int) -> str:
    return QTYPE_LABELS.get(qtype, "other")


def system_label(qtype: str) -> str:
    """kube-dns's ``system``: its reverse lookups are PTR questions; everything serve answers itself
    is otherwise ``auth``."""
    return "reverse" if qtype == "PTR" else "auth"


def duration_buckets(seconds: float) -> tuple[int, int]:
    """The bucket of ``seconds`` among our duration bounds and among SkyDNS's."""
    return bisect_left(DURATION_BUCKETS, seconds), bisect_left(SKYDNS_DURATION_BUCKETS, seconds)


def size_bucket(size: int) -> int:
    return bisect_left(SIZE_BOUNDS, size)


@dataclass(slots=True, eq=False)  # each tally counts its own answers: equal only to itself
class HitTally:
    """Answers of one kind (protocol, query type, rcode, reply and query size), counted when they are
    answered and read when scraped: those that took less than ``FAST`` in two attribute updates, the
    slower ones (misses waiting for an upstream, a busy machine) by their duration buckets. The sizes
    are those of the answer the tally was chosen for; answers sharing a tally share its size buckets."""

    proto: str
    qtype: str
    rcode: str
    timed: bool = False  # False: a placeholder whose answers are all counted as fast
    size: int = 0
    asked: int = 0
    dnssec_ok: bool = False
    hit: bool = True  # answers from a cache, which ``DnsStats.tallied_hits`` counts
    hits: int = field(default=0, init=False)
    seconds: float = field(default=0.0, init=False)
    # Answers of this kind slower than FAST, also in ``slow_by_bucket``: (duration bucket, SkyDNS
    # duration bucket) -> [answers, their seconds].
    slow: int = field(default=0, init=False)
    slow_by_bucket: dict[tuple[int, int], list[float]] = field(default_factory=dict, init=False)

    def count(self, seconds: float) -> None:
        if seconds < FAST or not self.timed:
            self.hits += 1
            self.seconds += seconds
            return
        self.slow += 1
        key = duration_buckets(seconds)
        found = self.slow_by_bucket.get(key)
        if found is None:
            self.slow_by_bucket[key] = [1, seconds]
        else:
            found[0] += 1
            found[1] += seconds


@dataclass
class Counts:
    """What the statistics hold, as plain numbers: the exported families of each naming scheme
    (ours, kube-dns's, CoreDNS's) are computed from one of these when scraped."""

    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (proto, qtype)
    responses: dict[tuple[str, str], int] = field(default_factory=dict)  # (system, rcode)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    sky_buckets: dict[str, list[int]] = field(default_factory=dict)  # by system
    sky_sums: dict[str, float] = field(default_factory=dict)
    reply_sizes: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (proto, system, bucket)
    reply_bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (proto, system)
    query_sizes: dict[tuple[str, int], int] = field(default_factory=dict)  # (proto, bucket)
    query_bytes: dict[str, int] = field(default_factory=dict)
    dnssec_ok: int = 0  # queries with the DO bit set
    malformed: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        proto: str,
        qtype: str,
        rcode: str,
        n: int,
        seconds: float,
        size: int,
        asked: int,
        bucket: int,
        sky_bucket: int,
        dnssec_ok: bool,
    ) -> None:
        """``n`` answers of one kind taking ``seconds`` in all, each in the given duration buckets."""
        system = system_label(qtype)
        _inc(self.requests, (proto, qtype), n)
        _inc(self.responses, (system, rcode), n)
        self.buckets[bucket] += n
        self.duration_sum += seconds
        sky = self.sky_buckets.get(system)
        if sky is None:
            sky = self.sky_buckets[system] = [0] * (len(SKYDNS_DURATION_BUCKETS) + 1)
        sky[sky_bucket] += n
        self.sky_sums[system] = self.sky_sums.get(system, 0.0) + seconds
        _inc(self.reply_sizes, (proto, system, size_bucket(size)), n)
        _inc(self.reply_bytes, (proto, system), size * n)
        _inc(self.query_sizes, (proto, size_bucket(asked)), n)
        _inc(self.query_bytes, proto, asked * n)
        if dnssec_ok:
            self.dnssec_ok += n

    def copy(self) -> Counts:
        return Counts(
            dict(self.requests),
            dict(self.responses),
            list(self.buckets),
            self.duration_sum,
            {system: list(b) for system, b in self.sky_buckets.items()},
            dict(self.sky_sums),
            dict(self.reply_sizes),
            dict(self.reply_bytes),
            dict(self.query_sizes),
            dict(self.query_bytes),
            self.dnssec_ok,
            dict(self.malformed),
        )


_K = TypeVar("_K")


def _inc(counts: dict[_K, int], key: _K, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


class DnsStats(Collector):
    def __init__(self, server: str) -> None:
        self._server = server
        self._counts = Counts()
        self._tallies: dict[tuple[str, int, int, int, int, bool, bool], HitTally] = {}
        self._shared: dict[tuple[str, int, int, int, int, bool, bool], HitTally] = {}
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

    def tally(
        self,
        proto: str,
        qtype: int,
        rcode: int,
        size: int = 0,
        asked: int = 0,
        dnssec_ok: bool = False,
        hit: bool = True,
    ) -> HitTally:
        """The shared tally for answers of this kind (``size`` bytes, to a ``asked``-byte query), to
        keep next to what answers them; ``hit`` says they come from a cache."""
        key = (proto, qtype, rcode, size, asked, dnssec_ok, hit)
        # Answers from a cache have a few sizes each, worth remembering exactly; the others (a flood
        # of names the cache forwards) would fill the memo with sizes seen once.
        tally = self._tallies.get(key) if hit else None
        if tally is None:
            shared = (proto, qtype, rcode, size_bucket(size), size_bucket(asked), dnssec_ok, hit)
            tally = self._shared.get(shared)
            if tally is None:
                labels = (proto, qtype_label(qtype), rcode_name(rcode))
                tally = HitTally(*labels, True, size, asked, dnssec_ok, hit)
                self._shared[shared] = tally
            if hit and len(self._tallies) < MAX_TALLY_KEYS:
                self._tallies[key] = tally
        return tally

    def tallies(self) -> list[HitTally]:
        return list(self._shared.values())

    @property
    def tallied_hits(self) -> int:
        """Every answer from a cache counted through a ``HitTally``, fast or not."""
        return sum(t.hits + t.slow for t in list(self._shared.values()) if t.hit)

    def record(
        self,
        proto: str,
        qtype: str,
        rcode: str,
        seconds: float,
        size: int,
        asked: int,
        dnssec_ok: bool = False,
    ) -> None:
        """One ``size``-byte answer to an ``asked``-byte query."""
        self._counts.add(proto, qtype, rcode, 1, seconds, size, asked, *duration_buckets(seconds), dnssec_ok)

    def counts(self) -> Counts:
        """Everything counted so far, tallies included, as a copy."""
        counts = self._counts.copy()
        for t in list(self._shared.values()):
            if t.hits:
                counts.add(t.proto, t.qtype, t.rcode, t.hits, t.seconds, t.size, t.asked, 0, 0, t.dnssec_ok)
            for (bucket, sky_bucket), (n, seconds) in list(t.slow_by_bucket.items()):
                counts.add(
                    t.proto,
                    t.qtype,
                    t.rcode,
                    int(n),
                    seconds,
                    t.size,
                    t.asked,
                    bucket,
                    sky_bucket,
                    t.dnssec_ok,
                )
        counts.malformed = self.malformed_counts()
        return counts

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        requests = CounterMetricFamily(
            "kubedns_dns_requests", "DNS queries received.", labels=["server", "proto", "type"]
        )
        for (proto, qtype), count in sorted(counts.requests.items()):
            requests.add_metric([self._server, proto, qtype], count)
        yield requests
        responses = CounterMetricFamily(
            "kubedns_dns_responses", "DNS responses sent, by response code.", labels=["server", "rcode"]
        )
        for rcode, count in sorted(by_rcode(counts).items()):
            responses.add_metric([self._server, rcode], count)
        yield responses
        duration = HistogramMetricFamily(
            "kubedns_dns_request_duration_seconds",
            "Time from reading a query to having its reply.",
            labels=["server"],
        )
        duration.add_metric([self._server], cumulative(DURATION_BUCKETS, counts.buckets), counts.duration_sum)
        yield duration
        malformed = CounterMetricFamily(
            "kubedns_dns_malformed",
            "Packets that were not readable queries (the cache: also upstream replies), by kind.",
            labels=["server", "kind"],
        )
        for kind, count in sorted(counts.malformed.items()):
            malformed.add_metric([self._server, kind], count)
        yield malformed


def by_rcode(counts: Counts) -> dict[str, int]:
    responses: dict[str, int] = {}
    for (_, rcode), count in counts.responses.items():
        _inc(responses, rcode, count)
    return responses


def size_histogram(bounds: Sequence[int], sizes: Iterable[tuple[int, int]]) -> list[int]:
    """Counts per bucket of ``bounds`` from counts per bucket of ``SIZE_BOUNDS`` (a superset)."""
    counts = [0] * (len(bounds) + 1)
    for index, count in sizes:
        bound = SIZE_BOUNDS[index] if index < len(SIZE_BOUNDS) else float("inf")
        counts[bisect_left(bounds, bound)] += count
    return counts
