"""What a silent watch cannot tell, asked of the server on a connection of its own.

A watch that sends nothing may be quiet (bookmarks come once a minute), dead (the server or a proxy lost
the connection without closing it, or a path black-holed it), or waiting for a resourceVersion the server
will not reach (an etcd restore took it back). So while any reflector has heard nothing for the probe
interval, the watchdog asks the server which resourceVersion it is at, once per interval:

- no answer (within the probe timeout, or no connection): the server is unreachable. Once it answers
  again, each reflector that has heard nothing since the failures began gives up its request (or its
  backoff) and starts over from its resourceVersion: that request went where the server could not hear
  it, or over a connection that died. One that heard the server meanwhile is working: it is left alone.
- an answer below a reflector's resourceVersion (read before asking, so a newer event cannot pass for
  one): the server went back in time, and that reflector lists again. Versions are compared as the
  integers every API server writes; one that is not an integer cannot be ordered, and a stall lists
  again instead (``reflector``).
- an error status: the server is there and says why it cannot answer; the reflectors hear it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from kubedns_py.ratelimit import RateLimitedLog
from kubedns_py.sources.kube import streams
from kubedns_py.sources.kube.client import Api, ApiError, KubeSettings
from kubedns_py.sources.kube.reflector import TRANSIENT, Reflector, version_number


class Watchdog:
    """Probes the server for a set of reflectors while any of them is silent (module docstring)."""

    def __init__(
        self,
        api: Api,
        path: str,
        reflectors: Sequence[Reflector],
        settings: KubeSettings,
        limited: RateLimitedLog,
    ) -> None:
        self.api = api
        self.path = path  # a LIST of one object of it says where the server is: a small resource
        self.reflectors = reflectors
        self.settings = settings
        self.limited = limited

    async def run(self) -> None:
        interval = self.settings.probe_interval
        probed = -interval
        failing_since: float | None = None  # when the first of the current run of failed probes began
        while True:
            now = time.monotonic()
            due = max(min((r.silent_since for r in self.reflectors), default=now), probed) + interval
            if now < due:
                await asyncio.sleep(due - now)
                continue
            probed = now
            if not await self.probe():
                failing_since = now if failing_since is None else failing_since
            elif failing_since is not None:
                for reflector in self.reflectors:
                    if reflector.heard_at < failing_since:
                        reflector.restart("the API server answers again: starting over")
                failing_since = None

    async def probe(self) -> bool:
        """Whether the server could be reached; relists the reflectors it is behind."""
        held = [(reflector, version_number(reflector.rv)) for reflector in self.reflectors]
        try:
            current = version_number(await streams.current_version(self.api, self.path))
        except ApiError as exc:
            if exc.status is not None:
                return True  # it answered, saying why it could not
            failure: Exception = exc
        except TRANSIENT as exc:
            failure = exc
        else:
            for reflector, rv in held:
                if current is not None and rv is not None and rv > current:
                    self._went_back(reflector, current, rv)
            return True
        self.limited.warning(
            "probe",
            "kubernetes: the API server did not answer a probe (%s: %s); silent watches restart once it does",
            type(failure).__name__,
            failure,
        )
        return False

    def _went_back(self, reflector: Reflector, current: int, rv: int) -> None:
        self.limited.warning(
            f"behind {reflector.resource.name}",
            "kubernetes: %s: the API server is at resourceVersion %d, below ours (%d), as after an etcd "
            "restore; listing again",
            reflector.resource.name,
            current,
            rv,
        )
        reflector.restart("the API server went back to an older resourceVersion", relist=True)
