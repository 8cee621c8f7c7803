"""--dns-loop-detect: find upstreams that send our own queries back to us.

A pod that inherits the node's ``nameserver 127.0.0.1`` forwards to itself. For each upstream we send a
TXT query for a random name no one else asks for; if that name then arrives on our own listener, the
upstream it was sent to loops back, and it is taken out of service with an error in the log (as
dnsmasq does). Checks run at start and whenever the set of upstreams changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from dnslib import QTYPE, DNSRecord

from kubedns_py.cache.forward.upstream import UpstreamClient, UpstreamError

log = logging.getLogger(__name__)

PROBE_SUFFIX = "loop-detect.kubedns.test"


class LoopDetector:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._probes: dict[str, UpstreamClient] = {}

    @property
    def watching(self) -> bool:
        """True while probes are out: only then can a question be one coming back."""
        return bool(self._probes)

    def intercept(self, name: str) -> bool:
        """True when ``name`` is one of our probes coming back (the sender is then marked as looping)."""
        if not self._probes or not name.endswith(PROBE_SUFFIX):
            return False
        client = self._probes.pop(name, None)
        if client is None:
            return False
        client.health.looped = True
        log.error(
            "upstream %s sends our own queries back to us: a forwarding loop; not using it", client.upstream
        )
        return True

    async def check(self, clients: list[UpstreamClient]) -> None:
        """Probe each upstream once; a looping one is marked in its health."""
        if not self.enabled:
            return
        names = {}
        for client in clients:
            name = f"{secrets.token_hex(8)}.{PROBE_SUFFIX}"
            names[name] = client
            self._probes[name] = client
        await asyncio.gather(*(self._probe(name, client) for name, client in names.items()))
        for name in names:
            self._probes.pop(name, None)

    @staticmethod
    async def _probe(name: str, client: UpstreamClient) -> None:
        question = DNSRecord.question(name, QTYPE[QTYPE.TXT]).pack()[12:]
        # An upstream that does not answer is the forwarder's concern, not a loop.
        with contextlib.suppress(UpstreamError):
            await client.ask(question)
