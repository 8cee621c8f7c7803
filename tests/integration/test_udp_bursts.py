"""``net.udp.UdpServer`` over real loopback sockets: when several queries wait in the socket, the first
reply leaves as soon as it is ready rather than after the whole batch, and bursts then double."""

from __future__ import annotations

import asyncio
import socket

from kubedns_py.net.udp import Address, UdpServer
from tests.support.ports import HOST

QUERIES = 7  # replies in bursts of 1, 2 and 4


def replies_waiting(client: socket.socket) -> int:
    """How many replies the client could read right now, read and dropped."""
    count = 0
    while True:
        try:
            client.recv(512)
        except BlockingIOError:
            return count
        count += 1


async def seen_by_each_handler() -> list[int]:
    server_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server_sock.bind((HOST, 0))
    server_sock.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    seen: list[int] = []  # per query handled: replies that had reached the client before it
    received = 0
    all_handled = asyncio.Event()

    def handle(data: bytes, addr: Address) -> bytes:
        nonlocal received
        received += replies_waiting(client)
        seen.append(received)
        if len(seen) == QUERIES:
            all_handled.set()
        return data

    server = UdpServer(server_sock, handle)
    try:
        for n in range(QUERIES):  # all queued before the server reads any: one wake-up reads them all
            client.sendto(bytes([n]), server_sock.getsockname())
        await asyncio.wait_for(all_handled.wait(), 5)
    finally:
        server.close()
        client.close()
    return seen


def test_the_first_reply_leaves_before_the_rest_of_the_batch_is_answered() -> None:
    seen = asyncio.run(seen_by_each_handler())
    # Query 2 is handled after reply 1 left, query 4 after replies 2 and 3; the last four leave together.
    assert seen == [0, 1, 1, 3, 3, 3, 3], seen
