"""Query IDs and socket choices drawn from the operating system's CSPRNG in batches (RFC 5452): as
unpredictable as ``secrets.randbits`` per query, without a system call per query."""

from __future__ import annotations

import secrets
from array import array

BATCH = 4096


class RandomNumbers:
    """16-bit random numbers, refilled ``BATCH`` at a time from ``secrets``. With ``distinct``, no
    number repeats within a batch or the one before it: consecutive query IDs stay apart (a reply
    matched to the wrong query is one more thing a forger could exploit), at the cost of a few tenths
    of a bit of the sixteen."""

    __slots__ = ("_distinct", "_pool", "_recent")

    def __init__(self, distinct: bool = False) -> None:
        self._distinct = distinct
        self._pool = array("H")
        self._recent: set[int] = set()

    def next16(self) -> int:
        if not self._pool:
            self._refill()
        return self._pool.pop()

    def _refill(self) -> None:
        drawn = array("H", secrets.token_bytes(2 * BATCH))
        if self._distinct:
            recent = self._recent
            fresh = [n for n in dict.fromkeys(drawn) if n not in recent]
            self._recent = set(fresh)
            drawn = array("H", fresh)
        self._pool = drawn
