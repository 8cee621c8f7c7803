"""The response cache: entries by question, in two least-recently-used segments (SLRU).

A new entry goes to the probation segment; one asked again is promoted to the protected segment
(at most four fifths of ``--cache-size``), whose oldest entries go back to probation when it is full.
Only probation evicts, once both together hold ``--cache-size`` entries. Until entries are asked again
this is a plain LRU of the whole size; under a flood of names asked once (a random-subdomain attack,
a scan) only probation churns, and the entries clients keep asking for are never pushed out. Each
segment's order lives in a cachetools ``LRUCache``; a plain dict (``index``) mirrors both for the hit
path, which reads the dict and marks an entry used at most once a second (``touch``).
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


PROTECTED_SHARE = 0.8  # of --cache-size at most


class _Probation(LRUCache[CacheKey, Entry]):
    """The segment new entries enter, and the only one that evicts from the cache."""

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


class _Protected(LRUCache[CacheKey, Entry]):
    """Entries asked for again; the least recently used go back to probation to make room."""

    def __init__(self, maxsize: int, probation: _Probation) -> None:
        super().__init__(maxsize)
        self._probation = probation

    def popitem(self) -> tuple[CacheKey, Entry]:
        key, entry = super().popitem()
        self._probation[key] = entry
        return key, entry


class ResponseCache:
    def __init__(self, size: int, rules: CacheRules) -> None:
        # What the segments hold, as a plain dict: reading it costs a fraction of ``LRUCache.get``. It
        # is never replaced, so the hit path may keep its bound ``get``.
        self.index: dict[CacheKey, Entry] = {}
        self.size = size
        self.rules = rules
        self.insertions = 0
        self._probation: _Probation | None = None
        self._protected: _Protected | None = None
        if size > 0:
            self._probation = _Probation(size, self.index)
            protected = int(size * PROTECTED_SHARE)
            if protected:
                self._protected = _Protected(protected, self._probation)

    def get(self, key: CacheKey) -> Entry | None:
        return self.index.get(key)

    def touch(self, key: CacheKey) -> None:
        """Mark ``key`` used (the hit path does so once a second per entry, not per hit): promoted
        from probation, or moved to the recent end of the protected segment."""
        protected = self._protected
        if protected is None or self._probation is None:
            if self._probation is not None and key in self._probation:
                self._probation[key]  # LRUCache.__getitem__ moves the key to the recent end
            return
        if key in protected:
            protected[key]
        elif key in self._probation:
            protected[key] = self._probation.pop(key)

    def store(self, key: CacheKey, reply: UpstreamReply, now: float) -> Entry | None:
        """Keep ``reply`` when the rules allow; the entry, or None. A refreshed entry keeps the
        segment of the one it replaces."""
        probation = self._probation
        if probation is None:
            return None
        lifetime = lifetime_of(reply, self.rules)
        if lifetime is None or lifetime <= 0:
            return None
        entry = Entry(reply, lifetime, now, self.rules.stale_ttl)
        segment: LRUCache[CacheKey, Entry] = probation
        replaced = probation.pop(key, None)
        if replaced is None and self._protected is not None:
            replaced = self._protected.pop(key, None)
            if replaced is not None:
                segment = self._protected
        if replaced is not None:
            replaced.cached = False
        self.index[key] = entry
        segment[key] = entry
        entry.cached = True
        self.insertions += 1
        while len(self.index) > self.size:  # probation gives up its oldest, this one included at worst
            probation.popitem()
        return entry

    def drop(self, keys: list[CacheKey]) -> int:
        """Forget the entries of ``keys`` (replies remembered from them stop being served too)."""
        dropped = 0
        for key in keys:
            entry = self._pop(key)
            if entry is not None:
                entry.cached = False
                del self.index[key]
                dropped += 1
        return dropped

    def _pop(self, key: CacheKey) -> Entry | None:
        for segment in (self._probation, self._protected):
            if segment is not None and key in segment:
                return segment.pop(key)
        return None

    def clear(self) -> None:
        """Forget every entry (replies already remembered from them stop being served too)."""
        for entry in self.index.values():
            entry.cached = False
        for segment in (self._probation, self._protected):
            if segment is not None:
                segment.clear()
        self.index.clear()

    @property
    def evictions(self) -> int:
        return self._probation.evictions if self._probation is not None else 0

    def __len__(self) -> int:
        return len(self.index)
