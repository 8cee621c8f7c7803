"""serve following a Kubernetes API (the double in tests/support/apiserver.py) end to end: the same
records as from manifest files, changes within moments, and no wrong answer through API trouble."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
import yaml

from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.dnsclient import answers
from tests.support.http import readiness
from tests.support.paths import DEMO_CLUSTER
from tests.support.ports import HOST
from tests.support.processes import Running, serve, start_serve, stop
from tests.support.waiting import eventually

RESOURCES = {
    "Service": "services",
    "EndpointSlice": "endpointslices",
    "Endpoints": "endpoints",
    "Namespace": "namespaces",
    "Pod": "pods",
}
QUESTIONS = [
    ("myservice.default.svc.cluster.local.", "A"),
    ("myservice.default.svc.cluster.local.", "AAAA"),
    ("_http._tcp.myservice.default.svc.cluster.local.", "SRV"),
    ("dual.default.svc.cluster.local.", "AAAA"),
    ("search.default.svc.cluster.local.", "A"),
    ("api-alias.default.svc.cluster.local.", "A"),
    ("db.shop.svc.cluster.local.", "A"),
    ("db-1.db.shop.svc.cluster.local.", "A"),
    ("_postgres._tcp.db.shop.svc.cluster.local.", "SRV"),
    ("workers.shop.svc.cluster.local.", "AAAA"),
    ("cold.shop.svc.cluster.local.", "A"),
    ("legacy.shop.svc.cluster.local.", "A"),
    ("legacy-0.legacy.shop.svc.cluster.local.", "A"),
    ("10-244-1-5.default.pod.cluster.local.", "A"),
    ("shop.svc.cluster.local.", "A"),
    ("nosuch.svc.cluster.local.", "A"),
    ("10.100.96.10.in-addr.arpa.", "PTR"),
    ("10.2.244.10.in-addr.arpa.", "PTR"),
    ("dns-version.cluster.local.", "TXT"),
    ("cluster.local.", "NS"),
]


def demo_objects() -> list[tuple[str, dict[str, Any]]]:
    items = yaml.safe_load(DEMO_CLUSTER.read_text())["items"]
    return [(RESOURCES[item["kind"]], item) for item in items]


async def aask(name: str, rdtype: str, port: int) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, HOST, port=port, timeout=3)


async def summary(name: str, rdtype: str, port: int) -> tuple[str, frozenset[str]]:
    reply = await aask(name, rdtype, port)
    return dns.rcode.to_text(reply.rcode()), frozenset(answers(reply))


def mirrored_slice(endpoints: dict[str, Any]) -> dict[str, Any]:
    """The EndpointSlice that Kubernetes' mirroring controller makes for a selector-less Endpoints."""
    meta = endpoints["metadata"]
    subset = endpoints["subsets"][0]
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-mirror",
            "namespace": meta["namespace"],
            "labels": {"kubernetes.io/service-name": meta["name"]},
        },
        "endpoints": [
            {"addresses": [a["ip"]], "hostname": a.get("hostname"), "conditions": {"ready": ready}}
            for field, ready in (("addresses", True), ("notReadyAddresses", False))
            for a in subset.get(field, [])
        ],
        "ports": subset["ports"],
    }


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer(bookmark_interval=0.1) as server:
        for resource, obj in demo_objects():
            server.create(resource, obj)
            if resource == "endpoints":
                server.create("endpointslices", mirrored_slice(obj))
        yield server


async def start_kube_serve(api: FakeApiServer, *extra: str) -> Running:
    args = ("--kube-master-url", api.url, "--watch-stall-timeout", "1s", *extra)
    return await asyncio.to_thread(start_serve, *args, manifests=())


async def test_api_answers_the_same_records_as_manifests(api: FakeApiServer) -> None:
    served = await start_kube_serve(api)
    try:
        await eventually(lambda: asyncio.to_thread(lambda: readiness(served.health_port) == 200))
        with serve() as from_files:
            for name, rdtype in QUESTIONS:
                via_api = await summary(name, rdtype, served.dns_port)
                via_files = await summary(name, rdtype, from_files.dns_port)
                assert via_api == via_files, f"{name} {rdtype}"
    finally:
        stop(served)


async def test_servfail_and_not_ready_until_the_first_sync(api: FakeApiServer) -> None:
    api.faults.fail_next(1000, status=503, path="/api/v1/services")
    served = await start_kube_serve(api)
    try:
        await api.wait_for(lambda: len(api.requests) > 0)
        assert (
            await aask("myservice.default.svc.cluster.local.", "A", served.dns_port)
        ).rcode() == dns.rcode.SERVFAIL
        assert (
            await aask("nosuch.default.svc.cluster.local.", "A", served.dns_port)
        ).rcode() == dns.rcode.SERVFAIL
        assert await asyncio.to_thread(readiness, served.health_port) == 503
        api.faults.clear_failures()
        await eventually(lambda: asyncio.to_thread(lambda: readiness(served.health_port) == 200), within=10)
        reply = await aask("myservice.default.svc.cluster.local.", "A", served.dns_port)
        assert answers(reply) == {"myservice.default.svc.cluster.local. A 10.96.100.10"}
    finally:
        stop(served)


async def test_create_update_delete_show_up_at_once(api: FakeApiServer) -> None:
    served = await start_kube_serve(api)
    name = "fresh.default.svc.cluster.local."
    try:
        await api.wait_watching("services")
        api.create("services", objects.service("fresh", "default", cluster_ip="10.96.7.7"))

        async def has(ip: str | None) -> bool:
            reply = await aask(name, "A", served.dns_port)
            if ip is None:
                return bool(reply.rcode() == dns.rcode.NXDOMAIN)
            return answers(reply) == {f"{name} A {ip}"}

        created = await eventually(lambda: has("10.96.7.7"))
        api.update("services", objects.service("fresh", "default", cluster_ip="10.96.7.8"))
        updated = await eventually(lambda: has("10.96.7.8"))
        api.delete("services", "fresh", "default")
        deleted = await eventually(lambda: has(None))
        assert max(created, updated, deleted) < 1.0
    finally:
        stop(served)


async def test_outage_keeps_answers_and_a_relist_drops_what_was_deleted(api: FakeApiServer) -> None:
    served = await start_kube_serve(api)
    try:
        await api.wait_watching("services")
        await eventually(lambda: asyncio.to_thread(lambda: readiness(served.health_port) == 200))
        await api.refuse_connections()
        api.delete("services", "myservice", "default")
        api.compact()  # the watch cannot resume: 410, list again
        for _ in range(3):
            reply = await aask("myservice.default.svc.cluster.local.", "A", served.dns_port)
            assert answers(reply) == {"myservice.default.svc.cluster.local. A 10.96.100.10"}
        assert await asyncio.to_thread(readiness, served.health_port) == 200
        await api.accept_connections()

        async def gone() -> bool:
            reply = await aask("myservice.default.svc.cluster.local.", "A", served.dns_port)
            return bool(reply.rcode() == dns.rcode.NXDOMAIN)

        await eventually(gone, within=40)  # reconnect backoff is capped, jittered
        assert (await aask("db.shop.svc.cluster.local.", "A", served.dns_port)).rcode() == dns.rcode.NOERROR
    finally:
        stop(served)


async def test_a_stalled_watch_is_restarted(api: FakeApiServer) -> None:
    served = await start_kube_serve(api)
    try:
        await api.wait_watching("services")
        started = api.watches_started("services")
        api.faults.hang_watches()  # open streams go silent: no events, no bookmarks
        api.create("services", objects.service("late", "default", cluster_ip="10.96.8.8"))
        # A new watch request means the silent one was given up on (the stall timeout is 1 s).
        await api.wait_for(lambda: api.watches_started("services") > started, within=10)
        assert not answers(await aask("late.default.svc.cluster.local.", "A", served.dns_port))
        api.faults.hang_watches(False)

        async def late() -> bool:
            return bool(answers(await aask("late.default.svc.cluster.local.", "A", served.dns_port)))

        await eventually(late, within=10)
        assert "stalled" in served.log_text()
    finally:
        stop(served)


async def test_endpoints_fallback_without_the_discovery_group(api: FakeApiServer) -> None:
    api.faults.drop_group("discovery.k8s.io")
    served = await start_kube_serve(api)
    try:
        await eventually(lambda: asyncio.to_thread(lambda: readiness(served.health_port) == 200))
        reply = await aask("legacy.shop.svc.cluster.local.", "A", served.dns_port)
        assert answers(reply) == {"legacy.shop.svc.cluster.local. A 10.244.5.1"}
        assert not api.list_requests("endpointslices")
        assert api.list_requests("endpoints")
    finally:
        stop(served)
