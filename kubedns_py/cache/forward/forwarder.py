"""Sending a question along its route, as dnsmasq does: one table of what is in flight, no task per
question.

The route's servers are tried in configured order, healthy ones first and down ones only as a last
resort; each gets the upstream timeout before the next is tried. A domain server answering REFUSED
(kubedns does so for reverse names it does not own) passes the question on to the default upstreams,
like CoreDNS's ``fallthrough``. At most ``max_inflight`` questions are upstream at once (dnsmasq's
--dns-forward-max), shared fairly among the routes (``budget``): past its share a question fails at
once instead of queueing without bound, and other routes keep theirs.

A question's way is an ``Exchange`` (dnsmasq's ``frec``): each server's client calls it back with the
reply or the failure, and it calls ``done`` once with the outcome. Every query in flight has its
deadline in the forwarder's one ``Deadlines``.
"""

from __future__ import annotations

import enum
import logging
import resource
from collections.abc import Callable, Sequence

from kubedns_py.cache.forward.budget import ForwardBudget, Share
from kubedns_py.cache.forward.ids import RandomNumbers
from kubedns_py.cache.forward.routing import Route, RouteTable
from kubedns_py.cache.forward.sockets import Opener, TcpExchange, UdpOpener, tcp_exchange
from kubedns_py.cache.forward.timers import Deadlines
from kubedns_py.cache.forward.upstream import Request, Sent, UpstreamClient
from kubedns_py.cache.servers import Upstream
from kubedns_py.dnswire.header import REFUSED, rcode_name
from kubedns_py.dnswire.response import UpstreamReply

log = logging.getLogger(__name__)

Observer = Callable[[str, float, str], None]  # upstream (as dnsmasq spells it), seconds, rcode or "error"
MAX_POOL = 256  # sockets per upstream: 1,000 queries leave from about 250 ports
MIN_POOL = 16


class Failure(enum.Enum):
    LOCAL_ONLY = "local-only"  # under a --server=/domain/ rule with no server: answered NXDOMAIN
    BUSY = "busy"  # the route used its share of --dns-forward-max: no upstream was asked
    NO_ANSWER = "no-answer"  # every server of the route failed, or it has none


Outcome = UpstreamReply | Failure
Done = Callable[[Outcome], None]


class Exchange:
    """One question on its way through its route's servers."""

    __slots__ = ("done", "fallthrough", "forwarder", "next", "request", "servers", "share")

    def __init__(
        self,
        forwarder: Forwarder,
        route: Route,
        share: Share,
        request: Request,
        done: Done,
        fallthrough: bool,
    ) -> None:
        self.forwarder = forwarder
        self.share = share
        self.request = request
        self.done = done
        self.fallthrough = fallthrough and route.domain is not None and route.fallthrough_on_refused
        self.servers = forwarder.ordered(route.servers)
        self.next = 0

    def ask_next(self) -> None:
        if self.next >= len(self.servers):
            self._finish(Failure.NO_ANSWER)
            return
        client = self.servers[self.next]
        self.next += 1
        client.send(self, self.request)

    def on_reply(self, client: UpstreamClient, reply: UpstreamReply, seconds: float) -> None:
        self.forwarder.observe(client.label, seconds, rcode_name(reply.rcode))
        if reply.rcode == REFUSED and self.fallthrough:
            self.fallthrough = False
            self.servers = self.forwarder.ordered(self.forwarder.routes.default)
            self.next = 0
            self.ask_next()
            return
        self._finish(reply)

    def on_failure(self, client: UpstreamClient, reason: str, seconds: float) -> None:
        self.forwarder.observe(client.label, seconds, "error")
        log.debug("upstream failed: %s", reason)
        self.ask_next()

    def _finish(self, outcome: Outcome) -> None:
        self.forwarder.budget.give_back(self.share)
        self.done(outcome)


class Forwarder:
    def __init__(
        self,
        routes: RouteTable,
        max_inflight: int,
        timeout: float,
        observe: Observer,
        open_socket: Opener | None = None,
        exchange_over_tcp: TcpExchange = tcp_exchange,
    ) -> None:
        self.routes = routes
        self.budget = ForwardBudget(max_inflight, routes.names())
        self.observe = observe
        self._timeout = timeout
        self._open_socket = open_socket or UdpOpener()
        self._exchange_over_tcp = exchange_over_tcp
        self._deadlines: Deadlines[Sent] = Deadlines(timeout, _expired)
        self._ids = RandomNumbers(distinct=True)
        self._draws = RandomNumbers()
        self._clients: dict[Upstream, UpstreamClient] = {}
        self._retired_bad_replies = 0
        self.unreadable_replies = 0  # read at first, but a name inside their records was not
        self._max_sockets = _socket_allowance()

    @property
    def bad_replies(self) -> int:
        """Replies that could not be read (or not used): malformed input upstream."""
        return (
            self.unreadable_replies
            + self._retired_bad_replies
            + sum(c.bad_replies for c in self._clients.values())
        )

    def set_routes(self, routes: RouteTable) -> None:
        """Switch to a new route table; clients of servers no longer named close once idle."""
        self.routes = routes
        self.budget.set_routes(routes.names())
        wanted = set(self.upstreams())
        for upstream in [u for u in self._clients if u not in wanted]:
            client = self._clients.pop(upstream)
            self._retired_bad_replies += client.bad_replies
            client.retire()

    def client(self, upstream: Upstream) -> UpstreamClient:
        client = self._clients.get(upstream)
        if client is None:
            client = self._clients[upstream] = UpstreamClient(
                upstream,
                self._timeout,
                self._deadlines,
                self._ids,
                self._draws,
                self._open_socket,
                self._exchange_over_tcp,
                self._pool_size(),
            )
        return client

    def _pool_size(self) -> int:
        """Sockets for one upstream: a power of two, MAX_POOL at most, fewer when there are many
        upstreams, so that all of them together stay within the process's file descriptors."""
        share = max(MIN_POOL, self._max_sockets // max(1, len(self.upstreams())))
        return 1 << (min(MAX_POOL, share).bit_length() - 1)

    def clients(self) -> list[UpstreamClient]:
        return list(self._clients.values())

    def upstreams(self) -> list[Upstream]:
        """Every server the routes name, defaults first, each once."""
        routes = self.routes
        named = [*routes.default, *(u for servers in routes.domains.values() for u in servers)]
        return list(dict.fromkeys(named))

    def ordered(self, servers: Sequence[Upstream]) -> list[UpstreamClient]:
        """``servers``' clients to try in turn: usable ones first, looping ones never."""
        if len(servers) == 1:  # the usual route: one server, asked unless it loops
            client = self._clients.get(servers[0]) or self.client(servers[0])
            return [] if client.health.looped else [client]
        clients = [self.client(u) for u in servers]
        clients = [c for c in clients if not c.health.looped]
        return [c for c in clients if c.health.usable] + [c for c in clients if not c.health.usable]

    def forward(self, name: bytes, request: Request, done: Done, fallthrough: bool = True) -> None:
        """Send ``request`` along the route of ``name`` (its question's name alone); ``done`` is called
        once with the reply or the failure, possibly before this returns. Without ``fallthrough`` a
        REFUSED from a domain's servers is the outcome."""
        route = self.routes.route_wire(name)
        if route.local_only:
            done(Failure.LOCAL_ONLY)
            return
        if not route.servers:
            done(Failure.NO_ANSWER)
            return
        share = self.budget.take(route.name)
        if share is None:
            done(Failure.BUSY)
            return
        Exchange(self, route, share, request, done, fallthrough).ask_next()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._deadlines.close()


def _expired(sent: Sent) -> None:
    sent.client.expired(sent)


def _socket_allowance() -> int:
    """UDP sockets all upstreams may hold together: a quarter of the descriptors we may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(MIN_POOL, min(4096, soft // 4)) if soft != resource.RLIM_INFINITY else 4096
