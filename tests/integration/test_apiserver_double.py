"""The Kubernetes API server double speaks the real protocol: checked with plain HTTP and with a real
kubernetes-asyncio client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch

from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def core(api: FakeApiServer) -> AsyncIterator[Any]:
    async with k8s.ApiClient(k8s.Configuration(host=api.url)) as client:
        yield k8s.CoreV1Api(client)


async def get_json(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as response:
        return response.status, await response.json()


async def watch_lines(http: aiohttp.ClientSession, url: str, count: int, **params: str) -> list[Any]:
    async with http.get(url, params={"watch": "true", **params}) as response:
        assert response.status == 200
        return [json.loads(await response.content.readline()) for _ in range(count)]


async def test_discovery_documents(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    assert (await get_json(http, api.url + "/version"))[1]["gitVersion"].startswith("v1.")
    assert (await get_json(http, api.url + "/api"))[1]["versions"] == ["v1"]
    core = (await get_json(http, api.url + "/api/v1"))[1]
    assert {r["name"] for r in core["resources"]} == {"services", "endpoints", "namespaces", "pods"}
    groups = (await get_json(http, api.url + "/apis"))[1]
    assert [g["name"] for g in groups["groups"]] == ["discovery.k8s.io"]
    group = (await get_json(http, api.url + "/apis/discovery.k8s.io"))[1]
    assert group["preferredVersion"]["groupVersion"] == "discovery.k8s.io/v1"
    resources = (await get_json(http, api.url + "/apis/discovery.k8s.io/v1"))[1]
    assert [r["name"] for r in resources["resources"]] == ["endpointslices"]


async def test_dropped_group_is_not_served(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.faults.drop_group("discovery.k8s.io")
    assert (await get_json(http, api.url + "/apis"))[1]["groups"] == []
    for path in (
        "/apis/discovery.k8s.io",
        "/apis/discovery.k8s.io/v1",
        "/apis/discovery.k8s.io/v1/endpointslices",
    ):
        status, body = await get_json(http, api.url + path)
        assert (status, body["kind"], body["code"]) == (404, "Status", 404)
    api.faults.restore_group("discovery.k8s.io")
    assert (await get_json(http, api.url + "/apis/discovery.k8s.io/v1/endpointslices"))[0] == 200


async def test_paged_list_through_kubernetes_asyncio(api: FakeApiServer, core: Any) -> None:
    api.load("services", (objects.service(f"svc-{i:04}", ns=f"ns-{i % 7}") for i in range(1200)))
    names, pages, token = [], 0, None
    while True:
        result = await core.list_service_for_all_namespaces(limit=500, _continue=token)
        pages += 1
        names += [(s.metadata.namespace, s.metadata.name) for s in result.items]
        assert all(int(s.metadata.resource_version) > 1 for s in result.items)
        token = result.metadata._continue
        if not token:
            break
    assert pages == 3
    assert len(set(names)) == 1200
    assert names == sorted(names)
    assert int(result.metadata.resource_version) == api.resource_version
    queries = [r.query for r in api.list_requests("services")]
    assert [q.get("limit") for q in queries] == ["500"] * 3
    assert "continue" not in queries[0] and all(q.get("continue") for q in queries[1:])


async def test_list_json_has_list_kind_and_bare_items(
    api: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    first = api.create("services", objects.service("a"))
    api.create("services", objects.service("b", ns="other"))
    status, body = await get_json(http, api.url + "/api/v1/services")
    assert (status, body["kind"], body["apiVersion"]) == (200, "ServiceList", "v1")
    assert body["metadata"]["resourceVersion"] == str(api.resource_version)
    assert all("kind" not in item for item in body["items"])
    assert body["items"][0]["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    namespaced = (await get_json(http, api.url + "/api/v1/namespaces/other/services"))[1]
    assert [i["metadata"]["name"] for i in namespaced["items"]] == ["b"]
    slices = (await get_json(http, api.url + "/apis/discovery.k8s.io/v1/endpointslices"))[1]
    assert (slices["kind"], slices["apiVersion"]) == ("EndpointSliceList", "discovery.k8s.io/v1")


async def test_watch_through_kubernetes_asyncio(api: FakeApiServer, core: Any) -> None:
    api.create("services", objects.service("before"))
    listed = await core.list_service_for_all_namespaces()
    seen: list[tuple[str, str, int]] = []

    async def consume() -> None:
        watcher = k8s_watch.Watch()
        stream = watcher.stream(
            core.list_service_for_all_namespaces,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        )
        async with stream:
            async for event in stream:
                seen.append(
                    (
                        event["type"],
                        event["object"].metadata.name,
                        int(event["object"].metadata.resource_version),
                    )
                )
                if len(seen) == 3:
                    return

    consumer = asyncio.create_task(consume())
    await api.wait_watching("services")
    api.create("services", objects.service("web"))
    api.update("services", objects.service("web", cluster_ip="10.0.0.2"))
    api.delete("services", "web")
    await asyncio.wait_for(consumer, 5)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "web"), ("MODIFIED", "web"), ("DELETED", "web")]
    assert [rv for _, _, rv in seen] == sorted(rv for _, _, rv in seen)


async def test_watch_replays_history_after_resource_version(
    api: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    first = api.create("services", objects.service("a"))
    api.create("services", objects.service("b"))
    api.create("services", objects.service("c", ns="other"))
    url = api.url + "/api/v1/services"
    events = await watch_lines(http, url, 2, resourceVersion=first["metadata"]["resourceVersion"])
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b"), ("ADDED", "c")]
    assert events[0]["object"]["kind"] == "Service" and events[0]["object"]["apiVersion"] == "v1"
    namespaced = await watch_lines(
        http,
        api.url + "/api/v1/namespaces/other/services",
        1,
        resourceVersion=first["metadata"]["resourceVersion"],
    )
    assert namespaced[0]["object"]["metadata"]["name"] == "c"
    current = await watch_lines(http, url, 3, resourceVersion="0")  # "any": the current state
    assert sorted(e["object"]["metadata"]["name"] for e in current) == ["a", "b", "c"]


async def test_watch_bookmarks_and_timeout(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.create("services", objects.service("a"))
    params = {"watch": "1", "resourceVersion": str(api.resource_version), "allowWatchBookmarks": "true"}
    started = time.monotonic()
    async with http.get(api.url + "/api/v1/services", params={**params, "timeoutSeconds": "0.3"}) as response:
        lines = [json.loads(line) async for line in response.content]  # ends when the server ends it
    assert 0.3 <= time.monotonic() - started < 3
    assert lines and {e["type"] for e in lines} == {"BOOKMARK"}
    assert lines[-1]["object"]["metadata"] == {"resourceVersion": str(api.resource_version)}


async def test_expired_resource_version(api: FakeApiServer, http: aiohttp.ClientSession, core: Any) -> None:
    old = api.create("services", objects.service("a"))["metadata"]["resourceVersion"]
    api.create("services", objects.service("b"))
    api.compact()
    (event,) = await watch_lines(http, api.url + "/api/v1/services", 1, resourceVersion=old)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    stream = k8s_watch.Watch().stream(
        core.list_service_for_all_namespaces, resource_version=old, timeout_seconds=5
    )
    with pytest.raises(k8s.ApiException) as raised:
        async with stream:
            async for _ in stream:
                pass
    assert raised.value.status == 410
    # Watching from the compaction point itself is fine.
    current = str(api.resource_version)
    async with http.get(
        api.url + "/api/v1/services", params={"watch": "true", "resourceVersion": current}
    ) as response:
        assert response.status == 200
        api.create("services", objects.service("c"))
        assert json.loads(await response.content.readline())["type"] == "ADDED"


async def test_expired_continue_token_is_410(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.load("services", (objects.service(f"s{i}") for i in range(3)))
    token = (await get_json(http, api.url + "/api/v1/services", limit="1"))[1]["metadata"]["continue"]
    api.create("services", objects.service("late"))
    api.compact()
    status, body = await get_json(http, api.url + "/api/v1/services", limit="1", **{"continue": token})
    assert (status, body["reason"]) == (410, "Expired")


async def test_scripted_server_errors(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.faults.fail_next(2, status=503, path="/api/v1/services")
    assert (await get_json(http, api.url + "/api/v1/namespaces"))[0] == 200
    statuses = [(await get_json(http, api.url + "/api/v1/services"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    api.faults.fail_next(1)
    status, body = await get_json(http, api.url + "/version")
    assert (status, body["kind"]) == (500, "Status")
    assert [r.path for r in api.requests][-1] == "/version"


async def test_outage_and_recovery_on_the_same_port(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    url = api.url
    async with http.get(
        url + "/api/v1/services", params={"watch": "true", "resourceVersion": "1"}
    ) as response:
        await api.wait_watching("services")
        await api.refuse_connections()
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.content.read()
    await api.wait_for(lambda: api.open_watches("services") == 0)
    with pytest.raises(aiohttp.ClientConnectorError):
        await get_json(http, url + "/version")
    await api.accept_connections()
    assert api.url == url
    assert (await get_json(http, url + "/version"))[0] == 200


async def test_hung_watch_sends_nothing(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.faults.hang_watches()
    params = {"watch": "true", "resourceVersion": str(api.resource_version), "allowWatchBookmarks": "true"}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        assert response.status == 200
        api.create("services", objects.service("a"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # six bookmark intervals of silence
                await response.content.readline()
    api.faults.hang_watches(False)
    (event,) = await watch_lines(http, api.url + "/api/v1/services", 1, resourceVersion="1")
    assert event["object"]["metadata"]["name"] == "a"


async def test_stream_cut_in_the_middle_of_an_event(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    params = {"watch": "true", "resourceVersion": str(api.resource_version)}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        api.faults.cut_next_event("services")
        api.create("services", objects.service("a"))
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                received += chunk
    assert received.startswith(b'{"type":"ADDED"') and not received.endswith(b"\n")


async def test_end_watches_ends_streams_cleanly(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    params = {"watch": "true", "resourceVersion": str(api.resource_version)}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        await api.wait_watching("services")
        assert api.watches_started("services") == 1
        api.end_watches("services")
        assert await response.content.read() == b""
    await api.wait_for(lambda: api.open_watches("services") == 0)


async def test_bulk_load_and_paged_list_are_fast(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    started = time.perf_counter()
    api.load("services", (objects.service(f"s{i:05}", ns=f"ns{i % 100}") for i in range(10_000)))
    api.load(
        "endpointslices",
        (
            objects.endpoint_slice(
                f"s{i:05}-x", f"s{i:05}", [f"10.{i // 256 % 256}.{i % 256}.{j}" for j in range(10)]
            )
            for i in range(10_000)
        ),
    )
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    count, token = 0, None
    while True:
        params = {"limit": "500", **({"continue": token} if token else {})}
        async with http.get(api.url + "/api/v1/services", params=params) as response:
            body = await response.read()
        page = json.loads(body)
        count += len(page["items"])
        if not (token := page["metadata"].get("continue")):
            break
    listed = time.perf_counter() - started
    print(f"load 20k objects / 100k endpoints: {loaded:.2f}s; LIST 10k services in 20 pages: {listed:.2f}s")
    assert count == 10_000
    assert loaded < 10 and listed < 5


async def test_black_hole_swallows_requests_and_streams(
    api: FakeApiServer, http: aiohttp.ClientSession
) -> None:
    params = {"watch": "true", "resourceVersion": str(api.resource_version), "allowWatchBookmarks": "true"}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        await response.content.readline()  # a bookmark: the stream flows
        api.faults.black_hole(0.3)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.8):  # made in the hole: no answer, even once it has ended
                await http.get(api.url + "/version")
        assert not api.faults.silent() and api.faults.swallowed == 1
        api.create("services", objects.service("a"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # the stream it swallowed stays silent
                await response.content.readline()
    assert (await get_json(http, api.url + "/version"))[0] == 200
    (event,) = await watch_lines(http, api.url + "/api/v1/services", 1, resourceVersion="1")
    assert event["object"]["metadata"]["name"] == "a"


async def test_restore_takes_resource_versions_back(api: FakeApiServer, http: aiohttp.ClientSession) -> None:
    api.create("services", objects.service("kept"))
    snapshot = api.snapshot()
    api.create("services", objects.service("lost"))
    api.delete("services", "kept")
    ahead = str(api.resource_version)
    params = {"watch": "true", "resourceVersion": ahead}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        await api.wait_watching("services")
        api.restore(snapshot)
        with pytest.raises(aiohttp.ClientPayloadError):  # the API servers restart
            await response.content.read()
    status, listed = await get_json(http, api.url + "/api/v1/services")
    assert status == 200 and [s["metadata"]["name"] for s in listed["items"]] == ["kept"]
    assert int(listed["metadata"]["resourceVersion"]) == snapshot.resource_version < int(ahead)
    # A watch from the version clients saw before gets nothing at or below it, bookmarks included.
    params = {"watch": "true", "resourceVersion": ahead, "allowWatchBookmarks": "true"}
    async with http.get(api.url + "/api/v1/services", params=params) as response:
        api.create("services", objects.service("new"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # six bookmark intervals
                await response.content.readline()
    new, restored = str(api.resource_version), str(snapshot.resource_version)
    (event,) = await watch_lines(http, api.url + "/api/v1/services", 1, resourceVersion=restored)
    assert (event["type"], event["object"]["metadata"]["resourceVersion"]) == ("ADDED", new)
