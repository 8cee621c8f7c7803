"""``net.udpthread.ThreadedUdpServer`` over real loopback sockets: each query answered on the server's
own thread, under the lock that changes to the data take too; failures, oversized datagrams and
``close`` handled without losing the thread, the process, or a socket another process shares."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kubedns_py.net.udp import MAX_QUERY, Address, DatagramHandler
from kubedns_py.net.udpthread import ThreadedUdpServer
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
