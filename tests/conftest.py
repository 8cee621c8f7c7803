"""Fixtures shared across levels. Each is module-scoped where starting it costs a process or a port, so a
test module shares one; a test module may define a fixture of the same name when it needs another one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import compiled
from tests.support.apiserver import FakeApiServer
from tests.support.dnsmasq import Dnsmasq, dnsmasq
from tests.support.nameservers import TestNameserver, answer, run_in_thread
from tests.support.ports import free_port
from tests.support.processes import Running, serve


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = compiled.stale()
    if stale:
        changed = ", ".join(stale)
        pytest.exit(
            f"compiled modules older than their source, or no longer compiled: {changed};"
            " `make unit` compiles them again (delete those setup.py no longer lists)",
            2,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Running]:
    """serve answering the demo cluster (deploy/examples/demo-cluster.yaml), ready."""
    with serve() as running:
        yield running


@pytest.fixture(scope="module")
def upstream() -> Iterator[TestNameserver]:
    """A nameserver answering every name with ``A 192.0.2.1`` (TTL 300); tests may script more."""
    with run_in_thread(TestNameserver(default=answer("{qname} 300 IN A 192.0.2.1"))) as ns:
        yield ns


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    """An empty Kubernetes API server double with quick bookmarks."""
    async with FakeApiServer(bookmark_interval=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def looped_port() -> int:
    """A port for a forwarding loop: ``loop`` forwards to it, and a cache listens there."""
    return free_port()


@pytest.fixture(scope="module")
def loop(looped_port: int) -> Iterator[Dnsmasq]:
    """A dnsmasq upstream that forwards everything back to ``looped_port``."""
    with dnsmasq(f"--server=127.0.0.1#{looped_port}") as upstream:
        yield upstream
