"""The Pods serve follows under ``--pods verified``: which namespace and search list each address
belongs to, in as little memory as a 100k-Pod cluster allows.

Nothing else of a Pod is kept. Each is two dict entries of plain ints: its key (a hash of namespace
and name; two Pods colliding on 64 bits is a chance of about 1 in 10^9 at 100k Pods) to its address and
tag, and its address to its tag (or the tags of every Pod at that address). A tag packs the namespace
(a number, one per namespace seen) and the Pod's ndots (``Pod.ndots``); one int object per distinct
tag is shared by every Pod with it. An address is the int of its bytes, IPv6 ones above 2^128 so that
the two families never meet.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from kubedns_py.cluster.objects import Pod

TAG_BITS = 32
TAG_MASK = (1 << TAG_BITS) - 1
NDOTS_BITS = 4  # ndots is at most 15
IPV6 = 1 << 128

Packed = int | tuple[int, ...]  # one value, or several (dual-stack Pods; Pods sharing an address)


def address_int(ip: str) -> int:
    """The int of a normalised address (``objects.normalize_ip``'s text)."""
    if ":" in ip:
        return IPV6 | int.from_bytes(socket.inet_pton(socket.AF_INET6, ip))
    return int.from_bytes(socket.inet_pton(socket.AF_INET, ip))


def _values(packed: Packed | None) -> tuple[int, ...]:
    if packed is None:
        return ()
    return packed if isinstance(packed, tuple) else (packed,)


def _packed(values: tuple[int, ...]) -> Packed | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else values


class PodIndex:
    def __init__(self) -> None:
        self._by_key: dict[int, Packed] = {}  # pod key -> address << TAG_BITS | tag, per address
        self._by_address: dict[int, Packed] = {}  # address -> tag of each Pod holding it
        self._namespace_ids: dict[str, int] = {}
        self._namespaces: list[str] = []
        self._tags: dict[int, int] = {}  # one object per tag value

    def __len__(self) -> int:
        return len(self._by_key)

    def _entries(self, pod: Pod) -> Packed:
        namespace_id = self._namespace_ids.get(pod.namespace)
        if namespace_id is None:
            namespace_id = self._namespace_ids[pod.namespace] = len(self._namespaces)
            self._namespaces.append(pod.namespace)
        tag = namespace_id << NDOTS_BITS | pod.ndots
        entries = tuple(address_int(ip) << TAG_BITS | tag for ip in pod.ips)
        return entries[0] if len(entries) == 1 else entries

    def upsert(self, pod: Pod) -> bool:
        """Add or update ``pod``; whether anything changed."""
        key = hash((pod.namespace, pod.name))
        entries = self._entries(pod)
        if self._by_key.get(key) == entries:
            return False
        self._remove(key)
        self._by_key[key] = entries
        for entry in _values(entries):
            tag = entry & TAG_MASK
            tag = self._tags.setdefault(tag, tag)
            address = entry >> TAG_BITS
            tags = (*_values(self._by_address.get(address)), tag)
            self._by_address[address] = tags[0] if len(tags) == 1 else tags
        return True

    def delete(self, namespace: str, name: str) -> bool:
        key = hash((namespace, name))
        if key not in self._by_key:
            return False
        self._remove(key)
        return True

    def replace(self, pods: Iterable[Pod]) -> bool:
        """Make the index hold exactly ``pods``; whether anything changed."""
        pods = list(pods)
        fresh = {hash((pod.namespace, pod.name)) for pod in pods}
        changed = False
        for key in [key for key in self._by_key if key not in fresh]:
            self._remove(key)
            changed = True
        for pod in pods:
            changed |= self.upsert(pod)
        return changed

    def _remove(self, key: int) -> None:
        for entry in _values(self._by_key.pop(key, None)):
            address, tag = entry >> TAG_BITS, entry & TAG_MASK
            tags = list(_values(self._by_address.get(address)))
            if tag in tags:
                tags.remove(tag)  # one of equal tags: a multiset
            rest = _packed(tuple(tags))
            if rest is None:
                self._by_address.pop(address, None)
            else:
                self._by_address[address] = rest

    def at(self, ip: str) -> list[tuple[str, int]]:
        """(namespace, ndots) of each Pod holding the address ``ip``."""
        return [
            (self._namespaces[tag >> NDOTS_BITS], tag & ((1 << NDOTS_BITS) - 1))
            for tag in _values(self._by_address.get(address_int(ip)))
        ]
