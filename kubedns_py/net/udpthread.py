"""A UDP DNS listener on a thread of its own.

Where most answers are ready at once, the event loop only stands between a datagram and its reply.
This thread waits in ``poll`` for the socket alone, reads what is waiting and sends each reply as soon
as it is made, the way dnsmasq does: at the same load that costs less CPU per query than a turn of
the event loop per wake-up, and no reply waits for the queries read after it.

No answer made on this thread may see a change half made. serve's handler runs under ``lock``,
which whoever changes what it answers from (the store) holds too; the event loop's thread keeps
everything else (the source, TCP, HTTP). The cache's handler needs no lock: what it reads of what the
event loop changes (an entry's rendering, the time it is good until) is written in an order where any
mix of old and new values is still a valid answer, it counts on counters no other thread writes, and
it passes everything else to the loop (``net.inbox``).

``close`` wakes the thread through a pipe of its own rather than by shutting the socket down: serve's
workers hand their sockets from one generation to the next, and a shutdown would end the new
generation's reads too.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

from kubedns_py.net.udp import DatagramHandler, DatagramListener

WINDOW = 256  # datagrams read between two calls of ``every_window``


class ThreadedUdpServer(DatagramListener):
    def __init__(
        self,
        sock: socket.socket,
        handle: DatagramHandler,
        lock: threading.Lock | None = None,
        every_window: Callable[[], None] | None = None,
    ) -> None:
        """``every_window``: called on the thread after the batch in which another WINDOW datagrams
        were read (it may ``pause`` the thread)."""
        super().__init__(sock, handle)
        self._lock = lock
        self._every_window = every_window
        self._window_end = WINDOW
        sock.setblocking(False)
        self._wake_read, self._wake_write = os.pipe()
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._poller.register(self._wake_read, select.POLLIN)
        self._pause_poller = select.poll()
        self._pause_poller.register(self._wake_read, select.POLLIN)
        self._reader = threading.Thread(target=self._serve, name=f"udp-{self.port}", daemon=True)
        self._reader.start()

    def _serve(self) -> None:
        wake = self._wake_read
        while not self._stopping:
            for fd, _ in (self._pause_poller if self._paused else self._poller).poll():
                if fd == wake:
                    os.read(wake, 64)  # resume or stop: the flags say which
            if self._paused or self._stopping:
                continue
            self._read(self._handle, self._lock, True)
            if self.received >= self._window_end:
                self._window_end += WINDOW  # BATCH <= WINDOW: one window crossed per batch at most
                if self._every_window is not None:
                    self._every_window()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Read nothing more (after the datagram being answered, if any) until ``resume``; another
        reader may take the socket meanwhile."""
        self._paused = True

    def resume(self) -> None:
        """From another thread: read again."""
        self._paused = False
        os.write(self._wake_write, b"r")

    def stop_reading(self) -> None:
        """End the thread, after the datagram being answered, if any; the socket stays open."""
        if self._stopping:
            return
        self._stopping = True
        os.write(self._wake_write, b"x")
        if self._reader is not threading.current_thread():
            self._reader.join()

    def read_queued(self, batches: int = 256) -> None:
        """Once the thread has stopped, answer here what still waits in the socket, up to ``batches``
        batches: for a socket that receives nothing new any more (``sockets.steer_to``)."""
        assert self._stopping, "read_queued is for a listener that has stopped reading"
        for _ in range(batches):
            if self._read(self._handle, self._lock, False):
                return

    def close(self) -> None:
        """Stop reading, and close the socket, here only: another process may share it."""
        if self._sock.fileno() < 0:
            return
        self.stop_reading()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._sock.close()
