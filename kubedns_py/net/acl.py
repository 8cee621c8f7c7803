"""Who may ask: client addresses inside a set of networks (``--allow-from``, ``--local-service``).

Each client address is checked against the networks once; the verdict is remembered in a bounded dict,
so a client seen before costs one dict lookup. The dict is emptied when it is full (addresses forged
by the million must not grow it) and when the networks change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

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
