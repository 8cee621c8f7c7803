"""The HTTP ports of serve, cache and probe, over raw sockets: they listen only where
``--http-bind-address`` says, and a request that cannot be parsed gets 400 and at most one log line,
never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from tests.support.processes import Logged, cache, serve, start_probe
from tests.support.processes import stop as stop_process

BAD_REQUESTS = {
    "9 KB header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "bad request line": b"GET /healthz HTTP/9.Z junk\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "no Host": b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
}


def exchange(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@contextmanager
def serve_http(host: str) -> Iterator[tuple[Logged, int]]:
    with serve("--http-bind-address", host, ready=False) as running:
        yield running, running.health_port


@contextmanager
def cache_http(host: str) -> Iterator[tuple[Logged, int]]:
    with cache("--no-resolv", "--http-bind-address", host) as running:
        yield running, running.metrics_port


@contextmanager
def probe_http(host: str) -> Iterator[tuple[Logged, int]]:
    running = start_probe("--http-bind-address", host)
    try:
        yield running, running.http_port
    finally:
        stop_process(running)


Starter = Callable[[str], AbstractContextManager[tuple[Logged, int]]]
COMPONENTS: dict[str, Starter] = {"serve": serve_http, "cache": cache_http, "probe": probe_http}


@pytest.mark.parametrize("component", COMPONENTS)
def test_bad_requests_get_400_and_one_quiet_log_line(component: str) -> None:
    with COMPONENTS[component]("127.0.0.1") as (running, port):
        for name, payload in BAD_REQUESTS.items():
            for _ in range(3):
                reply = exchange("127.0.0.1", port, payload)
                assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0], name
        ok = exchange("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b" 200 " in ok.split(b"\r\n")[0]
    log = running.log_text()
    assert "Traceback" not in log
    assert log.count("unparsable HTTP request") == 1, log


@pytest.mark.parametrize("component", COMPONENTS)
def test_http_listens_only_on_the_bind_address(component: str) -> None:
    with COMPONENTS[component]("127.0.0.2") as (_, port):
        assert b" 200 " in exchange("127.0.0.2", port, b"GET /healthz HTTP/1.0\r\n\r\n").split(b"\r\n")[0]
        with pytest.raises(ConnectionRefusedError):
            exchange("127.0.0.1", port, b"GET /healthz HTTP/1.0\r\n\r\n")
