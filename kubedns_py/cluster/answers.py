"""The cluster zone as wire answers, found from the lower-cased question name without dnslib.

Every Service has a ``ServiceNode`` under its wire name relative to the zone (``<svc>.<ns>.svc``).
A node keeps the answer sections asked of it, built once from the service's records and dropped with
the node when that service changes; nothing else is touched by a change. A service's own name is its
node's key, found by one lookup; any other name is parsed (``cluster.names``, the parse the general
path uses too) and its node, if it has one, found from the parse::

    <svc>.<ns>.svc                the node itself              A, AAAA, SRV
    <label>.<svc>.<ns>.svc        one label under it           endpoint A/AAAA, or the _<proto> ENT
    _<port>._<proto>.<svc>...     two labels under it          SRV

Any other name under the zone is a pod name, one of the few fixed names (apex, dns-version, ns.dns,
and the empty non-terminals above them), or does not exist. Negative answers are spliced from the
current SOA record with its owner pointing at the zone apex inside the question, so a store change
costs them nothing. Names only the general path answers (ExternalName CNAMEs, ANY, the fixed names)
come back as None: the caller builds those with ``Zone``.

A headless service can have more records than one DNS message holds (64 KiB: about 4,000 addresses, or
SRV records for 1,000 endpoints with two ports). Its answer then carries a ``Spread``: each TCP reply
takes as many whole records as fit, with TC set, starting where the previous reply stopped.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from kubedns_py.cluster.names import (
    ENDPOINT,
    NONE,
    OUTSIDE,
    POD_NAME,
    PORT,
    REVERSE,
    SERVICE,
    SVC,
    ClusterName,
)
from kubedns_py.cluster.records import ServiceRecords, SrvGroup, srv_targets
from kubedns_py.cluster.store import ServiceKey, Store
from kubedns_py.cluster.zone import SOA_EXPIRE, SOA_REFRESH, SOA_RETRY, PodMode, Zone
from kubedns_py.dnswire import encode
from kubedns_py.dnswire.encode import POINTERS
from kubedns_py.dnswire.header import (
    AA_BIT,
    AAAA,
    ANY,
    HEADER_SIZE,
    NOERROR,
    NXDOMAIN,
    PTR,
    QR_BIT,
    REFUSED,
    SERVFAIL,
    SRV,
    TC_BIT,
    A,
)
from kubedns_py.dnswire.reader import MAX_NAME
from kubedns_py.dnswire.reply import TCP_MAX
from kubedns_py.dnswire.splice import raw_opt

_HEAD = struct.Struct("!HHHHH")  # flags, qdcount, ancount, nscount, arcount
QUESTION_START = POINTERS[12]
# Room for records in a TCP reply to the longest question (a 255-byte name, its type and class) with our
# OPT: an answer with more bytes of records than this may not fit in one message.
MOST_RECORD_BYTES = TCP_MAX - HEADER_SIZE - (MAX_NAME + 4) - len(raw_opt(0))


# A reply without its ID, question and OPT, as a plain tuple of plain values, which the cycle collector
# stops tracking the first time it meets one (a node's answers would otherwise be walked at every full
# collection):
#   heads:   the header after the ID, by ``edns << 1 | rd`` (with EDNS, arcount counts our OPT record);
#   body:    the records after the question;
#   rcode;
#   shorter: what to send when the reply is too large for the client (RFC 2181 9): the same without
#            the additional section; records too many for any message, a ``Spread``; or, once nothing
#            optional is left, an empty reply with TC set. A Section, a Spread or None, typed Any:
#            mypyc, which compiles this module, cannot follow a recursive alias.
Section = tuple[tuple[bytes, ...], bytes, int, Any]


def _heads(flags: int, counts: tuple[int, int, int]) -> tuple[bytes, ...]:
    ancount, nscount, arcount = counts
    return tuple(
        _HEAD.pack(flags | rd << 8, 1, ancount, nscount, arcount + edns) for edns in (0, 1) for rd in (0, 1)
    )


def make_section(
    rcode: int,
    authoritative: bool,
    counts: tuple[int, int, int],
    body: bytes,
    truncated: bool = False,
) -> Section:
    """A section whose records go whole or not at all: too large, it is sent empty with TC set."""
    flags = QR_BIT | (AA_BIT if authoritative else 0) | (TC_BIT if truncated else 0) | rcode
    shorter = make_section(rcode, authoritative, (0, 0, 0), b"", truncated=True) if body else None
    return _heads(flags, counts), body, rcode, shorter


def answer_section(answer: Sequence[bytes], additional: Sequence[bytes] = ()) -> Section:
    """An authoritative NOERROR answer: ``answer`` records, and ``additional`` ones (glue) that go first
    when the reply is too large; answer records too many for any message make a ``Spread``."""
    body = b"".join(answer)
    empty = make_section(NOERROR, True, (0, 0, 0), b"", truncated=True)
    shorter = Spread(answer, body, empty) if len(body) > MOST_RECORD_BYTES else empty
    section: Section = (_heads(QR_BIT | AA_BIT, (len(answer), 0, 0)), body, NOERROR, shorter)
    if additional:
        counts = (len(answer), 0, len(additional))
        section = (_heads(QR_BIT | AA_BIT, counts), body + b"".join(additional), NOERROR, section)
    return section


class Spread:
    """Answer records too many for one DNS message. Each TCP reply carries as many whole records as fit
    (``part``), with TC set, starting where the previous reply stopped: every record is given out in
    turn, so clients spread their load over all of them. UDP clients get ``truncated``, as for any
    answer too large for them."""

    __slots__ = ("_bounds", "_next", "body", "count", "noticed", "truncated")

    def __init__(self, records: Sequence[bytes], body: bytes, truncated: Section) -> None:
        self.body = body
        self.count = len(records)
        self.truncated = truncated
        self.noticed = False  # whether a reply was sent in part yet, for the caller to say so once
        # Where each record ends in ``body``, twice over: a run that wraps past the end is found by one
        # bisect, and an array costs 4 bytes per record where a list of ints costs 36.
        bounds = array("I", [0])
        for _ in range(2):
            for record in records:
                bounds.append(bounds[-1] + len(record))
        self._bounds = bounds
        self._next = 0

    def part(self, room: int) -> Section:
        """The next run of whole records fitting in ``room`` bytes, as a section of its own."""
        bounds, body, size = self._bounds, self.body, len(self.body)
        first = self._next
        start = bounds[first]
        last = min(bisect_right(bounds, start + room) - 1, first + self.count)
        end = bounds[last]
        records = body[start:end] if end <= size else body[start:] + body[: end - size]
        self._next = last % self.count
        counts = (last - first, 0, 0)
        return _heads(QR_BIT | AA_BIT | TC_BIT | NOERROR, counts), records, NOERROR, None


SERVFAIL_SECTION = make_section(SERVFAIL, False, (0, 0, 0), b"")
REFUSED_SECTION = make_section(REFUSED, False, (0, 0, 0), b"")
Found = Section | int | None  # an answer; NOERROR or NXDOMAIN for a negative one; None for the general path


NO_SECTIONS: dict[tuple[bytes, int], Section | int] = {}  # shared until a node's first answer is kept


class Validity:
    """What an answer was made from, for keeping the finished reply: ``live`` until that changes."""

    __slots__ = ("live",)

    def __init__(self, live: bool = True) -> None:
        self.live = live


ALWAYS = Validity()  # what no store change alters: names outside the cluster's zones
NEVER = Validity(False)  # answers that must not be kept (not yet synced)


class ServiceNode(Validity):
    """A service's answers; no longer ``live`` once the service changed and a new node replaced it."""

    __slots__ = ("records", "sections")

    def __init__(self, records: ServiceRecords) -> None:
        super().__init__()
        self.records = records
        self.sections = NO_SECTIONS


class WireZone:
    def __init__(self, zone: Zone, store: Store) -> None:
        self.zone = zone
        self._parse = zone.names.parse
        self._under_zone = zone.names.under_zone
        self._store = store
        self._ttl = zone.ttl
        self._pods = zone.pods
        self._zone_wire = encode.name(zone.domain)
        self._zone_size = len(self._zone_wire)
        self._nodes: dict[bytes, ServiceNode] = {}
        self._negative: dict[int, Section] = {}  # by rcode << 16 | apex offset, for the current serial
        self._serial = -1
        # Negative answers and those made from more than one service depend on the whole store: they
        # are good until the serial changes.
        self._epoch = Validity()
        self._synced = False
        self._soa = b""
        store.subscribe(self.update)
        self.update(store.service_keys())

    def update(self, changed: Iterable[ServiceKey]) -> None:
        """Follow the store: new nodes for the services that changed, a new SOA for a new serial."""
        for namespace, name in changed:
            wire = encode.label(name) + encode.label(namespace) + SVC
            records = self._store.service(namespace, name)
            old = self._nodes.pop(wire, None) if records is None else self._nodes.get(wire)
            if old is not None:
                old.live = False
            if records is not None:
                self._nodes[wire] = ServiceNode(records)
        self._synced = self._store.synced
        if self._store.serial != self._serial:
            self._serial = self._store.serial
            timers = (self._serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self._ttl)
            domain = self.zone.domain
            self._soa = encode.soa_tail(
                self._ttl, encode.name(f"ns.dns.{domain}"), encode.name(f"hostmaster.{domain}"), timers
            )
            self._negative = {}
            self._epoch.live = False
            self._epoch = Validity()

    # -- the hot path -------------------------------------------------------------------------------

    def find(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None:
        """The answer to an IN-class question for the lower-cased wire name ``key``, with what it was
        made from; None when only the general path can build it."""
        if not key.endswith(self._zone_wire):
            return self._not_in_zone(key, qtype)
        apex = len(key) - self._zone_size
        if not self._synced:
            if self._under_zone(key, apex).kind is OUTSIDE:
                return REFUSED_SECTION, ALWAYS
            return SERVFAIL_SECTION, NEVER
        # A service's own name, the question asked most, is its node's key: found without a parse (the
        # key parses as SERVICE, naming that node), which only building its answers needs.
        node = self._nodes.get(key[:apex])
        if node is not None:
            found = node.sections.get((b"", qtype))
            if found is None:
                found = self._node_answer(node, self._under_zone(key, apex), qtype)
            return self._result(found, node, apex)
        name = self._under_zone(key, apex)
        kind = name.kind
        if kind is ENDPOINT or kind is PORT:
            node = self._nodes.get(name.node)
            if node is None:
                found = NXDOMAIN
            else:
                found = node.sections.get((name.prefix, qtype))
                if found is None:
                    found = self._node_answer(node, name, qtype)
        elif kind is NONE or kind is SERVICE:  # a service's own name: its node, had it one, was found above
            found = NXDOMAIN
        elif kind is POD_NAME:
            found = self._pod(name, qtype)
        elif kind is OUTSIDE:
            return REFUSED_SECTION, ALWAYS
        else:
            return None  # the apex, its fixed names, the empty non-terminals, autopath: the general path
        return self._result(found, self._epoch, apex)

    def _not_in_zone(self, key: bytes, qtype: int) -> tuple[Section, Validity] | None:
        """A reverse name, or a name for the cache to send upstream."""
        name = self._parse(key)
        if name.kind is not REVERSE:
            return REFUSED_SECTION, ALWAYS
        if not self._synced:
            return SERVFAIL_SECTION, NEVER
        return self._result(self._reverse(name, qtype), self._epoch, name.apex)

    def _result(self, found: Found, source: Validity, apex: int) -> tuple[Section, Validity] | None:
        """A section found, good while ``source`` is live; for an rcode found, the negative section
        (good while the zone's epoch is); None for the general path."""
        if found.__class__ is tuple:
            return found, source
        if found is None:
            return None
        return self._negative_section(found, 12 + apex), self._epoch  # type: ignore[arg-type]

    def _negative_section(self, rcode: int, apex: int) -> Section:
        section = self._negative.get(rcode << 16 | apex)
        if section is None:
            section = make_section(rcode, True, (0, 1, 0), POINTERS[apex] + self._soa)
            self._negative[rcode << 16 | apex] = section
        return section

    def _node_answer(self, node: ServiceNode, name: ClusterName, qtype: int) -> Found:
        """The answer for ``name``, the node's service or a name under it, not kept yet."""
        prefix = name.prefix
        if node.records.external_name is not None:
            return None if not prefix else NXDOMAIN
        if qtype == ANY:
            return None
        if qtype not in (A, AAAA, SRV):
            # Nothing here but addresses and SRV: any other type is NODATA where the name exists, and
            # is not kept, so that a client walking all 65,536 types cannot grow the node.
            exists = self._build(node.records, name, A)
            return None if exists is None else NXDOMAIN if exists == NXDOMAIN else NOERROR
        built = self._build(node.records, name, qtype)
        if built is not None and built != NXDOMAIN:  # names that exist only: a node never grows by junk
            if node.sections is NO_SECTIONS:
                node.sections = {}
            node.sections[(prefix, qtype)] = built
        return built

    # -- building answers for a service's names --------------------------------------------------------

    def _build(self, records: ServiceRecords, name: ClusterName, qtype: int) -> Section | int | None:
        if name.kind is SERVICE:
            return self._service_name(records, qtype)
        if name.kind is ENDPOINT:
            label = name.endpoint
            if label in records.hosts:
                ips = records.hosts[label]
                return self._addresses(POINTERS[12], ips, qtype) if qtype != SRV else NOERROR
            if label[:1] == "_" and any(protocol == label[1:] for _, protocol in records.srv):
                return NOERROR  # _<proto>.<svc>... is the empty non-terminal above SRV names
            return NXDOMAIN
        groups = records.srv.get((name.port, name.protocol))
        if not groups:
            return NXDOMAIN
        return self._srv(records, groups, 12 + len(name.prefix)) if qtype == SRV else NOERROR

    def _service_name(self, records: ServiceRecords, qtype: int) -> Section | int:
        if qtype != SRV:
            return self._addresses(POINTERS[12], records.addresses, qtype)
        groups = [group for groups in records.srv.values() for group in groups]
        return self._srv(records, groups, 12) if groups else NOERROR

    def _addresses(self, owner: bytes, ips: tuple[str, ...], qtype: int) -> Section | int:
        wanted = [ip for ip in ips if (":" in ip) == (qtype == AAAA)]
        if not wanted:
            return NOERROR
        return answer_section([encode.address(owner, self._ttl, ip) for ip in wanted])

    def _srv(self, records: ServiceRecords, groups: Iterable[SrvGroup], service_offset: int) -> Section:
        """SRV records for ``groups`` with their targets' addresses as glue; the service's own name is
        the question's, at ``service_offset``."""
        targets = srv_targets(groups)
        service = POINTERS[service_offset]
        weight = max(1, 100 // len(targets))
        answer = [
            encode.srv(
                QUESTION_START,
                self._ttl,
                weight,
                t.port,
                encode.label(t.host) + service if t.host else service,
            )
            for t in targets
        ]
        glue = []
        for host in dict.fromkeys(t.host for t in targets):
            owner = encode.label(host) + service if host else service
            ips = records.hosts.get(host, ()) if host else records.addresses
            v4 = [ip for ip in ips if ":" not in ip]
            v6 = [ip for ip in ips if ":" in ip]
            glue += [encode.address(owner, self._ttl, ip) for ip in v4 + v6]
        return answer_section(answer, glue)

    # -- pods and reverse names --------------------------------------------------------------------------

    def _pod(self, name: ClusterName, qtype: int) -> Found:
        namespace = name.namespace
        if self._pods is PodMode.DISABLED or not self._store.namespace_exists(namespace):
            return NXDOMAIN
        ip = name.ip
        if ip is None or (self._pods is PodMode.VERIFIED and not self._store.pod_ip_exists(namespace, ip)):
            return NXDOMAIN
        if qtype not in (A, AAAA):
            return NOERROR if qtype != ANY else None
        return self._addresses(POINTERS[12], (ip,), qtype)

    def _reverse(self, name: ClusterName, qtype: int) -> Found:
        owners = self._store.reverse(name.ip) if name.ip is not None else []
        if not owners:
            return REFUSED_SECTION
        if qtype != PTR:
            return None if qtype == ANY else NOERROR  # NODATA, with the SOA of the reverse zone
        answer = []
        for (namespace, service), label in owners:
            target = self.zone.service_name(namespace, service)
            if label is not None:
                target = f"{label}.{target}"
            answer.append(encode.record(QUESTION_START, PTR, self._ttl, encode.name(target)))
        return answer_section(answer)
