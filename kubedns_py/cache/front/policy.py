"""Which questions the cache answers itself, never looking them up or forwarding them: those of
clients the ACL refuses (``--allow-from``, ``--local-service``), CHAOS-class statistics, other classes,
zone transfers, serve's autopath records, and our own loop-detection probes coming back. The frontend
reads a query first (``dnswire.reader``), then asks this policy, then the cache."""

from __future__ import annotations

from time import monotonic

from dnslib import CLASS, QTYPE, RCODE

from kubedns_py.cache.forward.loopdetect import LoopDetector
from kubedns_py.cache.front.chaos import Chaos
from kubedns_py.dnswire import reader, splice
from kubedns_py.dnswire.header import RA_BIT
from kubedns_py.dnswire.query import read_query
from kubedns_py.dnswire.reply import OUR_PAYLOAD
from kubedns_py.net.acl import ClientAcl
from kubedns_py.net.stats import DnsStats, qtype_label
from kubedns_py.net.tcp import Peer
from kubedns_py.net.udp import Address, DatagramHandler

REFUSED = RCODE.REFUSED
NOT_FORWARDED = frozenset((QTYPE.AXFR, QTYPE.IXFR))
# serve's autopath records say which namespace each Pod address is in: the cache asks them for its
# own use, and never for a client (whatever the zone, with or without --autopath).
PRIVATE_LABEL = b"_autopath-"


class QueryPolicy:
    def __init__(self, stats: DnsStats, chaos: Chaos, loops: LoopDetector, acl: ClientAcl | None) -> None:
        self._stats = stats
        self._chaos = chaos
        self._loops = loops
        self._acl = acl  # None: everyone may ask, and nobody's address is looked at

    def decide(self, data: bytes, q: reader.Question) -> bytes | None:
        """The reply to a question never forwarded: CHAOS, other classes, zone transfers, our loop
        probes coming back; None for the rest."""
        if q.qclass != CLASS.IN:
            if q.qclass == CLASS.CH:
                query = read_query(data)  # rare: dnslib is fine here
                if query is None or isinstance(query, bytes):
                    self._stats.malformed("undecodable")
                    return query or splice.header_only(data, RCODE.FORMERR)
                return self._chaos.reply(query)
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        if q.qtype in NOT_FORWARDED or q.key[1 : 1 + len(PRIVATE_LABEL)] == PRIVATE_LABEL:
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        if self._loops.watching and self._loops.intercept(q.key):
            return splice.empty_reply(data, q, REFUSED, RA_BIT, OUR_PAYLOAD)
        return None

    def guard(self, on_datagram: DatagramHandler) -> DatagramHandler:
        """``on_datagram`` for allowed clients only (the rest are refused); itself when there is no ACL."""
        if self._acl is None:
            return on_datagram
        verdicts, allows, refuse = self._acl.verdicts, self._acl.allows, self.refuse

        def on_datagram_from_allowed(data: bytes, addr: Address) -> bytes | None:
            if verdicts.get(addr[0]) or allows(addr[0]):
                return on_datagram(data, addr)
            return refuse(data, "udp")

        return on_datagram_from_allowed

    def admits(self, peer: Peer) -> bool:
        """Whether a TCP client may ask."""
        return self._acl is None or self._acl.allows(peer[0] if peer else "")

    def refuse(self, data: bytes, proto: str) -> bytes | None:
        """REFUSED for a client not allowed to ask: counted, never forwarded."""
        now = monotonic()
        assert self._acl is not None
        self._acl.refused += 1
        refused = splice.refusal(data, RA_BIT, OUR_PAYLOAD)
        if refused is None:
            return None
        reply, qtype = refused
        self._stats.record(proto, qtype_label(qtype), "REFUSED", monotonic() - now, len(reply), len(data))
        return reply
