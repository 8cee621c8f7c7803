"""Kubernetes API objects shrunk to what DNS needs.

Both sources (manifest files and the API watch) hand raw JSON-shaped dicts to the ``*_from_dict``
converters below and never keep the originals: a 100k-endpoint cluster must fit in a few tens of MB,
so each object becomes a frozen, slotted record of tuples and short strings. IP addresses are
normalised once here (the RFC 5952 form), so every later comparison is a string compare.
"""

from __future__ import annotations

import enum
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
TOLERATE_UNREADY_ANNOTATION = "service.alpha.kubernetes.io/tolerate-unready-endpoints"


# An RFC 1123 subdomain, as the API server requires of externalName (underscores allowed, as in SRV names).
_DNS_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")


class Kind(enum.Enum):
    SERVICE = "Service"
    ENDPOINT_SLICE = "EndpointSlice"
    ENDPOINTS = "Endpoints"
    POD = "Pod"
    NAMESPACE = "Namespace"


class ObjectError(ValueError):
    """A manifest or API object that cannot be turned into a DNS record source."""


@dataclass(frozen=True, slots=True)
class Port:
    name: str  # lower-cased; "" for an unnamed port (no SRV record)
    port: int
    protocol: str  # lower-cased: tcp, udp, sctp


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]  # empty for headless and ExternalName services
    headless: bool
    external_name: str | None
    ports: tuple[Port, ...]
    publish_not_ready: bool


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    hostname: str | None
    ready: bool


@dataclass(frozen=True, slots=True)
class EndpointGroup:
    """Endpoints that share one list of ports (an EndpointSlice, or one subset of v1 Endpoints)."""

    endpoints: tuple[Endpoint, ...]
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class EndpointSet:
    """One EndpointSlice, or one v1 Endpoints object."""

    kind: Kind
    namespace: str
    name: str
    service: str | None  # the service it belongs to; None when a slice has no service-name label
    groups: tuple[EndpointGroup, ...]
    trigger_time: str | None  # RFC 3339, from the last-change-trigger-time annotation


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    ips: tuple[str, ...]
    # The ndots of a Pod whose resolv.conf searches the cluster's standard list and nothing more
    # (``search_ndots``); 0 for any other (dnsPolicy Default or None, host network without
    # ClusterFirstWithHostNet, dnsConfig searches): autopath must not guess such a Pod's search.
    ndots: int = 0


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str


KubeObject = Service | EndpointSet | Pod | Namespace


def object_key(obj: KubeObject) -> tuple[Kind, str, str]:
    match obj:
        case Service():
            return Kind.SERVICE, obj.namespace, obj.name
        case EndpointSet():
            return obj.kind, obj.namespace, obj.name
        case Pod():
            return Kind.POD, obj.namespace, obj.name
        case Namespace():
            return Kind.NAMESPACE, "", obj.name


def normalize_ip(text: object) -> str | None:
    """The canonical (RFC 5952) text of an address, or None. inet_pton/inet_ntop rather than
    ``ipaddress``: a full sync normalises 100k addresses, and this is several times faster."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    for family in (socket.AF_INET, socket.AF_INET6) if ":" not in text else (socket.AF_INET6,):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except (OSError, ValueError):  # ValueError: a NUL byte or an unencodable character
            continue
    return None


def _metadata(
    obj: Mapping[str, Any], namespaced: bool = True, shared_name: bool = True
) -> tuple[str, str, Mapping[str, Any]]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise ObjectError("object has no metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError("object has no metadata.name")
    namespace = meta.get("namespace") or ("default" if namespaced else "")
    if not isinstance(namespace, str):
        raise ObjectError(f"{name}: metadata.namespace is not a string")
    # Interned: each namespace is named by thousands of objects, and each service by its slices too
    # (a Pod's name by nothing: interning 100k of them would only grow the interpreter's table).
    name = sys.intern(name.lower()) if shared_name else name.lower()
    return sys.intern(namespace.lower()), name, meta


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ObjectError(f"{what} is not a list")
    return value


# Slices of one service repeat the same ports thousands of times; one shared tuple per distinct list.
_INTERNED_PORTS: dict[tuple[Port, ...], tuple[Port, ...]] = {}
_INTERNED_LIMIT = 10_000


def _ports(raw: Any, what: str) -> tuple[Port, ...]:
    ports = []
    for item in _list(raw, what):
        if not isinstance(item, Mapping):
            raise ObjectError(f"{what} has an entry that is not a mapping")
        number = item.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 65535:
            # An EndpointSlice port without a number means "all ports"; it cannot make an SRV record.
            continue
        name = item.get("name") or ""
        protocol = item.get("protocol") or "TCP"
        if not isinstance(name, str) or not isinstance(protocol, str):
            raise ObjectError(f"{what} has a port whose name or protocol is not a string")
        ports.append(Port(name.lower(), number, protocol.lower()))
    found = tuple(ports)
    if len(_INTERNED_PORTS) >= _INTERNED_LIMIT:
        _INTERNED_PORTS.clear()
    return _INTERNED_PORTS.setdefault(found, found)


def service_from_dict(obj: Mapping[str, Any]) -> Service:
    namespace, name, meta = _metadata(obj)
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise ObjectError(f"service {namespace}/{name}: spec is not a mapping")
    external_name = None
    if spec.get("type") == "ExternalName":
        target = spec.get("externalName")
        if not isinstance(target, str) or not target.strip(". "):
            raise ObjectError(f"service {namespace}/{name}: ExternalName without spec.externalName")
        external_name = target.strip().rstrip(".").lower()
        if not _DNS_NAME.fullmatch(external_name) or len(external_name) > 253:
            raise ObjectError(f"service {namespace}/{name}: externalName {target!r} is not a DNS name")
    raw_ips = _list(spec.get("clusterIPs"), f"service {namespace}/{name}: spec.clusterIPs")
    if not raw_ips and spec.get("clusterIP"):
        raw_ips = [spec["clusterIP"]]
    headless = external_name is None and (not raw_ips or raw_ips[0] == "None")
    cluster_ips = () if headless or external_name else _unique(normalize_ip(ip) for ip in raw_ips)
    annotations = meta.get("annotations") or {}
    tolerate = isinstance(annotations, Mapping) and annotations.get(TOLERATE_UNREADY_ANNOTATION) == "true"
    return Service(
        namespace=namespace,
        name=name,
        cluster_ips=cluster_ips,
        headless=headless,
        external_name=external_name,
        ports=_ports(spec.get("ports"), f"service {namespace}/{name}: spec.ports"),
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")) or tolerate,
    )


def endpoint_slice_from_dict(obj: Mapping[str, Any]) -> EndpointSet:
    namespace, name, meta = _metadata(obj)
    what = f"endpointslice {namespace}/{name}"
    labels = meta.get("labels") or {}
    service = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, Mapping) else None
    endpoints = []
    for item in _list(obj.get("endpoints"), f"{what}: endpoints"):
        if not isinstance(item, Mapping):
            raise ObjectError(f"{what}: an endpoint is not a mapping")
        conditions = item.get("conditions") or {}
        # Unset "ready" means unknown, which the EndpointSlice API says consumers treat as ready.
        ready = not isinstance(conditions, Mapping) or conditions.get("ready") is not False
        addresses = _unique(normalize_ip(a) for a in _list(item.get("addresses"), f"{what}: addresses"))
        hostname = item.get("hostname")
        endpoints.append(Endpoint(addresses, _hostname(hostname), ready))
    return EndpointSet(
        kind=Kind.ENDPOINT_SLICE,
        namespace=namespace,
        name=name,
        service=sys.intern(service.lower()) if isinstance(service, str) and service else None,
        groups=(EndpointGroup(tuple(endpoints), _ports(obj.get("ports"), f"{what}: ports")),),
        trigger_time=_trigger_time(meta),
    )


def _trigger_time(meta: Mapping[str, Any]) -> str | None:
    """When the endpoints last changed (the controller's annotation), for the programming latency."""
    annotations = meta.get("annotations") or {}
    trigger = annotations.get(TRIGGER_TIME_ANNOTATION) if isinstance(annotations, Mapping) else None
    return trigger if isinstance(trigger, str) else None


def endpoints_from_dict(obj: Mapping[str, Any]) -> EndpointSet:
    namespace, name, meta = _metadata(obj)
    what = f"endpoints {namespace}/{name}"
    groups = []
    for subset in _list(obj.get("subsets"), f"{what}: subsets"):
        if not isinstance(subset, Mapping):
            raise ObjectError(f"{what}: a subset is not a mapping")
        endpoints = []
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in _list(subset.get(field), f"{what}: {field}"):
                if not isinstance(address, Mapping):
                    raise ObjectError(f"{what}: an address is not a mapping")
                ip = normalize_ip(address.get("ip"))
                if ip is not None:
                    endpoints.append(Endpoint((ip,), _hostname(address.get("hostname")), ready))
        groups.append(EndpointGroup(tuple(endpoints), _ports(subset.get("ports"), f"{what}: ports")))
    return EndpointSet(
        kind=Kind.ENDPOINTS,
        namespace=namespace,
        name=name,
        service=name,
        groups=tuple(groups),
        trigger_time=_trigger_time(meta),
    )


def pod_from_dict(obj: Mapping[str, Any]) -> Pod:
    namespace, name, _ = _metadata(obj, shared_name=False)
    status = obj.get("status") or {}
    if not isinstance(status, Mapping):
        raise ObjectError(f"pod {namespace}/{name}: status is not a mapping")
    raw = [
        entry.get("ip")
        for entry in _list(status.get("podIPs"), "status.podIPs")
        if isinstance(entry, Mapping)
    ]
    if not raw and status.get("podIP"):
        raw = [status["podIP"]]
    spec = obj.get("spec") or {}
    ndots = search_ndots(spec) if isinstance(spec, Mapping) else 0
    return Pod(namespace, name, _unique(normalize_ip(ip) for ip in raw), ndots)


DEFAULT_NDOTS = 5  # the kubelet's, for the cluster search list
MAX_NDOTS = 15  # glibc's and musl's cap


def search_ndots(spec: Mapping[str, Any]) -> int:
    """The ndots of the kubelet's resolv.conf for ``spec`` when its search list is exactly the
    cluster's (``<ns>.svc.<zone> svc.<zone> <zone>`` and the node's search domains), else 0.

    ClusterFirst off the host network and ClusterFirstWithHostNet give that list; dnsConfig may add
    nameservers and options (its ndots replaces the default) but no searches. Anything unreadable is
    not the standard list."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = spec.get("hostNetwork") is True
    if not (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)):
        return 0
    config = spec.get("dnsConfig") or {}
    if not isinstance(config, Mapping) or config.get("searches"):
        return 0
    ndots = DEFAULT_NDOTS
    options = config.get("options") or []
    if not isinstance(options, list):
        return 0
    for option in options:
        if isinstance(option, Mapping) and option.get("name") == "ndots":
            value = option.get("value")
            if not isinstance(value, str) or not value.isascii() or not value.isdigit():
                return 0
            ndots = min(int(value), MAX_NDOTS)
    return ndots


def namespace_from_dict(obj: Mapping[str, Any]) -> Namespace:
    _, name, _ = _metadata(obj, namespaced=False)
    return Namespace(name)


CONVERTERS: dict[Kind, Callable[[Mapping[str, Any]], KubeObject]] = {
    Kind.SERVICE: service_from_dict,
    Kind.ENDPOINT_SLICE: endpoint_slice_from_dict,
    Kind.ENDPOINTS: endpoints_from_dict,
    Kind.POD: pod_from_dict,
    Kind.NAMESPACE: namespace_from_dict,
}

KINDS_BY_NAME = {kind.value: kind for kind in Kind}


def from_dict(kind: Kind, obj: Mapping[str, Any]) -> KubeObject:
    if not isinstance(obj, Mapping):
        raise ObjectError(f"a {kind.value} is not a mapping")
    return CONVERTERS[kind](obj)


def raw_resource_version(obj: Mapping[str, Any]) -> str | None:
    """A raw object's ``metadata.resourceVersion`` (bookmarks carry nothing else), None without one."""
    meta = obj.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return str(version) if version else None


def raw_object_key(kind: Kind, obj: Any) -> tuple[str, str] | None:
    """(namespace, name) of a raw object as ``from_dict`` would key it, even when the rest of it does
    not convert; None without a usable name. What a source needs to delete an object it cannot read."""
    if not isinstance(obj, Mapping):
        return None
    try:
        namespace, name, _ = _metadata(obj, namespaced=kind is not Kind.NAMESPACE)
    except ObjectError:
        return None
    return namespace, name


def _hostname(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))
