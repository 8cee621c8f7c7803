"""CoreDNS's core series (``--coredns-metrics``), so CoreDNS's dashboards and the coredns-mixin alerts
read serve and the cache unchanged.

Computed when scraped from what ``DnsStats`` counts, with CoreDNS's names, labels and buckets. The
labels are those of a default CoreDNS deployment (one server block ``.:53``): ``server`` is
``dns://:<port>``, ``zone`` is ``.``, ``view`` is empty. ``family`` is that of the address listened
on (clients' own families are not counted), and ``plugin`` names the part that answers: serve is
CoreDNS's ``kubernetes``, the cache its ``cache`` + ``forward``, reported as ``forward``.
"""

from __future__ import annotations

import ipaddress
import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py import __version__
from kubedns_py.buckets import cumulative
from kubedns_py.net.stats import (
    COREDNS_SIZE_BUCKETS,
    DURATION_BUCKETS,
    DnsStats,
    by_rcode,
    size_histogram,
)

ZONE = "."
VIEW = ""
WHERE_LABELS = ["server", "zone", "view"]  # where CoreDNS counts a query


def server_label(port: int) -> str:
    return f"dns://:{port}"


def family_label(address: str) -> str:
    try:
        return "2" if ipaddress.ip_address(address).version == 6 else "1"
    except ValueError:
        return "1"


class CoreDnsCollector(Collector):
    def __init__(self, stats: DnsStats, port: Callable[[], int], address: str, plugin: str) -> None:
        self._stats = stats
        self._port = port  # the DNS port, once bound
        self._family = family_label(address)
        self._plugin = plugin

    def collect(self) -> Iterator[Metric]:
        counts = self._stats.counts()
        where = [server_label(self._port()), ZONE, VIEW]
        info = GaugeMetricFamily(
            "coredns_build_info",
            "A metric with a constant '1' value labeled by version, revision, and goversion from which "
            "CoreDNS was built.",
            labels=["version", "revision", "goversion"],
        )
        info.add_metric([__version__, "kubedns-py", "python" + platform.python_version()], 1)
        yield info
        requests = CounterMetricFamily(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            labels=["server", "zone", "view", "proto", "family", "type"],
        )
        for (proto, qtype), count in sorted(counts.requests.items()):
            requests.add_metric([*where, proto, self._family, qtype], count)
        yield requests
        if counts.dnssec_ok:  # like CoreDNS: no series until a query sets DO
            dnssec_ok = CounterMetricFamily(
                "coredns_dns_do_requests",
                "Counter of DNS requests with DO bit set per zone.",
                labels=WHERE_LABELS,
            )
            dnssec_ok.add_metric(where, counts.dnssec_ok)
            yield dnssec_ok
        responses = CounterMetricFamily(
            "coredns_dns_responses",
            "Counter of response status codes.",
            labels=["server", "zone", "view", "rcode", "plugin"],
        )
        for rcode, count in sorted(by_rcode(counts).items()):
            responses.add_metric([*where, rcode, self._plugin], count)
        yield responses
        duration = HistogramMetricFamily(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            labels=WHERE_LABELS,
        )
        duration.add_metric(where, cumulative(DURATION_BUCKETS, counts.buckets), counts.duration_sum)
        yield duration
        request_size = HistogramMetricFamily(
            "coredns_dns_request_size_bytes",
            "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
            labels=["server", "zone", "view", "proto"],
        )
        for proto in sorted(counts.query_bytes):
            sizes = ((b, n) for (p, b), n in counts.query_sizes.items() if p == proto)
            request_size.add_metric([*where, proto], _sizes(sizes), counts.query_bytes[proto])
        yield request_size
        response_size = HistogramMetricFamily(
            "coredns_dns_response_size_bytes",
            "Size of the returned response in bytes.",
            labels=["server", "zone", "view", "proto"],
        )
        for proto in sorted({p for p, _ in counts.reply_bytes}):
            sizes = ((b, n) for (p, _, b), n in counts.reply_sizes.items() if p == proto)
            total = sum(n for (p, _), n in counts.reply_bytes.items() if p == proto)
            response_size.add_metric([*where, proto], _sizes(sizes), total)
        yield response_size


def _sizes(sizes: Iterable[tuple[int, int]]) -> list[tuple[str, float]]:
    return cumulative(COREDNS_SIZE_BUCKETS, size_histogram(COREDNS_SIZE_BUCKETS, sizes))


def to_label(upstream: str) -> str:
    """CoreDNS's spelling of an upstream (``host:port``, ``[v6]:port``) from dnsmasq's (``host#port``)."""
    host, _, port = upstream.rpartition("#")
    if not host:
        return upstream
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
