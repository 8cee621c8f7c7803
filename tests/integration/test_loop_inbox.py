"""``net.inbox.LoopInbox`` over real loopback sockets: what a listener's thread puts is answered on the
event loop's thread, in turns of at most BATCH; a full inbox drops and counts; late replies leave
together; ``answer_all`` empties it at once."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kubedns_py.net.inbox import LoopInbox
from kubedns_py.net.udp import BATCH, Address, DatagramHandler
from tests.support.ports import HOST


@asynccontextmanager
async def inbox_for(
    handle: DatagramHandler, limit: int = 4096
) -> AsyncIterator[tuple[LoopInbox, socket.socket, Address]]:
    """The inbox on a loopback socket; a client socket (non-blocking) and its address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind((HOST, 0))
    client.setblocking(False)
    inbox = LoopInbox(sock, lambda send: handle, limit)
    try:
        yield inbox, client, client.getsockname()
    finally:
        sock.close()
        client.close()


async def receive(client: socket.socket, count: int) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return [await asyncio.wait_for(loop.sock_recv(client, 512), 5) for _ in range(count)]


async def test_datagrams_put_from_another_thread_are_answered_on_the_loops_thread() -> None:
    answered_on: list[int] = []

    def handle(data: bytes, addr: Address) -> bytes:
        answered_on.append(threading.get_ident())
        return data.upper()

    async with inbox_for(handle) as (inbox, client, addr):
        putter = threading.Thread(target=lambda: [inbox.put(b"q%d" % n, addr) for n in range(50)])
        putter.start()
        replies = await receive(client, 50)
        putter.join()
    assert sorted(replies) == sorted(b"Q%d" % n for n in range(50))
    assert set(answered_on) == {threading.get_ident()}


async def test_a_burst_is_answered_a_batch_per_turn_of_the_loop() -> None:
    answered = 0
    seen_between: list[int] = []
    all_answered = asyncio.Event()

    def handle(data: bytes, addr: Address) -> None:  # no replies: more than the client's buffer holds
        nonlocal answered
        answered += 1
        if answered == 2 * BATCH + 1:
            all_answered.set()

    async with inbox_for(handle) as (inbox, _, addr):
        for n in range(2 * BATCH + 1):
            inbox.put(b"%d" % n, addr)
        # Scheduled after the inbox's first turn: it runs once the first batch is done, before the next.
        asyncio.get_running_loop().call_soon(lambda: seen_between.append(answered))
        await asyncio.wait_for(all_answered.wait(), 5)
    assert seen_between == [BATCH]


async def test_a_full_inbox_drops_and_counts_and_answers_the_rest() -> None:
    async with inbox_for(lambda data, addr: data, limit=3) as (inbox, client, addr):
        for n in range(5):  # the loop is not running meanwhile: nothing is taken yet
            inbox.put(b"%d" % n, addr)
        assert inbox.overflowed == 2
        assert sorted(await receive(client, 3)) == [b"0", b"1", b"2"]


async def test_answer_all_answers_everything_waiting_at_once() -> None:
    answered: list[bytes] = []

    def handle(data: bytes, addr: Address) -> None:
        answered.append(data)

    async with inbox_for(handle) as (inbox, _, addr):
        for n in range(BATCH + 10):
            inbox.put(b"%d" % n, addr)
        inbox.answer_all()
        assert len(answered) == BATCH + 10


async def test_late_replies_leave_together_after_the_turn_that_made_them() -> None:
    async with inbox_for(lambda data, addr: None) as (inbox, client, addr):
        for n in range(3):
            inbox.send(b"late%d" % n, addr)
        assert await receive(client, 3) == [b"late0", b"late1", b"late2"]
