"""``net.udpthread.ThreadedUdpServer`` over real loopback sockets: each query answered on the server's
own thread, under the lock that changes to the data take too; failures, oversized datagrams and
``close`` handled without losing the thread, the process, or a socket another process shares;
pausing and resuming, the window hook, and what is left in the socket once it stops."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kubedns_py.net.udp import MAX_QUERY, Address, DatagramHandler
from kubedns_py.net.udpthread import WINDOW, ThreadedUdpServer
from tests.support.ports import HOST


@contextmanager
def serving(
    handle: DatagramHandler, lock: threading.Lock
) -> Iterator[tuple[ThreadedUdpServer, socket.socket]]:
    """The server on a loopback port, and a client socket connected to it (5 s timeout)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    server = ThreadedUdpServer(sock, handle, lock)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect((HOST, server.port))
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def echo(data: bytes, addr: Address) -> bytes:
    return data


def test_each_query_is_answered_on_the_servers_thread_under_the_lock() -> None:
    lock = threading.Lock()
    seen: list[tuple[str, bool]] = []

    def handle(data: bytes, addr: Address) -> bytes:
        seen.append((threading.current_thread().name, lock.locked()))
        return data

    with serving(handle, lock) as (server, client):
        for n in range(20):
            client.send(b"q%d" % n)
            assert client.recv(512) == b"q%d" % n
        assert seen == [(f"udp-{server.port}", True)] * 20


def test_a_query_waits_while_the_data_changes() -> None:
    lock = threading.Lock()
    handled = threading.Event()

    def handle(data: bytes, addr: Address) -> bytes:
        handled.set()
        return data

    with serving(handle, lock) as (_, client):
        with lock:  # as ``Answering.apply`` holds it while the store applies a batch
            client.send(b"during")
            assert not handled.wait(0.2)
        assert client.recv(512) == b"during"
        assert handled.is_set()


def test_a_failing_handler_is_logged_and_the_next_query_answered(caplog: pytest.LogCaptureFixture) -> None:
    def handle(data: bytes, addr: Address) -> bytes | None:
        if data == b"bad":
            raise ValueError("boom")
        return data if data != b"silent" else None

    with caplog.at_level(logging.ERROR), serving(handle, threading.Lock()) as (_, client):
        for query in (b"bad", b"bad", b"silent"):
            client.send(query)
        client.send(b"good")
        assert client.recv(512) == b"good"  # nothing for the failures nor for the unanswered one
    failures = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert len(failures) == 1, "rate-limited: one line for the two failures"


def test_an_oversized_datagram_is_counted_and_dropped() -> None:
    with serving(echo, threading.Lock()) as (server, client):
        client.send(b"x" * (MAX_QUERY + 1))
        client.send(b"x" * MAX_QUERY)
        assert client.recv(2048) == b"x" * MAX_QUERY
        assert server.oversized == 1


def test_close_stops_the_thread_and_closes_the_socket() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    server = ThreadedUdpServer(sock, echo, threading.Lock())
    thread = next(t for t in threading.enumerate() if t.name == f"udp-{server.port}")
    server.close()
    assert not thread.is_alive()
    assert sock.fileno() == -1


def test_closing_one_of_two_servers_sharing_a_socket_leaves_the_other_answering() -> None:
    """As serve's workers hand their sockets from one generation to the next."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    twin = socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_DGRAM)  # the same socket, as after a fork
    old = ThreadedUdpServer(sock, lambda data, addr: b"old", threading.Lock())
    new = ThreadedUdpServer(twin, lambda data, addr: b"new", threading.Lock())
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    try:
        old.close()
        client.connect((HOST, new.port))
        for _ in range(10):
            client.send(b"q")
            assert client.recv(512) == b"new"
    finally:
        new.close()
        client.close()


def test_a_paused_thread_reads_nothing_until_resumed() -> None:
    with serving(echo, threading.Lock()) as (server, client):
        server.pause()
        client.send(b"waits")
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recv(512)
        client.settimeout(5)
        server.resume()
        assert client.recv(512) == b"waits"


def test_every_window_is_called_on_the_thread_after_each_window_of_datagrams() -> None:
    calls: list[tuple[str, int]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    server: ThreadedUdpServer | None = None

    def weigh() -> None:
        assert server is not None
        calls.append((threading.current_thread().name, server.received))

    server = ThreadedUdpServer(sock, echo, None, every_window=weigh)
    thread = f"udp-{server.port}"
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.connect((HOST, server.port))
    try:
        for n in range(2 * WINDOW + 1):
            client.send(b"%d" % n)
            assert client.recv(512) == b"%d" % n
    finally:
        server.close()
        client.close()
    # After the batch that crossed each window's end: one query at a time, so a batch or two later.
    assert [name for name, _ in calls] == [thread, thread]
    assert WINDOW <= calls[0][1] < WINDOW + 8 and 2 * WINDOW <= calls[1][1] < 2 * WINDOW + 8


def test_after_stopping_read_queued_answers_what_waits_on_the_callers_thread() -> None:
    answered_on: list[str] = []

    def handle(data: bytes, addr: Address) -> bytes:
        answered_on.append(threading.current_thread().name)
        return data

    with serving(handle, threading.Lock()) as (server, client):
        server.stop_reading()
        for n in range(3):
            client.send(b"late%d" % n)
        server.read_queued()
        assert [client.recv(512) for _ in range(3)] == [b"late0", b"late1", b"late2"]
    assert answered_on == [threading.current_thread().name] * 3
