"""A UDP DNS listener on a thread of its own.

Where every answer is ready at once (serve's), the event loop only stands between a datagram and its
reply. This thread waits in ``poll`` for the socket alone, reads what is waiting and sends each reply
as soon as it is made, the way dnsmasq does: at the same load that costs less CPU per query than a
turn of the event loop per wake-up, and no reply waits for the queries read after it.

The handler runs under ``lock``, which whoever changes what it answers from (the store) holds too:
the event loop's thread keeps everything else (the source, TCP, HTTP), and no answer sees a change
half made. ``close`` wakes the thread through a pipe of its own rather than by shutting the socket
down: serve's workers hand their sockets from one generation to the next, and a shutdown would end
the new generation's reads too.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading

from kubedns_py.net.udp import BATCH, MAX_QUERY, DatagramHandler
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
        sock.setblocking(False)
        self._wake_read, self._wake_write = os.pipe()
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._poller.register(self._wake_read, select.POLLIN)
        self._reader = threading.Thread(target=self._serve, name=f"udp-{self.port}", daemon=True)
        self._reader.start()

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def _serve(self) -> None:
        wait = self._poller.poll
        while not self._closing:
            wait()
            self._read()

    def _read(self) -> None:
        """What waits in the socket, up to BATCH datagrams, each answered as it is read."""
        sock, handle, lock = self._sock, self._handle, self._lock
        recvfrom, sendto = sock.recvfrom, sock.sendto
        for _ in range(BATCH):
            if self._closing:
                return
            try:
                data, addr = recvfrom(MAX_QUERY + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # e.g. ICMP port unreachable reported on a later read
                log.debug("udp read error: %s", err)
                continue
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
        """Stop reading (after the datagram being answered, if any), end the thread, and close the
        socket, here only: another process may share it."""
        self._closing = True
        os.write(self._wake_write, b"x")
        if self._reader is not threading.current_thread():
            self._reader.join()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._sock.close()
