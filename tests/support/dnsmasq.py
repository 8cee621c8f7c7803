"""Debian's dnsmasq as a real upstream (or a real loop) for the caching forwarder, or as the reference
the benchmarks measure against.

    with dnsmasq("--address=/www.example.com/192.0.2.7") as upstream:
        ...  # --server=127.0.0.1#{upstream.port}

dnsmasq runs in the foreground (``-k``) on 127.0.0.1 only, reads no resolv.conf and no hosts file, logs
every query to stderr (kept in ``lines``) and writes no pid file. It runs as the current user when that is
root, so the files it reads need no particular permissions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.query
import dns.rdataclass
import pytest

from tests.support.ports import HOST, free_port
from tests.support.processes import Logged

DNSMASQ = "/usr/sbin/dnsmasq"


class Dnsmasq(Logged):
    def __init__(self, process: subprocess.Popen[str], port: int, host: str = HOST) -> None:
        super().__init__(process)
        self.port = port
        self.host = host

    @property
    def address(self) -> str:
        """As in --server=127.0.0.1#PORT."""
        return f"{self.host}#{self.port}"


@contextlib.contextmanager
def dnsmasq(*args: str, port: int | None = None, host: str = HOST, timeout: float = 5.0) -> Iterator[Dnsmasq]:
    """dnsmasq with ``args`` added (``--server=...``, ``--address=/name/ip``, ``--host-record=...``), on
    ``host`` (a loopback address) and ``port`` (default: a free one), answering once this returns.
    Port 53 (for a resolv.conf, which has no port syntax) needs root: skipped otherwise."""
    if not os.path.exists(DNSMASQ) and shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    if port is not None and port < 1024 and os.geteuid() != 0:
        pytest.skip(f"dnsmasq on port {port} needs root")
    port = port or free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    command = [
        shutil.which("dnsmasq") or DNSMASQ,
        "--keep-in-foreground",
        f"--port={port}",
        f"--listen-address={host}",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--log-facility=-",
        "--log-queries",
        *user,
        *args,
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    running = Dnsmasq(process, port, host)
    try:
        running.wait_for_log(r"started, version", timeout)
        _wait_until_answering(running, timeout)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)


def _wait_until_answering(running: Dnsmasq, timeout: float) -> None:
    query = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)

    def answering() -> bool:
        try:
            dns.query.udp(query, running.host, port=running.port, timeout=0.2)
        except (TimeoutError, dns.exception.Timeout, OSError):
            return False
        return True

    running.wait_until(answering, timeout, f"dnsmasq answering on port {running.port}")
