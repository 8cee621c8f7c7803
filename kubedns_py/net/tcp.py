"""A TCP DNS listener (RFC 7766): two-byte length framing, several queries per connection answered
concurrently (each reply as soon as it is ready: glibc's ``use-vc`` sends A and AAAA back to back, and
a slow one must not hold up the other), an idle timeout, a cap on queries in flight per connection, and
fair limits on open connections (``net.connections``), so neither a flood of queries nor of idle
clients exhausts memory or file descriptors, nor does one client shut out the others.

Replies a client has not read yet are bounded too: past ``WRITE_BUFFER`` bytes queued for it in the
server (and ``SEND_BUFFER`` in the kernel), its next query is not read and a ready reply waits, until it
reads; a client that reads nothing for the idle timeout is reset and what was queued for it dropped.
Pipelining questions for 64 KiB answers and never reading thus costs a few replies per connection, where
it cost 64 in the server and 4 MiB in the kernel."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from kubedns_py.net.connections import TcpConnections
from kubedns_py.net.udp import Address

log = logging.getLogger(__name__)

# The client's address as the socket reports it, None when it does not (a closed socket).
Peer = Address | None
MessageHandler = Callable[[bytes, Peer], Awaitable[bytes | None]]
LENGTH = struct.Struct("!H")
MAX_IN_FLIGHT = 64  # per connection; past that, reading waits for an answer to go out
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close resets, discarding what is unsent
WRITE_BUFFER = 64 * 1024  # replies queued per connection before it is paused: one large one, or many small
# The kernel's share of a connection's unread replies. Left to itself it grows a connection's send
# buffer up to 4 MiB (tcp_wmem), memory a pod's cgroup is charged for; 64 KiB (the kernel doubles it for
# its bookkeeping) takes the largest reply whole, ample for the round trips inside a cluster.
SEND_BUFFER = 64 * 1024


class TcpServer:
    def __init__(self, handle: MessageHandler, connections: TcpConnections | None = None) -> None:
        """``connections`` is shared by every listener of a component; by default, one of its own."""
        self._handle = handle
        self._connections = connections if connections is not None else TcpConnections("tcp")
        self._tasks: set[asyncio.Task[None]] = set()
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
        return len(self._tasks)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        conn = self._connections.admit(peer[0] if peer else "", writer.close)
        if conn is None:
            writer.close()
            return
        self._tasks.add(task)
        in_flight = conn.in_flight
        writer.transport.set_write_buffer_limits(WRITE_BUFFER)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            while not writer.is_closing():
                if len(in_flight) >= MAX_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                if not await self._writable(writer):
                    break
                try:
                    async with asyncio.timeout(self._connections.idle_timeout) as conn.timer:
                        (length,) = LENGTH.unpack(await reader.readexactly(2))
                        data = await reader.readexactly(length)
                finally:
                    conn.timer = None
                self._connections.asked(conn, asyncio.create_task(self._answer(data, peer, writer)))
                # Let the answer run before the next query is read: a reply ready at once (all of
                # serve's) is then queued, and a client that does not read it is not read either.
                await asyncio.sleep(0)
        except TimeoutError:
            self._connections.timed_out()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # close() ends the connection: return normally, as Python 3.11's start_server logs a
            # cancelled handler with a traceback.
            pass
        except Exception:
            log.exception("tcp connection failed")
        finally:
            if in_flight:  # the client stopped asking: finish what it asked (each bounded by timeouts)
                await asyncio.gather(*in_flight, return_exceptions=True)
            self._connections.release(conn)
            self._tasks.discard(task)
            writer.close()
            if writer.transport.get_write_buffer_size():
                # The client stopped asking with replies still unread: the close waits for it to read
                # them, for the idle timeout at most.
                asyncio.get_running_loop().call_later(self._connections.idle_timeout, self._let_go, writer)

    async def _answer(self, data: bytes, peer: Peer, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._handle(data, peer)
            if reply is None:
                writer.close()  # not a query we answer: the stream can no longer be trusted
                return
            if writer.is_closing() or not await self._writable(writer):
                return
            writer.write(LENGTH.pack(len(reply)) + reply)
        except ConnectionError:
            writer.close()
        except Exception:
            log.exception("answering over tcp failed")
            writer.close()

    async def _writable(self, writer: asyncio.StreamWriter) -> bool:
        """Whether the replies queued for the client are down to ``WRITE_BUFFER`` bytes, waiting while it
        reads them; False, the connection cut off, when it read none of them for the idle timeout."""
        transport = writer.transport
        if transport.get_write_buffer_size() <= WRITE_BUFFER:
            return True
        try:
            async with asyncio.timeout(self._connections.idle_timeout):
                while transport.get_write_buffer_size() > WRITE_BUFFER:
                    await writer.drain()  # wakes every waiter at once: each checks again
        except TimeoutError:
            self._let_go(writer)
            return False
        return True

    def _let_go(self, writer: asyncio.StreamWriter) -> None:
        """Reset the connection of a client that left its replies unread for the idle timeout, dropping
        them, ours and the kernel's: a close would wait, holding them, for a client that never reads."""
        transport = writer.transport
        if transport.is_closing() and not transport.get_write_buffer_size():
            return  # closed, or let go already
        self._connections.unread()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
