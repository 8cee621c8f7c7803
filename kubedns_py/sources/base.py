"""The contract between a source and the server that runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from kubedns_py.cluster.objects import Kind
from kubedns_py.cluster.store import Event

ApplyEvents = Callable[[Sequence[Event]], object]


class Source(Protocol):
    @property
    def kinds(self) -> frozenset[Kind]:
        """The kinds this source delivers; the store counts as synced once each has sent ``Synced``."""
        ...

    async def run(self, apply: ApplyEvents) -> None:
        """Deliver events until cancelled. Never raises for trouble in the data or the connection:
        it logs, retries and keeps the last good state."""
        ...
