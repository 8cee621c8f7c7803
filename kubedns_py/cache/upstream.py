"""Talking to one upstream server, and knowing whether it is worth talking to.

Queries share one connected UDP socket per upstream, told apart by random IDs; a reply counts only if
its ID is pending and its question is the one asked (a spoofed or stale datagram is ignored, and the
wait goes on until the timeout). A truncated UDP reply is asked again over TCP. An upstream that fails
``DOWN_AFTER`` times in a row is marked down and probed with ``. NS`` until any well-formed reply
comes back (CoreDNS's rule: an answering server is alive, whatever its rcode).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from dataclasses import dataclass, field

from kubedns_py.cache.settings import Upstream
from kubedns_py.dnswire.header import CD_BIT, RD_BIT, TC_BIT
from kubedns_py.dnswire.reply import FORWARDER_PAYLOAD
from kubedns_py.dnswire.splice import raw_opt
from kubedns_py.dnswire.walk import HEADER_SIZE, WireError, question_key

log = logging.getLogger(__name__)

DOWN_AFTER = 2
PROBE_INTERVAL = 0.5
PROBE_INTERVAL_MAX = 5.0
ROOT_NS_QUESTION = b"\x00\x00\x02\x00\x01"  # ". IN NS"
MAX_PENDING = 30_000  # of 65,536 IDs: finding a free one stays quick


class UpstreamError(Exception):
    """No usable reply from this upstream (timeout, refused connection, malformed reply)."""


class BadReply(UpstreamError):
    """The upstream answered, but with something that is not a readable reply to our question."""


def build_query(ident: int, question: bytes, checking_disabled: bool, dnssec_ok: bool) -> bytes:
    """Our query upstream: RD set, CD as the client asked, EDNS0 with our payload and the DO bit."""
    flags = RD_BIT | (CD_BIT if checking_disabled else 0)
    header = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 1)
    return header + question + raw_opt(FORWARDER_PAYLOAD, dnssec_ok=dnssec_ok)


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


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._client.on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # A connected UDP socket learns of ICMP port-unreachable here: fail fast instead of timing out.
        self._client.fail_all(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.transport_lost()


@dataclass
class UpstreamClient:
    upstream: Upstream
    timeout: float = 2.0
    health: Health = field(default_factory=Health)
    _transport: asyncio.DatagramTransport | None = None
    _pending: dict[int, tuple[bytes, asyncio.Future[bytes]]] = field(default_factory=dict)
    _probe: asyncio.Task[None] | None = None
    _retiring: bool = False
    _in_flight: int = 0
    _opening: asyncio.Future[asyncio.DatagramTransport] | None = None

    async def exchange(
        self, question: bytes, checking_disabled: bool = False, dnssec_ok: bool = False
    ) -> bytes:
        """The upstream's reply to ``question`` (question-section bytes, name lower-cased)."""
        self.health.queries += 1
        self._in_flight += 1
        try:
            if self.upstream.tcp:
                reply = await self._exchange_tcp(question, checking_disabled, dnssec_ok)
            else:
                reply = await self._exchange_udp(question, checking_disabled, dnssec_ok)
                if struct.unpack_from("!H", reply, 2)[0] & TC_BIT:
                    reply = await self._exchange_tcp(question, checking_disabled, dnssec_ok)
        except UpstreamError:
            self._failed()
            raise
        finally:
            self._in_flight -= 1
            if self._retiring and not self._in_flight:
                self.close()
        self.health.consecutive_failures = 0
        return reply

    async def _exchange_udp(self, question: bytes, checking_disabled: bool, dnssec_ok: bool) -> bytes:
        transport = self._transport or await self._open()
        if len(self._pending) >= MAX_PENDING:
            raise UpstreamError(f"{self.upstream}: {MAX_PENDING} questions already waiting")
        ident = secrets.randbits(16)  # unpredictable: a forged reply must guess it (RFC 5452)
        while ident in self._pending:
            ident = secrets.randbits(16)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[ident] = (question, future)
        try:
            transport.sendto(build_query(ident, question, checking_disabled, dnssec_ok))
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise UpstreamError(f"{self.upstream}: no reply within {self.timeout:g}s") from None
        except OSError as err:
            raise UpstreamError(f"{self.upstream}: {err}") from err
        finally:
            self._pending.pop(ident, None)

    async def _open(self) -> asyncio.DatagramTransport:
        """The shared UDP socket, opened once however many questions arrive while it opens."""
        if self._opening is not None:
            return await asyncio.shield(self._opening)
        loop = asyncio.get_running_loop()
        opening = self._opening = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=self.upstream.address
            )
        except OSError as err:
            failure = UpstreamError(f"{self.upstream}: {err}")
            opening.set_exception(failure)
            opening.exception()  # marked retrieved: the questions waiting on it get it too
            raise failure from err
        finally:
            self._opening = None
        self._transport = transport
        opening.set_result(transport)
        return transport

    async def _exchange_tcp(self, question: bytes, checking_disabled: bool, dnssec_ok: bool) -> bytes:
        ident = secrets.randbits(16)
        query = build_query(ident, question, checking_disabled, dnssec_ok)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(*self.upstream.address)
                writer.write(struct.pack("!H", len(query)) + query)
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await reader.readexactly(length)
        except TimeoutError:
            raise UpstreamError(f"{self.upstream}: no TCP reply within {self.timeout:g}s") from None
        except (OSError, asyncio.IncompleteReadError) as err:
            raise UpstreamError(f"{self.upstream}: TCP: {err}") from err
        finally:
            if writer is not None:
                writer.close()
        if len(reply) < HEADER_SIZE or struct.unpack_from("!H", reply)[0] != ident:
            raise BadReply(f"{self.upstream}: TCP reply with the wrong ID")
        try:
            if question_key(reply) != question:
                raise BadReply(f"{self.upstream}: TCP reply to another question")
        except WireError as err:
            raise BadReply(f"{self.upstream}: malformed TCP reply: {err}") from err
        return reply

    def on_datagram(self, data: bytes) -> None:
        if len(data) < HEADER_SIZE or not data[2] & 0x80:
            return
        pending = self._pending.get(struct.unpack_from("!H", data)[0])
        if pending is None:
            return
        question, future = pending
        try:
            if question_key(data) != question:
                return
        except WireError:
            return
        if not future.done():
            future.set_result(data)

    def fail_all(self, exc: Exception) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(UpstreamError(f"{self.upstream}: {exc}"))

    def transport_lost(self) -> None:
        self._transport = None

    def _failed(self) -> None:
        health = self.health
        health.errors += 1
        health.consecutive_failures += 1
        if health.consecutive_failures >= DOWN_AFTER and not health.down:
            health.down = True
            log.warning("upstream %s marked down after %d failures; probing it", self.upstream, DOWN_AFTER)
            self._probe = asyncio.create_task(self._probe_until_up(), name=f"probe {self.upstream}")

    async def _probe_until_up(self) -> None:
        interval = PROBE_INTERVAL
        while self.health.down:
            await asyncio.sleep(interval)
            try:
                exchange = self._exchange_tcp if self.upstream.tcp else self._exchange_udp
                await exchange(ROOT_NS_QUESTION, False, False)
            except UpstreamError:
                interval = min(interval * 2, PROBE_INTERVAL_MAX)
                continue
            self.health.down = False
            self.health.consecutive_failures = 0
            log.info("upstream %s answers again", self.upstream)

    def retire(self) -> None:
        """Close once the questions already sent have their answers (a new configuration dropped us)."""
        self._retiring = True
        if not self._in_flight:
            self.close()

    def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._transport is not None:
            self._transport.close()
        self.fail_all(ConnectionAbortedError("closing"))
