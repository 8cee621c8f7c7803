"""One LIST or one WATCH of a resource, as async generators of raw JSON; no state survives a call.

A LIST is read page by page (``limit``/``continue``); a WATCH is newline-delimited JSON in chunks that
split lines anywhere, read in batches of the events that arrived together. The server's ERROR events
become exceptions: ``Gone`` (the resourceVersion is too old or too new: LIST again) or ``ApiError``.
``current_version`` asks what resourceVersion the server is at, on a connection of its own. A request
that sends nothing, not even a bookmark, for the stall timeout raises ``Stalled``: proxies and load
balancers silently kill idle connections, and a client that waits forever serves stale answers
(kube-dns's stale-record bug).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubedns_py.cluster.objects import raw_resource_version
from kubedns_py.sources.kube.client import Api, ApiError, error


class Stalled(ApiError):
    """Nothing arrived within the stall timeout (the session's read timeout)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    resource_version: str  # the list's; only the last page's is sure to be set


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK (or whatever else the server invents)
    object: dict[str, Any]
    resource_version: str | None  # to resume the watch from


async def list_pages(
    api: Api, path: str, field_selector: str | None, page_size: int
) -> AsyncGenerator[Page, None]:
    """One paginated LIST. After the last page it raises ``ApiError`` if the list has no
    resourceVersion (there is nothing to watch from)."""
    query = _query(field_selector, limit=str(page_size))
    while True:
        with _stalls():
            items, meta = _list_page(await api.read(path, query))
        yield Page(items, str(meta.get("resourceVersion") or ""))
        if not meta.get("continue"):
            break
        query["continue"] = meta["continue"]
    if not meta.get("resourceVersion"):
        raise ApiError(None, "the list has no metadata.resourceVersion")


async def current_version(api: Api, path: str) -> str:
    """The resourceVersion the server is at now (that of a LIST of at most one object), or ""."""
    _, meta = _list_page(await api.probe(path, {"limit": "1"}))
    return str(meta.get("resourceVersion") or "")


async def watch(
    api: Api, path: str, field_selector: str | None, resource_version: str, timeout_seconds: int
) -> AsyncGenerator[list[WatchEvent], None]:
    """One WATCH from ``resource_version`` with bookmarks, until the server ends it after
    ``timeout_seconds``. The first batch is empty: it says the watch is open."""
    query = _query(
        field_selector,
        watch="true",
        resourceVersion=resource_version,
        allowWatchBookmarks="true",
        timeoutSeconds=str(timeout_seconds),
    )
    with _stalls():
        async with await api.get(path, query) as response:
            yield []
            async for batch in framed(response.content.iter_any()):
                yield batch


async def framed(chunks: AsyncIterable[bytes]) -> AsyncGenerator[list[WatchEvent], None]:
    """Watch events from the chunks of a stream, a batch per chunk that completes any lines. An ERROR
    event or a malformed line raises, after the batch of the events before it."""
    pending = b""
    async for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        events: list[WatchEvent] = []
        error: ApiError | None = None
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(_event(line))
            except ApiError as exc:
                error = exc
                break
        if events:
            yield events
        if error is not None:
            raise error
    if pending.strip():
        raise ApiError(None, "the watch stream ended in the middle of an event")


def _event(line: bytes) -> WatchEvent:
    try:
        event = json.loads(line)
        event_type, obj = event.get("type"), event.get("object")
    except (ValueError, AttributeError):
        event_type = obj = None
    if not isinstance(obj, dict) or not isinstance(event_type, str):
        raise ApiError(None, f"a malformed watch event: {line[:200]!r}")
    if event_type == "ERROR":
        code = obj.get("code")
        raise error(code if isinstance(code, int) else None, str(obj.get("message")))
    return WatchEvent(event_type, obj, raw_resource_version(obj))


def _query(field_selector: str | None, **query: str) -> dict[str, str]:
    if field_selector:
        query["fieldSelector"] = field_selector
    return query


def _list_page(body: bytes) -> tuple[list[Any], dict[str, Any]]:
    """The items and metadata of one LIST page."""
    page = json.loads(body)
    items = page.get("items") if isinstance(page, dict) else None
    meta = page.get("metadata") if isinstance(page, dict) else None
    if not isinstance(items, list | None) or not isinstance(meta, dict):
        raise ApiError(None, f"a malformed list response: {body[:200]!r}")
    return items or [], meta


@contextlib.contextmanager
def _stalls() -> Iterator[None]:
    try:
        yield
    except aiohttp.SocketTimeoutError as exc:
        raise Stalled(None, "stalled: no event or bookmark within the stall timeout") from exc
