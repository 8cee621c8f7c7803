"""An HTTP double of the Kubernetes API server: real list/watch over loopback, for tests.

It speaks enough of the protocol that kubernetes-asyncio and ``kubedns_py.sources.kube`` run unchanged
against it: discovery, paginated LIST (``limit``/``continue``), WATCH as chunked newline-delimited JSON
from a ``resourceVersion`` (bookmarks, ``timeoutSeconds``, ``ERROR 410 Expired`` once history is
compacted), and scripted faults (see ``apiserver_faults``), including an etcd restore (``snapshot``,
``restore``) that takes resourceVersions back below what clients hold.

Objects are kept as serialised JSON, so a LIST page is a byte join rather than a ``json.dumps`` of every
item: 10k-object clusters load and list in well under a second. One global counter hands out
resourceVersions, as etcd does. Pages of a LIST are cut from the current state rather than an MVCC
snapshot; whatever raced with the pages is replayed by the watch that follows from the list's
resourceVersion, which a consumer must tolerate anyway. As the API server's watch cache does, a watch
sends nothing at or below the resourceVersion it started from, bookmarks included: a watch from a version
the server has not reached stays silent.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.apiserver_faults import Faults
from tests.support.ports import HOST

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    group: str = ""  # "" is the core group
    namespaced: bool = True
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def path(self) -> str:
        return f"/apis/{self.group}/{self.version}/{self.plural}" if self.group else f"/api/v1/{self.plural}"


RESOURCES = {
    r.plural: r
    for r in (
        ResourceType("services", "Service"),
        ResourceType("endpoints", "Endpoints"),
        ResourceType("namespaces", "Namespace", namespaced=False),
        ResourceType("pods", "Pod"),
        ResourceType("endpointslices", "EndpointSlice", group="discovery.k8s.io"),
    )
}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    type: str
    namespace: str
    body: bytes  # the object as a LIST item (no kind/apiVersion)


class _Collection:
    def __init__(self, rtype: ResourceType) -> None:
        self.type = rtype
        self.objects: dict[Key, bytes] = {}
        self.history: list[_Event] = []
        self._sorted: list[Key] | None = None
        # Watch events carry kind and apiVersion; LIST items do not (as in the real API).
        self.event_prefix = f'"kind":"{rtype.kind}","apiVersion":"{rtype.api_version}",'.encode()

    def sorted_keys(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def put(self, key: Key, body: bytes) -> bool:
        """Store an object; True when it is new."""
        new = key not in self.objects
        self.objects[key] = body
        if new:
            self._sorted = None
        return new

    def pop(self, key: Key) -> bytes:
        self.invalidate()
        return self.objects.pop(key)

    def invalidate(self) -> None:
        self._sorted = None

    def line(self, type_: str, body: bytes) -> bytes:
        return b'{"type":"%s","object":{%s%s}\n' % (type_.encode(), self.event_prefix, body[1:])


@dataclass(frozen=True)
class Snapshot:
    """The data as ``FakeApiServer.snapshot`` found it: what an etcd backup holds."""

    objects: dict[str, dict[Key, bytes]]
    history: dict[str, list[_Event]]
    resource_version: int
    compacted: int


@dataclass(eq=False)
class _Watcher:
    resource: str
    namespace: str | None
    queue: asyncio.Queue[_Event | None] = field(default_factory=asyncio.Queue)


def status_body(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status_body(code, reason, message), status=code)


def _flag(value: str | None) -> bool:
    """A boolean query parameter, read as Go's strconv.ParseBool does (clients send true, True or 1)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _dumps(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class FakeApiServer:
    """``async with FakeApiServer() as api:`` serves on ``api.url`` (127.0.0.1, a free port).

    Driving methods (``create``, ``update``, ``apply``, ``delete``, ``load``, ``compact``, ``snapshot``)
    are plain functions: call them from the test's event loop; open watches see the change at once.
    """

    def __init__(self, *, bookmark_interval: float = 0.2) -> None:
        self.bookmark_interval = bookmark_interval
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.port = 0
        self._collections = {name: _Collection(rtype) for name, rtype in RESOURCES.items()}
        self._rv = 1
        self._compacted = 0  # watches and continue tokens older than this get 410 Expired
        self._watchers: set[_Watcher] = set()
        self._watches_started: Counter[str] = Counter()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/api/v1", self._core_resources)
        app.router.add_get("/apis", self._group_list)
        app.router.add_get("/apis/{group}", self._group)
        app.router.add_get("/apis/{group}/{version}", self._group_resources)
        app.router.add_get("/api/v1/{plural}", self._collection)
        app.router.add_get("/api/v1/namespaces/{namespace}/{plural}", self._collection)
        app.router.add_get("/apis/{group}/{version}/{plural}", self._collection)
        app.router.add_get("/apis/{group}/{version}/namespaces/{namespace}/{plural}", self._collection)
        # Handlers are cancelled when their client goes away, so hung watches end with their socket.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await self.accept_connections()

    async def stop(self) -> None:
        if self._runner is not None:
            await self.refuse_connections()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def refuse_connections(self) -> None:
        """An outage: stop listening and drop every open connection (keep-alive and watches)."""
        assert self._runner is not None and self._runner.server is not None
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._drop_connections()

    def _drop_connections(self) -> None:
        assert self._runner is not None and self._runner.server is not None
        for connection in self._runner.server.connections:
            connection.force_close()

    async def accept_connections(self) -> None:
        """Listen again (on the same port after an outage)."""
        assert self._runner is not None
        if self._site is None:
            self._site = web.TCPSite(self._runner, HOST, self.port, reuse_address=True)
            await self._site.start()
            self.port = self._runner.addresses[0][1]

    # -- driving the data ----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def create(self, resource: str, obj: Obj) -> Obj:
        if self._key(resource, obj) in self._collections[resource].objects:
            raise ValueError(f"{resource} {self._key(resource, obj)} already exists")
        return self.apply(resource, obj)

    def update(self, resource: str, obj: Obj) -> Obj:
        if self._key(resource, obj) not in self._collections[resource].objects:
            raise KeyError(f"{resource} {self._key(resource, obj)} does not exist")
        return self.apply(resource, obj)

    def apply(self, resource: str, obj: Obj) -> Obj:
        """Create or update; returns the stored object (with its new resourceVersion)."""
        stored = self._store(self._collections[resource], obj)
        self._notify()
        return stored

    def load(self, resource: str, objects: Iterable[Obj]) -> int:
        """Bulk create-or-update, one notification at the end; returns how many were stored."""
        collection = self._collections[resource]
        count = 0
        for obj in objects:
            self._store(collection, obj)
            count += 1
        self._notify()
        return count

    def delete(self, resource: str, name: str, namespace: str = "default") -> None:
        collection = self._collections[resource]
        key = (namespace if collection.type.namespaced else "", name)
        old = json.loads(collection.pop(key))
        self._rv += 1
        old["metadata"]["resourceVersion"] = str(self._rv)
        self._record(collection, _Event(self._rv, "DELETED", key[0], _dumps(old)))
        self._notify()

    def get(self, resource: str, name: str, namespace: str = "default") -> Obj | None:
        collection = self._collections[resource]
        body = collection.objects.get((namespace if collection.type.namespaced else "", name))
        return None if body is None else json.loads(body)

    def compact(self) -> None:
        """Forget all history: a watch or continue token from any earlier resourceVersion gets 410."""
        self._compacted = self._rv
        for collection in self._collections.values():
            collection.history.clear()

    def snapshot(self) -> Snapshot:
        """The data as it is now, to ``restore`` later."""
        return Snapshot(
            {name: dict(c.objects) for name, c in self._collections.items()},
            {name: list(c.history) for name, c in self._collections.items()},
            self._rv,
            self._compacted,
        )

    def restore(self, snapshot: Snapshot) -> None:
        """An etcd restore: the data and history as in ``snapshot``, resourceVersions counting on from
        its (so below what clients have seen since), and every connection dropped as the API servers
        restart. A watch resumed from a later version sees nothing until the counter passes it."""
        for name, collection in self._collections.items():
            collection.objects = dict(snapshot.objects[name])
            collection.history = list(snapshot.history[name])
            collection.invalidate()
        self._rv = snapshot.resource_version
        self._compacted = snapshot.compacted
        self._drop_connections()
        self._notify()

    def _key(self, resource: str, obj: Obj) -> Key:
        meta = obj["metadata"]
        namespaced = self._collections[resource].type.namespaced
        return (meta.get("namespace") or "default") if namespaced else "", meta["name"]

    def _store(self, collection: _Collection, obj: Obj) -> Obj:
        self._rv += 1
        namespace, name = key = self._key(collection.type.plural, obj)
        meta = {**obj["metadata"], "name": name, "resourceVersion": str(self._rv)}
        if namespace:
            meta["namespace"] = namespace
        stored = {**obj, "metadata": meta}
        stored.pop("kind", None)
        stored.pop("apiVersion", None)
        body = _dumps(stored)
        created = collection.put(key, body)
        self._record(collection, _Event(self._rv, "ADDED" if created else "MODIFIED", namespace, body))
        return stored

    def _record(self, collection: _Collection, event: _Event) -> None:
        collection.history.append(event)
        for watcher in self._watchers:
            if watcher.resource == collection.type.plural and watcher.namespace in (None, event.namespace):
                watcher.queue.put_nowait(event)

    # -- observing -----------------------------------------------------------------------------------

    def watches_started(self, resource: str) -> int:
        return self._watches_started[resource]

    def open_watches(self, resource: str) -> int:
        return sum(1 for w in self._watchers if w.resource == resource)

    def list_requests(self, resource: str) -> list[RequestRecord]:
        """Cluster-wide LIST (not WATCH) requests for one resource, oldest first."""
        path = RESOURCES[resource].path
        return [r for r in self.requests if r.path == path and not _flag(r.query.get("watch"))]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every request, watch open/close
        and data change."""
        async with asyncio.timeout(within):
            while True:
                changed = self._changed
                if predicate():
                    return
                await changed.wait()

    async def wait_watching(self, resource: str, count: int = 1, within: float = 5.0) -> None:
        await self.wait_for(lambda: self.open_watches(resource) >= count, within)

    def end_watches(self, resource: str | None = None) -> None:
        """End open watch streams cleanly, as when their timeoutSeconds runs out."""
        for watcher in self._watchers:
            if resource in (None, watcher.resource):
                watcher.queue.put_nowait(None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- HTTP ----------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(
            RequestRecord(request.method, request.path, query, request.headers.get("Authorization"))
        )
        self._notify()
        if self.faults.silent():
            await self.faults.swallow()
        if (failure := self.faults.take_failure(request.path)) is not None:
            reasons = {500: "InternalError", 504: "Timeout"}
            return status_response(
                failure.status, reasons.get(failure.status, "ServiceUnavailable"), failure.message
            )
        if (group := request.match_info.get("group")) and group in self.faults.dropped_groups:
            return status_response(404, "NotFound", "the server could not find the requested resource")
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPNotFound:
            return status_response(404, "NotFound", "the server could not find the requested resource")
        return response

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"major": "1", "minor": "31", "gitVersion": "v1.31.0-double", "platform": "linux/amd64"}
        )

    async def _core_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        )

    def _resource_list(self, group_version: str, group: str) -> web.Response:
        resources = [
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for r in RESOURCES.values()
            if r.group == group
        ]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }
        )

    async def _core_resources(self, request: web.Request) -> web.Response:
        return self._resource_list("v1", "")

    def _group_body(self, group: str) -> Obj:
        version = {"groupVersion": f"{group}/v1", "version": "v1"}
        return {"name": group, "versions": [version], "preferredVersion": version}

    def _served_groups(self) -> list[str]:
        return sorted({r.group for r in RESOURCES.values() if r.group} - self.faults.dropped_groups)

    async def _group_list(self, request: web.Request) -> web.Response:
        groups = [self._group_body(g) for g in self._served_groups()]
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group not in self._served_groups():
            raise web.HTTPNotFound()
        return web.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group_body(group)})

    async def _group_resources(self, request: web.Request) -> web.Response:
        group, version = request.match_info["group"], request.match_info["version"]
        if group not in self._served_groups() or version != "v1":
            raise web.HTTPNotFound()
        return self._resource_list(f"{group}/{version}", group)

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        plural = request.match_info["plural"]
        group = request.match_info.get("group", "")
        collection = self._collections.get(plural)
        if (
            collection is None
            or collection.type.group != group
            or request.match_info.get("version", "v1") != "v1"
        ):
            raise web.HTTPNotFound()
        namespace = request.match_info.get("namespace")
        if namespace is not None and not collection.type.namespaced:
            raise web.HTTPNotFound()
        if _flag(request.query.get("watch")):
            return await self._watch(request, collection, namespace)
        return self._list(request, collection, namespace)

    def _list(self, request: web.Request, collection: _Collection, namespace: str | None) -> web.Response:
        keys = collection.sorted_keys()
        limit = int(request.query.get("limit") or 0) or len(keys)
        snapshot_rv = self._rv
        if token := request.query.get("continue"):
            state = json.loads(base64.urlsafe_b64decode(token))
            snapshot_rv = state["rv"]
            if snapshot_rv < self._compacted:
                return status_response(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result.",
                )
            start = bisect.bisect_right(keys, tuple(state["start"]))
        else:
            start = bisect.bisect_left(keys, (namespace, "")) if namespace else 0
        end = len(keys) if namespace is None else bisect.bisect_left(keys, (namespace + "\0", ""))
        page = keys[start : min(end, start + limit)]
        meta: Obj = {"resourceVersion": str(snapshot_rv)}
        if start + limit < end:
            last = list(page[-1])
            meta["continue"] = base64.urlsafe_b64encode(_dumps({"rv": snapshot_rv, "start": last})).decode()
            meta["remainingItemCount"] = end - start - len(page)
        rtype = collection.type
        head = _dumps({"kind": rtype.kind + "List", "apiVersion": rtype.api_version, "metadata": meta})
        body = b'%s,"items":[%s]}' % (head[:-1], b",".join(collection.objects[k] for k in page))
        return web.Response(body=body, content_type="application/json")

    async def _watch(
        self, request: web.Request, collection: _Collection, namespace: str | None
    ) -> web.StreamResponse:
        query = request.query
        since = query.get("resourceVersion", "")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        bookmarks = _flag(query.get("allowWatchBookmarks"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        if since not in ("", "0") and int(since) < self._compacted:
            await response.prepare(request)
            status = status_body(410, "Expired", f"too old resource version: {since} ({self._compacted})")
            await response.write(b'{"type":"ERROR","object":%s}\n' % _dumps(status))
            await response.write_eof()
            return response
        if since in ("", "0"):  # "any" or "most recent": the current state as synthetic ADDED events
            backlog = [
                _Event(self._rv, "ADDED", k[0], collection.objects[k])
                for k in collection.sorted_keys()
                if namespace in (None, k[0])
            ]
            last_rv = self._rv
        else:
            last_rv = int(since)
            first = bisect.bisect_right(collection.history, last_rv, key=lambda e: e.rv)
            backlog = [e for e in collection.history[first:] if namespace in (None, e.namespace)]
        # Registered before the first await, so no event falls between the backlog and the queue.
        watcher = _Watcher(collection.type.plural, namespace)
        opened = self.faults.black_holes
        self._watchers.add(watcher)
        self._watches_started[watcher.resource] += 1
        self._notify()
        loop = asyncio.get_running_loop()
        try:
            await response.prepare(request)
            for event in backlog:
                if not await self._send(request, response, collection, event, opened):
                    return response
                last_rv = max(last_rv, event.rv)
            deadline = None if timeout is None else loop.time() + timeout
            next_bookmark = loop.time() + self.bookmark_interval if bookmarks else None
            while True:
                wake = min((t for t in (deadline, next_bookmark) if t is not None), default=None)
                try:
                    async with asyncio.timeout_at(wake):
                        item = await watcher.queue.get()
                except TimeoutError:
                    if deadline is not None and loop.time() >= deadline:
                        break
                    bookmark_rv = self._rv if watcher.queue.empty() else last_rv
                    next_bookmark = loop.time() + self.bookmark_interval
                    if bookmark_rv < last_rv:  # restored below where the watch started
                        continue
                    await self.faults.gate(opened)
                    meta = b'{"metadata":{"resourceVersion":"%d"}}' % bookmark_rv
                    await response.write(collection.line("BOOKMARK", meta))
                    continue
                if item is None:
                    break
                if item.rv <= last_rv:  # restored below where the watch started
                    continue
                if not await self._send(request, response, collection, item, opened):
                    return response
                last_rv = item.rv
            await self.faults.gate(opened)
            await response.write_eof()
        finally:
            self._watchers.discard(watcher)
            self._notify()
        return response

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        collection: _Collection,
        event: _Event,
        opened: int,
    ) -> bool:
        """Write one event line; False when a scripted fault cut the stream in the middle of it."""
        await self.faults.gate(opened)
        line = collection.line(event.type, event.body)
        if self.faults.take_cut(collection.type.plural):
            await response.write(line[: len(line) // 2])
            assert request.transport is not None
            request.transport.close()
            return False
        await response.write(line)
        return True
