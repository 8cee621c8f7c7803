"""Scripted faults for the API server double (``FakeApiServer.faults``).

Outages (``refuse_connections``/``accept_connections``), clean stream ends (``end_watches``) and restores
(``restore``) live on the server itself because they act on its listener, open streams and data; this
holds the rest.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass


@dataclass
class Failure:
    remaining: int
    status: int
    path: str | None
    message: str


class Faults:
    def __init__(self) -> None:
        self.dropped_groups: set[str] = set()
        self._failures: list[Failure] = []
        self._cuts: Counter[str | None] = Counter()
        self._hung = False
        self._silent_until = 0.0  # loop time at which the current black hole ends
        self.black_holes = 0  # how many began: a stream opened before the last one is dead
        self.swallowed = 0  # requests that arrived in a black hole and were never answered

    def fail_next(
        self, count: int, status: int = 500, path: str | None = None, message: str = "fault"
    ) -> None:
        """Answer the next ``count`` requests (whose path starts with ``path``, if given) with ``status``
        and a Status saying ``message``."""
        self._failures.append(Failure(count, status, path, message))

    def clear_failures(self) -> None:
        """Forget every pending ``fail_next``: requests succeed again."""
        self._failures.clear()

    def take_failure(self, path: str) -> Failure | None:
        for failure in self._failures:
            if failure.path is None or path.startswith(failure.path):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def hang_watches(self, hung: bool = True) -> None:
        """While hung, watch streams (open ones and new ones, which still get their 200 and headers) send
        nothing at all, not even bookmarks. A stream that hung stays hung after ``hang_watches(False)``:
        only new streams flow again."""
        self._hung = hung

    def black_hole(self, seconds: float) -> None:
        """For ``seconds`` from now the server is there but silent, as behind a path that drops packets:
        connections are still accepted, but requests get no answer and open watch streams send nothing.
        What it swallowed stays swallowed, as when a peer lost the connection's state: those requests and
        streams never answer, however long the client waits; only requests made afterwards are served."""
        self._silent_until = asyncio.get_running_loop().time() + seconds
        self.black_holes += 1

    def silent(self) -> bool:
        return asyncio.get_running_loop().time() < self._silent_until

    async def swallow(self) -> None:
        """Never answer the request being handled (a black hole swallowed it)."""
        self.swallowed += 1
        await _forever()

    async def gate(self, opened: int) -> None:
        """Awaited before every write to a watch stream, opened when ``black_holes`` was ``opened``."""
        if self._hung or self.black_holes != opened:
            await _forever()

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


async def _forever() -> None:
    await asyncio.Event().wait()  # until the client hangs up and the handler is cancelled
