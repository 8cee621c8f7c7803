"""A UDP DNS listener that drains many datagrams per wake-up.

asyncio's datagram endpoint costs a callback and a transport hop per packet; reading the non-blocking
socket directly from an ``add_reader`` callback, up to ``BATCH`` packets at a time, is several times
faster under load and keeps the handler a plain synchronous function for the common case.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

BATCH = 256
# Within one wake-up, replies go out in bursts that double in size, from one reply up to this many. The
# first reply leaves as soon as it is ready, so a quiet server answers at once and a burst of queries
# does not hold its first answers back until the last is done. Under load, large bursts take over: a
# send that has to wake the client costs several times more than one that finds it awake (loopback,
# VMs), and a burst wakes it once.
SEND_BATCH = 64
# No client needs a query larger than the size every path carries unfragmented (DNS Flag Day 2020);
# reading one byte more tells an oversized datagram, which is dropped, from one that fits. A 64 KiB
# read buffer would cost an allocation of that size per packet.
MAX_QUERY = 1232
Address = tuple[str, int] | tuple[str, int, int, int]  # (host, port), or (host, port, flowinfo, scope_id)
DatagramHandler = Callable[[bytes, Address], bytes | None]


class DatagramListener:
    """What every UDP listener does with one datagram: read it from the socket, and answer it."""

    def __init__(self, sock: socket.socket, handle: DatagramHandler) -> None:
        self._sock = sock
        self._handle = handle
        self.oversized = 0  # datagrams over MAX_QUERY, dropped unanswered (DnsStats reports them)
        self._failures = RateLimitedLog(log)

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def _receive(self) -> tuple[bytes, Address] | bool:
        """The next query waiting in the (non-blocking) socket; False when none waits, True for a
        datagram passed over (oversized, and counted; or a read error)."""
        try:
            data, addr = self._sock.recvfrom(MAX_QUERY + 1)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as err:  # e.g. ICMP port unreachable reported on a later read
            log.debug("udp read error: %s", err)
            return True
        if len(data) > MAX_QUERY:
            self.oversized += 1
            return True
        return data, addr

    def _answer(self, data: bytes, addr: Address) -> bytes | None:
        """The handler's reply; None, and a rate-limited log line, should it fail."""
        try:
            return self._handle(data, addr)
        except Exception:
            self._failures.exception(
                "handler", "handler failed on a %d-byte datagram from %s", len(data), addr
            )
            return None


class UdpServer(DatagramListener):
    def __init__(self, sock: socket.socket, handle: DatagramHandler) -> None:
        super().__init__(sock, handle)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._later: list[tuple[bytes, Address]] = []

    def send(self, data: bytes, addr: Address) -> None:
        """Send a reply that was prepared later than the query was read (a forwarded answer). It
        leaves with the others prepared in the same turn of the event loop, as one burst."""
        if not self._later:
            self._loop.call_soon(self._send_later)
        self._later.append((data, addr))

    def _send_later(self) -> None:
        replies, self._later = self._later, []
        if self._sock.fileno() >= 0:
            self._send_all(replies)

    def _on_readable(self) -> None:
        self._read()

    def read_queued(self, batches: int = 256) -> None:
        """Read and answer what waits in the socket now, up to ``batches`` batches: for a socket that
        receives nothing new any more (``sockets.steer_to``), before it closes."""
        for _ in range(batches):
            if self._sock.fileno() < 0 or self._read():
                return

    def _read(self) -> bool:
        """One batch; True when the socket had no more."""
        replies: list[tuple[bytes, Address]] = []
        burst = 1
        try:
            for _ in range(BATCH):
                received = self._receive()
                if isinstance(received, bool):
                    if received:
                        continue
                    return True
                data, addr = received
                reply = self._answer(data, addr)
                if reply is not None:
                    replies.append((reply, addr))
                    if len(replies) == burst:
                        self._send_all(replies)
                        replies = []
                        burst = min(2 * burst, SEND_BATCH)
        finally:
            self._send_all(replies)
        return False

    def _send_all(self, replies: list[tuple[bytes, Address]]) -> None:
        sendto = self._sock.sendto
        for reply, addr in replies:
            try:
                sendto(reply, addr)
            except OSError as err:
                log.debug("dropping reply to %s: %s", addr, err)

    def stop_reading(self) -> None:
        """Take no more queries; replies prepared later can still be sent until ``close``."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())

    def close(self) -> None:
        self.stop_reading()
        self._sock.close()
