"""serve's DNS side over one store: what answers, on which sockets, and the series it keeps."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry

from kubedns_py.cluster.answers import WireZone
from kubedns_py.cluster.store import Store
from kubedns_py.cluster.zone import Zone
from kubedns_py.net.acl import ClientAcl, RefusedClients, parse_networks
from kubedns_py.net.connections import TcpConnections
from kubedns_py.net.coredns import CoreDnsCollector
from kubedns_py.net.stats import DnsStats
from kubedns_py.net.tcp import Peer, TcpServer
from kubedns_py.net.udpthread import ThreadedUdpServer
from kubedns_py.serve.answerer import Answerer, PartialAnswers
from kubedns_py.serve.config import ServeConfig
from kubedns_py.serve.skydns import SkyDnsCollector

LOOPBACK = ("127.0.0.0/8", "::1/128")
T = TypeVar("T")


def wire_zone(config: ServeConfig, store: Store) -> WireZone:
    """The zone over ``store`` and its wire zone (a node per Service), which follows the store from
    now on."""
    return WireZone(Zone(store, config.domain, config.ttl, config.pods), store)


class Answering:
    """serve's DNS side over one store: the zone and its wire answers, the answerer and its listeners,
    and their series. Run by the single process (``ServeApp``) or by each worker (``serve.pool``)."""

    def __init__(
        self, config: ServeConfig, store: Store, registry: CollectorRegistry, wire: WireZone | None = None
    ) -> None:
        """``wire``: the wire zone over ``store`` when it is built already (by the workers' supervisor,
        so that its nodes are shared)."""
        self.config = config
        if wire is None:
            wire = wire_zone(config, store)
        self.zone = wire.zone
        self.stats = DnsStats("serve")
        self.acl = ClientAcl(config.allow_from) if config.allow_from else None
        # Autopath records name the namespace of each Pod's address: only for the caches, which
        # are --allow-from's clients, or without it, the pod's own cache on loopback.
        readers = ClientAcl(config.allow_from or parse_networks(LOOPBACK))
        self.answerer = Answerer(self.zone, wire, self.stats, self.acl, readers)
        registry.register(self.stats)
        registry.register(PartialAnswers(self.answerer))
        registry.register(SkyDnsCollector(self.stats))
        registry.register(RefusedClients("serve", self.acl))
        if config.coredns_metrics:
            registry.register(CoreDnsCollector(self.stats, self.port, config.dns_bind_address, "kubernetes"))
        self.tcp_connections = TcpConnections("serve", config.tcp_max_connections, config.tcp_max_per_client)
        registry.register(self.tcp_connections)
        # UDP is answered on a thread of its own (``net.udpthread``): held while a query is answered,
        # and while the store changes (``apply``).
        self.lock = threading.Lock()
        self._udp: ThreadedUdpServer | None = None
        self._tcp = TcpServer(self._answer_tcp, self.tcp_connections)

    def port(self) -> int:
        return self._udp.port if self._udp is not None else self.config.dns_port

    def apply(self, change: Callable[[], T]) -> T:
        """Change what is answered from (the store), between two answers."""
        with self.lock:
            return change()

    async def _answer_tcp(self, data: bytes, peer: Peer = None) -> bytes | None:
        with self.lock:  # held only while answering, never across an await
            return self.answerer.answer_tcp(data, peer)

    async def start(self, udp: socket.socket, tcp: socket.socket) -> None:
        self._udp = ThreadedUdpServer(udp, self.answerer.udp_handler(), self.lock)
        self.stats.malformed_counted_by("oversized", lambda: self._udp.oversized if self._udp else 0)
        await self._tcp.start(tcp)

    async def stop(self) -> None:
        """UDP no longer read, TCP no longer accepted; queries read over TCP are answered first."""
        if self._udp is not None:
            self._udp.close()
        await self._tcp.close()
