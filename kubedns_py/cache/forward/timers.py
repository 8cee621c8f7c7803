"""Timeouts of one length for many items, in one ordered structure with one scheduled callback.

Every upstream exchange waits the same time, so deadlines expire in the order they were set: an
``OrderedDict`` from item to deadline keeps that order with O(1) adding and removing, and a single
``call_at`` for the oldest deadline serves them all. No timer object exists per item.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from time import monotonic
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)
SLACK = 0.01  # deadlines this close together expire in one callback


class Deadlines(Generic[T]):
    def __init__(self, delay: float, expire: Callable[[T], None]) -> None:
        self.delay = delay
        self._expire = expire
        self._items: OrderedDict[T, float] = OrderedDict()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, item: T) -> None:
        """``item`` expires ``delay`` seconds from now unless removed first."""
        self._items[item] = monotonic() + self.delay
        if self._handle is None:
            # For the oldest deadline, not this one: an item added while others expire (the next
            # server asked) must not put off those not yet due.
            front = next(iter(self._items.values()))
            self._handle = asyncio.get_running_loop().call_at(front + SLACK, self._tick)

    def remove(self, item: T) -> None:
        self._items.pop(item, None)

    def __len__(self) -> int:
        return len(self._items)

    def expire_due(self, now: float) -> None:
        """Expire every item whose deadline is ``now`` or earlier, oldest first."""
        items = self._items
        while items:
            item, deadline = next(iter(items.items()))
            if deadline > now:
                return
            del items[item]
            self._expire(item)

    def _tick(self) -> None:
        self._handle = None
        self.expire_due(monotonic())
        if self._items and self._handle is None:
            deadline = next(iter(self._items.values()))
            self._handle = asyncio.get_running_loop().call_at(deadline + SLACK, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._items.clear()
