"""One resource followed forever: its state, its retries, its metrics; store events out.

A LIST becomes ``Replace`` + ``Synced`` (so a relist drops whatever was deleted meanwhile); a WATCH
from the list's resourceVersion turns events into ``Upsert``/``Delete``. A watch that ends is resumed
from the last resourceVersion seen (bookmarks included); ``Gone`` means LIST again, and so does a stall
of a watch whose resourceVersion is not a number (nothing tells whether the server will ever reach it).
Failures back off exponentially with full jitter. ``restart`` (the watchdog's) gives up the request in
flight or the backoff, and starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubedns_py.cluster.objects import Kind, KubeObject, ObjectError, from_dict, object_key, raw_object_key
from kubedns_py.cluster.store import Delete, Event, Replace, Synced, Upsert
from kubedns_py.ratelimit import RateLimitedLog
from kubedns_py.sources.base import ApplyEvents
from kubedns_py.sources.kube import streams
from kubedns_py.sources.kube.client import Api, ApiError, Gone, KubeSettings
from kubedns_py.sources.kube.metrics import KubeMetrics

TRANSIENT = (aiohttp.ClientError, OSError, ApiError, TimeoutError, ValueError)  # ValueError: bad JSON


class Restarted(Exception):
    """``Reflector.restart`` gave up the request in flight."""


def version_number(rv: str | None) -> int | None:
    """A resourceVersion as the integer every API server writes it as; None if it is not one (it is
    opaque by contract: such a version can only be compared for equality)."""
    return int(rv) if rv is not None and rv.isascii() and rv.isdigit() else None


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * 2 ** min(attempt, 32)))


@dataclass(frozen=True)
class Resource:
    kind: Kind
    name: str  # the plural, also the metrics label
    path: str
    field_selector: str | None = None


@dataclass(eq=False)  # each one follows its resource: equal only to itself
class Reflector:
    """LIST + WATCH of one resource, forever."""

    api: Api
    resource: Resource
    settings: KubeSettings
    sink: ApplyEvents
    metrics: KubeMetrics
    limited: RateLimitedLog  # what the API sends: bad objects, failing watches

    def __post_init__(self) -> None:
        self.rv: str | None = None  # None: LIST before the next WATCH
        self.progressed = False
        self.lists = 0
        self.healthy = False  # listed, and the watch is open
        self.last_contact: float | None = None  # Unix time of the last successful answer
        # Monotonic times of the last answer, and of the start of the current LIST/WATCH attempt.
        self.heard_at = self.started_at = time.monotonic()
        self._scope: asyncio.Timeout | None = None  # what ``restart`` cuts short
        self._restart_reason = ""
        self._relist = False
        self._bad: dict[tuple[str, str], str] = {}  # objects that failed conversion, logged once
        self.metrics.add_resource(self.resource.name)

    async def run(self) -> None:
        attempt = 0
        while True:
            self.progressed = False
            failure: Exception | None = None
            try:
                await self._restartable(self.attempt())
            except Gone as exc:
                self.rv = None
                failure = exc
            except streams.Stalled as exc:
                if version_number(self.rv) is None:
                    self.rv = None
                failure = exc
                self.metrics.reconnects[self.resource.name] += 1
            except (Restarted, *TRANSIENT) as exc:
                failure = exc
                self.metrics.reconnects[self.resource.name] += 1
            except Exception as exc:  # a surprise must not end the watch for good: log it, retry
                self.limited.exception(
                    f"surprise {self.resource.name}", "kubernetes: %s: unexpected failure", self.resource.name
                )
                failure = exc
                self.metrics.reconnects[self.resource.name] += 1
            if self.progressed:
                attempt = 0
            if failure is None and self.progressed:
                continue  # the stream ended on its timeoutSeconds: resume from the last resourceVersion
            self.healthy = False
            delay = backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
            attempt += 1
            level = logging.INFO if isinstance(failure, Gone) else logging.WARNING  # Gone is routine
            self.limited.log(
                level,
                f"retry {self.resource.name}",
                "kubernetes: %s: %s; next try in %.2fs",
                self.resource.name,
                _describe(failure),
                delay,
            )
            with contextlib.suppress(Restarted):  # the watchdog saw the server answer again: no waiting
                await self._restartable(asyncio.sleep(delay))

    async def attempt(self) -> None:
        """LIST if there is no resourceVersion to go on from, then WATCH until the stream ends."""
        if self._relist:
            self._relist = False
            self.rv = None
        self.started_at = time.monotonic()
        if self.rv is None:
            await self.list_all()
        await self.watch()

    def restart(self, reason: str, relist: bool = False) -> None:
        """Give up the request in flight (or the wait before the next one) and start over: from the
        last resourceVersion, or with a LIST if ``relist``."""
        self._relist = self._relist or relist
        self._restart_reason = reason
        if self._scope is not None and not self._scope.expired():
            self._scope.reschedule(asyncio.get_running_loop().time())

    async def _restartable(self, work: Awaitable[None]) -> None:
        scope = self._scope = asyncio.timeout(None)
        try:
            async with scope:
                await work
        except TimeoutError:
            if scope.expired():
                raise Restarted(self._restart_reason) from None
            raise
        finally:
            self._scope = None

    @property
    def silent_since(self) -> float:
        """Monotonic time since which nothing was heard and no new attempt began."""
        return max(self.heard_at, self.started_at)

    def touch(self) -> None:
        self.heard_at = time.monotonic()
        self.last_contact = time.time()
        self.metrics.last_contact[self.resource.name] = self.last_contact
        self.healthy = True

    async def list_all(self) -> None:
        if self.lists:
            self.metrics.relists[self.resource.name] += 1
        self.lists += 1
        objects: list[KubeObject] = []
        rv = ""
        resource = self.resource
        async for page in streams.list_pages(
            self.api, resource.path, resource.field_selector, self.settings.page_size
        ):
            self.touch()
            for index, item in enumerate(page.items):
                if index % 100 == 99:
                    await asyncio.sleep(0)  # 500 big slices take ~0.1 s: let DNS queries through meanwhile
                converted = self.convert(item)
                if converted is not None:
                    objects.append(converted)
            rv = page.resource_version
        self.sink([Replace(resource.kind, tuple(objects)), Synced(resource.kind)])
        self.rv = rv
        self.progressed = True

    async def watch(self) -> None:
        assert self.rv is not None
        resource = self.resource
        batches = streams.watch(
            self.api, resource.path, resource.field_selector, self.rv, self.settings.watch_timeout_seconds
        )
        async with contextlib.aclosing(batches):  # closes the response at once if handling fails
            async for batch in batches:
                self.handle(batch)

    def handle(self, batch: list[streams.WatchEvent]) -> None:
        """Apply a batch of watch events (all those that arrived together) as one batch of events."""
        kind = self.resource.kind
        events: list[Event] = []
        types: Counter[str] = Counter()
        rv = self.rv
        for event in batch:
            types[event.type] += 1
            if event.type in ("ADDED", "MODIFIED"):
                converted = self.convert(event.object)
                if converted is not None:
                    events.append(Upsert(converted))
                elif key := raw_object_key(kind, event.object):
                    events.append(Delete(kind, *key))  # drop the last good version, as a relist would
            elif event.type == "DELETED" and (key := raw_object_key(kind, event.object)):
                events.append(Delete(kind, *key))
                self._bad.pop(key, None)  # gone: log it again if it comes back bad
            if event.resource_version:
                rv = event.resource_version
        if events:
            self.sink(events)
        if types:
            self.rv = rv
            self.progressed = True
            self.metrics.count_events(self.resource.name, types)
        self.touch()  # an empty batch: the watch just opened

    def convert(self, obj: Any) -> KubeObject | None:
        """The slim record, or None (logged once per object and error) when the object is unusable."""
        kind = self.resource.kind
        try:
            converted = from_dict(kind, obj)
        except ObjectError as exc:
            key = raw_object_key(kind, obj) or ("", "?")
            if self._bad.get(key) != str(exc):
                self.limited.warning(
                    f"bad {kind.value}", "kubernetes: skipping %s %s/%s: %s", kind.value, *key, exc
                )
                self._bad[key] = str(exc)
            return None
        if self._bad:
            self._bad.pop(object_key(converted)[1:], None)  # fine again: log it if it turns bad later
        return converted


def _describe(failure: Exception | None) -> str:
    if failure is None:
        return "the watch ended without sending anything"
    if isinstance(failure, Gone):
        return f"resourceVersion unusable ({failure}), listing again"
    if isinstance(failure, streams.Stalled | Restarted):
        return str(failure)
    return f"{type(failure).__name__}: {failure}"
