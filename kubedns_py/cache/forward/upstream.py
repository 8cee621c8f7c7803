"""One upstream server: its queries in flight, its sockets, and whether it is worth asking.

Queries go out on a pool of connected UDP sockets, each on a random local port; every query draws a
socket at random and a random ID from a batched CSPRNG (RFC 5452), and a socket is replaced by one on a
fresh port after ``RENEW_AFTER`` queries, or at once when it reports an error. A reply counts only if
it arrives on the socket its query left from, with a pending ID and the question asked (anything else
is ignored and the wait goes on). What is in flight sits in the socket's table of IDs and in the
forwarder's one ``Deadlines`` structure: no task, future or timer per query. A truncated reply, or any
reply from a ``--tcp-server`` upstream, is asked over TCP (a task, on that rare path).

An upstream that fails ``DOWN_AFTER`` times in a row is marked down and probed with ``. NS`` until any
well-formed reply comes back (CoreDNS's rule: an answering server is alive, whatever its rcode).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from time import monotonic
from typing import Protocol

from kubedns_py.cache.forward.ids import RandomNumbers
from kubedns_py.cache.forward.sockets import Opener, Socket, TcpExchange
from kubedns_py.cache.forward.timers import Deadlines
from kubedns_py.cache.servers import Upstream
from kubedns_py.dnswire.header import CD_BIT, HEADER_SIZE, RD_BIT, TC_BIT
from kubedns_py.dnswire.reply import OUR_PAYLOAD
from kubedns_py.dnswire.response import UpstreamReply, read_reply
from kubedns_py.dnswire.splice import raw_opt
from kubedns_py.dnswire.walk import WireError

log = logging.getLogger(__name__)

DOWN_AFTER = 2
PROBE_INTERVAL = 0.5
PROBE_INTERVAL_MAX = 5.0
ROOT_NS_QUESTION = b"\x00\x00\x02\x00\x01"  # ". IN NS"
RENEW_AFTER = 1024  # queries per socket before it is replaced by one on a fresh random port
QR = 0x80  # in the header's third byte


@dataclass(slots=True)  # not frozen: made once per miss, and a frozen one takes three times as long
class Request:
    """What is asked upstream, of every server tried in turn."""

    question: bytes  # the question section's bytes, name lower-cased
    checking_disabled: bool  # the client's CD bit
    dnssec_ok: bool  # the client's DO bit


def build_query(ident: int, request: Request) -> bytes:
    """Our query upstream: RD set, CD as the client asked, EDNS0 with our payload and the DO bit."""
    flags = RD_BIT | (CD_BIT if request.checking_disabled else 0)
    header = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 1)
    return header + request.question + raw_opt(OUR_PAYLOAD, dnssec_ok=request.dnssec_ok)


def answers_question(wire: bytes, question: bytes) -> bool:
    """Whether ``wire`` echoes ``question`` (its name lower-cased): names compare case-insensitively,
    type and class exactly (lower-casing them would turn type 65 into 97)."""
    name_end = HEADER_SIZE + len(question) - 4
    return (
        wire[HEADER_SIZE:name_end].lower() == question[:-4] and wire[name_end : name_end + 4] == question[-4:]
    )


class Receiver(Protocol):
    """Who waits for one query's outcome: exactly one of these is called, once."""

    def on_reply(self, client: UpstreamClient, reply: UpstreamReply, seconds: float) -> None: ...

    def on_failure(self, client: UpstreamClient, reason: str, seconds: float) -> None: ...


@dataclass
class Health:
    queries: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    down: bool = False
    looped: bool = False  # --dns-loop-detect saw our own probe come back through this server

    @property
    def usable(self) -> bool:
        return not self.down and not self.looped


@dataclass(slots=True, eq=False)  # compared by identity: the deadlines key by it
class Sent:
    """One query in flight to one upstream."""

    client: UpstreamClient
    receiver: Receiver
    request: Request
    started: float  # monotonic time
    port: Port | None = field(default=None, init=False)  # the socket it left on; None over TCP
    ident: int = field(default=0, init=False)


class Port:
    """One UDP socket to the upstream, in slot ``slot`` of the pool, with the IDs in flight on it."""

    __slots__ = ("pending", "retired", "slot", "socket", "uses")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.pending: dict[int, Sent] = {}
        self.uses = 0
        self.retired = False
        self.socket: Socket | None = None

    def done(self, ident: int) -> None:
        del self.pending[ident]
        if self.retired and not self.pending and self.socket is not None:
            self.socket.close()


class UpstreamClient:
    def __init__(
        self,
        upstream: Upstream,
        timeout: float,
        deadlines: Deadlines[Sent],
        ids: RandomNumbers,
        draws: RandomNumbers,
        open_udp: Opener,
        tcp_exchange: TcpExchange,
        pool_size: int,
    ) -> None:
        self.upstream = upstream
        self.label = str(upstream)  # as metrics and servers.bind name it
        self.timeout = timeout
        self.health = Health()
        self.bad_replies = 0
        self._deadlines = deadlines
        self._ids = ids
        self._draws = draws
        self._open_udp = open_udp
        self._tcp_exchange = tcp_exchange
        self._slots: list[Port | None] = [None] * pool_size
        self._mask = pool_size - 1  # a power of two: a random number masked is a fair draw
        self._tcp: set[asyncio.Task[bytes] | asyncio.Future[bytes]] = set()
        self._in_flight = 0
        self._retiring = False
        self._probe: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def local_ports(self) -> list[int]:
        return [p.socket.local_port for p in self._slots if p is not None and p.socket is not None]

    def send(self, receiver: Receiver, request: Request) -> None:
        """Ask ``request``; ``receiver`` hears the outcome, possibly before this returns (a socket that
        cannot be opened or written to)."""
        self.health.queries += 1
        self._in_flight += 1
        sent = Sent(self, receiver, request, monotonic())
        if self._closed:
            self._fail(sent, f"{self.upstream}: closing")
            return
        if self.upstream.tcp:
            self._over_tcp(sent)
            return
        try:
            port = self._draw()
            ident = self._ids.next16()
            while ident in port.pending:
                ident = self._ids.next16()
            assert port.socket is not None
            port.socket.send(build_query(ident, request))
        except OSError as err:
            self._fail(sent, f"{self.upstream}: {err}")
            return
        sent.port, sent.ident = port, ident
        port.pending[ident] = sent
        self._deadlines.add(sent)

    def _draw(self) -> Port:
        index = self._draws.next16() & self._mask
        port = self._slots[index]
        if port is None or port.uses >= RENEW_AFTER:
            if port is not None:
                port.retired = True
                if not port.pending and port.socket is not None:
                    port.socket.close()
            port = Port(index)
            port.socket = self._open_udp(
                self.upstream,
                lambda data: self._on_datagram(port, data),
                lambda err: self._on_error(port, err),
            )
            self._slots[index] = port
        port.uses += 1
        return port

    def _on_datagram(self, port: Port, data: bytes) -> None:
        if len(data) < HEADER_SIZE or not data[2] & QR:
            return
        sent = port.pending.get(data[0] << 8 | data[1])
        if sent is None or not answers_question(data, sent.request.question):
            return  # late, forged or for another question: the wait goes on
        port.done(sent.ident)
        self._deadlines.remove(sent)
        self._received(sent, data)

    def _received(self, sent: Sent, data: bytes) -> None:
        try:
            reply = read_reply(data)
        except WireError as err:
            self._bad(sent, f"malformed reply: {err}")
            return
        if reply.flags & TC_BIT and sent.port is not None:
            self._over_tcp(sent)
            return
        self._in_flight -= 1
        self.health.consecutive_failures = 0
        sent.receiver.on_reply(self, reply, monotonic() - sent.started)
        self._maybe_close()

    def _on_error(self, port: Port, err: OSError) -> None:
        # A socket that reported an error (ICMP port unreachable, a failed send) is not used again:
        # uvloop stops watching a socket once it signals an error, so replies to later queries on it
        # would never be read. The next draw for its slot opens a fresh one.
        self._drop(port, f"{self.upstream}: {err}")

    def _drop(self, port: Port, reason: str) -> None:
        """Take ``port`` out of the pool, fail the queries waiting on it and close its socket."""
        port.retired = True
        if self._slots[port.slot] is port:
            self._slots[port.slot] = None
        for sent in list(port.pending.values()):
            port.done(sent.ident)
            self._deadlines.remove(sent)
            self._fail(sent, reason)
        if port.socket is not None:
            port.socket.close()

    def expired(self, sent: Sent) -> None:
        """The forwarder's deadlines ran out for ``sent``."""
        if sent.port is not None:
            sent.port.done(sent.ident)
        self._fail(sent, f"{self.upstream}: no reply within {self.timeout:g}s")

    def _over_tcp(self, sent: Sent) -> None:
        sent.port = None  # a TCP reply is matched by its connection, not by a socket's table
        sent.ident = self._ids.next16()
        query = build_query(sent.ident, sent.request)
        task = self._tcp_exchange(self.upstream, query, self.timeout)
        self._tcp.add(task)
        task.add_done_callback(lambda done: self._tcp_done(sent, done))

    def _tcp_done(self, sent: Sent, task: asyncio.Task[bytes] | asyncio.Future[bytes]) -> None:
        self._tcp.discard(task)
        if task.cancelled():
            self._fail(sent, f"{self.upstream}: closing")
            return
        err = task.exception()
        if isinstance(err, TimeoutError):
            self._fail(sent, f"{self.upstream}: no TCP reply within {self.timeout:g}s")
        elif err is not None:
            self._fail(sent, f"{self.upstream}: TCP: {err}")
        elif len(data := task.result()) < HEADER_SIZE or data[0] << 8 | data[1] != sent.ident:
            self._bad(sent, "TCP reply with the wrong ID")
        elif not answers_question(data, sent.request.question):
            self._bad(sent, "TCP reply to another question")
        else:
            self._received(sent, data)

    def _bad(self, sent: Sent, reason: str) -> None:
        self.bad_replies += 1
        self._fail(sent, f"{self.upstream}: {reason}")

    def _fail(self, sent: Sent, reason: str) -> None:
        self._in_flight -= 1
        health = self.health
        health.errors += 1
        health.consecutive_failures += 1
        if health.consecutive_failures >= DOWN_AFTER and not health.down and not self._retiring:
            health.down = True
            log.warning("upstream %s marked down after %d failures; probing it", self.upstream, DOWN_AFTER)
            self._probe = asyncio.get_running_loop().create_task(
                self._probe_until_up(), name=f"probe {self.upstream}"
            )
        sent.receiver.on_failure(self, reason, monotonic() - sent.started)
        self._maybe_close()

    def ask(self, question: bytes) -> asyncio.Future[UpstreamReply]:
        """``question``'s reply as a future, for the rare askers (probes, loop detection); a failure is
        an ``UpstreamError``."""
        future: asyncio.Future[UpstreamReply] = asyncio.get_running_loop().create_future()
        self.send(_Awaited(future), Request(question, False, False))
        return future

    async def _probe_until_up(self) -> None:
        interval = PROBE_INTERVAL
        while self.health.down:
            await asyncio.sleep(interval)
            try:
                await self.ask(ROOT_NS_QUESTION)
            except UpstreamError:
                interval = min(interval * 2, PROBE_INTERVAL_MAX)
                continue
            self.health.down = False
            self.health.consecutive_failures = 0
            log.info("upstream %s answers again", self.upstream)

    def retire(self) -> None:
        """Close once the queries already sent have their outcome (a new configuration dropped us)."""
        self._retiring = True
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._retiring and not self._in_flight and not self._closed:
            self.close()

    def close(self) -> None:
        """Close every socket; queries still in flight fail."""
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
        for task in list(self._tcp):
            task.cancel()
        for port in self._slots:
            if port is not None:
                self._drop(port, f"{self.upstream}: closing")


class UpstreamError(Exception):
    """No usable reply from this upstream (timeout, refused connection, malformed reply)."""


class _Awaited:
    """A receiver that completes a future."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[UpstreamReply]) -> None:
        self._future = future

    def on_reply(self, client: UpstreamClient, reply: UpstreamReply, seconds: float) -> None:
        if not self._future.done():
            self._future.set_result(reply)

    def on_failure(self, client: UpstreamClient, reason: str, seconds: float) -> None:
        if not self._future.done():
            self._future.set_exception(UpstreamError(reason))
            self._future.exception()  # retrieved: a probe nobody awaits any more stays quiet
