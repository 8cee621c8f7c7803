"""Scripted faults for the API server double (``FakeApiServer.faults``).

Outages (``refuse_connections``/``accept_connections``) and clean stream ends (``end_watches``) live on
the server itself because they act on its listener and open streams; this holds the rest.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass


@dataclass
class _Failure:
    remaining: int
    status: int
    path: str | None


class Faults:
    def __init__(self) -> None:
        self.dropped_groups: set[str] = set()
        self._failures: list[_Failure] = []
        self._cuts: Counter[str | None] = Counter()
        self._hung = False

    def fail_next(self, count: int, status: int = 500, path: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path starts with ``path``, if given) with ``status``."""
        self._failures.append(_Failure(count, status, path))

    def clear_failures(self) -> None:
        """Forget every pending ``fail_next``: requests succeed again."""
        self._failures.clear()

    def take_failure(self, path: str) -> int | None:
        for failure in self._failures:
            if failure.path is None or path.startswith(failure.path):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure.status
        return None

    def hang_watches(self, hung: bool = True) -> None:
        """While hung, watch streams (open ones and new ones, which still get their 200 and headers) send
        nothing at all, not even bookmarks. A stream that hung stays hung after ``hang_watches(False)``:
        only new streams flow again."""
        self._hung = hung

    async def gate(self) -> None:
        """Awaited before every write to a watch stream."""
        if self._hung:
            await asyncio.Event().wait()  # until the client hangs up and the handler is cancelled

    def cut_next_event(self, resource: str | None = None, count: int = 1) -> None:
        """The next ``count`` events on watches of ``resource`` (any resource if None) are written
        half-way, then the connection is closed."""
        self._cuts[resource] += count

    def take_cut(self, resource: str) -> bool:
        for key in (resource, None):
            if self._cuts[key] > 0:
                self._cuts[key] -= 1
                return True
        return False

    def drop_group(self, group: str) -> None:
        """Stop serving an API group: 404 for its discovery documents and resources."""
        self.dropped_groups.add(group)

    def restore_group(self, group: str) -> None:
        self.dropped_groups.discard(group)
