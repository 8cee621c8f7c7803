"""TcpServer limits, driven in-process over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from kubedns_py.net.sockets import bind_dns_sockets, bind_socket
from kubedns_py.net.tcp import TcpServer


async def echo(data: bytes, _peer: object) -> bytes:
    return data


async def test_idle_connection_is_closed_after_the_timeout() -> None:
    server = TcpServer(echo, idle_timeout=0.2)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack("!H", 12) + bytes(12))
        assert await reader.readexactly(14) == struct.pack("!H", 12) + bytes(12)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server once idle
        writer.close()
    finally:
        await server.close()


async def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    server = TcpServer(echo, idle_timeout=5, max_connections=2)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for reader, writer in held:  # make sure both are being served before the third arrives
            writer.write(struct.pack("!H", 1) + b"x")
            await reader.readexactly(3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert server.open_connections == 2
        for _, w in held:
            w.close()
    finally:
        await server.close()


def test_port_zero_pairs_udp_and_tcp_on_one_number() -> None:
    udp, tcp = bind_dns_sockets("127.0.0.1", 0)
    with udp, tcp:
        assert udp.getsockname()[1] == tcp.getsockname()[1] != 0
        # A fixed port that is taken fails at once instead of drifting to another number.
        with pytest.raises(OSError):
            bind_dns_sockets("127.0.0.1", tcp.getsockname()[1])


async def test_a_client_that_never_reads_is_let_go() -> None:
    async def large(_: bytes, _peer: object) -> bytes:
        return bytes(60_000)

    server = TcpServer(large, idle_timeout=0.3)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((struct.pack("!H", 12) + bytes(12)) * 300)  # ~18 MB of replies nobody reads
        await writer.drain()
        # Reading here would unblock the server; watch its count instead (it has no event to await).
        async with asyncio.timeout(5):
            while server.open_connections:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        writer.close()
    finally:
        await server.close()


async def test_a_slow_query_does_not_hold_up_the_next_on_the_same_connection() -> None:
    release = asyncio.Event()

    async def handle(data: bytes, _peer: object) -> bytes:
        if data == b"slow":
            await release.wait()
        return data

    server = TcpServer(handle, idle_timeout=5)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack("!H", 4) + b"slow" + struct.pack("!H", 4) + b"fast")
        async with asyncio.timeout(5):
            assert await reader.readexactly(6) == struct.pack("!H", 4) + b"fast"
            release.set()
            assert await reader.readexactly(6) == struct.pack("!H", 4) + b"slow"
        writer.close()
    finally:
        await server.close()
