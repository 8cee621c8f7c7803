"""``cache.listener.CacheListener`` over real loopback sockets: its thread answers readied hits on its
own, even while the event loop is busy; everything else (an entry's first hit, misses) waits for the
loop, which answers it and readies the entry for the thread; a flood of misses hands the socket to the
loop for a spell, after which the thread reads again."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.message
import dns.rcode
import pytest

from kubedns_py.cache import listener as listener_module
from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.cache.listener import CacheListener
from kubedns_py.net.udp import MAX_QUERY
from kubedns_py.net.udpthread import WINDOW
from tests.support.frontends import cache_frontend, key, store, upstream_reply
from tests.support.ports import HOST
from tests.support.waiting import eventually

NAME = "www.example.com."


@asynccontextmanager
async def listening() -> AsyncIterator[tuple[Frontend, CacheListener, socket.socket]]:
    """A frontend (no upstream) behind a listener, as ``CacheApp`` wires them; a client socket
    connected to it (blocking, 5 s timeout)."""
    frontend, _, forwarder = cache_frontend(timeout=0.2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    listener = CacheListener(sock, frontend)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect((HOST, listener.server.port))
    try:
        yield frontend, listener, client
    finally:
        listener.stop_reading()
        listener.close()
        client.close()
        await frontend.close()
        forwarder.close()


def query(name: str, ident: int) -> bytes:
    return dns.message.make_query(name, "A", id=ident).to_wire()


async def ask_and_ready(client: socket.socket) -> None:
    """The entry's first hit, which the loop answers, readying the entry for the thread."""
    client.send(query(NAME, 1))
    assert dns.message.from_wire(await asyncio.to_thread(client.recv, 512)).id == 1


async def test_a_readied_hit_is_answered_while_the_loop_is_busy() -> None:
    async with listening() as (frontend, _, client):
        store(frontend, NAME, upstream_reply(NAME))
        await ask_and_ready(client)
        # The loop's thread is held here, in blocking calls: only the listener's thread can answer.
        for ident in range(2, 12):
            client.send(query(NAME.upper(), ident))
            reply = dns.message.from_wire(client.recv(512))
            assert reply.id == ident and reply.answer[0].name.to_text() == NAME.upper()
        entry = frontend._cache.index[key(NAME)]
        assert entry.fast_hits == 10 and entry.hits == 1


async def test_a_miss_waits_for_the_loop_and_a_hit_does_not_wait_for_the_miss() -> None:
    async with listening() as (frontend, _, client):
        store(frontend, NAME, upstream_reply(NAME))
        await ask_and_ready(client)
        client.send(query("missing.example.com.", 2))  # passed on: the loop is held below
        client.send(query(NAME, 3))
        assert dns.message.from_wire(client.recv(512)).id == 3  # the hit, answered by the thread
        late = dns.message.from_wire(await asyncio.to_thread(client.recv, 512))
        assert late.id == 2 and late.rcode() == dns.rcode.SERVFAIL  # no upstream to ask


async def flood(listener: CacheListener, client: socket.socket, first_ident: int) -> None:
    """Names never cached, all passed on, until the loop takes the socket (the socket may drop some of
    a burst): in bursts the loop keeps up with, as it would with its own socket."""
    spells = listener.spells
    for n in range(8 * WINDOW):
        client.send(query(f"flood{n}.example.com.", first_ident + n))
        if n % 64 == 63:
            await asyncio.sleep(0.001)
            if listener.spells > spells:
                return
    await eventually(lambda: listener.spells > spells, what="the loop reading the socket")


async def test_a_flood_of_misses_hands_the_socket_to_the_loop_for_a_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listener_module, "LOOP_SPELL", 0.3)
    async with listening() as (frontend, listener, client):
        store(frontend, NAME, upstream_reply(NAME))
        await ask_and_ready(client)
        await flood(listener, client, 1000)
        read_by_thread = listener.server.received
        client.send(query(NAME, 7))  # the loop reads this one
        await eventually(lambda: listener.inbox.received > 0, what="the loop's first read")
        client.send(b"x" * (MAX_QUERY + 1))  # dropped by the loop's reads, and counted all the same
        await eventually(lambda: listener.oversized == 1, what="the oversized datagram counted")
        assert listener.server.received == read_by_thread
        await eventually(lambda: not listener.server.paused, what="the thread back after the spell")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:  # none of the flood's replies
            fresh.settimeout(5)
            fresh.connect((HOST, listener.server.port))
            await ask_and_ready(fresh)  # the TTLs shown have changed since: readied again
            for ident in range(8, 12):  # answered by the thread again, while the loop is held
                fresh.send(query(NAME, ident))
                assert dns.message.from_wire(fresh.recv(512)).id == ident
        assert listener.server.received >= read_by_thread + 5


async def test_a_flood_that_goes_on_gets_longer_spells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_module, "LOOP_SPELL", 0.1)
    monkeypatch.setattr(listener_module, "SOON", 60.0)  # every window on the thread counts as soon
    async with listening() as (_, listener, client):
        for round_ in range(3):
            await flood(listener, client, 1000 + 9000 * round_)
            assert listener._spell_length == pytest.approx(0.1 * 2**round_)
            await eventually(lambda: not listener.server.paused, what="the thread back after the spell")
