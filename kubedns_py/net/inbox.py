"""What a UDP listener's thread (``net.udpthread``) cannot answer on its own, answered on the event
loop.

The cache's thread answers fresh hits; everything else (misses, entries due to be readied, clients
the ACL has not yet seen, malformed queries) needs state only the loop may change, so the thread
``put``s the datagram here and the loop answers it. The queue is bounded: when the loop falls that
far behind, further datagrams are dropped and counted, as a full socket buffer would drop them.
Answers made later (forwarded misses) go out through ``send``, in one burst per turn of the loop.

While most datagrams would be passed on, the thread pauses and the loop reads the socket itself
(``read_here``): two threads taking turns with the GIL at every system call cost more than the
thread saves when the loop has the work anyway.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

from kubedns_py.net.udp import BATCH, Address, DatagramHandler, DatagramListener, Send

LIMIT = 4096  # datagrams waiting for the loop; a socket buffer of 208 KiB holds about as many queries


class LoopInbox(DatagramListener):
    def __init__(
        self, sock: socket.socket, handler_for: Callable[[Send], DatagramHandler], limit: int = LIMIT
    ) -> None:
        """``handler_for(send)``: the loop's handler, which gives replies it makes later to ``send``."""
        self._loop = asyncio.get_running_loop()
        self._waiting: deque[tuple[bytes, Address]] = deque()
        self._limit = limit
        self._scheduled = False
        self._later: list[tuple[bytes, Address]] = []
        # Written by the putting thread only: datagrams put, and those dropped for a full queue.
        self.passed = 0
        self.overflowed = 0
        self._direct: DatagramHandler | None = None
        super().__init__(sock, handler_for(self.send))

    def put(self, data: bytes, addr: Address) -> None:
        """From the listener's thread: answer this on the loop."""
        self.passed += 1
        if len(self._waiting) >= self._limit:
            self.overflowed += 1
            return
        self._waiting.append((data, addr))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self.answer_waiting)

    def answer_waiting(self) -> None:
        """Answer up to BATCH of the waiting datagrams; a later turn of the loop takes the rest, so
        that timers and other sockets are not held up by a burst."""
        # Cleared before taking any: a datagram put after this schedules another turn, and one put
        # before it is taken below.
        self._scheduled = False
        waiting = self._waiting
        for _ in range(BATCH):
            if not waiting:
                return
            data, addr = waiting.popleft()
            reply = self._answer(self._handle, data, addr)
            if reply is not None:
                self._send(reply, addr)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.answer_waiting)

    def read_here(self, handle: DatagramHandler) -> None:
        """Read the socket from the loop too, answering with ``handle``: for while the listener's
        thread is paused because it would pass most datagrams on anyway (a flood of misses), when
        the thread in between costs more than it saves."""
        if self._direct is None:
            self._loop.add_reader(self._sock.fileno(), self._read_directly)
        self._direct = handle

    def stop_reading_here(self) -> None:
        if self._direct is not None and self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
        self._direct = None

    def _read_directly(self) -> None:
        if self._direct is not None:
            self._read(self._direct, None, False)

    def answer_all(self) -> None:
        """Answer every waiting datagram now (a listener that stops)."""
        while self._waiting:
            self.answer_waiting()

    def send(self, data: bytes, addr: Address) -> None:
        """A reply prepared later than its query was read (a forwarded answer). It leaves with the
        others prepared in the same turn of the event loop, as one burst."""
        if not self._later:
            self._loop.call_soon(self._send_later)
        self._later.append((data, addr))

    def _send_later(self) -> None:
        replies, self._later = self._later, []
        if self._sock.fileno() < 0:
            return
        for reply, addr in replies:
            self._send(reply, addr)
