"""TcpServer and its connection limits, driven in-process over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from prometheus_client import CollectorRegistry

from kubedns_py.net import tcp
from kubedns_py.net.connections import TcpConnections
from kubedns_py.net.sockets import bind_dns_sockets, bind_socket
from kubedns_py.net.tcp import TcpServer
from tests.support.waiting import eventually


async def echo(data: bytes, _peer: object) -> bytes:
    return data


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(port: int, source: str = "127.0.0.1") -> Stream:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def exchange(stream: Stream, data: bytes = b"x") -> bytes:
    reader, writer = stream
    writer.write(struct.pack("!H", len(data)) + data)
    async with asyncio.timeout(5):
        return await reader.readexactly(2 + len(data))


async def closed_by_server(stream: Stream) -> bool:
    async with asyncio.timeout(5):
        return await stream[0].read() == b""


class Held:
    """A handler that keeps questions ``b"hold"`` in flight until released; others echo at once."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def __call__(self, data: bytes, _peer: object) -> bytes:
        if data == b"hold":
            await self.released.wait()
        return data


async def holding(stream: Stream) -> None:
    """Leave a question in flight on the connection, so that it is not idle: the answer to the next
    question says the server has read it."""
    stream[1].write(struct.pack("!H", 4) + b"hold")
    assert await exchange(stream, b"y") == b"\0\1y"


async def test_idle_connection_is_closed_after_the_timeout() -> None:
    server = TcpServer(echo, TcpConnections("test", idle_timeout=0.2))
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


def test_port_zero_pairs_udp_and_tcp_on_one_number() -> None:
    udp, tcp = bind_dns_sockets("127.0.0.1", 0)
    with udp, tcp:
        assert udp.getsockname()[1] == tcp.getsockname()[1] != 0
        # A fixed port that is taken fails at once instead of drifting to another number.
        with pytest.raises(OSError):
            bind_dns_sockets("127.0.0.1", tcp.getsockname()[1])


TCP_CLOSE = 7  # tcpi_state once the peer reset the connection


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


async def raw_client(port: int, receive_buffer: int = 0) -> socket.socket:
    """A plain socket, never read from, unlike a stream reader that reads ahead for its caller."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_a_client_that_never_reads_is_cut_off_and_its_replies_dropped() -> None:
    async def large(_: bytes, _peer: object) -> bytes:
        return bytes(60_000)

    connections = TcpConnections("test", idle_timeout=0.3)
    server = TcpServer(large, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        with await raw_client(server.port) as sock:
            # ~18 MB of replies nobody reads: past the first few, the server stops reading questions.
            await asyncio.get_running_loop().sock_sendall(sock, (struct.pack("!H", 12) + bytes(12)) * 300)
            await eventually(lambda: tcp_state(sock) == TCP_CLOSE, 5, "the server resetting the connection")
        assert server.open_connections == 0 and connections.closed_idle["unread"] == 1
    finally:
        await server.close()


async def test_replies_left_unread_when_the_client_stops_asking_are_dropped_after_the_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def large(_: bytes, _peer: object) -> bytes:
        return bytes(40_000)

    # The smallest kernel buffers, so that most of the one reply waits in the server, under its limit.
    monkeypatch.setattr(tcp, "SEND_BUFFER", 4096)
    connections = TcpConnections("test", idle_timeout=0.3)
    server = TcpServer(large, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        with await raw_client(server.port, receive_buffer=1) as sock:
            await asyncio.get_running_loop().sock_sendall(sock, struct.pack("!H", 12) + bytes(12))
            sock.shutdown(socket.SHUT_WR)
            await eventually(lambda: tcp_state(sock) == TCP_CLOSE, 5, "the server resetting the connection")
        assert connections.closed_idle["unread"] == 1
    finally:
        await server.close()


async def test_a_slow_query_does_not_hold_up_the_next_on_the_same_connection() -> None:
    release = asyncio.Event()

    async def handle(data: bytes, _peer: object) -> bytes:
        if data == b"slow":
            await release.wait()
        return data

    server = TcpServer(handle, TcpConnections("test", idle_timeout=5))
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


async def test_a_client_over_its_limit_is_closed_at_once_and_others_still_get_in() -> None:
    connections = TcpConnections("test", max_per_client=2)
    registry = CollectorRegistry()
    registry.register(connections)
    server = TcpServer(echo, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        held = [await connect(server.port, "127.0.0.2") for _ in range(2)]
        for stream in held:  # both admitted before the third arrives
            await exchange(stream)
        assert await closed_by_server(await connect(server.port, "127.0.0.2"))
        assert await exchange(await connect(server.port, "127.0.0.3")) == b"\0\1x"
        assert await exchange(held[0]) == b"\0\1x"  # the client's own connections are untouched
        rejected = {"server": "test", "reason": "client_limit"}
        assert registry.get_sample_value("kubedns_tcp_rejected_total", rejected) == 1
    finally:
        await server.close()


async def test_when_full_the_connection_idle_longest_makes_room() -> None:
    handle = Held()
    connections = TcpConnections("test", max_connections=4, pressed_idle_timeout=5)
    server = TcpServer(handle, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        busy, first, second, third = [await connect(server.port) for _ in range(4)]
        await holding(busy)  # asked before the others, but not idle
        for stream in (second, third, first):  # the first opened asks last
            await exchange(stream)
        newcomer = await connect(server.port)
        assert await exchange(newcomer) == b"\0\1x"
        assert await closed_by_server(second)
        for stream in (first, third):
            assert await exchange(stream) == b"\0\1x"
        handle.released.set()
        assert await busy[0].readexactly(6) == b"\0\4hold"
        assert connections.closed_idle["evicted"] == 1
        assert connections.rejected == {"client_limit": 0, "limit": 0}
    finally:
        await server.close()


async def test_when_full_and_none_is_idle_the_newcomer_is_refused() -> None:
    handle = Held()
    connections = TcpConnections("test", max_connections=2)
    server = TcpServer(handle, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        held = [await connect(server.port) for _ in range(2)]
        for stream in held:
            await holding(stream)
        assert await closed_by_server(await connect(server.port))
        assert server.open_connections == 2
        assert connections.rejected["limit"] == 1
        handle.released.set()
    finally:
        await server.close()


async def test_under_pressure_idle_connections_time_out_sooner() -> None:
    handle = Held()
    # Pressure above 3 of 4 connections, until under 2; without it, idle ones would wait 30 s.
    connections = TcpConnections("test", max_connections=4, idle_timeout=30, pressed_idle_timeout=0.2)
    server = TcpServer(handle, connections)
    await server.start(bind_socket("127.0.0.1", 0, socket.SOCK_STREAM))
    try:
        idle = await connect(server.port)
        await exchange(idle)
        busy = [await connect(server.port) for _ in range(3)]
        for stream in busy:
            await holding(stream)
        assert connections.pressed
        assert await closed_by_server(idle)  # its 30 s wait, cut short
        assert len(connections) == 3  # the busy ones stay while their questions are in flight
        handle.released.set()
        for stream in busy:  # then they are idle, still under pressure
            assert await stream[0].readexactly(6) == b"\0\4hold"
            assert await closed_by_server(stream)
        assert connections.closed_idle == {"evicted": 0, "timeout": 4, "unread": 0}
        assert len(connections) == 0
        assert not connections.pressed and connections.idle_timeout == 30
    finally:
        await server.close()
