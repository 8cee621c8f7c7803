"""One DNS question over UDP, awaited with a timeout (falling back to TCP when truncated): the probe's
only client. The reply must carry our ID and our question; anything else on the socket is ignored."""

from __future__ import annotations

import asyncio
import random
import struct

from dnslib import DNSRecord

from kubedns_py.dnswire.walk import WireError, question_key


class QueryError(Exception):
    pass


def _same_question(data: bytes, question: bytes) -> bool:
    try:
        return question_key(data) == question
    except WireError:
        return False


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, ident: int, question: bytes) -> None:
        self.future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._ident = ident
        self._question = question

    def datagram_received(self, data: bytes, addr: object) -> None:
        if (
            len(data) >= 12
            and struct.unpack_from("!H", data)[0] == self._ident
            and _same_question(data, self._question)
            and not self.future.done()
        ):
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


async def ask(host: str, port: int, name: str, qtype: str, within: float, qclass: str = "IN") -> DNSRecord:
    """The parsed reply; QueryError on timeout, network error or an unreadable reply."""
    try:
        query = DNSRecord.question(name, qtype, qclass)
        query.header.id = random.getrandbits(16)
        wire = bytes(query.pack())
    except Exception as err:  # a name dnslib cannot encode; flags are checked, but never crash a probe
        raise QueryError(f"cannot ask {name!r}: {err}") from err
    question = question_key(wire)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Reply(query.header.id, question), remote_addr=(host, port)
            )
            try:
                transport.sendto(wire)
                data = await protocol.future
            finally:
                transport.close()
            if data[2] & 0x02:  # TC: the whole answer only over TCP
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                finally:
                    writer.close()
    except TimeoutError:
        raise QueryError(f"no answer from {host}:{port} within {within:g}s") from None
    except (OSError, asyncio.IncompleteReadError) as err:
        raise QueryError(f"{host}:{port}: {err}") from err
    try:
        return DNSRecord.parse(data)
    except Exception as err:  # dnslib raises several types on malformed input
        raise QueryError(f"unreadable reply from {host}:{port}: {err}") from err
