"""A TCP DNS listener (RFC 7766): two-byte length framing, several queries per connection answered
concurrently (each reply as soon as it is ready: glibc's ``use-vc`` sends A and AAAA back to back, and
a slow one must not hold up the other), an idle timeout, and caps on queries in flight per connection
and on open connections, so neither a flood of queries nor of idle clients exhausts memory or file
descriptors."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Peer = Any  # the client's address as the socket reports it: (host, port, ...)
MessageHandler = Callable[[bytes, Peer], Awaitable[bytes | None]]
LENGTH = struct.Struct("!H")
MAX_IN_FLIGHT = 64  # per connection; past that, reading waits for an answer to go out


class TcpServer:
    def __init__(
        self, handle: MessageHandler, idle_timeout: float = 10.0, max_connections: int = 1000
    ) -> None:
        self._handle = handle
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on a bound TCP socket (``net.sockets``)."""
        self._server = await asyncio.start_server(self._serve_connection, sock=sock, backlog=1024)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            writer.close()
            return
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not writer.is_closing():
                if len(in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                async with asyncio.timeout(self._idle_timeout):
                    (length,) = LENGTH.unpack(await reader.readexactly(2))
                    data = await reader.readexactly(length)
                answer = asyncio.create_task(self._answer(data, peer, writer))
                in_flight.add(answer)
                answer.add_done_callback(in_flight.discard)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("tcp connection failed")
        finally:
            if in_flight:  # the client stopped asking: finish what it asked (each bounded by timeouts)
                await asyncio.gather(*in_flight, return_exceptions=True)
            self._connections.discard(task)
            writer.close()

    async def _answer(self, data: bytes, peer: Peer, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._handle(data, peer)
            if reply is None:
                writer.close()  # not a query we answer: the stream can no longer be trusted
                return
            if writer.is_closing():
                return
            writer.write(LENGTH.pack(len(reply)) + reply)
            async with asyncio.timeout(self._idle_timeout):  # a client that never reads lets go
                await writer.drain()
        except (TimeoutError, ConnectionError):
            writer.close()
        except Exception:
            log.exception("answering over tcp failed")
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
