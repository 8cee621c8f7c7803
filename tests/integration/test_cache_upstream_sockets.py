"""The forwarder's real UDP sockets on the event loop the cache runs (uvloop), in process: an upstream
that was not listening when first asked (ICMP port unreachable on the connected socket, as when the
cache starts before serve) is heard once it listens. uvloop stops watching a socket that reported an
error, so that socket must not carry later queries."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import uvloop

from kubedns_py.cache.forward import forwarder as forwarder_module
from kubedns_py.cache.forward.forwarder import Failure, Forwarder, Outcome
from kubedns_py.cache.forward.routing import RouteTable
from kubedns_py.cache.forward.upstream import Request
from kubedns_py.cache.servers import Upstream
from kubedns_py.dnswire.response import UpstreamReply
from tests.support.ports import HOST, free_port
from tests.support.replies import question_wire, reply_to

TIMEOUT = 1.0


class Answering(asyncio.DatagramProtocol):
    """An upstream that answers every A question with one address."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(reply_to(data, answer=["www.example.com. 60 IN A 192.0.2.1"]), addr)


async def forwarded(forwarder: Forwarder, name: str) -> Outcome:
    outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    wire = question_wire(name, "A")
    forwarder.forward(wire[:-4], Request(wire, False, False), outcome.set_result, True)
    return await asyncio.wait_for(outcome, TIMEOUT * 3)


async def refused_then_answered(port: int) -> tuple[Outcome, list[Outcome]]:
    routes = RouteTable(domains={}, default=(Upstream(HOST, port),))
    forwarder = Forwarder(routes, 10, TIMEOUT, lambda upstream, seconds, rcode: None)
    try:
        refused = await forwarded(forwarder, "www.example.com.")
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Answering, local_addr=(HOST, port)
        )
        try:
            answered = [await forwarded(forwarder, "www.example.com.") for _ in range(3)]
        finally:
            transport.close()
        return refused, answered
    finally:
        forwarder.close()


def test_an_upstream_that_refused_at_first_is_heard_once_it_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forwarder_module, "MAX_POOL", 1)  # one socket: the one that saw the refusal, if kept
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        refused, answered = runner.run(refused_then_answered(free_port()))
    assert refused is Failure.NO_ANSWER
    assert all(isinstance(outcome, UpstreamReply) and outcome.rcode == 0 for outcome in answered), answered
