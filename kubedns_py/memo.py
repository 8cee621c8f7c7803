"""A bounded memo that forgets a little at a time.

Memos of finished work keyed by what a client sent can be grown without bound by clients that vary
what they send (random case, IDs, junk), and one that is emptied whole when full makes every busy
key slow at the same moment. ``Memo`` holds at most ``limit`` items; once full, each insertion first
drops the ``batch`` oldest (first in, first out), so what is forgotten is spread over time and a key
in use is soon remembered again. ``get`` is the underlying dict's own method, for hot paths to bind.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    __slots__ = ("_items", "batch", "evictions", "get", "limit")

    def __init__(self, limit: int, batch: int = 16) -> None:
        if limit < 1 or batch < 1:
            raise ValueError("a memo needs a positive limit and batch")
        self._items: OrderedDict[K, V] = OrderedDict()
        self.get = self._items.get  # bound once: the same dict for the memo's whole life
        self.limit = limit
        self.batch = min(batch, max(1, limit // 4))  # never the whole memo at once
        self.evictions = 0

    def put(self, key: K, value: V) -> None:
        items = self._items
        if key not in items and len(items) >= self.limit:
            popitem, dropped = items.popitem, min(self.batch, len(items))
            for _ in range(dropped):
                popitem(last=False)
            self.evictions += dropped
        items[key] = value

    def discard(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
