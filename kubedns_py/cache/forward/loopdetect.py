"""--dns-loop-detect: find upstreams that send our own queries back to us.

A pod that inherits the node's ``nameserver 127.0.0.1`` forwards to itself. For each upstream we send a
TXT query for a random name no one else asks for; if that name then arrives on our own listener, the
upstream it was sent to loops back, and it is taken out of service with an error in the log (as
dnsmasq does). Checks run at start and whenever the set of upstreams changes.

With worker processes a probe comes back to whichever worker the kernel picks, so the probes carry a
secret every worker shares and a label naming the upstream: the worker that receives one marks that
upstream and has the supervisor tell the others (``on_loop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable

from dnslib import DNSRecord

from kubedns_py.cache.forward.upstream import UpstreamClient, UpstreamError
from kubedns_py.dnswire.reader import presentation

log = logging.getLogger(__name__)

PROBE_SUFFIX = "loop-detect.kubedns.test"


class LoopDetector:
    def __init__(self, enabled: bool, secret: str | None = None) -> None:
        """``secret``: shared by the worker processes that may receive each other's probes."""
        self.enabled = enabled
        self.shared = secret is not None
        suffix = f"{secret or secrets.token_hex(8)}.{PROBE_SUFFIX}"
        self._wire_suffix = (
            b"".join(bytes([len(label)]) + label.encode() for label in suffix.split(".")) + b"\0"
        )
        self._secret = suffix.partition(".")[0]
        self._suffix = suffix
        self._out = 0  # probes of ours not yet answered
        self._clients: dict[str, UpstreamClient] = {}  # label → upstream, as of the last check
        self.on_loop: Callable[[str], None] | None = None  # told the label of each upstream caught

    @property
    def watching(self) -> bool:
        """True while a probe may come back: ours are out, or other workers' may be."""
        return self.enabled and (self.shared or self._out > 0)

    def intercept(self, key: bytes) -> bool:
        """True when ``key`` (a question's name in wire form) is a probe of ours coming back: the
        upstream it was sent to is then marked as looping."""
        if not key.endswith(self._wire_suffix):
            return False
        label = presentation(key).split(".")[1]
        self.looped(label)
        if self.on_loop is not None:
            self.on_loop(label)
        return True

    def looped(self, label: str) -> None:
        """The upstream ``label`` names sends our queries back to us."""
        client = self._clients.get(label)
        if client is None or client.health.looped:
            return
        client.health.looped = True
        log.error(
            "upstream %s sends our own queries back to us: a forwarding loop; not using it", client.upstream
        )

    def _label(self, client: UpstreamClient) -> str:
        return hashlib.sha256(f"{self._secret} {client.upstream}".encode()).hexdigest()[:16]

    async def check(self, clients: list[UpstreamClient]) -> None:
        """Probe each upstream once; a looping one is marked in its health."""
        if not self.enabled:
            return
        probes = self._clients = {self._label(client): client for client in clients}
        self._out += len(probes)
        try:
            await asyncio.gather(*(self._probe(label, client) for label, client in probes.items()))
        finally:
            self._out -= len(probes)

    async def _probe(self, label: str, client: UpstreamClient) -> None:
        name = f"{secrets.token_hex(4)}.{label}.{self._suffix}"
        question = DNSRecord.question(name, "TXT").pack()[12:]
        # An upstream that does not answer is the forwarder's concern, not a loop.
        with contextlib.suppress(UpstreamError):
            await client.ask(question)
