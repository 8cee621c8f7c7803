"""The cluster zone as the Kubernetes DNS-Based Service Discovery specification (1.1.0) defines it.

``Zone.lookup`` maps one question to a ``Result`` (rcode + sections of dnslib RRs). Names are parsed
by position relative to the zone, the way the specification writes them::

    <zone>                                  SOA, NS            dns-version.<zone>        TXT
    <svc>.<ns>.svc.<zone>                   A/AAAA/SRV/CNAME   <label>.<svc>.<ns>.svc    A/AAAA (headless)
    _<port>._<proto>.<svc>.<ns>.svc.<zone>  SRV                <a-b-c-d>.<ns>.pod.<zone> A/AAAA
    <reversed ip>.in-addr.arpa / ip6.arpa   PTR

Everything else inside the zone is NXDOMAIN, except the empty non-terminals above the listed names,
which are NODATA. Names outside the cluster and reverse zones, and reverse names for addresses the
cluster does not own, are REFUSED so that the cache in front sends them upstream.

One name outside the specification serves the caches' autopath: ``_autopath-<a-b-c-d>.<zone>`` TXT
says what search list the Pod at that address has (``autopath_record``). Its label cannot be a
namespace or service (an underscore), it sits right under the apex (no empty non-terminal appears),
and the answerer gives it only to the clients it trusts with it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, NS, PTR, RR, SOA, SRV, TXT, A, DNSLabel

from kubedns_py import DNS_SCHEMA_VERSION
from kubedns_py.cluster.objects import normalize_ip
from kubedns_py.cluster.records import ServiceRecords, SrvTarget, srv_targets
from kubedns_py.cluster.store import Store
from kubedns_py.dnswire.header import Rcode, Type

MAX_CNAME_CHAIN = 8
AUTOPATH_PREFIX = "_autopath-"
AUTOPATH_TTL = 5  # Pods come and go: the caches look again within seconds
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
REVERSE_ZONES = (("in-addr", "arpa"), ("ip6", "arpa"))
# RFC 8482: ANY gets one RRset, chosen in this order of preference.
ANY_PREFERENCE = (Type.CNAME, Type.A, Type.AAAA, Type.SRV, Type.TXT, Type.PTR, Type.SOA)


class PodMode(enum.Enum):
    INSECURE = "insecure"
    VERIFIED = "verified"
    DISABLED = "disabled"


@dataclass(slots=True)
class Result:
    rcode: int = Rcode.NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    authoritative: bool = True

    @property
    def cacheable(self) -> bool:
        """SERVFAIL reflects a passing state (not yet synced) and must not outlive it."""
        return bool(self.rcode != Rcode.SERVFAIL)


REFUSED = Result(Rcode.REFUSED, authoritative=False)


class Zone:
    def __init__(self, store: Store, domain: str, ttl: int, pods: PodMode) -> None:
        self.store = store
        self.domain = domain.strip(".").lower()
        self._zone_labels = tuple(self.domain.split("."))
        self.ttl = ttl
        self.pods = pods

    # -- entry point -------------------------------------------------------------------------------

    def lookup(self, qname: DNSLabel, qtype: int) -> Result:
        labels = [part.decode("latin-1").lower() for part in qname.label]
        n = len(self._zone_labels)
        if len(labels) >= n and tuple(labels[len(labels) - n :]) == self._zone_labels:
            if not self.store.synced:
                return Result(Rcode.SERVFAIL, authoritative=False)
            return self._forward(qname, qtype, labels[: len(labels) - n], (".".join(labels),))
        if len(labels) >= 2 and tuple(labels[-2:]) in REVERSE_ZONES:
            if not self.store.synced:
                return Result(Rcode.SERVFAIL, authoritative=False)
            return self._reverse(qname, qtype, labels)
        return REFUSED

    # -- forward names -------------------------------------------------------------------------------

    def _forward(self, qname: DNSLabel, qtype: int, rel: list[str], chain: tuple[str, ...]) -> Result:
        """``chain``: the names this answer has walked through (CNAMEs followed so far)."""
        match rel:
            case []:
                return self._apex(qname, qtype)
            case [label] if label.startswith(AUTOPATH_PREFIX):
                return self._autopath(qname, qtype, label[len(AUTOPATH_PREFIX) :])
            case ["dns-version"]:
                txt = RR(qname, Type.TXT, ttl=self.ttl, rdata=TXT(DNS_SCHEMA_VERSION))
                return self._rrset(qtype, {Type.TXT: [txt]})
            case ["ns", "dns"]:
                return self._rrset(qtype, self._addresses(qname, self._nameserver_ips()))
            case ["dns"] | ["svc"]:
                return self._nodata()
            case ["pod"]:
                return self._nxdomain() if self.pods is PodMode.DISABLED else self._nodata()
            case [namespace, "svc"]:
                return self._nodata() if self.store.namespace_exists(namespace) else self._nxdomain()
            case [namespace, "pod"]:
                if self.pods is not PodMode.DISABLED and self.store.namespace_exists(namespace):
                    return self._nodata()
                return self._nxdomain()
            case [label, namespace, "pod"]:
                return self._pod(qname, qtype, label, namespace)
            case [name, namespace, "svc"]:
                return self._service(qname, qtype, namespace, name, chain)
            case [label, name, namespace, "svc"]:
                return self._endpoint(qname, qtype, namespace, name, label)
            case [port, protocol, name, namespace, "svc"] if port[:1] == "_" and protocol[:1] == "_":
                return self._srv_name(qname, qtype, namespace, name, port[1:], protocol[1:])
        return self._nxdomain()

    def _apex(self, qname: DNSLabel, qtype: int) -> Result:
        ns = RR(qname, Type.NS, ttl=self.ttl, rdata=NS(self._ns_name()))
        glue = self._addresses(self._ns_name(), self._nameserver_ips())
        result = self._rrset(qtype, {Type.SOA: [self._soa_rr(qname)], Type.NS: [ns]})
        if qtype == Type.NS:
            result.additional = glue.get(Type.A, []) + glue.get(Type.AAAA, [])
        return result

    def _service(
        self, qname: DNSLabel, qtype: int, namespace: str, name: str, chain: tuple[str, ...]
    ) -> Result:
        records = self.store.service(namespace, name)
        if records is None:
            return self._nxdomain()
        if records.external_name is not None:
            return self._cname(qname, qtype, records.external_name, chain)
        sets = self._addresses(qname, records.addresses)
        srv = srv_targets(group for groups in records.srv.values() for group in groups)
        sets[Type.SRV] = self._srv_rrs(qname, namespace, name, srv) if srv else []
        result = self._rrset(qtype, sets)
        if qtype == Type.SRV:
            result.additional = self._glue(namespace, name, records, srv)
        return result

    def _endpoint(self, qname: DNSLabel, qtype: int, namespace: str, name: str, label: str) -> Result:
        records = self.store.service(namespace, name)
        if records is None or records.external_name is not None:
            return self._nxdomain()
        if label in records.hosts:
            return self._rrset(qtype, self._addresses(qname, records.hosts[label]))
        if label[:1] == "_" and any(protocol == label[1:] for _, protocol in records.srv):
            return self._nodata()  # _<proto>.<svc>... is the empty non-terminal above SRV names
        return self._nxdomain()

    def _srv_name(
        self, qname: DNSLabel, qtype: int, namespace: str, name: str, port: str, protocol: str
    ) -> Result:
        records = self.store.service(namespace, name)
        groups = records.srv.get((port, protocol)) if records is not None else None
        if records is None or not groups:
            return self._nxdomain()
        targets = srv_targets(groups)
        result = self._rrset(qtype, {Type.SRV: self._srv_rrs(qname, namespace, name, targets)})
        if qtype == Type.SRV:
            result.additional = self._glue(namespace, name, records, targets)
        return result

    def _cname(self, qname: DNSLabel, qtype: int, target: str, chain: tuple[str, ...]) -> Result:
        cname = RR(qname, Type.CNAME, ttl=self.ttl, rdata=CNAME(target + "."))
        if qtype in (Type.CNAME, Type.ANY):
            return Result(answer=[cname])
        result = Result(answer=[cname])
        target_labels = target.split(".")
        n = len(self._zone_labels)
        inside = (
            len(target_labels) >= n and tuple(target_labels[len(target_labels) - n :]) == self._zone_labels
        )
        if inside and target not in chain and len(chain) <= MAX_CNAME_CHAIN:
            # A target inside the zone is ours to finish (never twice: a loop ends where it closes);
            # outside targets are the cache's job.
            rel = target_labels[: len(target_labels) - n]
            chased = self._forward(DNSLabel(target), qtype, rel, (*chain, target))
            result.rcode = chased.rcode
            result.answer += chased.answer
            result.authority = chased.authority
            result.additional = chased.additional
        return result

    def _pod(self, qname: DNSLabel, qtype: int, label: str, namespace: str) -> Result:
        ip = ip_from_dashed(label)
        if (
            self.pods is PodMode.DISABLED
            or ip is None
            or not self.store.namespace_exists(namespace)
            or (self.pods is PodMode.VERIFIED and not self.store.pod_ip_exists(namespace, ip))
        ):
            return self._nxdomain()
        return self._rrset(qtype, self._addresses(qname, (ip,)))

    def is_autopath_name(self, qname: DNSLabel) -> bool:
        """Whether ``qname`` is an autopath record's name (answered only to trusted clients)."""
        labels = qname.label
        n = len(self._zone_labels)
        return (
            len(labels) == n + 1
            and labels[0].lower().startswith(AUTOPATH_PREFIX.encode())
            and tuple(label.decode("latin-1").lower() for label in labels[1:]) == self._zone_labels
        )

    def _autopath(self, qname: DNSLabel, qtype: int, dashed: str) -> Result:
        ip = ip_from_dashed(dashed)
        if ip is None:
            return self._nxdomain()
        strings = autopath_record(self.store, ip) if self.pods is PodMode.VERIFIED else ("search=unverified",)
        ttl = min(self.ttl, AUTOPATH_TTL)
        return self._rrset(qtype, {Type.TXT: [RR(qname, Type.TXT, ttl=ttl, rdata=TXT(list(strings)))]})

    # -- reverse names -------------------------------------------------------------------------------

    def _reverse(self, qname: DNSLabel, qtype: int, labels: list[str]) -> Result:
        ip = ip_from_reverse(labels)
        owners = self.store.reverse(ip) if ip is not None else []
        if not owners:
            return REFUSED
        ptrs = []
        for (namespace, name), label in owners:
            target = self.service_name(namespace, name)
            if label is not None:
                target = f"{label}.{target}"
            ptrs.append(RR(qname, Type.PTR, ttl=self.ttl, rdata=PTR(target)))
        result = self._rrset(qtype, {Type.PTR: ptrs})
        if not result.answer:
            apex = ".".join(labels[-2:])
            result.authority = [self._soa_rr(DNSLabel(apex))]
        return result

    # -- building blocks -------------------------------------------------------------------------------

    def service_name(self, namespace: str, name: str) -> str:
        return f"{name}.{namespace}.svc.{self.domain}."

    def _ns_name(self) -> str:
        return f"ns.dns.{self.domain}."

    def _nameserver_ips(self) -> tuple[str, ...]:
        # The NS name resolves to the cluster DNS Service, as Pods reach it.
        records = self.store.service("kube-system", "kube-dns")
        return records.addresses if records is not None else ()

    def _soa_rr(self, owner: DNSLabel) -> RR:
        soa = SOA(
            self._ns_name(),
            f"hostmaster.{self.domain}.",
            (self.store.serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self.ttl),
        )
        return RR(owner, Type.SOA, ttl=self.ttl, rdata=soa)

    def _nodata(self) -> Result:
        return Result(authority=[self._soa_rr(DNSLabel(self.domain))])

    def _nxdomain(self) -> Result:
        return Result(Rcode.NXDOMAIN, authority=[self._soa_rr(DNSLabel(self.domain))])

    def _rrset(self, qtype: int, sets: dict[int, list[RR]]) -> Result:
        """The answer for an existing name: the asked type's RRs, or NODATA."""
        if qtype == Type.ANY:
            for preferred in ANY_PREFERENCE:
                if sets.get(preferred):
                    return Result(answer=sets[preferred])
        rrs = sets.get(qtype)
        return Result(answer=list(rrs)) if rrs else self._nodata()

    def _addresses(self, owner: DNSLabel | str, ips: tuple[str, ...]) -> dict[int, list[RR]]:
        v4 = [RR(owner, Type.A, ttl=self.ttl, rdata=A(ip)) for ip in ips if ":" not in ip]
        v6 = [RR(owner, Type.AAAA, ttl=self.ttl, rdata=AAAA(ip)) for ip in ips if ":" in ip]
        return {Type.A: v4, Type.AAAA: v6}

    def _srv_rrs(self, qname: DNSLabel, namespace: str, name: str, targets: Sequence[SrvTarget]) -> list[RR]:
        weight = max(1, 100 // len(targets))
        base = self.service_name(namespace, name)
        return [
            RR(
                qname,
                Type.SRV,
                ttl=self.ttl,
                rdata=SRV(
                    priority=0, weight=weight, port=t.port, target=f"{t.host}.{base}" if t.host else base
                ),
            )
            for t in targets
        ]

    def _glue(
        self, namespace: str, name: str, records: ServiceRecords, targets: Sequence[SrvTarget]
    ) -> list[RR]:
        base = self.service_name(namespace, name)
        glue: list[RR] = []
        for host in dict.fromkeys(t.host for t in targets):
            owner = f"{host}.{base}" if host else base
            ips = records.hosts.get(host, ()) if host else records.addresses
            sets = self._addresses(owner, ips)
            glue += sets[Type.A] + sets[Type.AAAA]
        return glue


def autopath_record(store: Store, ip: str) -> tuple[str, ...]:
    """What a cache needs to answer for the client at ``ip`` as its own search would: the Pod's
    namespace and ndots when its search list is the cluster's standard one (``Pod.ndots``); ``custom``
    for any other, or when the Pods holding the address disagree; ``none`` when no Pod holds it."""
    pods = store.pods_at(ip)
    if not pods:
        return ("search=none",)
    namespace, ndots = pods[0]
    if ndots and all(pod == pods[0] for pod in pods):
        return ("search=cluster", f"namespace={namespace}", f"ndots={ndots}")
    return ("search=custom",)


def ip_from_dashed(label: str) -> str | None:
    parts = label.split("-")
    # Four decimal parts are IPv4; anything else dashed is IPv6 (fd00--1-5 has three dashes too).
    ipv4 = len(parts) == 4 and all(p.isdigit() for p in parts)
    return normalize_ip(".".join(parts) if ipv4 else ":".join(parts))


def ip_from_reverse(labels: list[str]) -> str | None:
    body = labels[:-2]
    if labels[-2] == "in-addr" and len(body) == 4:
        if not all(part.isdigit() and len(part) <= 3 for part in body):
            return None
        return normalize_ip(".".join(reversed(body)))
    if labels[-2] == "ip6" and len(body) == 32:
        if not all(len(part) == 1 and part in "0123456789abcdef" for part in body):
            return None
        nibbles = "".join(reversed(body))
        return normalize_ip(":".join(nibbles[i : i + 4] for i in range(0, 32, 4)))
    return None
