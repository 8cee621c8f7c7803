"""What one Service contributes to the cluster zone, derived from the Service and its endpoints.

A pure function of (Service, endpoint sets), recomputed only for the service an event touched, so a
change costs work proportional to that service, never to the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubedns_py.cluster.objects import EndpointSet, Service


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
        srv: dict[tuple[str, str], tuple[SrvGroup, ...]] = {
            (p.name, p.protocol): (SrvGroup(p.port, None),) for p in service.ports if p.name
        }
        return ServiceRecords(service.cluster_ips, None, srv, {})
    return _headless_records(service, endpoint_sets)


def _headless_records(service: Service, endpoint_sets: Iterable[EndpointSet]) -> ServiceRecords | None:
    addresses: dict[str, None] = {}
    hosts: dict[str, dict[str, None]] = {}
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
                    hosts.setdefault(endpoint.hostname, {}).update(dict.fromkeys(endpoint.addresses))
                    continue
                for ip in endpoint.addresses:
                    label = dashed_ip(ip)
                    labels[label] = None
                    hosts.setdefault(label, {})[ip] = None
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
        hosts={label: tuple(ips) for label, ips in hosts.items()},
    )
