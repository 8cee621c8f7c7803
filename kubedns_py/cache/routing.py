"""Where a query goes: upstream addresses, dnsmasq ``--server`` rules, resolv.conf, and the route table.

Precedence, as dnsmasq behaves under kube-dns's dnsmasq-nanny:

* Domain routes come from ``--server=/domain/...`` flags and the ConfigMap's ``stubDomains``. The nanny
  appended one ``--server=/domain/ip`` per stub server to the flags, so flag and stub servers for the same
  domain are combined (flag servers first, duplicates dropped), not overridden. A domain with no server at
  all (``--server=/domain/``) is answered locally only (NXDOMAIN); any server for it, from either source,
  lifts that. ``--server=/domain/#`` sends the domain to the default upstreams, exempting it from a shorter
  domain route.
* Default upstreams are the flag's ``--server=ip`` (and ``/#/ip``) servers, then either the ConfigMap's
  ``upstreamNameservers`` (if it gives any; the nanny added them as ``--server=ip`` plus ``--no-resolv``)
  or else the resolv.conf nameservers (unless ``--no-resolv``).
* The longest matching domain wins, label-aligned and case-insensitive.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubedns_py.cache.configdir import DnsConfig

log = logging.getLogger(__name__)

# dnsmasq takes any domain; reverse zones and service names need digits, '-' and '_'.
_SERVER_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int = 53
    tcp: bool = False  # --tcp-server: always over TCP (node-local caches avoid conntrack this way)

    def __str__(self) -> str:
        return f"{self.host}#{self.port}"  # dnsmasq's spelling, as servers.bind reports it

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parse_upstream(text: str, sep: str = "#") -> Upstream:
    """``ip``, ``ip<sep>port``, ``[v6]<sep>port`` or a bare IPv6 address. ``sep`` is ``#`` for dnsmasq
    flags and ``:`` for the kube-dns ConfigMap."""
    text = text.strip()
    host, port_text = text, ""
    try:
        ip = ipaddress.ip_address(text)  # a bare IPv6 address is full of ':'
    except ValueError:
        if text.startswith("["):
            inner, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(sep)):
                raise ValueError(f"{_quote(text)} is not [address]{sep}port") from None
            host, port_text = inner, rest[len(sep) :]
            if rest and not port_text:
                raise ValueError(f"{_quote(text)} has an empty port") from None
        elif sep in text:
            host, _, port_text = text.rpartition(sep)
            if not port_text:
                raise ValueError(f"{_quote(text)} has an empty port") from None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{_quote(host)} is not an IP address (host names are not accepted)") from None
    port = 53
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{_quote(text)}: port {_quote(port_text)} is not a number in 1-65535")
        port = int(port_text)
    return Upstream(str(ip), port)


def _dedupe(servers: Iterable[Upstream]) -> tuple[Upstream, ...]:
    return tuple(dict.fromkeys(servers))


def _frozen(mapping: Mapping[str, tuple[Upstream, ...]]) -> Mapping[str, tuple[Upstream, ...]]:
    return types.MappingProxyType(dict(mapping))


def _server_domain(text: str) -> str:
    domain = text.lower().removesuffix(".")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_SERVER_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{_quote(text)} is not a domain name (wildcards and // are not supported)")
    return domain


@dataclass(frozen=True)
class StaticServers:
    """The ``--server`` flags, grouped. ``domains`` keeps flag order; an empty tuple means local-only.
    ``use_default`` holds the ``--server=/domain/#`` domains."""

    domains: Mapping[str, tuple[Upstream, ...]] = field(default_factory=lambda: _frozen({}))
    default: tuple[Upstream, ...] = ()
    use_default: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, values: Sequence[str], tcp_values: Sequence[str] = ()) -> StaticServers:
        """dnsmasq syntax: ``ip[#port]``, ``/d1/d2/.../[ip[#port]]``, ``/d/#``, ``/#/ip``; ``tcp_values``
        (``--tcp-server``) take the same forms for servers asked over TCP only. A ValueError names the
        offending flag and value."""
        domains: dict[str, list[Upstream]] = {}
        default: list[Upstream] = []
        use_default: set[str] = set()
        for value, tcp in [*((v, False) for v in values), *((v, True) for v in tcp_values)]:
            try:
                if "@" in value:
                    raise ValueError("source addresses and interfaces (@) are not supported")
                if not value.startswith("/"):
                    default.append(replace(parse_upstream(value), tcp=tcp))
                    continue
                *names, address = value[1:].split("/")
                if not names:
                    raise ValueError("expected /domain/[address]")
                upstream = replace(parse_upstream(address), tcp=tcp) if address and address != "#" else None
                for name in names:
                    if name == "#":  # dnsmasq: /#/ matches every name, i.e. a default server
                        if upstream is None:
                            raise ValueError("/#/ needs a server address")
                        default.append(upstream)
                        continue
                    servers = domains.setdefault(_server_domain(name), [])
                    if upstream is not None:
                        servers.append(upstream)
                    elif address == "#":
                        use_default.add(_server_domain(name))
            except ValueError as err:
                raise ValueError(f"{'--tcp-server' if tcp else '--server'}={value}: {err}") from None
        return cls(
            domains=_frozen({d: _dedupe(s) for d, s in domains.items()}),
            default=_dedupe(default),
            use_default=frozenset(use_default),
        )


DEFAULT_ROUTE = "."  # the default upstreams serve the root and everything no domain route claims


@dataclass(frozen=True, slots=True)
class Route:
    """Where one name goes. ``domain`` is the matched route (None for the default upstreams);
    ``fallthrough_on_refused`` says a REFUSED from ``servers`` should be retried on the default upstreams
    (serve answers REFUSED for reverse names it does not own)."""

    domain: str | None
    servers: tuple[Upstream, ...]
    local_only: bool = False
    fallthrough_on_refused: bool = False

    @property
    def name(self) -> str:
        """The route's name in metrics and forwarding budgets: its domain, ``.`` for the default
        upstreams."""
        return DEFAULT_ROUTE if self.domain is None else self.domain


@dataclass(frozen=True)
class RouteTable:
    """Domain routes (lower-case, no trailing dot; an empty tuple = local-only) over the default
    upstreams; ``default_domains`` are routed to the default upstreams explicitly."""

    domains: Mapping[str, tuple[Upstream, ...]]
    default: tuple[Upstream, ...]
    default_domains: frozenset[str] = frozenset()
    _lookup: dict[str, Route] = field(init=False, repr=False, compare=False)
    _default_route: Route = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Prebuilt Route objects: the per-query path is dict lookups and slicing, with no allocation
        # beyond the lower-cased name.
        lookup: dict[str, Route] = {}
        for domain in self.default_domains:
            key = domain.lower().removesuffix(".")
            lookup[key] = Route(key, self.default)
        for domain, servers in self.domains.items():
            key = domain.lower().removesuffix(".")
            lookup[key] = Route(key, servers, local_only=not servers, fallthrough_on_refused=bool(servers))
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_default_route", Route(None, self.default))

    def names(self) -> list[str]:
        """The routes that forward (a local-only route or an empty default never does)."""
        routes = [*self._lookup.values(), self._default_route]
        return [route.name for route in routes if route.servers]

    def route(self, qname: str) -> Route:
        """The route for ``qname`` (presentation form; case and a trailing dot do not matter)."""
        lookup = self._lookup
        if not lookup:
            return self._default_route
        name = qname.lower()
        if name.endswith("."):
            name = name[:-1]
        while True:  # longest suffix first, one label at a time
            found = lookup.get(name)
            if found is not None:
                return found
            dot = name.find(".")
            if dot < 0:
                return self._default_route
            name = name[dot + 1 :]


def read_resolv_conf(path: str) -> tuple[Upstream, ...]:
    """The ``nameserver`` addresses of a resolv.conf; an unreadable file gives none, with a warning."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError as err:
        log.warning("resolv-file %s: %s; no upstreams from it", path, err.strerror or err)
        return ()
    servers: list[Upstream] = []
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(parse_upstream(words[1]))
            except ValueError as err:
                log.warning("resolv-file %s: skipping nameserver %s", path, err)
    return _dedupe(servers)


def build_routes(
    static: StaticServers, resolv: tuple[Upstream, ...] | None, configmap: DnsConfig | None
) -> RouteTable:
    """The route table from the flags, resolv.conf (None under ``--no-resolv``) and the ConfigMap.
    The module docstring gives the precedence."""
    domains: dict[str, tuple[Upstream, ...]] = dict(static.domains)
    use_default = set(static.use_default)
    default = list(static.default)
    if configmap is not None:
        for domain, servers in configmap.stub_domains.items():
            if servers:  # an empty stub list gave the nanny nothing to pass on
                key = domain.lower().removesuffix(".")
                domains[key] = _dedupe((*domains.get(key, ()), *servers))
    for domain, servers in domains.items():
        if servers:  # explicit servers beat '#' and local-only
            use_default.discard(domain)
    for domain in use_default:
        domains.pop(domain, None)
    if configmap is not None and configmap.upstream_nameservers:
        default.extend(configmap.upstream_nameservers)
    elif resolv is not None:
        default.extend(resolv)
    return RouteTable(
        domains=_frozen(domains), default=_dedupe(default), default_domains=frozenset(use_default)
    )
