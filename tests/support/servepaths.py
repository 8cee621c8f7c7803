"""serve's two ways of answering, in-process over one store: the prebuilt wire answers (``WireZone``,
then the general path for what it leaves) and the general path alone (``Zone``, built with dnslib).

``zone_store`` loads manifests as ``kubedns-py serve --manifests`` does; ``ServePaths`` holds an
answerer for each way and puts a ``Case``'s question to both (``ask_both``); ``reply_summary`` is what
a client sees of a reply, for comparing the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dns.message

from kubedns_py.cluster.answers import Section, Validity, WireZone
from kubedns_py.cluster.store import Store
from kubedns_py.cluster.zone import PodMode, Zone
from kubedns_py.net.stats import DnsStats
from kubedns_py.serve.answerer import Answerer
from kubedns_py.sources.manifests import ManifestSource
from tests.support.zonecase import TTL, ZONE, Case


def zone_store(manifests: Sequence[Path]) -> Store:
    """The store serve builds from ``manifests``, synced."""
    source = ManifestSource(manifests)
    store = Store(required=source.kinds)
    store.apply(source.poll())
    assert store.synced, f"{manifests} did not load"
    return store


class WatchedWireZone:
    """The wire zone, noting the questions it answered itself (rather than leaving them to ``Zone``)."""

    def __init__(self, zone: Zone, store: Store) -> None:
        self._wire = WireZone(zone, store)
        self.answered: set[tuple[bytes, int]] = set()

    def find(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None:
        found = self._wire.find(key, qtype)
        if found is not None:
            self.answered.add((key, qtype))
        return found


class NoWireZone:
    """A wire zone that answers nothing: every question takes the general path."""

    def find(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None:
        return None


class ServePaths:
    def __init__(self, store: Store, pods: PodMode = PodMode.INSECURE, ttl: int = TTL) -> None:
        zone = Zone(store, ZONE, ttl, pods)
        self.wire = WatchedWireZone(zone, store)
        self.prebuilt = Answerer(zone, self.wire, DnsStats("serve"))
        self.general = Answerer(zone, NoWireZone(), DnsStats("serve"))

    def ask_both(self, row: Case, tcp: bool = False) -> tuple[dns.message.Message, dns.message.Message]:
        """The replies to one query for ``row``'s question: the prebuilt way's, and the general path's."""
        query = dns.message.make_query(row.qname, row.qtype, rdclass=row.rdclass).to_wire()
        replies = []
        for answerer in (self.prebuilt, self.general):
            reply = answerer.answer(query, None, tcp)
            assert reply is not None, f"{row.qname} {row.qtype}: no reply"
            replies.append(dns.message.from_wire(bytes(reply)))  # as it leaves a socket
        return replies[0], replies[1]


def reply_summary(reply: dns.message.Message) -> tuple[object, ...]:
    """All a client sees of a reply but record order, name compression and the case of owner names:
    its ID, flags, rcode, question, and each section's records with their TTLs."""

    def records(section: list[dns.rrset.RRset]) -> list[str]:
        return sorted(line.lower() for rrset in section for line in rrset.to_text().splitlines())

    return (
        reply.id,
        reply.flags,
        reply.rcode(),
        [question.to_text() for question in reply.question],
        records(reply.answer),
        records(reply.authority),
        records(reply.additional),
        reply.edns,
    )
