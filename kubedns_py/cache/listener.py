"""One UDP socket of the cache, read where the work is.

Its own thread (``net.udpthread``) reads it and answers readied hits, the bulk of a warm cache's
traffic, without a turn of the event loop; it passes everything else to the loop (``net.inbox``).
When most datagrams are passed on (a flood of misses, a storm of search-path NXDOMAINs under
``--no-negcache``), the loop has the work anyway, and two threads taking turns with the GIL at every
system call cost more than the thread saves: the thread then pauses and the loop reads the socket
itself for a spell (a second, longer while the flood lasts), after which the thread tries again.
"""

from __future__ import annotations

import asyncio
import socket

from kubedns_py.cache.front.frontend import Frontend
from kubedns_py.net.inbox import LoopInbox
from kubedns_py.net.udpthread import WINDOW, ThreadedUdpServer

PASSED_SHARE = 0.5  # of a window's datagrams passed on, above which the loop reads instead
# Seconds the loop reads before the thread tries again: doubled, up to the longest, while the thread
# gives the socket back within a moment of getting it (the flood goes on), so that a long flood sees
# the thread less and less often.
LOOP_SPELL = 1.0
LONGEST_SPELL = 16.0
SOON = 0.5


class CacheListener:
    def __init__(self, sock: socket.socket, frontend: Frontend) -> None:
        self._loop = asyncio.get_running_loop()
        self.inbox = LoopInbox(sock, frontend.loop_udp_handler)
        self._on_loop = frontend.udp_handler(self.inbox.send)
        self._passed_before = 0
        self._received_before = 0
        self._spell: asyncio.TimerHandle | None = None
        self._spell_length = LOOP_SPELL
        self._spell_ended = -SOON
        self.spells = 0  # times the loop took over reading
        self.server = ThreadedUdpServer(
            sock,
            frontend.udp_handler(self.inbox.send, self.inbox.put),
            every_window=self._weigh_window,
        )

    @property
    def oversized(self) -> int:
        """Datagrams over the size any query needs, dropped by whichever was reading."""
        return self.server.oversized + self.inbox.oversized

    def _weigh_window(self) -> None:
        """On the thread, every WINDOW datagrams: hand the socket to the loop if most were passed on."""
        passed, received = self.inbox.passed, self.server.received
        if received - self._received_before < WINDOW // 2:  # the window began with the spell's end
            return
        share = (passed - self._passed_before) / (received - self._received_before)
        self._passed_before, self._received_before = passed, received
        if share > PASSED_SHARE:
            self.server.pause()
            self._loop.call_soon_threadsafe(self._read_on_loop)

    def _read_on_loop(self) -> None:
        if self._spell is not None or self.server.stopping:
            return
        self.spells += 1
        self.inbox.read_here(self._on_loop)
        if self._loop.time() - self._spell_ended < SOON:
            self._spell_length = min(2 * self._spell_length, LONGEST_SPELL)
        else:
            self._spell_length = LOOP_SPELL
        self._spell = self._loop.call_later(self._spell_length, self._back_to_thread)

    def _back_to_thread(self) -> None:
        self._spell = None
        self._spell_ended = self._loop.time()
        self.inbox.stop_reading_here()
        # The thread is paused: these are not read meanwhile.
        self._passed_before, self._received_before = self.inbox.passed, self.server.received
        self.server.resume()

    def stop_reading(self) -> None:
        """Stop reading, answer what still waits (all of it when steered away: nodelocal's
        hand-over), and let the loop take no more."""
        if self._spell is not None:
            self._spell.cancel()
            self._spell = None
        self.inbox.stop_reading_here()
        self.server.stop_reading()
        self.server.read_queued()
        self.inbox.answer_all()

    def close(self) -> None:
        """Close the socket (after ``stop_reading``, which answers what waits)."""
        self.inbox.stop_reading_here()
        self.server.close()
