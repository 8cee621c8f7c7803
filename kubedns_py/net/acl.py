"""Who may ask: client addresses inside a set of networks (``--allow-from``, ``--local-service``).

Each client address is checked against the networks once; the verdict is remembered in a bounded dict,
so a client seen before costs one dict lookup. The dict is emptied when it is full (addresses forged
by the million must not grow it) and when the networks change.

``ClientGuard`` is the one check serve, the cache and nodelocal put in front of their handlers: it wraps
a UDP datagram handler, checks a TCP peer, and answers a refused client REFUSED, counted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from time import perf_counter

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from kubedns_py.dnswire.reply import OUR_PAYLOAD
from kubedns_py.dnswire.splice import refusal
from kubedns_py.net.stats import DnsStats, qtype_label
from kubedns_py.net.tcp import Peer
from kubedns_py.net.udp import Address, DatagramHandler

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
VERDICTS_LIMIT = 4096


class ClientAcl:
    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        self.verdicts: dict[str, bool] = {}
        self.refused = 0

    @property
    def networks(self) -> tuple[Network, ...]:
        return self._networks

    def set_networks(self, networks: Iterable[Network]) -> None:
        networks = tuple(networks)
        if networks != self._networks:
            self._networks = networks
            self.verdicts.clear()

    def allows(self, host: str) -> bool:
        """Whether ``host`` (as a socket reports a peer: text, maybe with a %scope) may ask."""
        verdict = self.verdicts.get(host)
        if verdict is None:
            verdict = self._decide(host)
            if len(self.verdicts) >= VERDICTS_LIMIT:
                self.verdicts.clear()
            self.verdicts[host] = verdict
        return verdict

    def _decide(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


class ClientGuard:
    """Who may ask, checked before a query is read: ``acl`` None lets everyone ask and looks at nobody's
    address. A refused client gets REFUSED (with ``flags``, e.g. RA, in its header), counted on the ACL
    and in ``stats``, and is never answered otherwise."""

    def __init__(self, acl: ClientAcl | None, stats: DnsStats, flags: int) -> None:
        self.acl = acl
        self._record = stats.record
        self._flags = flags

    def udp(self, on_datagram: DatagramHandler, undecided: DatagramHandler | None = None) -> DatagramHandler:
        """``on_datagram`` for allowed clients only (one dict lookup for an address seen before), the
        rest refused; ``on_datagram`` itself when there is no ACL. With ``undecided`` (a listener's
        thread, which must neither change the ACL's verdicts nor count), every client not yet known to
        be allowed goes there instead."""
        if self.acl is None:
            return on_datagram
        verdicts = self.acl.verdicts
        if undecided is not None:
            otherwise = undecided

            def on_datagram_from_known(data: bytes, addr: Address) -> bytes | None:
                if verdicts.get(addr[0]):
                    return on_datagram(data, addr)
                return otherwise(data, addr)

            return on_datagram_from_known
        allows, refuse = self.acl.allows, self.refuse

        def on_datagram_from_allowed(data: bytes, addr: Address) -> bytes | None:
            if verdicts.get(addr[0]) or allows(addr[0]):
                return on_datagram(data, addr)
            return refuse(data, "udp")

        return on_datagram_from_allowed

    def admits(self, peer: Peer) -> bool:
        """Whether a TCP client may ask."""
        return self.acl is None or self.acl.allows(peer[0] if peer else "")

    def refuse(self, data: bytes, proto: str) -> bytes | None:
        """REFUSED for a client not allowed to ask; None for what is never answered (runts, responses)."""
        start = perf_counter()
        assert self.acl is not None
        self.acl.refused += 1
        refused = refusal(data, self._flags, OUR_PAYLOAD)
        if refused is None:
            return None
        reply, qtype = refused
        self._record(proto, qtype_label(qtype), "REFUSED", perf_counter() - start, len(reply), len(data))
        return reply


class RefusedClients(Collector):
    """``kubedns_dns_refused_clients_total{server}``: queries refused for who sent them."""

    def __init__(self, server: str, acl: ClientAcl | None) -> None:
        self._server = server
        self._acl = acl

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kubedns_dns_refused_clients",
            "Queries answered REFUSED because the client's address is not allowed to ask.",
            labels=["server"],
        )
        family.add_metric([self._server], self._acl.refused if self._acl is not None else 0)
        yield family


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``--allow-from`` values: CIDRs or single addresses; host bits may be set (10.0.0.1/8)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)
