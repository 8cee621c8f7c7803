"""A TCP DNS listener (RFC 7766): two-byte length framing, several queries per connection, an idle
timeout, and a cap on open connections so a flood of idle clients cannot exhaust file descriptors."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], Awaitable[bytes | None]]
LENGTH = struct.Struct("!H")


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
        try:
            while True:
                async with asyncio.timeout(self._idle_timeout):
                    (length,) = LENGTH.unpack(await reader.readexactly(2))
                    data = await reader.readexactly(length)
                reply = await self._handle(data)
                if reply is None:
                    break  # not a query we answer: the stream can no longer be trusted
                writer.write(LENGTH.pack(len(reply)) + reply)
                async with asyncio.timeout(self._idle_timeout):  # a client that never reads lets go
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("tcp connection failed")
        finally:
            self._connections.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
