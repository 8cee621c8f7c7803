"""Who holds a component's TCP connections, and fair limits on them (RFC 7766 §6.2).

One client may hold at most ``max_per_client`` connections; past that its newcomers are closed at
once, so a single client cannot take every slot. When all ``max_connections`` are open, the connection
idle longest (nothing in flight, the least recently asked) is closed to make room for a newcomer (a
server may close idle connections, and clients must be ready to reconnect); only when none is idle is
the newcomer refused. Idle longest rather than open longest: a server that answers at once has nothing
in flight between two questions, so a long-lived busy connection would look idle and go first. Above
three quarters of the limit the server is under pressure: idle connections then get a short idle
timeout, until the count is back under half (the gap keeps a count hovering at the mark from
rescanning the connections on every arrival).

Every listener of a component shares one ``TcpConnections``; it is also the collector of their
Prometheus metrics, read when scraped.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

IDLE_TIMEOUT = 10.0
PRESSED_IDLE_TIMEOUT = 1.0
MAX_CONNECTIONS = 1000


class Connection:
    """One admitted connection: its client, its queries in flight, and its idle timer while it waits
    for the next query (``None`` otherwise)."""

    __slots__ = ("_owner", "client", "close", "in_flight", "timer")

    def __init__(self, owner: TcpConnections, client: str, close: Callable[[], None]) -> None:
        self._owner = owner
        self.client = client
        self.close = close
        self.in_flight: set[asyncio.Task[None]] = set()
        self.timer: asyncio.Timeout | None = None

    @property
    def idle(self) -> bool:
        return not self.in_flight

    def answered(self, task: asyncio.Task[None]) -> None:
        """Done callback of each query's task: once nothing is in flight, the connection is idle, and
        under pressure its wait for the next query is cut short."""
        self.in_flight.discard(task)
        if not self.in_flight and self._owner.pressed:
            self.hurry()

    def hurry(self) -> None:
        timer = self.timer
        if timer is not None:
            deadline = asyncio.get_running_loop().time() + self._owner.pressed_idle_timeout
            when = timer.when()
            if when is None or when > deadline:
                timer.reschedule(deadline)


class TcpConnections(Collector):
    def __init__(
        self,
        server: str,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = 0,
        idle_timeout: float = IDLE_TIMEOUT,
        pressed_idle_timeout: float = PRESSED_IDLE_TIMEOUT,
    ) -> None:
        self._server = server
        self.max_connections = max_connections
        self.max_per_client = max_per_client  # 0: no limit
        self._idle_timeout = idle_timeout
        self.pressed_idle_timeout = pressed_idle_timeout
        self._pressure_above = max_connections * 3 // 4
        self._pressure_below = max_connections // 2
        self.pressed = False
        self._open: OrderedDict[Connection, None] = OrderedDict()  # least recently asked first
        self._per_client: dict[str, int] = {}
        self.rejected = {"client_limit": 0, "limit": 0}
        self.closed_idle = {"evicted": 0, "timeout": 0, "unread": 0}

    def __len__(self) -> int:
        return len(self._open)

    @property
    def idle_timeout(self) -> float:
        """How long a connection may wait for its next query, now."""
        return self.pressed_idle_timeout if self.pressed else self._idle_timeout

    def admit(self, client: str, close: Callable[[], None]) -> Connection | None:
        """A ``Connection`` for a newcomer from ``client``, or ``None`` when it must be refused."""
        held = self._per_client.get(client, 0)
        if self.max_per_client and held >= self.max_per_client:
            self.rejected["client_limit"] += 1
            return None
        if len(self._open) >= self.max_connections and not self._evict_idle():
            self.rejected["limit"] += 1
            return None
        conn = Connection(self, client, close)
        self._open[conn] = None
        self._per_client[client] = held + 1
        if not self.pressed and len(self._open) > self._pressure_above:
            self.pressed = True
            for other in self._open:
                if other.idle:
                    other.hurry()
        return conn

    def asked(self, conn: Connection, answer: asyncio.Task[None]) -> None:
        """A question arrived on ``conn``; ``answer`` is answering it."""
        conn.in_flight.add(answer)
        answer.add_done_callback(conn.answered)
        if conn in self._open:  # not when evicted with the question already read
            self._open.move_to_end(conn)

    def release(self, conn: Connection) -> None:
        """The connection is gone (idempotent: an evicted one is released when it was evicted)."""
        if conn not in self._open:
            return
        del self._open[conn]
        held = self._per_client[conn.client] - 1
        if held:
            self._per_client[conn.client] = held
        else:
            del self._per_client[conn.client]
        if self.pressed and len(self._open) < self._pressure_below:
            self.pressed = False

    def timed_out(self) -> None:
        self.closed_idle["timeout"] += 1

    def unread(self) -> None:
        """A connection was cut off for not reading its replies for the idle timeout."""
        self.closed_idle["unread"] += 1

    def _evict_idle(self) -> bool:
        longest = next((conn for conn in self._open if conn.idle), None)
        if longest is None:
            return False
        self.release(longest)
        longest.close()
        self.closed_idle["evicted"] += 1
        return True

    def collect(self) -> Iterator[Metric]:
        server = [self._server]
        gauge = GaugeMetricFamily("kubedns_tcp_connections", "Open TCP connections.", labels=["server"])
        gauge.add_metric(server, len(self._open))
        yield gauge
        limit = GaugeMetricFamily(
            "kubedns_tcp_connections_limit", "Most TCP connections open at once.", labels=["server"]
        )
        limit.add_metric(server, self.max_connections)
        yield limit
        rejected = CounterMetricFamily(
            "kubedns_tcp_rejected",
            "New TCP connections closed at once: the client held its limit, or all were busy.",
            labels=["server", "reason"],
        )
        for reason, count in self.rejected.items():
            rejected.add_metric([*server, reason], count)
        yield rejected
        closed = CounterMetricFamily(
            "kubedns_tcp_closed_idle",
            "Idle TCP connections closed: timed out, evicted to make room for a newcomer, or not reading"
            " their replies.",
            labels=["server", "reason"],
        )
        for reason, count in self.closed_idle.items():
            closed.add_metric([*server, reason], count)
        yield closed
