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
class ServiceRecords:
    addresses: tuple[str, ...]  # A/AAAA at <svc>.<ns>.svc.<zone>
    external_name: str | None  # CNAME target of an ExternalName service
    srv: dict[tuple[str, str], tuple[SrvTarget, ...]]  # (port name, protocol) -> targets
    hosts: dict[str, tuple[str, ...]]  # endpoint label -> its addresses (headless services)
    ptr: tuple[tuple[str, str | None], ...]  # (ip, endpoint label or None for the service name)


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
        return ServiceRecords((), service.external_name, {}, {}, ())
    if not service.headless:
        srv: dict[tuple[str, str], tuple[SrvTarget, ...]] = {
            (p.name, p.protocol): (SrvTarget(p.port, None),) for p in service.ports if p.name
        }
        return ServiceRecords(
            service.cluster_ips, None, srv, {}, tuple((ip, None) for ip in service.cluster_ips)
        )
    return _headless_records(service, endpoint_sets)


def _headless_records(service: Service, endpoint_sets: Iterable[EndpointSet]) -> ServiceRecords | None:
    addresses: dict[str, None] = {}
    hosts: dict[str, dict[str, None]] = {}
    srv: dict[tuple[str, str], dict[SrvTarget, None]] = {}
    for endpoint_set in endpoint_sets:
        for group in endpoint_set.groups:
            named_ports = [p for p in group.ports if p.name]
            for endpoint in group.endpoints:
                if not (endpoint.ready or service.publish_not_ready) or not endpoint.addresses:
                    continue
                if endpoint.hostname:
                    labels = [endpoint.hostname]
                    hosts.setdefault(endpoint.hostname, {}).update(dict.fromkeys(endpoint.addresses))
                else:
                    labels = [dashed_ip(ip) for ip in endpoint.addresses]
                    for ip, label in zip(endpoint.addresses, labels, strict=True):
                        hosts.setdefault(label, {})[ip] = None
                addresses.update(dict.fromkeys(endpoint.addresses))
                for port in named_ports:
                    targets = srv.setdefault((port.name, port.protocol), {})
                    for label in labels:
                        targets[SrvTarget(port.port, label)] = None
    if not addresses:
        return None
    ptr = tuple((ip, label) for label, ips in hosts.items() for ip in ips)
    return ServiceRecords(
        addresses=tuple(addresses),
        external_name=None,
        srv={key: tuple(targets) for key, targets in srv.items()},
        hosts={label: tuple(ips) for label, ips in hosts.items()},
        ptr=ptr,
    )
