"""The live Kubernetes API source: LIST then WATCH each resource and emit store events.

One reflector task per resource (Services, EndpointSlices or v1 Endpoints, Namespaces, optionally Pods):
a paginated LIST becomes ``Replace`` + ``Synced`` (so a relist drops whatever was deleted meanwhile); a
WATCH from the list's resourceVersion, with bookmarks, turns events into ``Upsert``/``Delete``. A stream
that ends is resumed from the last resourceVersion seen; 410 Gone means LIST again. Failures back off
exponentially with full jitter. A watch that sends nothing, not even a bookmark, for ``stall_timeout`` is
dropped and restarted: proxies and load balancers silently kill idle connections, and a client that
waits forever serves stale answers (kube-dns's stale-record bug).

kubernetes-asyncio provides configuration, authentication (including rotated tokens) and its HTTP
session, nothing more: responses are read as raw JSON and turned straight into slim records, because
building its model objects for 100k endpoints would cost seconds and hundreds of megabytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import incluster_config, kube_config
from prometheus_client import CollectorRegistry

from kubedns_py import __version__
from kubedns_py.cluster.objects import (
    EndpointSet,
    Kind,
    KubeObject,
    ObjectError,
    Service,
    from_dict,
    raw_object_key,
)
from kubedns_py.cluster.store import Delete, Event, Replace, Synced, Upsert
from kubedns_py.ratelimit import RateLimitedLog
from kubedns_py.sources.base import ApplyEvents
from kubedns_py.sources.kube_metrics import SERVICE_KINDS, KubeMetrics

log = logging.getLogger(__name__)

EndpointsApi = Literal["auto", "endpointslices", "endpoints"]
T = TypeVar("T")


@dataclass(frozen=True)
class KubeSettings:
    kubeconfig: str | None = None
    master_url: str | None = None  # environment variables are expanded, as kube-dns did
    endpoints_api: EndpointsApi = "auto"
    watch_pods: bool = False
    page_size: int = 500
    watch_timeout_seconds: int = 300  # server-side timeoutSeconds of each watch request
    stall_timeout: float = 90.0  # above the API server's one-minute bookmark interval
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.endpoints_api not in get_args(EndpointsApi):
            raise ValueError(f"endpoints API must be one of {', '.join(get_args(EndpointsApi))}")
        if self.master_url is not None:
            url = urlsplit(self.api_url or "")
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"--kube-master-url {self.master_url!r} needs a scheme and a host")
        numbers = (self.page_size, self.watch_timeout_seconds, self.stall_timeout, self.backoff_base)
        if min(numbers) <= 0 or self.backoff_cap < self.backoff_base or self.connect_timeout <= 0:
            raise ValueError("page size, timeouts and backoff must be positive (and cap >= base)")

    @property
    def kubeconfig_path(self) -> str | None:
        return os.path.expanduser(self.kubeconfig) if self.kubeconfig else None

    @property
    def api_url(self) -> str | None:
        return os.path.expandvars(self.master_url) if self.master_url else None


def have_cluster_config(settings: KubeSettings) -> bool:
    """Whether there is any way to reach a cluster: a kubeconfig file, a master URL, or an in-cluster
    service account (KUBERNETES_SERVICE_HOST/PORT and the token file)."""
    if settings.kubeconfig_path:
        return os.path.isfile(settings.kubeconfig_path)
    if settings.master_url:
        return True
    return (
        bool(os.environ.get(incluster_config.SERVICE_HOST_ENV_NAME))
        and bool(os.environ.get(incluster_config.SERVICE_PORT_ENV_NAME))
        and os.path.isfile(incluster_config.SERVICE_TOKEN_FILENAME)
    )


async def client_configuration(settings: KubeSettings) -> tuple[Configuration, Any]:
    """The client configuration, and the kubeconfig loader when a kubeconfig was read (it refreshes
    exec-plugin and GCP tokens, see ``kube_config.refresh_token``)."""
    configuration = Configuration()
    loader = None
    if settings.kubeconfig:
        loader = await kube_config.load_kube_config(
            config_file=settings.kubeconfig_path,
            client_configuration=configuration,
            persist_config=False,
        )
    elif not settings.master_url:
        # Installs a hook that re-reads the (rotated, projected) token file every minute; it runs on
        # every request made with auth_settings=["BearerToken"].
        incluster_config.InClusterConfigLoader(
            token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=incluster_config.SERVICE_CERT_FILENAME,
            try_refresh_token=True,
        ).load_and_set(configuration)
    if settings.master_url:
        configuration.host = settings.api_url
    return configuration, loader


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * 2 ** min(attempt, 32)))


class ApiError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class Gone(ApiError):
    """410: the resourceVersion or continue token is older than the server's history."""


@dataclass(frozen=True)
class _Resource:
    kind: Kind
    name: str  # the plural, also the metrics label
    path: str
    field_selector: str | None = None


SERVICES = _Resource(Kind.SERVICE, "services", "/api/v1/services")
ENDPOINT_SLICES = _Resource(Kind.ENDPOINT_SLICE, "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices")
ENDPOINTS = _Resource(Kind.ENDPOINTS, "endpoints", "/api/v1/endpoints")
NAMESPACES = _Resource(Kind.NAMESPACE, "namespaces", "/api/v1/namespaces")
# Finished pods keep their IP in the API but must not answer `verified` pod queries (as in CoreDNS).
_LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"
PODS = _Resource(Kind.POD, "pods", "/api/v1/pods", _LIVE_PODS)

_TRANSIENT = (aiohttp.ClientError, OSError, ApiError, TimeoutError, ValueError)  # ValueError: bad JSON


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
        return str(status.get("message") or status.get("reason") or "")
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


async def _get(client: ApiClient, path: str, query: Mapping[str, str], limits: aiohttp.ClientTimeout) -> Any:
    """GET through the client's session and auth; the raw aiohttp response, which must be 200."""
    response = await client.call_api(
        path,
        "GET",
        query_params=list(query.items()),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=limits,
    )
    if response.status != 200:
        async with response:
            message = _status_message(await response.content.read(65536))
        raise (Gone if response.status == 410 else ApiError)(response.status, message)
    return response


def _list_page(body: bytes) -> tuple[list[Any], dict[str, Any]]:
    """The items and metadata of one LIST page."""
    page = json.loads(body)
    items = page.get("items") if isinstance(page, dict) else None
    meta = page.get("metadata") if isinstance(page, dict) else None
    if not isinstance(items, list | None) or not isinstance(meta, dict):
        raise ApiError(None, f"a malformed list response: {body[:200]!r}")
    return items or [], meta


class KubeSource:
    """A ``Source`` fed by the Kubernetes API (``kubedns_py.sources.base.Source``)."""

    def __init__(self, settings: KubeSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.metrics = KubeMetrics(registry, lambda: self.last_contact)
        self._contact: dict[str, float] = {}
        self._healthy: dict[str, bool] = {}
        self._headless: set[tuple[str, str]] = set()  # for the programming-latency label
        self._bad: dict[tuple[Kind, str, str], str] = {}  # objects that failed conversion, logged once
        self.limited = RateLimitedLog(log)  # what the API sends: bad objects, failing watches

    @property
    def kinds(self) -> frozenset[Kind]:
        """With ``endpoints_api="auto"`` both endpoint kinds: the one the cluster does not serve is
        delivered as an empty ``Replace`` + ``Synced`` once discovery has decided."""
        kinds = {Kind.SERVICE, Kind.NAMESPACE}
        if self.settings.endpoints_api != "endpoints":
            kinds.add(Kind.ENDPOINT_SLICE)
        if self.settings.endpoints_api != "endpointslices":
            kinds.add(Kind.ENDPOINTS)
        if self.settings.watch_pods:
            kinds.add(Kind.POD)
        return frozenset(kinds)

    @property
    def last_contact(self) -> float | None:
        """Unix time of the last successful answer from the API server, if any."""
        return max(self._contact.values(), default=None)

    @property
    def connected(self) -> bool:
        """Every resource is listed and its watch is open (none is failing or backing off)."""
        return bool(self._healthy) and all(self._healthy.values())

    async def run(self, apply: ApplyEvents) -> None:
        configuration, loader = await self._retry(
            "loading the client configuration", lambda: client_configuration(self.settings)
        )
        async with ApiClient(configuration=configuration) as client, asyncio.TaskGroup() as tasks:
            client.user_agent = f"kubedns-py/{__version__}"
            if loader is not None:
                tasks.create_task(self._refresh_credentials(loader, configuration))
            endpoints = await self._retry("API discovery", lambda: self._endpoints_resource(client))
            unused = (self.kinds & {Kind.ENDPOINT_SLICE, Kind.ENDPOINTS}) - {endpoints.kind}
            if unused:
                apply([event for kind in unused for event in (Replace(kind, ()), Synced(kind))])
            resources = [SERVICES, endpoints, NAMESPACES] + ([PODS] if self.settings.watch_pods else [])
            for resource in resources:
                self._healthy[resource.name] = False
                self.metrics.add_resource(resource.name)
                tasks.create_task(_Reflector(self, client, resource, apply).run())

    async def _retry(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await action()
            except Exception as exc:  # config and discovery trouble is logged and retried, never raised
                delay = backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
                attempt += 1
                self.limited.warning(
                    f"retry {what}", "kubernetes: %s failed (%s); retrying in %.1fs", what, exc, delay
                )
                await asyncio.sleep(delay)

    async def _endpoints_resource(self, client: ApiClient) -> _Resource:
        if self.settings.endpoints_api != "auto":
            return ENDPOINT_SLICES if self.settings.endpoints_api == "endpointslices" else ENDPOINTS
        try:
            response = await _get(client, "/apis/discovery.k8s.io/v1", {}, self.limits)
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info("kubernetes: discovery.k8s.io/v1 is not served; watching v1 Endpoints")
            return ENDPOINTS
        async with response:
            body = await response.json(content_type=None)
        served = {r.get("name") for r in body.get("resources", ()) if isinstance(r, Mapping)}
        return ENDPOINT_SLICES if "endpointslices" in served else ENDPOINTS

    async def _refresh_credentials(self, loader: Any, configuration: Configuration) -> None:
        try:
            await kube_config.refresh_token(loader, configuration)
        except Exception:  # a failed exec plugin shows up as 401s, which are logged and retried
            log.exception("kubernetes: refreshing the kubeconfig credentials failed")

    @property
    def limits(self) -> aiohttp.ClientTimeout:
        # sock_read doubles as the stall detector: bookmarks keep a healthy watch from going silent.
        return aiohttp.ClientTimeout(
            connect=self.settings.connect_timeout, sock_read=self.settings.stall_timeout
        )

    # -- helpers for the reflectors ------------------------------------------------------------------

    def touch(self, resource: str, healthy: bool = True) -> None:
        if healthy:
            now = time.time()
            self._contact[resource] = now
            self.metrics.last_contact.labels(resource).set(now)
        self._healthy[resource] = healthy

    def convert(self, kind: Kind, obj: Any) -> KubeObject | None:
        """The slim record, or None (logged once per object and error) when the object is unusable."""
        try:
            converted = from_dict(kind, obj)
        except ObjectError as exc:
            namespace, name = raw_object_key(kind, obj) or ("", "?")
            if self._bad.get((kind, namespace, name)) != str(exc):
                self.limited.warning(
                    f"bad {kind.value}", "kubernetes: skipping %s %s/%s: %s", kind.value, namespace, name, exc
                )
                self._bad[(kind, namespace, name)] = str(exc)
            return None
        if self._bad:
            self.forget_bad(kind, raw_object_key(kind, obj))
        return converted

    def forget_bad(self, kind: Kind, key: tuple[str, str] | None) -> None:
        """The object is fine again, or gone: log it again if it turns bad later."""
        if key is not None:
            self._bad.pop((kind, *key), None)

    def track_services(self, events: list[Event]) -> None:
        for event in events:
            match event:
                case Replace(objects=objects):
                    self._headless = {
                        (s.namespace, s.name) for s in objects if isinstance(s, Service) and s.headless
                    }
                case Upsert(obj=Service() as service) if service.headless:
                    self._headless.add((service.namespace, service.name))
                case Upsert(obj=Service() as service):
                    self._headless.discard((service.namespace, service.name))
                case Delete(namespace=namespace, name=name):
                    self._headless.discard((namespace, name))

    def observe_programming(self, changes: list[EndpointSet]) -> None:
        now = time.time()
        for endpoints in changes:
            if endpoints.trigger_time and endpoints.service:
                headless = (endpoints.namespace, endpoints.service) in self._headless
                kind = SERVICE_KINDS[1] if headless else SERVICE_KINDS[0]
                self.metrics.observe_programming(kind, endpoints.trigger_time, now)


class _Reflector:
    """LIST + WATCH of one resource, forever."""

    def __init__(
        self, source: KubeSource, client: ApiClient, resource: _Resource, apply: ApplyEvents
    ) -> None:
        self.source = source
        self.client = client
        self.resource = resource
        self.settings = source.settings
        self._apply = apply
        self.rv: str | None = None  # None: LIST before the next WATCH
        self.progressed = False
        self.lists = 0

    def apply(self, events: list[Event]) -> None:
        if self.resource is SERVICES:
            self.source.track_services(events)
        self._apply(events)

    async def run(self) -> None:
        attempt = 0
        while True:
            self.progressed = False
            failure: Exception | None = None
            try:
                if self.rv is None:
                    await self.list_all()
                await self.watch()
            except Gone as exc:
                self.rv = None
                failure = exc
            except _TRANSIENT as exc:
                failure = exc
                self.source.metrics.reconnects.labels(self.resource.name).inc()
            except Exception as exc:  # a surprise must not end the watch for good: log it, retry
                self.source.limited.exception(
                    f"surprise {self.resource.name}", "kubernetes: %s: unexpected failure", self.resource.name
                )
                failure = exc
                self.source.metrics.reconnects.labels(self.resource.name).inc()
            if self.progressed:
                attempt = 0
            if failure is None and self.progressed:
                continue  # the stream ended on its timeoutSeconds: resume from the last resourceVersion
            self.source.touch(self.resource.name, healthy=False)
            delay = backoff_delay(attempt, self.settings.backoff_base, self.settings.backoff_cap)
            attempt += 1
            level = logging.INFO if isinstance(failure, Gone) else logging.WARNING  # Gone is routine
            self.source.limited.log(
                level,
                f"retry {self.resource.name}",
                "kubernetes: %s: %s; next try in %.2fs",
                self.resource.name,
                _describe(failure),
                delay,
            )
            await asyncio.sleep(delay)

    def _query(self, **extra: str) -> dict[str, str]:
        query = dict(extra)
        if self.resource.field_selector:
            query["fieldSelector"] = self.resource.field_selector
        return query

    async def list_all(self) -> None:
        if self.lists:
            self.source.metrics.relists.labels(self.resource.name).inc()
        self.lists += 1
        objects: list[KubeObject] = []
        query = self._query(limit=str(self.settings.page_size))
        while True:
            async with await _get(self.client, self.resource.path, query, self.source.limits) as response:
                items, meta = _list_page(await response.read())
            self.source.touch(self.resource.name)
            for index, item in enumerate(items):
                if index % 100 == 99:
                    await asyncio.sleep(0)  # 500 big slices take ~0.1 s: let DNS queries through meanwhile
                converted = self.source.convert(self.resource.kind, item)
                if converted is not None:
                    objects.append(converted)
            if not meta.get("continue"):
                break
            query["continue"] = meta["continue"]
        if not meta.get("resourceVersion"):
            raise ApiError(None, "the list has no metadata.resourceVersion")
        self.apply([Replace(self.resource.kind, tuple(objects)), Synced(self.resource.kind)])
        self.rv = str(meta["resourceVersion"])
        self.progressed = True

    async def watch(self) -> None:
        assert self.rv is not None
        query = self._query(
            watch="true",
            resourceVersion=self.rv,
            allowWatchBookmarks="true",
            timeoutSeconds=str(self.settings.watch_timeout_seconds),
        )
        async with await _get(self.client, self.resource.path, query, self.source.limits) as response:
            self.source.touch(self.resource.name)
            pending = b""
            async for chunk in response.content.iter_any():
                *lines, pending = (pending + chunk).split(b"\n")
                if lines:
                    self.handle_lines(lines)
            if pending.strip():
                raise ApiError(None, "the watch stream ended in the middle of an event")

    def handle_lines(self, lines: list[bytes]) -> None:
        """Apply a batch of watch lines (all those that arrived together) as one batch of events."""
        kind = self.resource.kind
        events: list[Event] = []
        changes: list[EndpointSet] = []
        types: Counter[str] = Counter()
        rv = self.rv
        error: Exception | None = None
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                event_type, obj = event.get("type"), event.get("object")
            except (ValueError, AttributeError):
                obj = None
            if not isinstance(obj, dict) or not isinstance(event_type, str):
                error = ApiError(None, f"a malformed watch event: {line[:200]!r}")
                break
            if event_type == "ERROR":
                code, message = obj.get("code"), str(obj.get("message"))
                error = Gone(code, message) if code == 410 else ApiError(code, message)
                break
            types[event_type] += 1
            if event_type in ("ADDED", "MODIFIED"):
                converted = self.source.convert(kind, obj)
                if isinstance(converted, EndpointSet):
                    changes.append(converted)
                if converted is not None:
                    events.append(Upsert(converted))
                elif key := raw_object_key(kind, obj):
                    events.append(Delete(kind, *key))  # drop the last good version, as a relist would
            elif event_type == "DELETED" and (key := raw_object_key(kind, obj)):
                events.append(Delete(kind, *key))
                self.source.forget_bad(kind, key)
            meta = obj.get("metadata")
            if isinstance(meta, dict) and meta.get("resourceVersion"):
                rv = str(meta["resourceVersion"])
        if events:
            self.apply(events)
            self.source.observe_programming(changes)
        if types:
            self.rv = rv
            self.progressed = True
            self.source.touch(self.resource.name)
            self.source.metrics.count_events(self.resource.name, types)
        if error is not None:
            raise error


def _describe(failure: Exception | None) -> str:
    if failure is None:
        return "the watch ended without sending anything"
    if isinstance(failure, Gone):
        return "resourceVersion expired (410), listing again"
    if isinstance(failure, aiohttp.SocketTimeoutError):
        return "stalled: no event or bookmark within the stall timeout"
    return f"{type(failure).__name__}: {failure}"
