"""Statistics of the hot path: answers counted by number add up to the same figures as labelled ones."""

from __future__ import annotations

from bisect import bisect_left

import dns.message
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pytest import MonkeyPatch

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.objects import Kind, from_dict
from kubedns_py.cluster.store import Store, Synced, Upsert
from kubedns_py.cluster.zone import PodMode, Zone
from kubedns_py.net import stats as stats_module
from kubedns_py.net.stats import (
    COREDNS_SIZE_BUCKETS,
    SKYDNS_SIZE_BUCKETS,
    DnsStats,
    size_bucket,
    size_histogram,
)
from kubedns_py.serve.answerer import Answerer


def figures(stats: DnsStats) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "le" not in s.labels or s.labels["le"] in ("0.00025", "+Inf")
    }


def test_answers_counted_by_number_add_up_across_store_changes() -> None:
    store = Store()
    service = from_dict(
        Kind.SERVICE, {"metadata": {"name": "web", "namespace": "n"}, "spec": {"clusterIP": "10.0.0.1"}}
    )
    store.apply([Upsert(service), Synced(Kind.SERVICE)])
    stats = DnsStats("serve")
    zone = Zone(store, "cluster.local", 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), stats)
    query = dns.message.make_query("web.n.svc.cluster.local.", "A").to_wire()
    missing = dns.message.make_query("nope.n.svc.cluster.local.", "AAAA").to_wire()
    for _ in range(5):
        answerer.answer(query)
    answerer.answer(missing)
    before = figures(stats)
    assert before["kubedns_dns_requests_total[('proto', 'udp'), ('server', 'serve'), ('type', 'A')]"] == 5
    assert before["kubedns_dns_requests_total[('proto', 'udp'), ('server', 'serve'), ('type', 'AAAA')]"] == 1
    assert before["kubedns_dns_responses_total[('rcode', 'NOERROR'), ('server', 'serve')]"] == 5
    assert before["kubedns_dns_responses_total[('rcode', 'NXDOMAIN'), ('server', 'serve')]"] == 1
    assert before["kubedns_dns_request_duration_seconds_count[('server', 'serve')]"] == 6
    store.apply([Upsert(from_dict(Kind.NAMESPACE, {"metadata": {"name": "n"}}))])
    answerer.answer(query)
    after = figures(stats)
    assert after["kubedns_dns_requests_total[('proto', 'udp'), ('server', 'serve'), ('type', 'A')]"] == 6
    assert after["kubedns_dns_request_duration_seconds_count[('server', 'serve')]"] == 7
    assert after["kubedns_dns_request_duration_seconds_bucket[('le', '+Inf'), ('server', 'serve')]"] == 7


def test_malformed_queries_are_counted_by_the_readers_reason_and_others_by_theirs() -> None:
    store = Store()
    stats = DnsStats("serve")
    zone = Zone(store, "cluster.local", 30, PodMode.INSECURE)
    answerer = Answerer(zone, WireZone(zone, store), stats)
    query = dns.message.make_query("web.n.svc.cluster.local.", "A").to_wire()
    assert answerer.answer(query[:5]) is None
    assert answerer.answer(query[:2] + b"\x81\x00" + query[4:]) is None  # a response
    formerr = answerer.answer(query[:4] + b"\x00\x02" + query[6:])
    assert formerr is not None and formerr[3] & 0x0F == 1
    stats.malformed_counted_by("oversized", lambda: 7)
    counted = figures(stats)
    kind = "kubedns_dns_malformed_total[('kind', '{}'), ('server', 'serve')]"
    assert {k: counted[kind.format(k)] for k in ("short", "response", "qdcount", "oversized")} == {
        "short": 1,
        "response": 1,
        "qdcount": 1,
        "oversized": 7,
    }


def test_size_buckets_are_exact_in_both_schemes() -> None:
    """Sizes kept by bucket among both schemes' bounds give each scheme its exact histogram."""
    sizes = [0, 1, 100, 101, 511, 512, 513, 1500, 1501, 8291, 8292, 64000, 65536, 65537]
    kept: dict[int, int] = {}
    for size in sizes:
        kept[size_bucket(size)] = kept.get(size_bucket(size), 0) + 1
    for bounds in (SKYDNS_SIZE_BUCKETS, COREDNS_SIZE_BUCKETS):
        direct = [0] * (len(bounds) + 1)
        for size in sizes:
            direct[bisect_left(bounds, size)] += 1
        assert size_histogram(bounds, kept.items()) == direct


def test_tallies_of_the_same_size_buckets_are_shared_past_the_limit(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(stats_module, "MAX_TALLY_KEYS", 2)
    stats = DnsStats("serve")
    tallies = {stats.tally("udp", 1, 0, size, 40) for size in range(60, 70)}
    assert len(tallies) == 1  # every size from 60 to 70 falls in the bucket up to 100
    assert len(stats._tallies) == 2
    other = stats.tally("udp", 1, 0, 120, 40)
    assert other not in tallies
    for tally in (*tallies, other):
        tally.count(0.0)
    counts = stats.counts()
    assert sum(counts.reply_sizes.values()) == 2
    assert counts.reply_bytes["udp", "auth"] == 60 + 120  # each tally keeps the size it was made for
