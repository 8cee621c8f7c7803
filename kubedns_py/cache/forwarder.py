"""Sending a question to the servers its route names, in order of health.

Servers of the matching route are tried in configured order, healthy ones first and down ones only as
a last resort; each gets the client's timeout before the next is tried. A domain server answering
REFUSED (kubedns does so for reverse names it does not own) passes the question on to the default
upstreams, like CoreDNS's ``fallthrough``. At most ``max_inflight`` exchanges run at once (dnsmasq's
--dns-forward-max), shared fairly among the routes (``budget``): past its share a question fails at once
instead of queueing without bound, and other routes keep theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from dnslib import RCODE, DNSRecord

from kubedns_py.cache.budget import ForwardBudget
from kubedns_py.cache.routing import RouteTable
from kubedns_py.cache.settings import Upstream
from kubedns_py.cache.upstream import BadReply, UpstreamClient, UpstreamError
from kubedns_py.dnswire.header import rcode_name, reply_rcode
from kubedns_py.dnswire.walk import OPT, Walk, WireError, walk

log = logging.getLogger(__name__)

Observer = Callable[[Upstream, float, str], None]  # upstream, seconds, rcode name or "error"


class Overloaded(Exception):
    """The route has used its share of upstream exchanges in flight."""


class NoAnswer(Exception):
    """Every server of the route failed."""


class LocalOnly(Exception):
    """The name is under a ``--server=/domain/`` rule with no server: answered locally."""


class Forwarder:
    def __init__(self, routes: RouteTable, max_inflight: int, timeout: float, observe: Observer) -> None:
        self.routes = routes
        self.budget = ForwardBudget(max_inflight, routes.names())
        self._timeout = timeout
        self._observe = observe
        self._clients: dict[Upstream, UpstreamClient] = {}
        self.bad_replies = 0  # replies that could not be read (or not used): malformed input upstream

    def set_routes(self, routes: RouteTable) -> None:
        """Switch to a new route table; clients of servers no longer named close once idle."""
        self.routes = routes
        self.budget.set_routes(routes.names())
        wanted = set(routes.default) | {u for servers in routes.domains.values() for u in servers}
        for upstream in [u for u in self._clients if u not in wanted]:
            self._clients.pop(upstream).retire()

    def client(self, upstream: Upstream) -> UpstreamClient:
        client = self._clients.get(upstream)
        if client is None:
            client = self._clients[upstream] = UpstreamClient(upstream, self._timeout)
        return client

    def clients(self) -> list[UpstreamClient]:
        return list(self._clients.values())

    def upstreams(self) -> list[Upstream]:
        """Every server the routes name, defaults first, each once."""
        routes = self.routes
        named = [*routes.default, *(u for servers in routes.domains.values() for u in servers)]
        return list(dict.fromkeys(named))

    async def forward(
        self, qname: str, question: bytes, checking_disabled: bool, dnssec_ok: bool
    ) -> tuple[bytes, Walk]:
        route = self.routes.route(qname)
        if route.local_only:
            raise LocalOnly(qname)
        if not route.servers:
            raise NoAnswer("no upstream server is configured for this name")
        share = self.budget.take(route.name)
        if share is None:
            raise Overloaded(route.name)
        try:
            reply, walked = await self._ask(route.servers, question, checking_disabled, dnssec_ok)
            if (
                route.domain is not None
                and route.fallthrough_on_refused
                and reply_rcode(reply) == RCODE.REFUSED
            ):
                reply, walked = await self._ask(self.routes.default, question, checking_disabled, dnssec_ok)
            return reply, walked
        finally:
            self.budget.give_back(share)

    async def _ask(
        self, servers: Sequence[Upstream], question: bytes, checking_disabled: bool, dnssec_ok: bool
    ) -> tuple[bytes, Walk]:
        clients = [self.client(u) for u in servers if not self.client(u).health.looped]
        ordered = [c for c in clients if c.health.usable] + [c for c in clients if not c.health.usable]
        if not ordered:
            raise NoAnswer("no upstream server is configured for this name")
        failure = "no upstream answered"
        for client in ordered:
            start = time.perf_counter()
            try:
                reply = await client.exchange(question, checking_disabled, dnssec_ok)
                reply, walked = _opt_last(reply, walk(reply))
            except (UpstreamError, WireError) as err:
                if isinstance(err, BadReply | WireError):
                    self.bad_replies += 1
                self._observe(client.upstream, time.perf_counter() - start, "error")
                failure = str(err)
                log.debug("upstream failed: %s", err)
                continue
            self._observe(client.upstream, time.perf_counter() - start, rcode_name(reply_rcode(reply)))
            return reply, walked
        raise NoAnswer(failure)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _opt_last(reply: bytes, walked: Walk) -> tuple[bytes, Walk]:
    """The reply with its OPT record, if any, where replies are stored from: last. RFC 6891 allows one
    OPT anywhere in the additional section; elsewhere, or twice, the reply is malformed."""
    opts = [r for r in walked.records if r.rtype == OPT]
    if len(opts) > 1 or any(r.section != 2 for r in opts):
        raise WireError("OPT record outside the additional section, or more than one")
    if not opts or opts[0].end == len(reply):
        return reply, walked
    # Rare: repack, since cutting the record out would break compression pointers after it.
    try:
        record = DNSRecord.parse(reply)
    except Exception as err:  # dnslib raises several types on malformed input
        raise WireError(f"unreadable reply: {err}") from err
    record.ar = [rr for rr in record.ar if rr.rtype != OPT] + [rr for rr in record.ar if rr.rtype == OPT]
    packed = bytes(record.pack())
    return packed, walk(packed)
