"""Where a query goes: the route table, from the ``--server`` flags, resolv.conf and the ConfigMap.

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

Forwarding budgets (``budget``): each flag domain and the default upstreams count on their own; a
domain only the ConfigMap names counts with every such domain naming the same servers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubedns_py.cache.forward.budget import Group
from kubedns_py.cache.servers import DnsConfig, StaticServers, Upstream, dedupe, frozen, parse_upstream

log = logging.getLogger(__name__)

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
        """The route's name in metrics and to its forwarding budget: its domain, ``.`` for the default
        upstreams."""
        return DEFAULT_ROUTE if self.domain is None else self.domain


@dataclass(frozen=True)
class RouteTable:
    """Domain routes (lower-case, no trailing dot; an empty tuple = local-only) over the default
    upstreams; ``default_domains`` are routed to the default upstreams explicitly. ``configmap_domains``
    are the domains only the ConfigMap's stubDomains name: they share forwarding budgets by server set."""

    domains: Mapping[str, tuple[Upstream, ...]]
    default: tuple[Upstream, ...]
    default_domains: frozenset[str] = frozenset()
    configmap_domains: frozenset[str] = frozenset()
    _lookup: dict[str, Route] = field(init=False, repr=False, compare=False)
    _wire_lookup: dict[bytes, Route] = field(init=False, repr=False, compare=False)
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
        object.__setattr__(self, "_wire_lookup", {_wire(domain): route for domain, route in lookup.items()})
        object.__setattr__(self, "_default_route", Route(None, self.default))

    def names(self) -> dict[str, Group]:
        """The routes that forward (a local-only route or an empty default never does), by name, each
        with the part of the forwarding budget it counts against: its own, or for a domain only the
        ConfigMap names, the one of its set of servers."""
        groups: dict[tuple[Upstream, ...], Group] = {}  # thousands of stub domains, a few server lists
        names: dict[str, Group] = {}
        for route in [*self._lookup.values(), self._default_route]:
            if not route.servers:
                continue
            if route.domain in self.configmap_domains:
                group = groups.get(route.servers)
                if group is None:
                    key = ",".join(sorted({str(server) for server in route.servers}))
                    group = groups[route.servers] = Group(key, pinned=False)
                names[route.name] = group
            else:
                names[route.name] = Group(route.name)
        return names

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

    def route_wire(self, name: bytes) -> Route:
        """The route for ``name`` in wire form, lower-cased (as the query reader gives it): the miss
        path routes without making the name's text."""
        lookup = self._wire_lookup
        if not lookup:
            return self._default_route
        at = 0
        while name[at]:  # longest suffix first, one label at a time
            found = lookup.get(name[at:])
            if found is not None:
                return found
            at += name[at] + 1
        return self._default_route


def _wire(domain: str) -> bytes:
    """A lower-case domain (labels checked by ``servers``) in wire form."""
    return b"".join(bytes([len(label)]) + label.encode() for label in domain.split(".") if label) + b"\0"


def _resolv_conf_lines(path: str, lacking: str) -> list[list[str]]:
    """The words of each line of a resolv.conf, comments left out; none, with a warning saying what is
    ``lacking`` then, when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError as err:
        log.warning("resolv-file %s: %s; no %s from it", path, err.strerror or err, lacking)
        return []
    return [line.split("#", 1)[0].split(";", 1)[0].split() for line in lines]


def read_search_domains(path: str) -> tuple[str, ...]:
    """The search list of a resolv.conf, as glibc reads it: the last ``search`` or ``domain`` line."""
    search: list[str] = []
    for words in _resolv_conf_lines(path, "search domains"):
        if words and words[0] in ("search", "domain"):
            search = words[1:] if words[0] == "search" else words[1:2]
    return tuple(search)


def read_resolv_conf(path: str) -> tuple[Upstream, ...]:
    """The ``nameserver`` addresses of a resolv.conf; an unreadable file gives none, with a warning."""
    servers: list[Upstream] = []
    for words in _resolv_conf_lines(path, "upstreams"):
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(parse_upstream(words[1]))
            except ValueError as err:
                log.warning("resolv-file %s: skipping nameserver %s", path, err)
    return dedupe(servers)


def build_routes(
    static: StaticServers, resolv: tuple[Upstream, ...] | None, configmap: DnsConfig | None
) -> RouteTable:
    """The route table from the flags, resolv.conf (None under ``--no-resolv``) and the ConfigMap.
    The module docstring gives the precedence."""
    domains: dict[str, tuple[Upstream, ...]] = dict(static.domains)
    use_default = set(static.use_default)
    default = list(static.default)
    configmap_domains: set[str] = set()
    if configmap is not None:
        for domain, servers in configmap.stub_domains.items():
            if servers:  # an empty stub list gave the nanny nothing to pass on
                key = domain.lower().removesuffix(".")
                if key not in domains and key not in use_default:
                    configmap_domains.add(key)
                domains[key] = dedupe((*domains.get(key, ()), *servers))
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
        domains=frozen(domains),
        default=dedupe(default),
        default_domains=frozenset(use_default),
        configmap_domains=frozenset(configmap_domains),
    )
