"""The response cache: entries by question, evicted least recently used first.

The LRU order lives in a cachetools ``LRUCache``; a plain dict (``index``) mirrors its contents for
the hit path, which reads the dict and moves an entry to the recent end at most once a second.
"""

from __future__ import annotations

from typing import NamedTuple

from cachetools import LRUCache

from kubedns_py.cache.store.entry import Entry
from kubedns_py.cache.store.rules import CacheRules, lifetime_of
from kubedns_py.dnswire.response import UpstreamReply


class CacheKey(NamedTuple):
    """What an entry answers. The hit path looks entries up with plain tuples of the same fields."""

    name: bytes  # the question's name in wire form, lower-cased
    qtype: int
    qclass: int
    dnssec_ok: bool
    checking_disabled: bool


class _CountingLRU(LRUCache[CacheKey, Entry]):
    def __init__(self, maxsize: int, index: dict[CacheKey, Entry]) -> None:
        super().__init__(maxsize)
        self.evictions = 0
        self._index = index

    def popitem(self) -> tuple[CacheKey, Entry]:
        item = super().popitem()
        item[1].cached = False
        del self._index[item[0]]
        self.evictions += 1
        return item


class ResponseCache:
    def __init__(self, size: int, rules: CacheRules) -> None:
        # What the LRU holds, as a plain dict: reading it costs a fraction of ``LRUCache.get``. It is
        # never replaced, so the hit path may keep its bound ``get``.
        self.index: dict[CacheKey, Entry] = {}
        self._entries: _CountingLRU | None = _CountingLRU(size, self.index) if size > 0 else None
        self.size = size
        self.rules = rules
        self.insertions = 0

    def get(self, key: CacheKey) -> Entry | None:
        return self.index.get(key)

    def touch(self, key: CacheKey) -> None:
        """Mark ``key`` recently used (the hit path does so once a second per entry, not per hit)."""
        if self._entries is not None and key in self.index:
            self._entries[key]  # LRUCache.__getitem__ moves the key to the recent end

    def store(self, key: CacheKey, reply: UpstreamReply, now: float) -> Entry | None:
        """Keep ``reply`` when the rules allow; the entry, or None."""
        if self._entries is None:
            return None
        lifetime = lifetime_of(reply, self.rules)
        if lifetime is None or lifetime <= 0:
            return None
        entry = Entry(reply, lifetime, now, self.rules.stale_ttl)
        replaced = self._entries.pop(key, None)
        if replaced is not None:
            replaced.cached = False
        self._entries[key] = entry
        self.index[key] = entry
        entry.cached = True
        self.insertions += 1
        return entry

    def drop(self, keys: list[CacheKey]) -> int:
        """Forget the entries of ``keys`` (replies remembered from them stop being served too)."""
        dropped = 0
        if self._entries is not None:
            for key in keys:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    entry.cached = False
                    del self.index[key]
                    dropped += 1
        return dropped

    def clear(self) -> None:
        """Forget every entry (replies already remembered from them stop being served too)."""
        if self._entries is not None:
            for entry in self._entries.values():
                entry.cached = False
            self._entries.clear()
            self.index.clear()

    @property
    def evictions(self) -> int:
        return self._entries.evictions if self._entries is not None else 0

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0
