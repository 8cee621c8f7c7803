"""Reaching the API server: settings, configuration, authentication and the HTTP session.

kubernetes-asyncio provides configuration, authentication (including rotated tokens) and its aiohttp
session, nothing more: ``Api`` hands back raw responses and bodies, for the layers above to read as JSON.
Every request is bounded in time, and sockets carry TCP keepalive, so a server that stops answering
without closing anything (a black-holed path, a peer that lost the connection) is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import aiohttp

from kubedns_py import __version__
from kubedns_py.sources.kube.library import ApiClient, Configuration, incluster_config, kube_config

log = logging.getLogger("kubedns_py.sources.kube")  # one logger for the package's lines

EndpointsApi = Literal["auto", "endpointslices", "endpoints"]


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
    request_timeout: float = 30.0  # a LIST page or discovery answered in full, a WATCH's headers
    # While a watch is silent this long (bookmarks come once a minute), a LIST of one namespace on a new
    # connection checks that the server answers and has not gone back below our resourceVersions.
    probe_interval: float = 10.0
    probe_timeout: float = 5.0
    coredns_metrics: bool = False  # the programming-latency histogram under CoreDNS's name too

    def __post_init__(self) -> None:
        if self.endpoints_api not in get_args(EndpointsApi):
            raise ValueError(f"endpoints API must be one of {', '.join(get_args(EndpointsApi))}")
        if self.master_url is not None:
            url = urlsplit(self.api_url or "")
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"--kube-master-url {self.master_url!r} needs a scheme and a host")
        numbers = (
            self.page_size,
            self.watch_timeout_seconds,
            self.stall_timeout,
            self.backoff_base,
            self.connect_timeout,
            self.request_timeout,
            self.probe_interval,
            self.probe_timeout,
        )
        if min(numbers) <= 0 or self.backoff_cap < self.backoff_base:
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


class ApiError(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


class Gone(ApiError):
    """The server cannot go on from our resourceVersion or continue token: 410, older than its history;
    or "Too large resource version", newer than anything it has (as after an etcd restore)."""


class NoAnswer(ApiError):
    """The server did not answer within a timeout: the request was given up."""


def error(status: int | None, message: str) -> ApiError:
    """The exception for a failing status, from an HTTP response or a watch's ERROR event."""
    too_large = status == 504 and "too large resource version" in message.lower()
    return (Gone if status == 410 or too_large else ApiError)(status, message)


# A silent peer is probed after 15 s and dropped after 3 unanswered probes 5 s apart: within 30 s.
_KEEPALIVE = {"TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}


def _keep_alive(response: aiohttp.ClientResponse) -> None:
    transport = response.connection.transport if response.connection is not None else None
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in _KEEPALIVE.items():
        if hasattr(socket, option):  # Linux has all three; others keep their system defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _status_message(body: bytes) -> str:
    try:
        status = json.loads(body)
        return str(status.get("message") or status.get("reason") or "")
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


class Api:
    """GETs through the client's session and auth, each bounded in time."""

    def __init__(self, client: ApiClient, probe_client: ApiClient, settings: KubeSettings) -> None:
        self._client = client
        self._probe_client = probe_client  # only ever one request at a time, never a kept connection
        self._settings = settings
        # sock_read doubles as the stall detector: bookmarks keep a healthy watch from going silent.
        self._timeout = aiohttp.ClientTimeout(
            connect=settings.connect_timeout, sock_read=settings.stall_timeout
        )

    async def get(self, path: str, query: Mapping[str, str]) -> aiohttp.ClientResponse:
        """The raw response to stream (a WATCH), which is a 200 whose headers came within the request
        timeout: any other status raises ``ApiError`` (``Gone`` when our resourceVersion is unusable)."""
        async with self._bounded(self._settings.request_timeout):
            return await self._get(self._client, path, query, {})

    async def read(self, path: str, query: Mapping[str, str]) -> bytes:
        """The whole body of a 200 (a LIST page, discovery), within the request timeout."""
        return await self._read(self._client, self._settings.request_timeout, path, query, {})

    async def probe(self, path: str, query: Mapping[str, str]) -> bytes:
        """``read`` on a new connection, within the probe timeout: whether the server answers at all,
        whatever became of the connections already open."""
        seconds = self._settings.probe_timeout
        return await self._read(self._probe_client, seconds, path, query, {"Connection": "close"})

    async def _read(
        self,
        client: ApiClient,
        seconds: float,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> bytes:
        async with self._bounded(seconds), await self._get(client, path, query, headers) as response:
            return await response.read()

    @contextlib.asynccontextmanager
    async def _bounded(self, seconds: float) -> AsyncIterator[None]:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                yield
        except TimeoutError as exc:
            if not scope.expired():
                raise  # aiohttp's own (connect or read) timeout
            raise NoAnswer(None, f"no answer within {seconds:g}s") from exc

    async def _get(
        self, client: ApiClient, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse = await client.call_api(
            path,
            "GET",
            query_params=list(query.items()),
            header_params={"Accept": "application/json", **headers},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=self._timeout,
        )
        if response.status != 200:
            async with response:
                message = _status_message(await response.content.read(65536))
            raise error(response.status, message)
        _keep_alive(response)
        return response

    async def served(self, group_version: str) -> set[str] | None:
        """The resources an API group version serves (discovery), or None if it is not served."""
        try:
            body = json.loads(await self.read(f"/apis/{group_version}", {}))
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None
        resources = body.get("resources", ())
        return {name for r in resources if isinstance(r, Mapping) and isinstance(name := r.get("name"), str)}


@contextlib.asynccontextmanager
async def session(settings: KubeSettings, configuration: Configuration, loader: Any) -> AsyncIterator[Api]:
    """An ``Api`` on a fresh HTTP session, refreshing the kubeconfig's credentials while it is open."""
    async with ApiClient(configuration=configuration) as client, ApiClient(configuration) as probe_client:
        client.user_agent = probe_client.user_agent = f"kubedns-py/{__version__}"
        refresh = asyncio.create_task(_refresh_credentials(loader, configuration)) if loader else None
        try:
            yield Api(client, probe_client, settings)
        finally:
            if refresh is not None:
                refresh.cancel()
                await asyncio.gather(refresh, return_exceptions=True)


async def _refresh_credentials(loader: Any, configuration: Configuration) -> None:
    try:
        await kube_config.refresh_token(loader, configuration)
    except Exception:  # a failed exec plugin shows up as 401s, which are logged and retried
        log.exception("kubernetes: refreshing the kubeconfig credentials failed")
