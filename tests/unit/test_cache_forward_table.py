"""The cache's forwarding table, ``Forwarder`` and ``UpstreamClient``, over a fake transport: the test
sees every datagram sent, delivers replies and socket errors by hand and completes TCP exchanges.
Covered: which replies count (ID, socket, question, QR) and which are ignored while the wait goes on;
timeouts and errors moving to the next server, then NO_ANSWER; truncated replies retried over TCP;
REFUSED from a domain's server falling through to the default upstreams; health (down after two
failures in a row, then tried last); the budget (BUSY) and local-only domains; socket renewal, pool
sizes and distinct query IDs. Time is a fake clock; timeouts are expired by hand."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest

from kubedns_py.cache.forward import forwarder as forwarder_module
from kubedns_py.cache.forward import timers as timers_module
from kubedns_py.cache.forward import upstream as upstream_module
from kubedns_py.cache.forward.forwarder import MAX_POOL, MIN_POOL, Failure, Forwarder, Outcome
from kubedns_py.cache.forward.ids import RandomNumbers
from kubedns_py.cache.forward.routing import RouteTable
from kubedns_py.cache.forward.sockets import OnDatagram, OnError
from kubedns_py.cache.forward.upstream import Request
from kubedns_py.cache.servers import Upstream
from kubedns_py.dnswire.response import UpstreamReply
from tests.support.replies import question_wire, reply_to

TIMEOUT = 2.0
NAME = "www.example.com."
U1, U2 = Upstream("192.0.2.53"), Upstream("192.0.2.54")
DOMAIN = Upstream("10.96.0.10")  # serves in-addr.arpa
ANSWER = f"{NAME} 300 IN A 192.0.2.1"


class Clock:
    """``monotonic`` for the upstream clients and the forwarder's deadlines, moved by the test."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


class FakeSocket:
    def __init__(
        self,
        upstream: Upstream,
        port: int,
        on_datagram: OnDatagram,
        on_error: OnError,
        log: list[tuple[FakeSocket, bytes]],
    ) -> None:
        self.upstream = upstream
        self._log = log
        self.local_port = port
        self.deliver = on_datagram
        self.fail = on_error
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        assert not self.closed, "sent on a closed socket"
        self.sent.append(data)
        self._log.append((self, data))

    def close(self) -> None:
        self.closed = True


@dataclass
class TcpCall:
    upstream: Upstream
    query: bytes
    within: float
    future: asyncio.Future[bytes]


@dataclass
class Transport:
    """The fake opener and TCP exchange the forwarder is given."""

    sockets: list[FakeSocket] = field(default_factory=list)
    sent: list[tuple[FakeSocket, bytes]] = field(default_factory=list)  # every datagram, in order
    tcp: list[TcpCall] = field(default_factory=list)

    def open(self, upstream: Upstream, on_datagram: OnDatagram, on_error: OnError) -> FakeSocket:
        sock = FakeSocket(upstream, 40000 + len(self.sockets), on_datagram, on_error, self.sent)
        self.sockets.append(sock)
        return sock

    def exchange(self, upstream: Upstream, query: bytes, within: float) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.tcp.append(TcpCall(upstream, query, within, future))
        return future


class CountingDraws:
    """Socket choices 0, 1, 2, ...: each query on a socket of its own, predictably."""

    def __init__(self) -> None:
        self.n = -1

    def next16(self) -> int:
        self.n = (self.n + 1) & 0xFFFF
        return self.n


@dataclass
class Outcomes:
    """A ``done`` callback: what it was called with."""

    seen: list[Outcome] = field(default_factory=list)

    def __call__(self, outcome: Outcome) -> None:
        self.seen.append(outcome)

    @property
    def reply(self) -> UpstreamReply:
        assert len(self.seen) == 1, self.seen
        outcome = self.seen[0]
        assert isinstance(outcome, UpstreamReply), outcome
        return outcome


@dataclass
class Setup:
    clock: Clock
    transport: Transport
    forwarder: Forwarder
    observed: list[tuple[str, float, str]]

    @property
    def sent(self) -> list[tuple[FakeSocket, bytes]]:
        return self.transport.sent

    def forward(
        self,
        name: str = NAME,
        qtype: int | str = "A",
        cd: bool = False,
        do: bool = False,
        fallthrough: bool = True,
    ) -> Outcomes:
        done = Outcomes()
        wire = question_wire(name, qtype)
        self.forwarder.forward(wire[:-4], Request(wire, cd, do), done, fallthrough)
        return done

    def last(self) -> tuple[FakeSocket, bytes]:
        """The socket and datagram of the latest query sent over UDP."""
        return self.sent[-1]

    def expire(self) -> None:
        """Let the upstream timeout pass: what was sent so far times out, what that sends does not."""
        self.clock.now += TIMEOUT
        self.forwarder._deadlines.expire_due(self.clock())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(timers_module, "monotonic", clock)
    monkeypatch.setattr(upstream_module, "monotonic", clock)
    return clock


@asynccontextmanager
async def make(
    clock: Clock, routes: RouteTable | None = None, max_inflight: int = 150
) -> AsyncIterator[Setup]:
    transport = Transport()
    observed: list[tuple[str, float, str]] = []
    forwarder = Forwarder(
        routes or RouteTable(domains={}, default=(U1, U2)),
        max_inflight,
        TIMEOUT,
        lambda upstream, seconds, rcode: observed.append((upstream, seconds, rcode)),
        open_socket=transport.open,
        exchange_over_tcp=transport.exchange,
    )
    forwarder._draws = CountingDraws()  # type: ignore[assignment]
    try:
        yield Setup(clock, transport, forwarder, observed)
    finally:
        forwarder.close()
        await asyncio.sleep(0)  # one turn: a probe task cancelled by close() ends


@pytest.fixture
async def setup(clock: Clock) -> AsyncIterator[Setup]:
    async with make(clock) as made:
        yield made


def ident(data: bytes) -> int:
    return int(data[0] << 8 | data[1])


def answer(query: bytes, records: Sequence[str] = (ANSWER,), flags: int = 0) -> bytes:
    """The upstream's reply to ``query`` as sent (its ID and question), with ANSWER unless told."""
    return reply_to(query, answer=records, flags=flags)


def with_ident(data: bytes, new: int) -> bytes:
    return struct.pack("!H", new) + data[2:]


async def test_a_matching_reply_completes_the_exchange(setup: Setup) -> None:
    done = setup.forward()
    sock, query = setup.last()
    assert sock.upstream == U1 and setup.forwarder.budget.inflight == 1
    asked = dns.message.from_wire(query)
    assert asked.question[0].name == dns.name.from_text(NAME) and asked.flags & dns.flags.RD
    assert asked.edns == 0 and asked.payload == 1232 and not asked.ednsflags & dns.flags.DO
    sock.deliver(answer(query))
    assert done.reply.rcode == 0 and done.reply.counts == (1, 0, 0)
    assert setup.forwarder.budget.inflight == 0 and setup.forwarder.client(U1).in_flight == 0
    assert setup.observed == [(str(U1), 0.0, "NOERROR")]
    sock.deliver(answer(query))  # the same reply again: nothing waits for it any more
    assert len(done.seen) == 1 and len(setup.sent) == 1


async def test_the_cd_and_do_bits_go_upstream(setup: Setup) -> None:
    done = setup.forward(cd=True, do=True)
    sock, query = setup.last()
    asked = dns.message.from_wire(query)
    assert asked.flags & dns.flags.CD and asked.ednsflags & dns.flags.DO
    sock.deliver(answer(query))
    assert done.reply.rcode == 0


def flip_qr(data: bytes) -> bytes:
    return data[:2] + bytes([data[2] & 0x7F]) + data[3:]


def other_name(data: bytes) -> bytes:
    return data.replace(b"\x03www", b"\x03wwx", 1)


def uppercase_name(data: bytes) -> bytes:
    return data.replace(b"\x03www\x07example", b"\x03WWW\x07eXaMpLe", 1)


def other_ident(data: bytes) -> bytes:
    return with_ident(data, (ident(data) + 1) & 0xFFFF)


@pytest.mark.parametrize(
    ("qtype", "spoil"),
    [
        pytest.param("A", other_ident, id="wrong ID"),
        pytest.param("A", flip_qr, id="QR clear"),
        pytest.param("A", other_name, id="another name"),
        pytest.param("A", lambda data: data[:11], id="shorter than a header"),
        pytest.param(
            "A",
            lambda data: data.replace(question_wire(NAME), question_wire(NAME, "AAAA"), 1),
            id="AAAA for A",
        ),
        pytest.param(
            97,
            lambda data: data.replace(question_wire(NAME, 97), question_wire(NAME, 65), 1),
            id="type 65 for 97",
        ),
        pytest.param(
            65,
            lambda data: data.replace(question_wire(NAME, 65), question_wire(NAME, 97), 1),
            id="type 97 for 65",
        ),
        pytest.param(
            "A",
            lambda data: data.replace(question_wire(NAME), question_wire(NAME)[:-1] + b"\x03", 1),
            id="class CH for IN",
        ),
    ],
)
async def test_a_reply_that_does_not_match_is_ignored_and_the_wait_goes_on(
    setup: Setup, qtype: int | str, spoil: Callable[[bytes], bytes]
) -> None:
    done = setup.forward(qtype=qtype)
    sock, query = setup.last()
    good = answer(query, ()) if qtype != "A" else answer(query)
    bad = spoil(good)
    assert bad != good
    sock.deliver(bad)
    assert done.seen == [] and setup.forwarder.budget.inflight == 1
    assert setup.forwarder.client(U1).in_flight == 1 and setup.forwarder.bad_replies == 0
    sock.deliver(good)
    assert done.reply.wire == good and setup.forwarder.budget.inflight == 0


@pytest.mark.parametrize("qtype", ["A", 65, 97])
async def test_a_reply_spelling_the_name_in_another_case_counts(setup: Setup, qtype: int | str) -> None:
    done = setup.forward(qtype=qtype)
    sock, query = setup.last()
    spelled = uppercase_name(answer(query, ()))
    assert spelled != answer(query, ())
    sock.deliver(spelled)
    assert done.reply.wire == spelled


async def test_a_reply_on_another_socket_is_ignored(setup: Setup) -> None:
    first = setup.forward()
    sock1, query1 = setup.last()
    second = setup.forward("other.example.com.")
    sock2, query2 = setup.last()
    assert sock1 is not sock2 and sock1.upstream == sock2.upstream == U1
    sock2.deliver(answer(query1))
    assert first.seen == [] and second.seen == []
    sock1.deliver(answer(query1))
    sock2.deliver(reply_to(query2))
    assert first.reply.counts == (1, 0, 0) and second.reply.counts == (0, 0, 0)


async def test_a_late_reply_after_the_timeout_is_ignored(setup: Setup) -> None:
    done = setup.forward()
    sock1, query1 = setup.last()
    setup.expire()
    sock2, query2 = setup.last()
    assert sock2.upstream == U2 and done.seen == []
    assert setup.observed == [(str(U1), TIMEOUT, "error")]
    sock1.deliver(answer(query1))
    assert done.seen == [] and setup.forwarder.client(U1).health.consecutive_failures == 1
    sock2.deliver(answer(query2))
    assert done.reply.rcode == 0 and setup.observed[-1] == (str(U2), 0.0, "NOERROR")


async def test_every_server_timing_out_is_no_answer(setup: Setup) -> None:
    done = setup.forward()
    setup.expire()
    assert done.seen == [] and len(setup.sent) == 2  # the second server's query is not expired with it
    setup.expire()
    assert done.seen == [Failure.NO_ANSWER] and len(setup.sent) == 2
    assert setup.forwarder.budget.inflight == 0
    assert [(u, rcode) for u, _, rcode in setup.observed] == [(str(U1), "error"), (str(U2), "error")]


async def test_a_socket_error_fails_at_once_and_the_next_server_is_asked(setup: Setup) -> None:
    done = setup.forward()
    sock1, query1 = setup.last()
    sock1.fail(ConnectionRefusedError(111, "Connection refused"))
    sock2, query2 = setup.last()
    assert sock2.upstream == U2 and done.seen == []
    assert sock1.closed  # an event loop may stop watching a socket that reported an error
    assert setup.forwarder.client(U1).health.errors == 1
    sock1.deliver(answer(query1))  # too late
    sock2.deliver(answer(query2))
    assert done.reply.rcode == 0 and setup.forwarder.budget.inflight == 0
    setup.expire()  # nothing is left to time out
    assert len(done.seen) == 1 and len(setup.sent) == 2


async def test_a_truncated_reply_is_asked_again_over_tcp(setup: Setup) -> None:
    done = setup.forward()
    sock, query = setup.last()
    sock.deliver(answer(query, (), flags=dns.flags.TC))
    [tcp] = setup.transport.tcp
    assert (tcp.upstream, tcp.within) == (U1, TIMEOUT) and done.seen == []
    assert dns.message.from_wire(tcp.query).question == dns.message.from_wire(query).question
    tcp.future.set_result(answer(tcp.query))
    await asyncio.sleep(0)  # one turn: the future's callbacks run
    assert done.reply.counts == (1, 0, 0) and not done.reply.flags & dns.flags.TC
    assert setup.forwarder.budget.inflight == 0 and len(setup.sent) == 1


@pytest.mark.parametrize(
    ("outcome", "bad"),
    [
        pytest.param("wrong ID", 1, id="wrong ID"),
        pytest.param("another question", 1, id="another question"),
        pytest.param(ConnectionResetError(104, "reset"), 0, id="reset"),
        pytest.param(EOFError("closed early"), 0, id="closed early"),
        pytest.param(TimeoutError(), 0, id="timeout"),
    ],
)
async def test_a_failed_tcp_exchange_moves_to_the_next_server(
    setup: Setup, outcome: object, bad: int
) -> None:
    done = setup.forward()
    sock, query = setup.last()
    sock.deliver(answer(query, (), flags=dns.flags.TC))
    [tcp] = setup.transport.tcp
    if outcome == "wrong ID":
        tcp.future.set_result(other_ident(answer(tcp.query)))
    elif outcome == "another question":
        tcp.future.set_result(other_name(answer(tcp.query)))
    else:
        assert isinstance(outcome, BaseException)
        tcp.future.set_exception(outcome)
    await asyncio.sleep(0)  # one turn: the future's callbacks run
    assert done.seen == [] and setup.forwarder.bad_replies == bad
    sock2, query2 = setup.last()
    assert sock2.upstream == U2
    sock2.deliver(answer(query2))
    assert done.reply.rcode == 0 and setup.forwarder.budget.inflight == 0


async def test_a_tcp_server_is_asked_over_tcp_only(clock: Clock) -> None:
    tcp_only = Upstream("192.0.2.60", tcp=True)
    async with make(clock, RouteTable(domains={}, default=(tcp_only,))) as setup:
        done = setup.forward()
        assert setup.sent == []
        [tcp] = setup.transport.tcp
        tcp.future.set_result(answer(tcp.query))
        await asyncio.sleep(0)  # one turn: the future's callbacks run
        assert done.reply.counts == (1, 0, 0)


REVERSE = "10.0.96.10.in-addr.arpa."


@pytest.fixture
async def stub(clock: Clock) -> AsyncIterator[Setup]:
    async with make(clock, RouteTable(domains={"in-addr.arpa": (DOMAIN,)}, default=(U1,))) as made:
        yield made


async def test_refused_from_a_domain_server_falls_through_to_the_default_upstreams(stub: Setup) -> None:
    done = stub.forward(REVERSE, "PTR")
    sock, query = stub.last()
    assert sock.upstream == DOMAIN
    sock.deliver(reply_to(query, rcode=dns.rcode.REFUSED))
    assert done.seen == []
    sock2, query2 = stub.last()
    assert sock2.upstream == U1
    sock2.deliver(reply_to(query2, answer=[f"{REVERSE} 30 IN PTR kube-dns.kube-system.svc.cluster.local."]))
    assert done.reply.counts == (1, 0, 0)
    assert [(u, rcode) for u, _, rcode in stub.observed] == [(str(DOMAIN), "REFUSED"), (str(U1), "NOERROR")]
    assert stub.forwarder.budget.inflight == 0


async def test_refused_falls_through_once_and_then_is_the_answer(stub: Setup) -> None:
    done = stub.forward(REVERSE, "PTR")
    sock, query = stub.last()
    sock.deliver(reply_to(query, rcode=dns.rcode.REFUSED))
    sock2, query2 = stub.last()
    sock2.deliver(reply_to(query2, rcode=dns.rcode.REFUSED))
    assert done.reply.rcode == dns.rcode.REFUSED and len(stub.sent) == 2


async def test_a_question_kept_on_its_route_takes_refused_as_the_answer(stub: Setup) -> None:
    done = stub.forward(REVERSE, "PTR", fallthrough=False)  # serve's autopath records: never upstream
    sock, query = stub.last()
    sock.deliver(reply_to(query, rcode=dns.rcode.REFUSED))
    assert done.reply.rcode == dns.rcode.REFUSED and len(stub.sent) == 1
    assert stub.forwarder.budget.inflight == 0


async def test_refused_from_a_default_upstream_is_the_answer(stub: Setup) -> None:
    done = stub.forward()
    sock, query = stub.last()
    assert sock.upstream == U1
    sock.deliver(reply_to(query, rcode=dns.rcode.REFUSED))
    assert done.reply.rcode == dns.rcode.REFUSED and len(stub.sent) == 1


async def test_two_failures_in_a_row_mark_an_upstream_down_and_it_is_tried_last(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "PROBE_INTERVAL", 3600.0)  # no probe during the test
    health = setup.forwarder.client(U1).health
    for expected_down in (False, True):
        done = setup.forward()
        assert setup.last()[0].upstream == U1
        setup.expire()
        sock, query = setup.last()
        sock.deliver(answer(query))
        assert done.reply.rcode == 0 and health.down == expected_down
    # Down: the healthy server first; the down one only once that fails.
    done = setup.forward()
    assert setup.last()[0].upstream == U2
    setup.expire()
    sock, query = setup.last()
    assert sock.upstream == U1
    sock.deliver(answer(query))
    assert done.reply.rcode == 0


async def test_a_success_between_failures_keeps_an_upstream_up(setup: Setup) -> None:
    health = setup.forwarder.client(U1).health
    for fail in (True, False, True):
        done = setup.forward()
        if fail:
            setup.expire()
        sock, query = setup.last()
        sock.deliver(answer(query))
        assert done.reply.rcode == 0
    assert not health.down and health.errors == 2 and health.consecutive_failures == 1


async def test_a_route_past_its_share_of_the_budget_is_busy(clock: Clock) -> None:
    routes = RouteTable(domains={"in-addr.arpa": (DOMAIN,)}, default=(U1,))
    async with make(clock, routes, max_inflight=4) as setup:  # a reserve of 1 each, a pool of 2
        held = [setup.forward(f"n{i}.example.com.") for i in range(3)]
        busy = setup.forward("n3.example.com.")
        assert busy.seen == [Failure.BUSY] and len(setup.sent) == 3
        assert setup.forwarder.budget.shares["."].rejected == 1
        other = setup.forward(REVERSE, "PTR")  # the other route keeps its reserve
        assert other.seen == [] and setup.last()[0].upstream == DOMAIN
        sock, query = setup.sent[0]
        sock.deliver(answer(query, ()))
        assert held[0].reply.rcode == 0
        again = setup.forward("n3.example.com.")  # a slot came back
        assert again.seen == [] and len(setup.sent) == 5
        assert setup.forwarder.budget.inflight == 4


async def test_a_domain_without_servers_is_answered_locally(clock: Clock) -> None:
    routes = RouteTable(domains={"local.test": ()}, default=(U1,))
    async with make(clock, routes) as setup:
        done = setup.forward("db.LOCAL.test.")
        assert done.seen == [Failure.LOCAL_ONLY]
        assert setup.transport.sockets == [] and setup.forwarder.budget.inflight == 0


async def test_no_default_upstreams_is_no_answer_at_once(clock: Clock) -> None:
    async with make(clock, RouteTable(domains={}, default=())) as setup:
        done = setup.forward()
        assert done.seen == [Failure.NO_ANSWER] and setup.transport.sockets == []


async def test_a_socket_is_renewed_after_its_uses_and_closed_once_idle(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "RENEW_AFTER", 2)
    monkeypatch.setattr(forwarder_module, "MAX_POOL", 1)  # one socket at a time
    async with make(clock) as setup:
        first = [setup.forward(f"n{i}.example.com.") for i in range(2)]
        [old] = setup.transport.sockets
        assert len(old.sent) == 2
        third = setup.forward("n2.example.com.")
        assert len(setup.transport.sockets) == 2
        new = setup.transport.sockets[1]
        assert new.sent and new.local_port != old.local_port
        assert not old.closed  # its two queries still wait for their replies on it
        old.deliver(answer(old.sent[0]))
        assert not old.closed and first[0].reply.rcode == 0
        old.deliver(answer(old.sent[1]))
        assert old.closed and first[1].reply.rcode == 0
        new.deliver(answer(new.sent[0]))
        assert third.reply.rcode == 0
        fourth = setup.forward("n3.example.com.")
        new.deliver(answer(new.sent[1]))
        assert fourth.reply.rcode == 0 and not new.closed
        setup.forward("n4.example.com.")  # new is used up and idle: closed at once
        assert new.closed and len(setup.transport.sockets) == 3
        assert setup.forwarder.client(U1).local_ports() == [setup.transport.sockets[2].local_port]


async def test_a_socket_that_reported_an_error_is_replaced(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarder_module, "MAX_POOL", 1)  # one socket at a time
    async with make(clock) as setup:
        setup.forward("n0.example.com.")
        [refused] = setup.transport.sockets
        refused.fail(ConnectionRefusedError(111, "Connection refused"))
        assert refused.closed
        setup.forward("n1.example.com.")
        new = setup.transport.sockets[-1]
        assert new is not refused and new.sent and len(refused.sent) == 1
        assert setup.forwarder.client(U1).local_ports() == [new.local_port]


@pytest.mark.parametrize(
    ("upstreams", "allowance", "expected"),
    [(1, 4096, 256), (3, 1000, 256), (5, 1000, 128), (7, 300, 32), (100, 4096, 32), (1000, 16, 16)],
)
async def test_the_socket_pool_is_a_power_of_two_within_the_allowance(
    clock: Clock, upstreams: int, allowance: int, expected: int
) -> None:
    servers = tuple(Upstream(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(upstreams))
    async with make(clock, RouteTable(domains={}, default=servers)) as setup:
        setup.forwarder._max_sockets = allowance
        sizes = {len(setup.forwarder.client(server)._slots) for server in servers}
        assert sizes == {expected}
        assert expected & (expected - 1) == 0 and MIN_POOL <= expected <= MAX_POOL
        assert expected * upstreams <= max(allowance, MIN_POOL * upstreams)


def test_ids_are_distinct_over_a_thousand_draws_and_across_batches() -> None:
    ids = RandomNumbers(distinct=True)
    drawn = [ids.next16() for _ in range(20_000)]  # several batches
    assert len(set(drawn[:1000])) == 1000
    last_seen: dict[int, int] = {}
    for position, number in enumerate(drawn):
        assert position - last_seen.get(number, -1000) >= 1000, (number, position)
        last_seen[number] = position


async def test_ids_in_flight_on_one_socket_are_distinct(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarder_module, "MAX_POOL", 1)
    async with make(clock, max_inflight=4000) as setup:
        outcomes = [setup.forward(f"n{i}.example.com.") for i in range(1000)]
        [sock] = setup.transport.sockets
        assert len({ident(data) for data in sock.sent}) == 1000
        for data in sock.sent:
            sock.deliver(reply_to(data))
        assert all(len(done.seen) == 1 for done in outcomes)
        assert setup.forwarder.budget.inflight == 0
