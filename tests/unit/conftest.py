"""The unit level's rule, enforced: no network and no processes. A test that needs either belongs in
integration/ (tests/README.md)."""

from __future__ import annotations

import socket
import subprocess
from typing import NoReturn

import pytest


def _refused(what: str) -> object:
    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise AssertionError(f"a unit test may not {what}: move it to tests/integration/")

    return refuse


@pytest.fixture(autouse=True)
def no_network_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The event loop's own wake-up socket pair binds and connects nothing, so asyncio still runs.
    for method in ("bind", "connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, method, _refused(f"use the network ({method})"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused("start a process"))
