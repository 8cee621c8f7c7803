"""``kubedns-py serve --workers N``: one list/watch, N processes answering (``net.workers``).

The supervisor runs the source and holds the store; it answers nothing itself. Until the first sync
is done, workers forked from the empty store answer SERVFAIL for cluster names, as one process would.
Once it is done the supervisor freezes the heap out of the collector's sight (``gc.freeze``) and forks
a new generation: each of its workers starts with the whole store, shared copy-on-write, and from then
on receives every batch the source delivers (pickled once for all) with the SOA serial the
supervisor's store gave it, so every worker's zone has the same serial. Each old worker stops once
its successor answers on the same sockets. A worker that dies, or falls ``BACKLOG_LIMIT`` behind, is
forked again from the current store.

Each worker takes its share of ``--tcp-max-connections``, so that the pod's total stays the flag's.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator, Sequence
from dataclasses import replace

from prometheus_client import CollectorRegistry, ProcessCollector

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.store import Event, Store
from kubedns_py.gcpause import GcPauses
from kubedns_py.lifecycle import cancelled
from kubedns_py.net.sockets import bind_for_workers, binding
from kubedns_py.net.workers import Message, Supervisor, Worker
from kubedns_py.ratelimit import SuppressedLines
from kubedns_py.serve.answering import Answering, wire_zone
from kubedns_py.serve.config import ServeConfig


class ServePool:
    def __init__(self, config: ServeConfig, store: Store) -> None:
        self._store = store
        count = config.workers
        self._config = replace(config, tcp_max_connections=max(1, -(-config.tcp_max_connections // count)))
        self._sockets: list[tuple[socket.socket, socket.socket]] = []
        # Built here and kept in step with the store, so that every worker forked finds every
        # Service's node built and shares it, instead of reading the whole store to build its own.
        # Subscribed before the app's first-sync listener, it is current when that listener forks.
        self._wire = wire_zone(self._config, store)
        self.supervisor = Supervisor("serve", count, self._make_worker, self._fds)

    def bind(self) -> int:
        """Every worker's sockets; the port they share."""
        config = self._config
        with binding(config.dns_port, "--dns-port"):
            port, pairs = bind_for_workers((config.dns_bind_address,), config.dns_port, config.workers)
        self._sockets = [pair for (pair,) in pairs]
        return port

    def _fds(self, index: int) -> Iterator[int]:
        for sock in self._sockets[index]:
            yield sock.fileno()

    def start(self) -> None:
        """A generation of workers on the store as it is now (those running stop once replaced)."""
        self.supervisor.start()

    def changed(self, events: Sequence[Event]) -> None:
        """A batch the store applied after the workers were forked from it."""
        store = self._store
        self.supervisor.broadcast(("events", tuple(events), (store.serial, store.last_change)))

    async def stop(self) -> None:
        await self.supervisor.stop()
        for pair in self._sockets:
            for sock in pair:
                sock.close()

    def _make_worker(self, worker: Worker) -> _ServeWorker:
        return _ServeWorker(self._config, self._store, self._wire, self._sockets[worker.index], worker)


class _ServeWorker:
    """A worker: the answering side over its copy of the store, which it keeps in step."""

    def __init__(
        self,
        config: ServeConfig,
        store: Store,
        wire: WireZone,
        sockets: tuple[socket.socket, socket.socket],
        worker: Worker,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(SuppressedLines())
        self.gc_pauses = GcPauses()
        self.registry.register(self.gc_pauses)
        self._store = store
        self._sockets = sockets
        self.answering = Answering(config, store, self.registry, wire)
        self._settle: asyncio.Task[None] | None = None
        worker.on("events", self._apply)

    def _apply(self, message: Message) -> None:
        self.answering.apply(lambda: self._store.apply(message[1], message[2]))

    async def start(self) -> None:
        # The store came frozen from the supervisor; from here on only this process's new objects
        # are collected, and settled as in one process.
        self.gc_pauses.install()
        gc.enable()
        self._settle = asyncio.create_task(self.gc_pauses.settle_periodically(), name="gc-settle")
        await self.answering.start(*self._sockets)

    async def stop(self) -> None:
        await cancelled(self._settle)
        await self.answering.stop()
        self.gc_pauses.uninstall()
