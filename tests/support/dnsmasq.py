"""Debian's dnsmasq as a real upstream (or a real loop) for the caching forwarder, and reading the
statistics a dnsmasq-style server publishes: CHAOS TXT ``*.bind`` records and the cache's /metrics.

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
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.query
import dns.rdataclass
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Logged

HOST = "127.0.0.1"
DNSMASQ = "/usr/sbin/dnsmasq"


def free_port() -> int:
    """A port free on HOST for both UDP and TCP right now (for a server that must know another's port
    before that one starts)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise OSError("no port free for both UDP and TCP")


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
    deadline = time.monotonic() + timeout
    query = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            break
        try:
            dns.query.udp(query, running.host, port=running.port, timeout=0.2)
            return
        except (TimeoutError, dns.exception.Timeout, OSError):
            continue
    raise AssertionError(f"dnsmasq did not answer on port {running.port}:\n{running.log_text()[-3000:]}")


# -- the statistics of a dnsmasq-style server ----------------------------------------------------------


def chaos(port: int, name: str, tcp: bool = False) -> list[str]:
    """The strings of ``name`` CH TXT (``hits.bind``, ``servers.bind``, ...), one per record."""
    query = dns.message.make_query(name, "TXT", rdclass=dns.rdataclass.CH)
    if tcp:
        reply = dns.query.tcp(query, HOST, port=port, timeout=3.0)
    else:
        reply = dns.query.udp(query, HOST, port=port, timeout=3.0)
    return [b"".join(rdata.strings).decode() for rrset in reply.answer for rdata in rrset]


def chaos_number(port: int, stat: str) -> int:
    (value,) = chaos(port, f"{stat}.bind")
    return int(value)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics_port: int) -> Samples:
    """Every sample on /metrics, keyed by (sample name, sorted labels)."""
    with urllib.request.urlopen(f"http://{HOST}:{metrics_port}/metrics", timeout=3.0) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(value for (sample, got), value in samples.items() if sample == name and wanted <= set(got))
