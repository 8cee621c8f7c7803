"""Fair TCP, with the real processes over loopback: a client holding over a thousand connections, idle
and busy, does not keep another from its answers; one address gets at most its limit; idle
connections are reclaimed as the limit nears. 127.0.0.2 is the greedy client, 127.0.0.3 the other."""

from __future__ import annotations

import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.metrics import scrape
from tests.support.ports import HOST
from tests.support.processes import Running, cache, serve
from tests.support.waiting import wait_until

GREEDY, OTHER = "127.0.0.2", "127.0.0.3"
NAME = "kubernetes.default.svc.cluster.local."
HOLD = 1_100  # connections the greedy client opens
BUSY = 16  # of them, the ones it keeps asking on
QUESTION = dns.message.make_query(NAME, "A").to_wire()
FRAMED = struct.pack("!H", len(QUESTION)) + QUESTION


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """Room for the greedy client's sockets here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * HOLD + 500
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is under the {wanted} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_from(source: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect((HOST, port))
    return sock


def read_reply(sock: socket.socket) -> bool:
    header = sock.recv(2, socket.MSG_WAITALL)
    if len(header) < 2:
        return False
    (length,) = struct.unpack("!H", header)
    return len(sock.recv(length, socket.MSG_WAITALL)) == length


def answered(sock: socket.socket) -> bool:
    """Ask on the connection: True for a reply, False when the server closed it instead."""
    sock.settimeout(3.0)
    try:
        sock.sendall(FRAMED)
        return read_reply(sock)
    except ConnectionError:
        return False


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def hold(port: int) -> list[socket.socket]:
    return [open_from(GREEDY, port) for _ in range(HOLD)]


class Busy(threading.Thread):
    """The greedy client's busy connections: a question in flight on each, over and over."""

    def __init__(self, socks: list[socket.socket]) -> None:
        super().__init__(daemon=True)
        self.socks = socks
        self.stop = threading.Event()
        self.rounds = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for sock in self.socks:
                sock.settimeout(5.0)
            while not self.stop.is_set():
                for sock in self.socks:
                    sock.sendall(FRAMED)
                for sock in self.socks:
                    if not read_reply(sock):
                        raise AssertionError("the server closed a busy connection")
                self.rounds += 1
        except BaseException as err:  # reported by the test
            self.failure = err

    def __enter__(self) -> Busy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.join(10)


def other_client_waits(port: int, questions: int = 10) -> float:
    """The longest the other client waited for an answer, each question on a new connection."""
    longest = 0.0
    for _ in range(questions):
        start = time.monotonic()
        reply = dns.query.tcp(dns.message.make_query(NAME, "A"), HOST, port=port, timeout=1.0, source=OTHER)
        longest = max(longest, time.monotonic() - start)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    return longest


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def tcp_metric(running: Running, name: str, **labels: str) -> float:
    return scrape(running.metrics_port).get(name, **labels)


def test_a_client_over_its_limit_does_not_keep_another_from_its_answers() -> None:
    with serve() as running:  # serve's default: 256 connections per client
        socks = hold(running.dns_port)
        try:
            admitted = [sock for sock in socks if answered(sock)]
            assert len(admitted) == 256
            with Busy(admitted[:BUSY]) as busy:
                assert other_client_waits(running.dns_port) < 1.0
            assert busy.failure is None and busy.rounds > 0
            rejected = tcp_metric(running, "kubedns_tcp_rejected_total", reason="client_limit")
            assert rejected == HOLD - 256
            wait_until(lambda: tcp_metric(running, "kubedns_tcp_connections") == 256, 5)
        finally:
            close_all(socks)
        assert "Traceback" not in running.log_text()


def test_idle_connections_make_room_and_are_reclaimed_near_the_limit() -> None:
    with serve("--tcp-max-per-client=0") as running:  # only the global limit: 1,000
        socks = hold(running.dns_port)
        try:
            busy, idle = socks[-BUSY:], socks[:-BUSY]
            assert all(answered(sock) for sock in busy)
            with Busy(busy) as asking:
                assert other_client_waits(running.dns_port) < 1.0
                # Past three quarters of the limit, idle connections wait 1 s instead of 10 s.
                deadline = time.monotonic() + 5.0
                for sock in idle:
                    assert closed_by_server(sock, max(0.0, deadline - time.monotonic()))
                wait_until(lambda: tcp_metric(running, "kubedns_tcp_connections") == BUSY, 5)
            assert asking.failure is None and asking.rounds > 0
            samples = scrape(running.metrics_port)
            closed = samples.get("kubedns_tcp_closed_idle_total")
            assert closed == len(idle)
            assert samples.get("kubedns_tcp_closed_idle_total", reason="evicted") > 0
            assert samples.get("kubedns_tcp_rejected_total") == 0  # an idle one always made room
        finally:
            close_all(socks)
        assert "Traceback" not in running.log_text()


def test_the_cache_closes_a_clients_65th_connection_at_once() -> None:
    with cache("--no-resolv", "--server=/cluster.local/") as running:  # answered locally
        held = [open_from(GREEDY, running.dns_port) for _ in range(64)]
        try:
            assert all(answered(sock) for sock in held)
            extra = open_from(GREEDY, running.dns_port)
            assert closed_by_server(extra, 2.0)
            extra.close()
            other = open_from(OTHER, running.dns_port)
            assert answered(other)
            other.close()
            assert tcp_metric(running, "kubedns_tcp_rejected_total", reason="client_limit") == 1
            held.pop().close()  # one fewer: room for one more
            wait_until(lambda: tcp_metric(running, "kubedns_tcp_connections") == 63, 5)
            held.append(open_from(GREEDY, running.dns_port))
            assert answered(held[-1])
        finally:
            close_all(held)
