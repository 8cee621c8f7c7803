"""dnsmasq's statistics as CHAOS-class TXT records (``dig CH TXT hits.bind``), which the kube-dns
sidecar and our probe poll. Each answer is one TXT record holding one decimal string; ``servers.bind``
has one record per upstream: ``address#port queries errors``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dnslib import RR, TXT

from kubedns_py.dnswire.header import Class, Rcode, Type
from kubedns_py.dnswire.query import Query
from kubedns_py.dnswire.reply import build_reply

Counters = Callable[[], dict[str, int]]
Servers = Callable[[], list[str]]
STAT_NAMES = ("cachesize", "insertions", "evictions", "misses", "hits", "auth")


@dataclass
class ChaosCounts:
    """One process's statistics: ``counters`` by STAT_NAMES, ``servers`` as upstream → (queries,
    errors). With worker processes, each answers with its own plus the others' (``add``)."""

    counters: dict[str, int] = field(default_factory=dict)
    servers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, other: ChaosCounts) -> ChaosCounts:
        counters = {stat: self.counters.get(stat, 0) + other.counters.get(stat, 0) for stat in STAT_NAMES}
        servers = dict(self.servers)
        for upstream, (queries, errors) in other.servers.items():
            mine = servers.get(upstream, (0, 0))
            servers[upstream] = (mine[0] + queries, mine[1] + errors)
        return ChaosCounts(counters, servers)

    def server_lines(self) -> list[str]:
        return [f"{upstream} {queries} {errors}" for upstream, (queries, errors) in self.servers.items()]


class Chaos:
    def __init__(self, counters: Counters, servers: Servers) -> None:
        self._counters = counters
        self._servers = servers

    def reply(self, query: Query) -> bytes:
        q = query.record.q
        name = str(q.qname).rstrip(".").lower()
        values: list[str] | None = None
        if q.qtype in (Type.TXT, Type.ANY) and name.endswith(".bind"):
            stat = name[: -len(".bind")]
            if stat in STAT_NAMES:
                values = [str(self._counters()[stat])]
            elif stat == "servers":
                values = self._servers()
        if values is None:
            return build_reply(
                query, Rcode.REFUSED, (), (), (), False, query.payload, recursion_available=True
            )
        answer = [RR(q.qname, Type.TXT, Class.CH, 0, TXT(value)) for value in values]
        return build_reply(
            query, Rcode.NOERROR, answer, (), (), True, query.payload, recursion_available=True
        )
