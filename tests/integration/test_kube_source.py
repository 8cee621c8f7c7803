"""KubeSource against the API server double over loopback, feeding a real Store; its streams layer
alone, against the double and against scripted chunks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.config import incluster_config
from prometheus_client import CollectorRegistry

from kubedns_py.cluster.objects import Kind
from kubedns_py.cluster.store import Event, Replace, Store, Synced
from kubedns_py.sources.kube import reflector, streams
from kubedns_py.sources.kube.client import (
    ApiError,
    Gone,
    KubeSettings,
    client_configuration,
    have_cluster_config,
    session,
)
from kubedns_py.sources.kube.reflector import Reflector, backoff_delay
from kubedns_py.sources.kube.source import KubeSource
from tests.support import apiserver_objects as objects
from tests.support.apiserver import FakeApiServer
from tests.support.waiting import eventually


def settings_for(api: FakeApiServer, **overrides: Any) -> KubeSettings:
    base: dict[str, Any] = {
        "master_url": api.url,
        "stall_timeout": 2.0,
        "backoff_base": 0.01,
        "backoff_cap": 0.1,
        "connect_timeout": 2.0,
    }
    return KubeSettings(**{**base, **overrides})


@dataclass
class Running:
    source: KubeSource
    store: Store
    registry: CollectorRegistry
    events: list[Event] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def names(self, kind: Kind) -> set[str]:
        return {getattr(obj, "name", "") for obj in self.store.objects(kind)}


@contextlib.asynccontextmanager
async def running(settings: KubeSettings, synced: bool = True) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    source = KubeSource(settings, registry)
    run = Running(source, Store(source.kinds), registry)

    def apply(events: Sequence[Event]) -> None:
        run.events.extend(events)
        run.store.apply(events)

    task = asyncio.create_task(source.run(apply))
    try:
        if synced:
            await eventually(lambda: run.store.synced)
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises anything the source crashed with


def seed(api: FakeApiServer) -> None:
    api.create("namespaces", objects.namespace("default"))
    api.create("services", objects.service("web", cluster_ip="10.0.0.10"))
    api.create("services", objects.service("db", cluster_ip=None))
    api.create("endpointslices", objects.endpoint_slice("web-1", "web", ["10.1.0.1", "10.1.0.2"]))
    api.create("endpointslices", objects.endpoint_slice("db-1", "db", ["10.2.0.1"]))
    api.create("pods", objects.pod("db-0", "10.2.0.1"))


async def test_initial_sync_replaces_and_syncs_every_kind(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api, watch_pods=True)) as run:
        kinds = {Kind.SERVICE, Kind.ENDPOINT_SLICE, Kind.ENDPOINTS, Kind.NAMESPACE, Kind.POD}
        assert run.source.kinds == kinds
        assert {e.kind for e in run.events if isinstance(e, Synced)} == kinds
        replaced = {e.kind: e.objects for e in run.events if isinstance(e, Replace)}
        assert set(replaced) == kinds
        assert replaced[Kind.ENDPOINTS] == ()  # auto mode: this cluster serves EndpointSlices
        web = run.store.service("default", "web")
        assert web is not None and web.addresses == ("10.0.0.10",)
        db = run.store.service("default", "db")
        assert db is not None and db.addresses == ("10.2.0.1",)
        assert run.store.pod_ip_exists("default", "10.2.0.1")
        assert run.store.namespace_exists("default")
        await eventually(lambda: run.source.connected)
        assert run.source.last_contact is not None and time.time() - run.source.last_contact < 5
        assert run.metric("kubedns_kubernetes_since_last_contact_seconds") < 5
        assert run.metric("kubedns_kubernetes_last_contact_timestamp_seconds", resource="services") > 0
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 0


async def test_changes_propagate(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        api.create("services", objects.service("api", cluster_ip="10.0.0.20"))
        api.create("endpointslices", objects.endpoint_slice("db-2", "db", ["10.2.0.2"]))
        await eventually(lambda: run.store.service("default", "api") is not None)
        await eventually(
            lambda: (db := run.store.service("default", "db")) is not None and len(db.addresses) == 2
        )
        api.update("services", objects.service("api", cluster_ip="10.0.0.21"))
        await eventually(
            lambda: (
                (svc := run.store.service("default", "api")) is not None and svc.addresses == ("10.0.0.21",)
            )
        )
        api.delete("services", "api")
        api.delete("endpointslices", "db-1")
        await eventually(lambda: run.store.service("default", "api") is None)
        await eventually(
            lambda: (db := run.store.service("default", "db")) is not None and db.addresses == ("10.2.0.2",)
        )
        for type_ in ("ADDED", "MODIFIED", "DELETED"):
            assert run.metric("kubedns_kubernetes_watch_events_total", resource="services", type=type_) >= 1
        bookmarks = {"resource": "services", "type": "BOOKMARK"}
        await eventually(lambda: run.metric("kubedns_kubernetes_watch_events_total", **bookmarks) >= 1)


async def test_relist_after_410_drops_objects_deleted_meanwhile(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        await api.refuse_connections()
        api.delete("services", "web")
        api.create("services", objects.service("late", cluster_ip="10.0.0.30"))
        api.compact()  # the watch cannot resume: it must LIST again
        await api.accept_connections()
        await eventually(lambda: run.names(Kind.SERVICE) == {"db", "late"})
        assert run.store.service("default", "web") is None
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 1
        assert len(api.list_requests("services")) == 2
        assert sum(isinstance(e, Replace) and e.kind is Kind.SERVICE for e in run.events) == 2


async def test_outage_keeps_data_and_recovers(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        await eventually(lambda: run.source.connected)
        await api.refuse_connections()
        await eventually(lambda: run.metric("kubedns_kubernetes_reconnects_total", resource="services") >= 3)
        assert not run.source.connected
        assert run.store.synced and run.names(Kind.SERVICE) == {"web", "db"}
        await api.accept_connections()
        api.create("services", objects.service("after", cluster_ip="10.0.0.40"))
        await eventually(lambda: run.store.service("default", "after") is not None)
        await eventually(lambda: run.source.connected)
        assert run.names(Kind.SERVICE) == {"web", "db", "after"}


async def test_stalled_watch_is_restarted(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api, stall_timeout=0.5)) as run:
        await api.wait_watching("services")
        started = api.watches_started("services")
        api.faults.hang_watches()
        api.create("services", objects.service("quiet", cluster_ip="10.0.0.50"))
        # A new watch means the silent one was given up on.
        await api.wait_for(lambda: api.watches_started("services") > started)
        assert run.store.service("default", "quiet") is None
        api.faults.hang_watches(False)
        await eventually(lambda: run.store.service("default", "quiet") is not None)
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="services") >= 1
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 0


# The probe timings tenfold below the defaults (a probe after 10 s of silence, 5 s to answer), against a
# black hole of 1.5 s rather than 15 s; the stall timeout stays long, so only the probes can notice.
FAST_PROBES = {"probe_interval": 1.0, "probe_timeout": 0.5, "stall_timeout": 60.0}


async def test_black_holed_api_is_noticed_once_it_answers_again(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api, **FAST_PROBES)) as run:
        await eventually(lambda: run.source.connected)
        api.faults.black_hole(1.5)  # the open watches die in it, unclosed
        api.create("services", objects.service("during", cluster_ip="10.0.0.80"))
        api.delete("services", "web")
        await eventually(lambda: not api.faults.silent(), within=3)
        api.create("services", objects.service("after", cluster_ip="10.0.0.81"))
        took = await eventually(lambda: run.names(Kind.SERVICE) == {"db", "during", "after"}, within=10)
        assert took < 3.0  # 30 s at full scale
        assert api.faults.swallowed >= 1  # a probe, at least
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 0  # resumed


async def test_retries_waiting_out_their_backoff_go_once_the_api_answers_again(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seed(api)
    monkeypatch.setattr(reflector, "backoff_delay", lambda attempt, base, cap: 60.0)
    async with running(settings_for(api, **FAST_PROBES)) as run:
        await eventually(lambda: run.source.connected)
        await api.refuse_connections()
        await eventually(lambda: run.metric("kubedns_kubernetes_reconnects_total", resource="services") == 1)
        await eventually(lambda: "did not answer a probe" in caplog.text)
        await api.accept_connections()
        api.create("services", objects.service("after", cluster_ip="10.0.0.82"))
        await eventually(lambda: run.store.service("default", "after") is not None)


async def test_requests_into_a_black_hole_are_given_up(api: FakeApiServer) -> None:
    seed(api)
    api.faults.black_hole(0.5)  # swallows discovery
    async with running(settings_for(api, request_timeout=1.0, stall_timeout=60.0)) as run:
        assert run.names(Kind.SERVICE) == {"web", "db"}
    assert api.faults.swallowed == 1


async def test_api_restored_to_older_resource_versions_is_listed_again(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api, probe_interval=0.3)) as run:
        await eventually(lambda: run.source.connected)
        backup = api.snapshot()
        for name in ("lost-1", "lost-2", "lost-3"):
            api.create("services", objects.service(name, cluster_ip=None))
        await eventually(lambda: "lost-3" in run.names(Kind.SERVICE))
        api.restore(backup)  # the watches resume from versions the server is now below
        api.create("services", objects.service("after", cluster_ip="10.0.0.90"))
        api.delete("services", "web")
        await eventually(lambda: run.names(Kind.SERVICE) == {"db", "after"})
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 1


async def test_too_large_resource_version_lists_again(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        await api.wait_watching("services")
        too_large = "Too large resource version: 900, current: 12"  # the watch cache's 504
        api.faults.fail_next(1, status=504, path="/api/v1/services", message=too_large)
        api.end_watches("services")
        await eventually(lambda: run.metric("kubedns_kubernetes_relists_total", resource="services") == 1)


async def test_a_stalled_watch_from_an_opaque_resource_version_lists_again(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(api)
    monkeypatch.setattr(reflector, "version_number", lambda rv: None)  # as if none were an integer
    async with running(settings_for(api, stall_timeout=0.5)) as run:
        await api.wait_watching("services")
        api.faults.hang_watches()
        await eventually(lambda: run.metric("kubedns_kubernetes_relists_total", resource="services") >= 1)
        api.faults.hang_watches(False)


async def test_api_sockets_keep_alive(api: FakeApiServer) -> None:
    settings = settings_for(api)
    configuration, loader = await client_configuration(settings)
    async with (
        session(settings, configuration, loader) as client,
        await client.get("/api/v1/services", {"watch": "true"}) as response,
    ):
        assert response.connection is not None and response.connection.transport is not None
        sock = response.connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        count = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
        interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
        assert idle + count * interval <= 30  # a dead peer dropped within 30 s


async def test_stream_cut_mid_event_resumes_without_relist(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        await api.wait_watching("services")
        api.faults.cut_next_event("services")
        api.create("services", objects.service("cut", cluster_ip="10.0.0.60"))
        await eventually(lambda: run.store.service("default", "cut") is not None)
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="services") == 1
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 0
        assert len(api.list_requests("services")) == 1


async def test_server_errors_are_retried_with_backoff(api: FakeApiServer) -> None:
    seed(api)
    api.faults.fail_next(3, status=503, path="/api/v1/services")
    api.faults.fail_next(2, status=500, path="/api/v1/namespaces")
    async with running(settings_for(api)) as run:
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="services") == 3
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="namespaces") == 2
        assert len(api.list_requests("services")) == 4
        # Errors on a re-watch resume from the last resourceVersion: no relist.
        await api.wait_watching("services")
        api.faults.fail_next(2, status=500, path="/api/v1/services")
        api.end_watches("services")
        api.create("services", objects.service("later", cluster_ip="10.0.0.70"))
        await eventually(lambda: run.store.service("default", "later") is not None)
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="services") == 5
        assert len(api.list_requests("services")) == 4


def test_backoff_is_capped_full_jitter() -> None:
    for attempt in range(40):
        delays = [backoff_delay(attempt, 0.5, 30.0) for _ in range(50)]
        assert all(0 <= d <= min(30.0, 0.5 * 2**attempt) for d in delays)
    assert max(backoff_delay(10, 0.5, 30.0) for _ in range(200)) > 15  # spread over the whole range


async def test_watch_resumes_from_last_resource_version_when_stream_ends(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api, watch_timeout_seconds=1)) as run:
        await api.wait_for(lambda: api.watches_started("services") >= 2, within=5)
        watches = [r for r in api.requests if r.path == "/api/v1/services" and r.query.get("watch")]
        assert all(
            w.query["timeoutSeconds"] == "1" and w.query["allowWatchBookmarks"] == "true" for w in watches
        )
        # The second watch starts from a bookmark newer than the list.
        assert int(watches[1].query["resourceVersion"]) >= int(watches[0].query["resourceVersion"])
        assert run.metric("kubedns_kubernetes_relists_total", resource="services") == 0
        assert run.metric("kubedns_kubernetes_reconnects_total", resource="services") == 0


async def test_endpoints_fallback_without_discovery_group(api: FakeApiServer) -> None:
    api.faults.drop_group("discovery.k8s.io")
    api.create("services", objects.service("db", cluster_ip=None))
    api.create("endpoints", objects.endpoints("db", ["10.2.0.1", "10.2.0.2"]))
    async with running(settings_for(api)) as run:
        db = run.store.service("default", "db")
        assert db is not None and db.addresses == ("10.2.0.1", "10.2.0.2")
        assert Replace(Kind.ENDPOINT_SLICE, ()) in run.events and Synced(Kind.ENDPOINT_SLICE) in run.events
        assert api.list_requests("endpoints") and not api.list_requests("endpointslices")


async def test_explicit_endpoints_api_skips_discovery(api: FakeApiServer) -> None:
    api.create("endpoints", objects.endpoints("db", ["10.2.0.1"]))
    async with running(settings_for(api, endpoints_api="endpoints")) as run:
        assert run.source.kinds == {Kind.SERVICE, Kind.ENDPOINTS, Kind.NAMESPACE}
        assert run.names(Kind.ENDPOINTS) == {"db"}
        assert not [r for r in api.requests if r.path.startswith("/apis")]


async def test_pagination_uses_limit_and_continue(api: FakeApiServer) -> None:
    api.load("services", (objects.service(f"s{i:04}", ns=f"ns{i % 9}") for i in range(1200)))
    async with running(settings_for(api, page_size=500)) as run:
        assert len(run.store.objects(Kind.SERVICE)) == 1200
        queries = [r.query for r in api.list_requests("services")]
        assert [q["limit"] for q in queries] == ["500"] * 3
        assert "continue" not in queries[0] and all(q["continue"] for q in queries[1:])


async def test_unusable_objects_are_skipped_and_logged_once(
    api: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    seed(api)
    bad = objects.service("bad")
    bad["spec"]["clusterIPs"] = "10.0.0.99"  # not a list
    api.create("services", bad)
    caplog.set_level(logging.WARNING, "kubedns_py.sources.kube")
    async with running(settings_for(api)) as run:
        assert run.names(Kind.SERVICE) == {"web", "db"}
        await api.refuse_connections()  # force a relist that sees the bad object again
        api.delete("services", "web")
        api.compact()
        await api.accept_connections()
        await eventually(lambda: run.names(Kind.SERVICE) == {"db"})
        assert sum("skipping Service default/bad" in r.message for r in caplog.records) == 1
        api.update("services", objects.service("bad", cluster_ip="10.0.0.99"))
        await eventually(lambda: run.store.service("default", "bad") is not None)


async def test_programming_latency_from_trigger_time(api: FakeApiServer) -> None:
    seed(api)
    async with running(settings_for(api)) as run:
        name = "kubedns_kubernetes_dns_programming_duration_seconds"
        # Exported at zero before the first change, so Prometheus sees that change as an increase.
        for kind in ("cluster_ip", "headless_with_selector"):
            assert run.registry.get_sample_value(f"{name}_count", {"service_kind": kind}) == 0
        trigger = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=2)
        stamp = trigger.strftime("%Y-%m-%dT%H:%M:%SZ")
        api.create("endpointslices", objects.endpoint_slice("db-2", "db", ["10.2.0.9"], trigger_time=stamp))
        api.create("endpointslices", objects.endpoint_slice("web-2", "web", ["10.1.0.9"], trigger_time=stamp))
        await eventually(lambda: run.metric(f"{name}_count", service_kind="cluster_ip") == 1)
        assert run.metric(f"{name}_count", service_kind="headless_with_selector") == 1
        assert 2 <= run.metric(f"{name}_sum", service_kind="headless_with_selector") < 10
        # Objects from the initial LIST are old news: only watch events are measured.
        assert run.metric(f"{name}_bucket", service_kind="cluster_ip", le="+Inf") == 1


async def test_list_of_10k_services_parses_quickly(api: FakeApiServer) -> None:
    api.load(
        "services",
        (
            objects.service(f"s{i:05}", ns=f"ns{i % 100}", cluster_ip=f"10.96.{i // 256}.{i % 256}")
            for i in range(10_000)
        ),
    )
    started = time.perf_counter()
    async with running(settings_for(api, endpoints_api="endpointslices")) as run:
        elapsed = time.perf_counter() - started
        assert len(run.store.objects(Kind.SERVICE)) == 10_000
    print(f"LIST (20 pages) + parse + store 10k services: {elapsed:.2f}s")
    assert elapsed < 8


async def test_master_url_expands_environment_variables(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_APISERVER_PORT", str(api.port))
    settings = settings_for(api, master_url="http://127.0.0.1:${FAKE_APISERVER_PORT}")
    assert settings.api_url == api.url
    async with running(settings) as run:
        assert run.store.synced


async def test_kubeconfig_token_is_sent(api: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": api.url}}],
        "users": [{"name": "dns", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "double", "user": "dns"}}],
        "current-context": "ctx",
    }
    kubeconfig.write_text(json.dumps(config))  # JSON is YAML
    settings = settings_for(api, master_url=None, kubeconfig=str(kubeconfig))
    assert have_cluster_config(settings)
    async with running(settings):
        assert {r.authorization for r in api.requests} == {"Bearer secret-token"}
        assert api.requests[0].path == "/apis/discovery.k8s.io/v1"


def test_have_cluster_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    assert not have_cluster_config(KubeSettings())
    assert not have_cluster_config(KubeSettings(kubeconfig=str(tmp_path / "missing")))
    assert have_cluster_config(KubeSettings(master_url="http://127.0.0.1:8080"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert not have_cluster_config(KubeSettings())  # no service-account token
    (tmp_path / "token").write_text("t")
    assert have_cluster_config(KubeSettings())


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        KubeSettings(endpoints_api="slices")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KubeSettings(master_url="127.0.0.1:8080")
    with pytest.raises(ValueError):
        KubeSettings(stall_timeout=0)


async def test_in_cluster_token_rotation_is_picked_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("first")
    ca.write_text("not parsed until a TLS connection is made")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setattr(
        incluster_config, "TOKEN_REFRESH_PERIOD", datetime.timedelta(0)
    )  # re-read on every use
    configuration, _ = await client_configuration(KubeSettings())
    assert configuration.host == "https://10.96.0.1:443"
    assert (await configuration.auth_settings())["BearerToken"]["value"] == "Bearer first"
    token.write_text("second")
    assert (await configuration.auth_settings())["BearerToken"]["value"] == "Bearer second"


async def test_an_unexpected_failure_is_retried_not_fatal(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(api)
    original = Reflector.list_all
    failed: list[str] = []

    async def surprising(self: Reflector) -> None:
        if self.resource.name == "services" and not failed:
            failed.append("once")
            raise RuntimeError("a surprise")
        await original(self)

    monkeypatch.setattr(Reflector, "list_all", surprising)
    async with running(settings_for(api)) as run:
        api.create("services", objects.service("after", cluster_ip="10.0.0.77"))
        await eventually(lambda: run.store.service("default", "after") is not None)
    assert failed == ["once"]


# -- the streams layer ---------------------------------------------------------------------------------


def watch_line(type_: str, name: str | None, rv: int) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if name is not None:
        meta["name"] = name
    return json.dumps({"type": type_, "object": {"metadata": meta}}).encode() + b"\n"


ERROR_410 = b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}\n'


async def framed(*chunks: bytes) -> AsyncIterator[list[streams.WatchEvent]]:
    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async for batch in streams.framed(stream()):
        yield batch


async def test_watch_lines_split_across_chunks_are_framed_whole() -> None:
    added, bookmark = watch_line("ADDED", "web", 5), watch_line("BOOKMARK", None, 7)
    deleted = watch_line("DELETED", "web", 8)
    # A batch per chunk that completes lines: none for a chunk inside a line or of blank lines only.
    chunks = [added[:10], added[10:] + bookmark[:3], bookmark[3:], b"\n", deleted[:-1], deleted[-1:]]
    batches = [[(e.type, e.resource_version) for e in b] async for b in framed(*chunks)]
    assert batches == [[("ADDED", "5")], [("BOOKMARK", "7")], [("DELETED", "8")]]
    together = [b async for b in framed(added + b"\n" + bookmark)]
    assert [[e.type for e in b] for b in together] == [["ADDED", "BOOKMARK"]]
    assert together[0][0].object["metadata"]["name"] == "web"


async def test_watch_error_raises_after_the_events_before_it() -> None:
    received: list[list[streams.WatchEvent]] = []
    with pytest.raises(Gone, match="too old"):
        async for batch in framed(watch_line("ADDED", "web", 5) + ERROR_410 + watch_line("ADDED", "db", 6)):
            received.append(batch)
    assert [[e.object["metadata"]["name"] for e in b] for b in received] == [["web"]]
    other = ERROR_410.replace(b"410", b"500")
    with pytest.raises(ApiError, match="HTTP 500") as raised:
        [b async for b in framed(other)]
    assert not isinstance(raised.value, Gone)


async def test_too_large_resource_version_error_is_gone() -> None:
    status = {"kind": "Status", "code": 504, "reason": "Timeout", "message": "Too large resource version: 9"}
    with pytest.raises(Gone, match="Too large"):
        [b async for b in framed(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")]


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ((b'{"type":"ADDED","object":{"metadata":{}}}\n{"type":"MODI',), "in the middle of an event"),
        ((b"not json\n",), "a malformed watch event"),
        ((b'{"type":"ADDED"}\n',), "a malformed watch event"),
    ],
)
async def test_broken_watch_streams_raise(chunks: tuple[bytes, ...], message: str) -> None:
    with pytest.raises(ApiError, match=message):
        [b async for b in framed(*chunks)]


async def test_streams_list_watch_gone_and_stall(api: FakeApiServer) -> None:
    seed(api)
    settings = settings_for(api, stall_timeout=0.3)
    configuration, loader = await client_configuration(settings)
    async with session(settings, configuration, loader) as client:
        pages = [p async for p in streams.list_pages(client, "/api/v1/services", None, page_size=1)]
        assert [len(p.items) for p in pages] == [1, 1] and pages[-1].resource_version
        watch = streams.watch(client, "/api/v1/services", None, pages[-1].resource_version, 60)
        async with contextlib.aclosing(watch):
            assert await anext(watch) == []  # open, before anything arrived
            api.create("services", objects.service("new"))
            async with asyncio.timeout(5):
                async for batch in watch:  # bookmarks may come first
                    if any(e.type == "ADDED" and e.object["metadata"]["name"] == "new" for e in batch):
                        break
            api.faults.hang_watches()
            with pytest.raises(streams.Stalled):
                async for _ in watch:
                    pass
        api.faults.hang_watches(False)
        api.compact()
        with pytest.raises(Gone):
            async for _ in streams.watch(client, "/api/v1/services", None, pages[-1].resource_version, 60):
                pass
