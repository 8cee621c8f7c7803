"""The cluster zone as the Kubernetes DNS-Based Service Discovery specification (1.1.0) defines it.

``Zone.lookup`` maps one question, its name parsed by ``cluster.names``, to a ``Result`` (rcode +
sections of dnslib RRs)::

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
from kubedns_py.cluster.names import ClusterName, NameKind, NameParser
from kubedns_py.cluster.records import ServiceRecords, SrvTarget, srv_targets
from kubedns_py.cluster.store import Store
from kubedns_py.dnswire import encode
from kubedns_py.dnswire.header import Rcode, Type
from kubedns_py.dnswire.reader import presentation

MAX_CNAME_CHAIN = 8
AUTOPATH_TTL = 5  # Pods come and go: the caches look again within seconds
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
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
        self.names = NameParser(self.domain)
        self.ttl = ttl
        self.pods = pods

    # -- entry point -------------------------------------------------------------------------------

    def lookup(self, name: ClusterName, qname: DNSLabel, qtype: int) -> Result:
        """The answer for ``qname`` (owner of the records, as asked), whose parse is ``name``."""
        if name.kind is NameKind.OUTSIDE:
            return REFUSED
        if not self.store.synced:
            return Result(Rcode.SERVFAIL, authoritative=False)
        if name.kind is NameKind.REVERSE:
            return self._reverse(qname, qtype, name)
        return self._forward(qname, qtype, name, (name.key,))

    # -- forward names -------------------------------------------------------------------------------

    def _forward(self, qname: DNSLabel, qtype: int, name: ClusterName, chain: tuple[bytes, ...]) -> Result:
        """``chain``: the names (keys) this answer has walked through (CNAMEs followed so far)."""
        match name.kind:
            case NameKind.APEX:
                return self._apex(qname, qtype)
            case NameKind.AUTOPATH:
                return self._autopath(qname, qtype, name.ip)
            case NameKind.DNS_VERSION:
                txt = RR(qname, Type.TXT, ttl=self.ttl, rdata=TXT(DNS_SCHEMA_VERSION))
                return self._rrset(qtype, {Type.TXT: [txt]})
            case NameKind.NAMESERVER:
                return self._rrset(qtype, self._addresses(qname, self._nameserver_ips()))
            case NameKind.DNS | NameKind.SERVICES:
                return self._nodata()
            case NameKind.PODS:
                return self._nxdomain() if self.pods is PodMode.DISABLED else self._nodata()
            case NameKind.SERVICE_NAMESPACE:
                return self._nodata() if self.store.namespace_exists(name.namespace) else self._nxdomain()
            case NameKind.POD_NAMESPACE:
                if self.pods is not PodMode.DISABLED and self.store.namespace_exists(name.namespace):
                    return self._nodata()
                return self._nxdomain()
            case NameKind.POD:
                return self._pod(qname, qtype, name.namespace, name.ip)
            case NameKind.SERVICE:
                return self._service(qname, qtype, name.namespace, name.service, chain)
            case NameKind.ENDPOINT:
                return self._endpoint(qname, qtype, name.namespace, name.service, name.endpoint)
            case NameKind.PORT:
                return self._srv_name(qname, qtype, name.namespace, name.service, name.port, name.protocol)
        return self._nxdomain()

    def _apex(self, qname: DNSLabel, qtype: int) -> Result:
        ns = RR(qname, Type.NS, ttl=self.ttl, rdata=NS(self._ns_name()))
        glue = self._addresses(self._ns_name(), self._nameserver_ips())
        result = self._rrset(qtype, {Type.SOA: [self._soa_rr(qname)], Type.NS: [ns]})
        if qtype == Type.NS:
            result.additional = glue.get(Type.A, []) + glue.get(Type.AAAA, [])
        return result

    def _service(
        self, qname: DNSLabel, qtype: int, namespace: str, name: str, chain: tuple[bytes, ...]
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

    def _cname(self, qname: DNSLabel, qtype: int, target: str, chain: tuple[bytes, ...]) -> Result:
        cname = RR(qname, Type.CNAME, ttl=self.ttl, rdata=CNAME(target + "."))
        if qtype in (Type.CNAME, Type.ANY):
            return Result(answer=[cname])
        result = Result(answer=[cname])
        name = self.names.parse(encode.name(target))
        inside = name.kind is not NameKind.OUTSIDE and name.kind is not NameKind.REVERSE
        if inside and name.key not in chain and len(chain) <= MAX_CNAME_CHAIN:
            # A target inside the zone is ours to finish (never twice: a loop ends where it closes);
            # outside targets are the cache's job.
            chased = self._forward(DNSLabel(target), qtype, name, (*chain, name.key))
            result.rcode = chased.rcode
            result.answer += chased.answer
            result.authority = chased.authority
            result.additional = chased.additional
        return result

    def _pod(self, qname: DNSLabel, qtype: int, namespace: str, ip: str | None) -> Result:
        if (
            self.pods is PodMode.DISABLED
            or ip is None
            or not self.store.namespace_exists(namespace)
            or (self.pods is PodMode.VERIFIED and not self.store.pod_ip_exists(namespace, ip))
        ):
            return self._nxdomain()
        return self._rrset(qtype, self._addresses(qname, (ip,)))

    def _autopath(self, qname: DNSLabel, qtype: int, ip: str | None) -> Result:
        if ip is None:
            return self._nxdomain()
        strings = autopath_record(self.store, ip) if self.pods is PodMode.VERIFIED else ("search=unverified",)
        ttl = min(self.ttl, AUTOPATH_TTL)
        return self._rrset(qtype, {Type.TXT: [RR(qname, Type.TXT, ttl=ttl, rdata=TXT(list(strings)))]})

    # -- reverse names -------------------------------------------------------------------------------

    def _reverse(self, qname: DNSLabel, qtype: int, name: ClusterName) -> Result:
        ip = name.ip
        owners = self.store.reverse(ip) if ip is not None else []
        if not owners:
            return REFUSED
        ptrs = []
        for (namespace, service), label in owners:
            target = self.service_name(namespace, service)
            if label is not None:
                target = f"{label}.{target}"
            ptrs.append(RR(qname, Type.PTR, ttl=self.ttl, rdata=PTR(target)))
        result = self._rrset(qtype, {Type.PTR: ptrs})
        if not result.answer:
            result.authority = [self._soa_rr(DNSLabel(presentation(name.key[name.apex :])))]
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
