"""What one Service contributes to the cluster zone, derived from the Service and its endpoints.

A pure function of (Service, endpoint sets), recomputed only for the service an event touched, so a
change costs work proportional to that service, never to the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cachetools import LRUCache

from kubedns_py.cluster.objects import EndpointSet, Port, Service


@dataclass(frozen=True, slots=True)
class SrvTarget:
    port: int
    host: str | None  # endpoint label under the service name; None means the service name itself


@dataclass(frozen=True, slots=True)
class SrvGroup:
    """One port number shared by several targets: every named port of an endpoint group points at the
    same ``hosts`` tuple, so a 100k-endpoint cluster holds one tuple per slice, not an object per
    endpoint and port."""

    port: int
    hosts: tuple[str, ...] | None  # endpoint labels; None means the service name itself


@dataclass(frozen=True, slots=True)
class ServiceRecords:
    addresses: tuple[str, ...]  # A/AAAA at <svc>.<ns>.svc.<zone>
    external_name: str | None  # CNAME target of an ExternalName service
    srv: dict[tuple[str, str], tuple[SrvGroup, ...]]  # (port name, protocol) -> targets
    hosts: dict[str, tuple[str, ...]]  # endpoint label -> its addresses (headless services)

    def reverse(self) -> list[tuple[str, str | None]]:
        """(address, endpoint label, or None for the service name itself) for each PTR record."""
        if self.hosts:
            return [(ip, label) for label, ips in self.hosts.items() for ip in ips]
        return [(ip, None) for ip in self.addresses]


def srv_targets(groups: Iterable[SrvGroup]) -> list[SrvTarget]:
    """The SRV records of some groups, each (port, target) once."""
    pairs = dict.fromkeys((g.port, host) for g in groups for host in (g.hosts or (None,)))
    return [SrvTarget(port, host) for port, host in pairs]


def dashed_ip(ip: str) -> str:
    """A DNS label for an address: dots and colons become dashes, and a label never starts or ends
    with a dash (``::1`` -> ``0--1``)."""
    label = ip.replace(".", "-").replace(":", "-")
    if label.startswith("-"):
        label = "0" + label
    if label.endswith("-"):
        label += "0"
    return label


def service_records(service: Service, endpoint_sets: Iterable[EndpointSet]) -> ServiceRecords | None:
    """The service's records, or None when the name must not exist (a headless service without a
    ready endpoint is NXDOMAIN, per the specification)."""
    if service.external_name is not None:
        return ServiceRecords((), service.external_name, {}, {})
    if not service.headless:
        return ServiceRecords(service.cluster_ips, None, _cluster_ip_srv(service.ports), NO_HOSTS)
    return _headless_records(service, endpoint_sets)


NO_HOSTS: dict[str, tuple[str, ...]] = {}
# Most services share a handful of port lists (http/80, https/443, ...): one SRV table each, never
# written to, instead of a dict, keys and groups per service (4 MB at 10k services).
_SRV_TABLES: LRUCache[tuple[Port, ...], dict[tuple[str, str], tuple[SrvGroup, ...]]] = LRUCache(4096)


def _cluster_ip_srv(ports: tuple[Port, ...]) -> dict[tuple[str, str], tuple[SrvGroup, ...]]:
    table = _SRV_TABLES.get(ports)
    if table is None:
        table = {(p.name, p.protocol): (SrvGroup(p.port, None),) for p in ports if p.name}
        _SRV_TABLES[ports] = table
    return table


def _headless_records(service: Service, endpoint_sets: Iterable[EndpointSet]) -> ServiceRecords | None:
    addresses: dict[str, None] = {}
    # Label -> addresses, sharing the endpoint's own tuple where it can: most labels have one endpoint.
    hosts: dict[str, tuple[str, ...]] = {}
    srv: dict[tuple[str, str], dict[SrvGroup, None]] = {}
    for endpoint_set in endpoint_sets:
        for group in endpoint_set.groups:
            labels: dict[str, None] = {}
            for endpoint in group.endpoints:
                if not (endpoint.ready or service.publish_not_ready) or not endpoint.addresses:
                    continue
                addresses.update(dict.fromkeys(endpoint.addresses))
                if endpoint.hostname:
                    labels[endpoint.hostname] = None
                    _add_host(hosts, endpoint.hostname, endpoint.addresses)
                    continue
                for ip in endpoint.addresses:
                    label = dashed_ip(ip)
                    labels[label] = None
                    _add_host(hosts, label, endpoint.addresses if len(endpoint.addresses) == 1 else (ip,))
            if labels:
                shared = tuple(labels)
                for port in group.ports:
                    if port.name:
                        srv.setdefault((port.name, port.protocol), {})[SrvGroup(port.port, shared)] = None
    if not addresses:
        return None
    return ServiceRecords(
        addresses=tuple(addresses),
        external_name=None,
        srv={key: tuple(groups) for key, groups in srv.items()},
        hosts=hosts,
    )


def _add_host(hosts: dict[str, tuple[str, ...]], label: str, ips: tuple[str, ...]) -> None:
    current = hosts.get(label)
    hosts[label] = ips if current is None else tuple(dict.fromkeys(current + ips))
