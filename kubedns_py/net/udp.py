"""What every UDP DNS listener shares: reading what waits in a non-blocking socket, up to ``BATCH``
datagrams per wake-up, each answered by a plain synchronous handler and its reply sent at once
(``net.udpthread``, ``net.inbox``)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

BATCH = 256
# No client needs a query larger than the size every path carries unfragmented (DNS Flag Day 2020);
# reading one byte more tells an oversized datagram, which is dropped, from one that fits. A 64 KiB
# read buffer would cost an allocation of that size per packet.
MAX_QUERY = 1232
Address = tuple[str, int] | tuple[str, int, int, int]  # (host, port), or (host, port, flowinfo, scope_id)
DatagramHandler = Callable[[bytes, Address], bytes | None]
Send = Callable[[bytes, Address], None]  # where a reply made later goes


class DatagramListener:
    """What every UDP listener does with one datagram: read it from the socket, and answer it."""

    def __init__(self, sock: socket.socket, handle: DatagramHandler) -> None:
        self._sock = sock
        self._handle = handle
        self._stopping = False
        self._paused = False
        self.received = 0  # datagrams read and handed to a handler
        self.oversized = 0  # datagrams over MAX_QUERY, dropped unanswered (DnsStats reports them)
        self._failures = RateLimitedLog(log)

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def _read(self, handle: DatagramHandler, lock: threading.Lock | None, interruptible: bool) -> bool:
        """What waits in the socket, up to BATCH datagrams, each answered by ``handle`` (under
        ``lock``, if any) and its reply sent as soon as it is made; True when the socket had no more.
        ``interruptible``: end early once the listener is stopping or paused."""
        for _ in range(BATCH):
            if interruptible and (self._stopping or self._paused):
                return False
            received = self._receive()
            if isinstance(received, bool):
                if received:
                    continue
                return True
            data, addr = received
            if lock is None:
                reply = self._answer(handle, data, addr)
            else:
                with lock:
                    reply = self._answer(handle, data, addr)
            if reply is not None:
                self._send(reply, addr)
        return False

    def _send(self, reply: bytes, addr: Address) -> None:
        try:
            self._sock.sendto(reply, addr)
        except OSError as err:  # the client's address unreachable, a full buffer: the client retries
            log.debug("dropping reply to %s: %s", addr, err)

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
        self.received += 1
        return data, addr

    def _answer(self, handle: DatagramHandler, data: bytes, addr: Address) -> bytes | None:
        """``handle``'s reply; None, and a rate-limited log line, should it fail."""
        try:
            return handle(data, addr)
        except Exception:
            self._failures.exception(
                "handler", "handler failed on a %d-byte datagram from %s", len(data), addr
            )
            return None
