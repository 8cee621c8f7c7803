"""A scriptable DNS nameserver on loopback, playing good and bad upstreams for the caching forwarder.

Replies are scripted per (name, type) with a default; fault helpers wrap an answer:

    ns = TestNameserver(default=nxdomain())
    ns.script("www.example.com", "A", answer("www.example.com. 300 IN A 192.0.2.1"))
    ns.script("slow.example.com", None, slow(0.5, answer("slow.example.com. 60 IN A 192.0.2.2")))

Use `async with ns:` inside an async test, or `with run_in_thread(ns):` from sync tests whose clients
block. UDP and TCP share one port. Every query received is recorded (see Query, queries_for and
wait_for_queries), and the script may be changed from any thread while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import itertools
import os
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, cast

from dnslib import EDNS0, QTYPE, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from tests.support.ports import HOST

EDNS_PAYLOAD = 1232  # what we advertise back; the client's own size decides truncation
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 0, 2, 3, 5
QTYPE_OPT = 41

_Key = tuple[str, str | None]


@dataclass(frozen=True)
class Behaviour:
    """How to reply. Build with answer(), nxdomain(), ... and wrap with the fault helpers (slow, dead...).

    In record lines "{qname}" stands for the name as asked and "{zone}" for its parent, so one
    behaviour can serve any name (e.g. as the default).
    """

    rcode: int = RCODE_NOERROR
    answer: tuple[str, ...] = ()  # zone-file lines, e.g. "www.example.com. 300 IN A 192.0.2.1"
    authority: tuple[str, ...] = ()
    aa: bool = False
    delay: float = 0.0
    dead: bool = False
    truncate: bool = False  # UDP: TC=1 and no records; TCP: the full reply
    partial: bool = False  # TC=1 over TCP too, with the records: an answer larger than a message
    garbage: bool = False
    wrong_id: bool = False
    mismatched_question: bool = False
    then_right: bool = False  # after a wrong_id / mismatched_question reply, send the right one too
    drop_first: int = 0

    def __post_init__(self) -> None:
        # Fail in the test that scripts a bad line, not later inside the server task.
        try:
            _records(self.answer + self.authority, "x.example.")
        except Exception as exc:
            raise ValueError(f"unparseable record line in {self.answer + self.authority}: {exc}") from exc


def answer(*lines: str, aa: bool = False) -> Behaviour:
    return Behaviour(answer=lines, aa=aa)


def _soa(zone: str | None, minimum: int, ttl: int | None) -> str:
    owner = zone if zone is not None else "{zone}"
    ttl = minimum if ttl is None else ttl
    return f"{owner} {ttl} IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 {minimum}"


def nxdomain(
    zone: str | None = None, minimum: int = 60, soa_ttl: int | None = None, aa: bool = False
) -> Behaviour:
    """NXDOMAIN with the zone's SOA in authority (zone defaults to the asked name's parent)."""
    return Behaviour(rcode=RCODE_NXDOMAIN, authority=(_soa(zone, minimum, soa_ttl),), aa=aa)


def nodata(
    zone: str | None = None, minimum: int = 60, soa_ttl: int | None = None, aa: bool = False
) -> Behaviour:
    """NOERROR, no answer, the zone's SOA in authority."""
    return Behaviour(authority=(_soa(zone, minimum, soa_ttl),), aa=aa)


def servfail() -> Behaviour:
    return Behaviour(rcode=RCODE_SERVFAIL)


def refused() -> Behaviour:
    return Behaviour(rcode=RCODE_REFUSED)


def cname_chain(*names: str, address: str = "192.0.2.1", ttl: int = 300) -> Behaviour:
    """names[0] CNAME names[1] ... CNAME names[-1], which has an A record for address."""
    lines = [f"{a} {ttl} IN CNAME {b}" for a, b in itertools.pairwise(names)]
    return answer(*lines, f"{names[-1]} {ttl} IN A {address}")


def big_answer(name: str, count: int = 200, ttl: int = 300) -> Behaviour:
    """count A records for name: too big for UDP (512 or EDNS 1232 bytes), so it needs TCP."""
    return answer(
        *(f"{name} {ttl} IN A 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(count))
    )


def slow(seconds: float, base: Behaviour) -> Behaviour:
    """Reply after a delay; other queries are served meanwhile."""
    return dataclasses.replace(base, delay=seconds)


def dead() -> Behaviour:
    """Never reply (UDP or TCP); the TCP connection stays open."""
    return Behaviour(dead=True)


def truncate(base: Behaviour) -> Behaviour:
    return dataclasses.replace(base, truncate=True)


def partial(base: Behaviour) -> Behaviour:
    """TC over UDP (no records) and over TCP (with the records): part of a larger answer."""
    return dataclasses.replace(base, truncate=True, partial=True)


def wrong_id(base: Behaviour, then_right: bool = False) -> Behaviour:
    """Reply with ID+1; with then_right, follow with the correct reply."""
    return dataclasses.replace(base, wrong_id=True, then_right=then_right)


def mismatched_question(base: Behaviour, then_right: bool = False) -> Behaviour:
    """Reply with the right ID but the question name prefixed by "mismatch."."""
    return dataclasses.replace(base, mismatched_question=True, then_right=then_right)


def garbage() -> Behaviour:
    """Reply with bytes that carry the query's ID but never parse."""
    return Behaviour(garbage=True)


def drop_first(n: int, base: Behaviour) -> Behaviour:
    """Ignore the first n queries matched by this script entry, then behave as base."""
    return dataclasses.replace(base, drop_first=n)


@dataclass(frozen=True)
class Query:
    """One query as received."""

    name: str  # as asked (case kept), with the trailing dot
    rtype: str  # "A", "AAAA", ...
    transport: str  # "udp" or "tcp"
    time: float  # time.monotonic()
    id: int
    rd: bool
    cd: bool
    ad: bool
    edns: bool
    do: bool
    payload: int | None  # the EDNS UDP size the client advertised
    source_port: int  # the client's port it came from


def _norm(name: str) -> str:
    return name.lower().rstrip(".") + "."


def _parent(name: str) -> str:
    labels = name.rstrip(".").split(".")
    return ".".join(labels[1:]) + "." if len(labels) > 1 else "."


def _records(lines: tuple[str, ...], asked: str) -> list[Any]:
    text = "\n".join(lines).replace("{qname}", asked).replace("{zone}", _parent(asked))
    return cast(list[Any], RR.fromZone(text)) if text else []


def _garbage(query_id: int) -> bytes:
    # The query's ID and QR, so a client takes it as the reply, then a header promising 65535 questions
    # that never come: unparseable for certain, whereas pure random bytes could parse by chance.
    return struct.pack("!HHHHHH", query_id, 0x8180, 0xFFFF, 0xFFFF, 0, 0) + os.urandom(16)


def _wire(
    request: Any, b: Behaviour, query: Query, *, qname: str | None = None, qid: int | None = None
) -> bytes:
    header = DNSHeader(qr=1, aa=int(b.aa), ra=1, rd=request.header.rd, rcode=b.rcode)
    header.id = request.header.id if qid is None else qid  # set after: DNSHeader(id=0) would randomise
    question = request.q if qname is None else DNSQuestion(DNSLabel(qname), request.q.qtype, request.q.qclass)
    reply = DNSRecord(header, q=question)
    for rr in _records(b.answer, query.name):
        reply.add_answer(rr)
    for rr in _records(b.authority, query.name):
        reply.add_auth(rr)
    if query.edns:
        reply.add_ar(EDNS0(udp_len=EDNS_PAYLOAD, flags="do" if query.do else ""))
    wire = bytes(reply.pack())
    limit = max(512, query.payload or 0)
    if query.transport == "udp" and (b.truncate or len(wire) > limit):
        reply.rr, reply.auth = [], []
        reply.header.tc = 1
        wire = bytes(reply.pack())
    elif b.partial:
        reply.header.tc = 1
        wire = bytes(reply.pack())
    return wire


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, ns: TestNameserver) -> None:
        self.ns = ns
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        transport = self.transport
        assert transport is not None

        def send(wire: bytes) -> None:
            if not transport.is_closing():
                transport.sendto(wire, addr)

        self.ns._spawn(self.ns._serve(data, "udp", send, addr[1]))


class TestNameserver:
    """A scripted DNS server on HOST, UDP and TCP on the same port (port 0 until started)."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, default: Behaviour | None = None, *, host: str = HOST) -> None:
        self.host = host
        self.port = 0
        self._cond = threading.Condition()  # guards the script and the query log; loop and test threads
        self._default = default if default is not None else refused()
        self._script: dict[_Key, Behaviour] = {}
        self._seen: dict[_Key | None, int] = {}  # queries matched per script entry, for drop_first
        self._queries: list[Query] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._changed: asyncio.Event | None = None  # wakes async waiters on the server's own loop
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """dnsmasq style, as in --server=127.0.0.1#PORT."""
        return f"{self.host}#{self.port}"

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    # -- script ------------------------------------------------------------------------------------

    def script(self, name: str, rtype: str | None, behaviour: Behaviour) -> TestNameserver:
        """Set the reply for name (any case) and rtype (None: every type). Resets its drop_first count."""
        key = (_norm(name), rtype.upper() if rtype else None)
        with self._cond:
            self._script[key] = behaviour
            self._seen.pop(key, None)
        return self

    def unscript(self, name: str, rtype: str | None = None) -> None:
        with self._cond:
            key = (_norm(name), rtype.upper() if rtype else None)
            self._script.pop(key, None)
            self._seen.pop(key, None)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._cond:
            self._default = behaviour
            self._seen.pop(None, None)

    # -- query log ---------------------------------------------------------------------------------

    @property
    def queries(self) -> list[Query]:
        with self._cond:
            return list(self._queries)

    def queries_for(self, name: str | None, rtype: str | None = None) -> list[Query]:
        """Queries for name (any case; None: all) and rtype (None: all types), oldest first."""
        with self._cond:
            return self._select(name, rtype)

    def clear_queries(self) -> None:
        with self._cond:
            self._queries.clear()

    def wait_for_queries(
        self, n: int, name: str | None = None, rtype: str | None = None, timeout: float = 5.0
    ) -> list[Query]:
        """Block until at least n matching queries were received; return them. For sync tests."""
        if self._loop is not None and threading.get_ident() == self._loop_thread:
            raise RuntimeError("wait_for_queries would block the server's loop; await wait_for_queries_async")
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._select(name, rtype)) >= n, timeout):
                raise self._timeout(n, name, rtype, timeout)
            return self._select(name, rtype)

    async def wait_for_queries_async(
        self,
        n: int,
        name: str | None = None,
        rtype: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 -- same signature as the blocking wait_for_queries
    ) -> list[Query]:
        """Await at least n matching queries; return them. For async tests."""
        if asyncio.get_running_loop() is not self._loop or self._changed is None:
            # Another loop (e.g. the server is in run_in_thread): the condition variable works anywhere.
            return await asyncio.to_thread(self.wait_for_queries, n, name, rtype, timeout)
        try:
            async with asyncio.timeout(timeout):
                while len(found := self.queries_for(name, rtype)) < n:
                    self._changed.clear()
                    await self._changed.wait()
                return found
        except TimeoutError:
            raise self._timeout(n, name, rtype, timeout) from None

    def _select(self, name: str | None, rtype: str | None) -> list[Query]:
        want = _norm(name) if name is not None else None
        return [
            q
            for q in self._queries
            if (want is None or _norm(q.name) == want) and (rtype is None or q.rtype == rtype.upper())
        ]

    def _timeout(self, n: int, name: str | None, rtype: str | None, timeout: float) -> TimeoutError:
        got = [(q.name, q.rtype, q.transport) for q in self.queries]
        want = f"{n} queries for {name or '*'}/{rtype or '*'}"
        return TimeoutError(f"wanted {want} within {timeout}s; got {got}")

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> TestNameserver:
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread, self._changed = loop, threading.get_ident(), asyncio.Event()
        for _ in range(50):
            # The kernel picks a free UDP port; its TCP twin may be taken by someone else, so retry.
            udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, 0))
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, self.host, port)
            except OSError as exc:
                udp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            self._udp, self.port = udp, port
            return self
        raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    async def __aenter__(self) -> TestNameserver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- serving -----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # One task per query so a slow or dead reply never holds up the others; kept for stop().
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(cast("asyncio.Task[None]", task))
        self._writers.add(writer)
        source_port = writer.get_extra_info("peername")[1]

        def send(wire: bytes) -> None:
            if not writer.is_closing():
                writer.write(struct.pack("!H", len(wire)) + wire)

        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                self._spawn(self._serve(await reader.readexactly(size), "tcp", send, source_port))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._tasks.discard(cast("asyncio.Task[None]", task))

    def _match(self, query: Query) -> tuple[Behaviour, int]:
        """Log the query, pick its behaviour, and count it against that script entry."""
        name = _norm(query.name)
        with self._cond:
            self._queries.append(query)
            self._cond.notify_all()
            keys: list[_Key] = [(name, query.rtype), (name, None)]
            key = next((k for k in keys if k in self._script), None)
            behaviour = self._script[key] if key is not None else self._default
            index = self._seen.get(key, 0)
            self._seen[key] = index + 1
        if self._changed is not None:
            self._changed.set()
        return behaviour, index

    async def _serve(
        self, data: bytes, transport: str, send: Callable[[bytes], None], source_port: int
    ) -> None:
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return  # not a query we can read: say nothing, as a confused server might
        if not request.questions:
            return
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE_OPT), None)
        qtype = QTYPE.get(request.q.qtype)
        query = Query(
            name=str(request.q.qname),
            rtype=str(qtype) if isinstance(qtype, str) else f"TYPE{request.q.qtype}",
            transport=transport,
            time=time.monotonic(),
            id=int(request.header.id),
            rd=bool(request.header.rd),
            cd=bool(request.header.cd),
            ad=bool(request.header.ad),
            edns=opt is not None,
            do=opt is not None and bool(opt.ttl & 0x8000),
            payload=int(opt.rclass) if opt is not None else None,
            source_port=source_port,
        )
        b, index = self._match(query)
        if b.dead or index < b.drop_first:
            return
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.garbage:
            send(_garbage(query.id))
            return
        if b.wrong_id:
            send(_wire(request, b, query, qid=(query.id + 1) & 0xFFFF))
        if b.mismatched_question:
            send(_wire(request, b, query, qname="mismatch." + query.name))
        if (b.wrong_id or b.mismatched_question) and not b.then_right:
            return
        send(_wire(request, b, query))


@contextlib.contextmanager
def run_in_thread(ns: TestNameserver, timeout: float = 10.0) -> Iterator[TestNameserver]:
    """Serve ns from an event loop in a daemon thread, for sync tests with blocking clients."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"nameserver-{id(ns):x}", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(ns.start(), loop).result(timeout)
        try:
            yield ns
        finally:
            asyncio.run_coroutine_threadsafe(ns.stop(), loop).result(timeout)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
