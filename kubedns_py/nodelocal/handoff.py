"""Handing a node's DNS from one nodelocal process to the next without losing a query (a DaemonSet
update with ``maxSurge``, or a second process started by hand).

Every nodelocal process binds its DNS, health and metrics ports with SO_REUSEPORT, and listens on an
abstract unix socket named after its interface: hostNetwork Pods share the node's network namespace,
and with it that name, which nobody has to clean up. A process that starts while the name is taken
has a predecessor. It connects and says ``starting`` (the predecessor will now leave the iptables
rules and the interface in place whenever it exits: a successor holds them); the predecessor says how
many sockets it has in each port's group (one per cache worker). The new one binds its sockets beside
the predecessor's and answers. Once it answers it steers every new query and connection of each port
to its own first socket, the one after the predecessor's (a BPF program on the SO_REUSEPORT group),
and says ``ready``. The predecessor, which
receives nothing new, lets go of the name, reads and answers what waits in its sockets (forwarded
misses included), closes its ports, says ``done`` and idles until it is told to exit, so that the
kubelet does not restart it. The successor then lets the kernel spread by hash again and takes the
name for the next one.

Only a peer of the same user (SO_PEERCRED) is heard: it could have bound the ports anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import socket
import struct
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0  # for the predecessor to stop reading and say done
CLAIM_TIMEOUT = 10.0  # for the predecessor to let go of the name
SOCKETS_TIMEOUT = 2.0  # for the predecessor to say how many sockets it has in each group
HANDOVER_WAIT = 5.0  # told to stop while a successor starts: how long we wait for it to take over
CLAIM_RETRY = 0.05
LINE_LIMIT = 64
PEERCRED = struct.Struct("3i")  # pid, uid, gid


def address(interface: str) -> str:
    return f"\0kubedns-nodelocal/{interface}"


class Handoff:
    def __init__(self, interface: str, hand_over: Callable[[], Awaitable[None]], sockets: int = 1) -> None:
        """``hand_over``: stop reading and answer what was read, when a successor is ready. ``sockets``:
        ours in each port's SO_REUSEPORT group (one per cache worker), told to a successor, whose own
        come after them."""
        self._address = address(interface)
        self._hand_over = hand_over
        self._sockets = sockets
        self.predecessor_sockets = 0  # the predecessor's in each group: the index of our first one
        self._server: asyncio.AbstractServer | None = None
        self._predecessor: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.successors = 0  # connected, starting or ready: the rules and interface are theirs too
        self.handed_over = False
        self._done = asyncio.Event()  # handed over, or the last starting successor went away

    async def find_predecessor(self) -> bool:
        """Tell a running predecessor that we are starting; False when there is none."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self._address)
        except OSError:
            sock.close()
            return False
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        writer.write(b"starting\n")
        self._predecessor = reader, writer
        self.predecessor_sockets = 1
        try:
            async with asyncio.timeout(SOCKETS_TIMEOUT):
                line = await reader.readline()
            if match := re.fullmatch(rb"sockets (\d{1,3})\n", line):
                self.predecessor_sockets = int(match.group(1))
        except (TimeoutError, ConnectionError):
            pass  # one process, as before workers
        log.info("a node cache runs here already: answering beside it, then taking over")
        return True

    @property
    def has_predecessor(self) -> bool:
        return self._predecessor is not None

    async def take_over(self) -> bool:
        """We answer: have the predecessor stop reading, then hold the name for our successor. True
        when the predecessor said it is done (its sockets are closed)."""
        done = b""
        if self._predecessor is not None:
            reader, writer = self._predecessor
            writer.write(b"ready\n")
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    done = await reader.readline()
            except (TimeoutError, ConnectionError):
                pass
            writer.close()
            if done == b"done\n":
                log.info("took over from the node cache that ran here before")
            else:
                log.warning(
                    "the node cache that ran here before did not confirm the hand-over; answering anyway"
                )
        await self._claim()
        return done == b"done\n"

    async def _claim(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            async with asyncio.timeout(CLAIM_TIMEOUT):
                while True:
                    try:
                        sock.bind(self._address)
                        break
                    except OSError as err:
                        if err.errno != errno.EADDRINUSE:
                            raise
                    await asyncio.sleep(CLAIM_RETRY)  # the predecessor is letting go of it
        except (TimeoutError, OSError) as err:
            sock.close()
            log.warning(
                "cannot take %r (%s): a later node cache will not find this one", self._address[1:], err
            )
            return
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._successor, sock=sock)

    async def _successor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        _, uid, _ = PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
        if uid != os.geteuid():
            writer.close()
            return
        self.successors += 1
        try:
            writer.write(b"sockets %d\n" % self._sockets)
            while line := await reader.readline():
                if len(line) > LINE_LIMIT:
                    break
                if line == b"ready\n" and not self.handed_over:
                    self.handed_over = True
                    if self._server is not None:
                        self._server.close()  # the name is the successor's from now on
                    log.info("a new node cache answers here: stopping reading, leaving the rules in place")
                    await self._hand_over()
                    self._done.set()
                    writer.write(b"done\n")
                    await writer.drain()
                    break
        except ConnectionError:
            pass
        finally:
            if not self.handed_over:
                self.successors -= 1  # it went away before taking over: the node is ours alone again
                if not self.successors:
                    self._done.set()
            writer.close()

    async def await_successor(self) -> None:
        """Told to stop while a successor starts (a DaemonSet update that counts the new pod as
        available before it answers): wait, ``HANDOVER_WAIT`` at most, for it to take over, reading
        and answering meanwhile."""
        if self.successors and not self.handed_over:
            self._done.clear()
            log.info(
                "a new node cache is starting here: waiting %gs at most for it to take over", HANDOVER_WAIT
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANDOVER_WAIT):
                    await self._done.wait()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._predecessor is not None:
            self._predecessor[1].close()
