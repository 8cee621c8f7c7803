"""Listening on ``::`` takes IPv4 and IPv6 clients alike, over UDP and TCP, as kube-dns's listeners do:
serve's ``--dns-bind-address ::`` and the cache's ``--listen-address ::`` share one binder."""

from __future__ import annotations

import socket

import pytest

from tests.support.dnsclient import KUBERNETES, answers, ask
from tests.support.nameservers import TestNameserver
from tests.support.processes import cache, serve

CLIENTS = [(host, tcp) for host in ("127.0.0.1", "::1") for tcp in (False, True)]


@pytest.fixture(scope="module", autouse=True)
def ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")


def test_serve_on_any_address_answers_ipv4_and_ipv6_clients() -> None:
    with serve("--dns-bind-address", "::") as running:
        for host, tcp in CLIENTS:
            reply = ask(f"{KUBERNETES}.", "A", running.dns_port, tcp=tcp, host=host)
            assert answers(reply) == {f"{KUBERNETES}. A 10.96.0.1"}, (host, tcp)


def test_the_cache_on_any_address_answers_ipv4_and_ipv6_clients(upstream: TestNameserver) -> None:
    with cache("--no-resolv", f"--server={upstream.address}", listen="::") as running:
        for host, tcp in CLIENTS:
            reply = ask("www.example.com.", "A", running.dns_port, tcp=tcp, host=host)
            assert answers(reply) == {"www.example.com. A 192.0.2.1"}, (host, tcp)
