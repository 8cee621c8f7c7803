"""A UDP DNS listener on a thread of its own, reading with blocking calls.

Where every answer is ready at once (serve's), the event loop only stands between a datagram and its
reply: waking from epoll, the callback, the read that finds the socket empty. A thread blocked in
``recvfrom`` is woken by the datagram itself and sends each reply as soon as it is made, the way
dnsmasq does; at the same load that spends less CPU per query than the loop's batches, and a reply
never waits for the queries read after it.

The handler runs under ``lock``, which whoever changes what it answers from (the store) holds too:
the event loop's thread keeps everything else (the source, TCP, HTTP), and never sees a half-applied
change answered, nor answers from one.
"""

from __future__ import annotations

import logging
import socket
import threading
from contextlib import suppress

from kubedns_py.net.udp import MAX_QUERY, DatagramHandler
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)


class ThreadedUdpServer:
    def __init__(self, sock: socket.socket, handle: DatagramHandler, lock: threading.Lock) -> None:
        self._sock = sock
        self._handle = handle
        self._lock = lock
        self.oversized = 0  # datagrams over MAX_QUERY, dropped unanswered (DnsStats reports them)
        self._failures = RateLimitedLog(log)
        self._closing = False
        sock.setblocking(True)
        self._reader = threading.Thread(target=self._serve, name=f"udp-{self.port}", daemon=True)
        self._reader.start()

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def _serve(self) -> None:
        sock, handle, lock = self._sock, self._handle, self._lock
        recvfrom, sendto = sock.recvfrom, sock.sendto
        while not self._closing:
            try:
                data, addr = recvfrom(MAX_QUERY + 1)
            except OSError as err:  # e.g. ICMP port unreachable reported on a later read
                log.debug("udp read error: %s", err)
                continue
            if self._closing:  # ``close`` woke the read
                return
            if len(data) > MAX_QUERY:
                self.oversized += 1
                continue
            with lock:
                try:
                    reply = handle(data, addr)
                except Exception:
                    self._failures.exception(
                        "handler", "handler failed on a %d-byte datagram from %s", len(data), addr
                    )
                    reply = None
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError as err:
                    log.debug("dropping reply to %s: %s", addr, err)

    def close(self) -> None:
        """Stop reading, wait for the reply being made to leave, and close the socket."""
        self._closing = True
        if self._sock.fileno() >= 0:
            with suppress(OSError):  # wakes a blocked read; on an unconnected socket it reports ENOTCONN too
                self._sock.shutdown(socket.SHUT_RD)
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self._sock.close()
