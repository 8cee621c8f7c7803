"""Many questions from one UDP socket with a bounded number outstanding: a load that adapts to the
server's speed (``window`` questions in flight against an upstream taking ``d`` seconds is about
``window / d`` a second) and needs no pacing by the clock."""

from __future__ import annotations

import asyncio

import dns.message

from tests.support.ports import HOST


class _Flood(asyncio.DatagramProtocol):
    """Questions sent by ID on one socket; each reply's rcode delivered to the question's future."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[int]] = {}

    def datagram_received(self, data: bytes, addr: object) -> None:
        future = self.waiting.pop(int.from_bytes(data[:2], "big"), None)
        if future is not None and not future.done():
            future.set_result(data[3] & 0x0F)


async def flood(
    port: int, names: list[str], window: int, reply_timeout: float, host: str = HOST
) -> list[int | None]:
    """Every name asked once (A), ``window`` at a time; per name its rcode, or None if no reply came
    within ``reply_timeout``. At most 65536 names: the index is the question's ID."""
    assert len(names) <= 0x10000
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Flood, remote_addr=(host, port))
    rcodes: list[int | None] = [None] * len(names)
    pending = iter(enumerate(names))

    async def worker() -> None:
        for ident, name in pending:
            future = protocol.waiting[ident] = loop.create_future()
            transport.sendto(dns.message.make_query(name, "A", id=ident).to_wire())
            try:
                async with asyncio.timeout(reply_timeout):
                    rcodes[ident] = await future
            except TimeoutError:
                protocol.waiting.pop(ident, None)

    try:
        await asyncio.gather(*(worker() for _ in range(window)))
    finally:
        transport.close()
    return rcodes
