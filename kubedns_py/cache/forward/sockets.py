"""The sockets queries leave on: connected UDP sockets on random local ports, read from an
``add_reader`` callback, and one TCP exchange for truncated replies and ``--tcp-server`` upstreams.

A connected UDP socket gets its port from the kernel's random ephemeral choice, only hears from the
address it is connected to, and learns of ICMP port-unreachable as an error on its next read, so an
upstream that is not listening fails at once instead of timing out.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Protocol

from kubedns_py.cache.servers import Upstream

MAX_REPLY = 65535
# Every reply is read into this one buffer and copied out at its size: reading into a fresh buffer of
# the largest size would allocate 64 KiB per datagram.
_BUFFER = bytearray(MAX_REPLY)
_VIEW = memoryview(_BUFFER)

OnDatagram = Callable[[bytes], None]
OnError = Callable[[OSError], None]


class Socket(Protocol):
    """One way to one upstream: what the forwarder needs of a UDP socket."""

    @property
    def local_port(self) -> int: ...

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


Opener = Callable[[Upstream, OnDatagram, OnError], Socket]
TcpExchange = Callable[[Upstream, bytes, float], "asyncio.Future[bytes] | asyncio.Task[bytes]"]


class Outbox:
    """Queries to send once the current turn of the event loop is over, together: a burst wakes an
    upstream once where single sends would wake it each time."""

    def __init__(self) -> None:
        self._queued: list[tuple[UdpSocket, bytes]] = []

    def put(self, sock: UdpSocket, data: bytes) -> None:
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queued.append((sock, data))

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        for sock, data in queued:
            sock.send_now(data)


class UdpSocket:
    __slots__ = ("_fileno", "_loop", "_on_datagram", "_on_error", "_outbox", "_sock", "local_port")

    def __init__(
        self, upstream: Upstream, on_datagram: OnDatagram, on_error: OnError, outbox: Outbox
    ) -> None:
        family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(upstream.address)  # binds a random local port (RFC 5452)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._fileno = sock.fileno()
        self.local_port: int = sock.getsockname()[1]
        self._on_datagram = on_datagram
        self._on_error = on_error
        self._outbox = outbox
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fileno, self._readable)

    def send(self, data: bytes) -> None:
        self._outbox.put(self, data)

    def send_now(self, data: bytes) -> None:
        if self._sock.fileno() < 0:
            return  # closed meanwhile: its queries have failed already
        try:
            self._sock.send(data)
        except OSError as err:  # a full buffer or an unreachable upstream: as if it never answered
            self._on_error(err)

    def _readable(self) -> None:
        # One datagram a call: with queries spread over many sockets, a second read would mostly find
        # nothing and cost a system call and an exception; if more is queued, the loop calls again.
        try:
            size = self._sock.recv_into(_BUFFER)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:  # ICMP port unreachable, reported on the connected socket
            self._on_error(err)
            return
        self._on_datagram(bytes(_VIEW[:size]))

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._fileno)
            self._sock.close()


class UdpOpener:
    """Opens the forwarder's UDP sockets, which share one outbox."""

    def __init__(self) -> None:
        self._outbox = Outbox()

    def __call__(self, upstream: Upstream, on_datagram: OnDatagram, on_error: OnError) -> Socket:
        return UdpSocket(upstream, on_datagram, on_error, self._outbox)


async def _tcp_exchange(upstream: Upstream, query: bytes, within: float) -> bytes:
    """The reply to ``query`` over a new TCP connection; OSError, EOFError or TimeoutError otherwise."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(*upstream.address)
            writer.write(struct.pack("!H", len(query)) + query)
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
    except asyncio.IncompleteReadError as err:
        raise EOFError("connection closed before the whole reply") from err
    finally:
        if writer is not None:
            writer.close()


def tcp_exchange(upstream: Upstream, query: bytes, timeout: float) -> asyncio.Task[bytes]:
    return asyncio.ensure_future(_tcp_exchange(upstream, query, timeout))
