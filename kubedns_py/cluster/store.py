"""The store: every object the sources deliver, plus the indexes DNS questions need.

Sources speak to it only through events (``Upsert``, ``Delete``, ``Replace``, ``Synced``); the zone
reads it only through the lookup methods at the bottom. ``apply`` recomputes the records of just the
services an event touched, keeps the reverse (PTR) index in step, bumps the SOA serial when anything
visible in DNS changed, and then tells listeners (the answer memo) once per batch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubedns_py.cluster.objects import (
    EndpointSet,
    Kind,
    KubeObject,
    Namespace,
    Pod,
    Service,
    object_key,
)
from kubedns_py.cluster.pods import PodIndex
from kubedns_py.cluster.records import ServiceRecords, service_records

ServiceKey = tuple[str, str]  # (namespace, name)
Labels = tuple[str | None, ...]  # endpoint labels; None stands for the service name itself
# (service, label, label, ...) in one tuple: with 100k endpoint addresses, a second tuple for the labels
# of each would cost another 5 MB.
Owner = tuple[ServiceKey | str | None, ...]
ObjectName = tuple[str, str]  # (namespace, name); namespace "" for Namespaces


@dataclass(frozen=True, slots=True)
class Upsert:
    obj: KubeObject


@dataclass(frozen=True, slots=True)
class Delete:
    kind: Kind
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Replace:
    """The complete current list of one kind (after a LIST or a file reload): anything the store
    holds of that kind and the list lacks is deleted."""

    kind: Kind
    objects: tuple[KubeObject, ...]


@dataclass(frozen=True, slots=True)
class Synced:
    kind: Kind


Event = Upsert | Delete | Replace | Synced


class Store:
    def __init__(self, required: Iterable[Kind] = ()) -> None:
        self._objects: dict[Kind, dict[ObjectName, KubeObject]] = {kind: {} for kind in Kind}
        self._slices: dict[ServiceKey, dict[str, EndpointSet]] = {}
        self._legacy_endpoints: dict[ServiceKey, EndpointSet] = {}
        self._services_per_namespace: Counter[str] = Counter()
        self._pods = PodIndex()  # Pods are kept only there, and only what DNS needs of them
        self._records: dict[ServiceKey, ServiceRecords] = {}
        # address -> its owner (service, endpoint labels); a dict of owners only for shared addresses,
        # which are rare: one small dict per address would be most of a big cluster's memory.
        self._ptr: dict[str, Owner | dict[ServiceKey, Labels]] = {}
        self._required = set(required)
        self._synced: set[Kind] = set()
        self._listeners: list[Callable[[frozenset[ServiceKey]], None]] = []
        self.serial = int(time.time()) & 0xFFFFFFFF
        self.last_change = time.time()

    # -- writing ---------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[frozenset[ServiceKey]], None]) -> None:
        """Call ``listener`` after each batch that changed DNS-visible data, with the services whose
        records changed (empty when only the sync state, a namespace or a pod did)."""
        self._listeners.append(listener)

    def apply(self, events: Iterable[Event], serial: tuple[int, float] | None = None) -> bool:
        """Apply a batch of events; True when DNS-visible data changed. ``serial``: the SOA serial and
        change time another copy of the store gave this batch (serve's workers follow the supervisor's
        store, and every worker must give the zone the same serial)."""
        dirty: set[ServiceKey] = set()
        changed = False
        for event in events:
            match event:
                case Upsert(obj):
                    changed |= self._upsert(obj, dirty)
                case Delete(kind, namespace, name):
                    changed |= self._delete(kind, (namespace, name), dirty)
                case Replace(kind, objects):
                    changed |= self._replace(kind, objects, dirty)
                case Synced(kind):
                    changed |= kind not in self._synced and self._required <= self._synced | {kind}
                    self._synced.add(kind)
        services = frozenset(key for key in dirty if self._recompute(key))
        if changed or services:
            if serial is None:
                self.serial = max(self.serial + 1, int(time.time())) & 0xFFFFFFFF
                self.last_change = time.time()
            else:
                self.serial, self.last_change = serial
            for listener in self._listeners:
                listener(services)
        return changed or bool(services)

    def _upsert(self, obj: KubeObject, dirty: set[ServiceKey]) -> bool:
        if isinstance(obj, Pod):
            return self._pods.upsert(obj)
        kind, namespace, name = object_key(obj)
        objects = self._objects[kind]
        old = objects.get((namespace, name))
        if old == obj:
            return False
        if old is not None:
            self._unindex(old, dirty)
        objects[(namespace, name)] = obj
        self._index(obj, dirty)
        return kind is not Kind.ENDPOINT_SLICE and kind is not Kind.ENDPOINTS

    def _delete(self, kind: Kind, name: ObjectName, dirty: set[ServiceKey]) -> bool:
        if kind is Kind.POD:
            return self._pods.delete(*name)
        old = self._objects[kind].pop(name, None)
        if old is None:
            return False
        self._unindex(old, dirty)
        return kind is not Kind.ENDPOINT_SLICE and kind is not Kind.ENDPOINTS

    def _replace(self, kind: Kind, objects: Iterable[KubeObject], dirty: set[ServiceKey]) -> bool:
        if kind is Kind.POD:
            return self._pods.replace(obj for obj in objects if isinstance(obj, Pod))
        changed = False
        fresh = {object_key(obj)[1:]: obj for obj in objects}
        for name in [n for n in self._objects[kind] if n not in fresh]:
            changed |= self._delete(kind, name, dirty)
        for obj in fresh.values():
            changed |= self._upsert(obj, dirty)
        return changed

    def _index(self, obj: KubeObject, dirty: set[ServiceKey]) -> None:
        match obj:
            case Service(namespace=namespace, name=name):
                self._services_per_namespace[namespace] += 1
                dirty.add((namespace, name))
            case EndpointSet(kind=Kind.ENDPOINT_SLICE, service=str(service)):
                self._slices.setdefault((obj.namespace, service), {})[obj.name] = obj
                dirty.add((obj.namespace, service))
            case EndpointSet(kind=Kind.ENDPOINTS):
                self._legacy_endpoints[(obj.namespace, obj.name)] = obj
                dirty.add((obj.namespace, obj.name))

    def _unindex(self, obj: KubeObject, dirty: set[ServiceKey]) -> None:
        match obj:
            case Service(namespace=namespace, name=name):
                self._services_per_namespace[namespace] -= 1
                if self._services_per_namespace[namespace] <= 0:
                    del self._services_per_namespace[namespace]
                dirty.add((namespace, name))
            case EndpointSet(kind=Kind.ENDPOINT_SLICE, service=str(service)):
                key = (obj.namespace, service)
                slices = self._slices.get(key, {})
                slices.pop(obj.name, None)
                if not slices:
                    self._slices.pop(key, None)
                dirty.add(key)
            case EndpointSet(kind=Kind.ENDPOINTS):
                self._legacy_endpoints.pop((obj.namespace, obj.name), None)
                dirty.add((obj.namespace, obj.name))

    def _recompute(self, key: ServiceKey) -> bool:
        service = self._objects[Kind.SERVICE].get(key)
        new: ServiceRecords | None = None
        if isinstance(service, Service):
            slices = self._slices.get(key)
            legacy = self._legacy_endpoints.get(key)
            # Sorted: an update re-inserts its slice, and dict order must not reorder the addresses
            # (that would count as a change, bump the serial and empty the answer memo for nothing).
            sources = [slices[n] for n in sorted(slices)] if slices else ([legacy] if legacy else [])
            new = service_records(service, sources)
        old = self._records.get(key)
        if old == new:
            return False
        if old is not None:
            for ip in dict.fromkeys(ip for ip, _ in old.reverse()):
                self._unown(ip, key)
        if new is None:
            self._records.pop(key, None)
        else:
            self._records[key] = new
            by_ip: dict[str, list[str | None]] = {}
            for ip, label in new.reverse():
                by_ip.setdefault(ip, []).append(label)
            for ip, labels in by_ip.items():
                self._own(ip, key, tuple(labels))
        return True

    def _own(self, ip: str, key: ServiceKey, labels: Labels) -> None:
        current = self._ptr.get(ip)
        if current is None or (isinstance(current, tuple) and current[0] == key):
            self._ptr[ip] = (key, *labels)
        elif isinstance(current, tuple):
            self._ptr[ip] = {_owner_key(current): current[1:], key: labels}  # type: ignore[dict-item]
        else:
            current[key] = labels

    def _unown(self, ip: str, key: ServiceKey) -> None:
        current = self._ptr.get(ip)
        if isinstance(current, tuple):
            if current[0] == key:
                del self._ptr[ip]
        elif current is not None:
            current.pop(key, None)
            if len(current) == 1:
                (only, labels), *_ = current.items()
                self._ptr[ip] = (only, *labels)

    # -- reading (the zone's interface) ------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self._required <= self._synced

    def service(self, namespace: str, name: str) -> ServiceRecords | None:
        return self._records.get((namespace, name))

    def service_keys(self) -> frozenset[ServiceKey]:
        """Every service that has records."""
        return frozenset(self._records)

    def namespace_exists(self, namespace: str) -> bool:
        return ("", namespace) in self._objects[Kind.NAMESPACE] or namespace in self._services_per_namespace

    def pods_at(self, ip: str) -> list[tuple[str, int]]:
        """(namespace, ``Pod.ndots``) of each Pod holding the address ``ip``."""
        return self._pods.at(ip)

    def pod_ip_exists(self, namespace: str, ip: str) -> bool:
        return any(held == namespace for held, _ in self.pods_at(ip))

    def reverse(self, ip: str) -> list[tuple[ServiceKey, str | None]]:
        """Owners of an address: (service, endpoint label or None for a cluster IP)."""
        current = self._ptr.get(ip)
        if isinstance(current, tuple):
            return [(_owner_key(current), label) for label in current[1:]]  # type: ignore[misc]
        return [(key, label) for key, labels in (current or {}).items() for label in labels]

    def counts(self) -> dict[str, int]:
        sizes = {kind.value: len(objects) for kind, objects in self._objects.items()}
        sizes[Kind.POD.value] = len(self._pods)
        sizes["ServiceRecords"] = len(self._records)
        sizes["ReverseAddresses"] = len(self._ptr)
        return sizes

    def objects(self, kind: Kind) -> list[KubeObject]:
        """The objects of ``kind`` held (none for Pods: only their ``PodIndex`` entries are)."""
        return list(self._objects[kind].values())


def _owner_key(owner: Owner) -> ServiceKey:
    key = owner[0]
    assert isinstance(key, tuple)
    return key


__all__ = ["Delete", "Event", "Namespace", "Replace", "ServiceKey", "Store", "Synced", "Upsert"]
