"""Which questions the cache answers itself, never looking them up or forwarding them: CHAOS-class
statistics, other classes, zone transfers, serve's autopath records, and our own loop-detection probes
coming back. The frontend reads a query first (``dnswire.reader``), then asks this policy, then the
cache; clients the ACL refuses (``--allow-from``, ``--local-service``) never get that far
(``net.acl.ClientGuard``)."""

from __future__ import annotations

from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.front.chaos import Chaos
from kubedns_py.dnswire import reader, splice
from kubedns_py.dnswire.header import AXFR, CH, FORMERR, IN, IXFR, RA_BIT, REFUSED
from kubedns_py.dnswire.query import read_query
from kubedns_py.dnswire.reply import OUR_PAYLOAD
from kubedns_py.net.stats import DnsStats

NOT_FORWARDED = frozenset((AXFR, IXFR))
# serve's autopath records say which namespace each Pod address is in: the cache asks them for its
# own use, and never for a client (whatever the zone, with or without --autopath).
PRIVATE_LABEL = b"_autopath-"


class QueryPolicy:
    def __init__(self, stats: DnsStats, chaos: Chaos, loops: LoopDetector) -> None:
        self._stats = stats
        self._chaos = chaos
        self._loops = loops

    def decide(self, data: bytes, q: reader.Question) -> bytes | None:
        """The reply to a question never forwarded: CHAOS, other classes, zone transfers, our loop
        probes coming back; None for the rest."""
        if q.qclass != IN:
            if q.qclass == CH:
                query = read_query(data)  # rare: dnslib is fine here
                if query is None or isinstance(query, bytes):
                    self._stats.malformed("undecodable")
                    return query or splice.header_only(data, FORMERR)
                return self._chaos.reply(query)
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        if q.qtype in NOT_FORWARDED or q.key[1 : 1 + len(PRIVATE_LABEL)] == PRIVATE_LABEL:
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        if self._loops.watching and self._loops.intercept(q.key):
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        return None
