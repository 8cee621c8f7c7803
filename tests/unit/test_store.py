"""The store's incremental apply: derived records, the reverse index, serials and notifications."""

from __future__ import annotations

from typing import Any

from kubedns_py.cluster.objects import Kind, KubeObject, from_dict
from kubedns_py.cluster.records import SrvGroup
from kubedns_py.cluster.store import Delete, Replace, Store, Synced, Upsert


def svc(name: str, ns: str = "n", cluster_ip: str | None = "10.0.0.1", **spec: Any) -> KubeObject:
    body: dict[str, Any] = {"ports": [{"name": "http", "port": 80}], **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return from_dict(Kind.SERVICE, {"metadata": {"name": name, "namespace": ns}, "spec": body})


def eps(name: str, service: str, *addresses: str, ns: str = "n", ready: bool = True) -> KubeObject:
    return from_dict(
        Kind.ENDPOINT_SLICE,
        {
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
            "ports": [{"name": "http", "port": 8080}],
        },
    )


def test_cluster_ip_service_records_and_ptr() -> None:
    store = Store()
    store.apply([Upsert(svc("web"))])
    records = store.service("n", "web")
    assert records is not None
    assert records.addresses == ("10.0.0.1",)
    assert records.srv == {("http", "tcp"): (SrvGroup(80, None),)}
    assert store.reverse("10.0.0.1") == [(("n", "web"), None)]


def test_headless_merges_slices_and_drops_when_no_ready_endpoint() -> None:
    store = Store()
    store.apply([Upsert(svc("db", cluster_ip="None")), Upsert(eps("db-1", "db", "10.1.0.1"))])
    store.apply([Upsert(eps("db-2", "db", "10.1.0.2"))])
    records = store.service("n", "db")
    assert records is not None and set(records.addresses) == {"10.1.0.1", "10.1.0.2"}
    assert store.reverse("10.1.0.2") == [(("n", "db"), "10-1-0-2")]
    store.apply(
        [Delete(Kind.ENDPOINT_SLICE, "n", "db-1"), Upsert(eps("db-2", "db", "10.1.0.2", ready=False))]
    )
    assert store.service("n", "db") is None
    assert store.reverse("10.1.0.1") == [] and store.reverse("10.1.0.2") == []


def test_slices_win_over_legacy_endpoints() -> None:
    legacy = from_dict(
        Kind.ENDPOINTS,
        {"metadata": {"name": "db", "namespace": "n"}, "subsets": [{"addresses": [{"ip": "10.9.9.9"}]}]},
    )
    store = Store()
    store.apply([Upsert(svc("db", cluster_ip="None")), Upsert(legacy)])
    assert store.service("n", "db").addresses == ("10.9.9.9",)  # type: ignore[union-attr]
    store.apply([Upsert(eps("db-1", "db", "10.1.0.1"))])
    assert store.service("n", "db").addresses == ("10.1.0.1",)  # type: ignore[union-attr]
    store.apply([Delete(Kind.ENDPOINT_SLICE, "n", "db-1")])
    assert store.service("n", "db").addresses == ("10.9.9.9",)  # type: ignore[union-attr]


def test_slice_moving_to_another_service_updates_both() -> None:
    store = Store()
    store.apply([Upsert(svc("a", cluster_ip="None")), Upsert(svc("b", cluster_ip="None"))])
    store.apply([Upsert(eps("s", "a", "10.1.0.1"))])
    assert store.service("n", "a") is not None and store.service("n", "b") is None
    store.apply([Upsert(eps("s", "b", "10.1.0.1"))])
    assert store.service("n", "a") is None and store.service("n", "b") is not None


def test_serial_grows_only_on_visible_change_and_listeners_fire_once_per_batch() -> None:
    store = Store()
    calls: list[int] = []
    store.subscribe(lambda _changed: calls.append(store.serial))
    first = store.serial
    assert store.apply([Upsert(svc("a")), Upsert(svc("b", cluster_ip="10.0.0.2"))])
    assert store.serial > first and len(calls) == 1
    before = store.serial
    assert not store.apply([Upsert(svc("a"))])  # identical object
    assert not store.apply([Upsert(eps("orphan", "nothing", "10.5.5.5"))])  # no such service yet
    assert store.serial == before and len(calls) == 1


def test_replace_reconciles_deletions() -> None:
    store = Store()
    store.apply([Upsert(svc("a")), Upsert(svc("b", cluster_ip="10.0.0.2"))])
    store.apply([Replace(Kind.SERVICE, (svc("b", cluster_ip="10.0.0.2"),))])
    assert store.service("n", "a") is None and store.reverse("10.0.0.1") == []
    assert store.service("n", "b") is not None


def test_namespace_exists_from_namespace_or_services() -> None:
    store = Store()
    store.apply(
        [Upsert(from_dict(Kind.NAMESPACE, {"metadata": {"name": "empty"}})), Upsert(svc("a", ns="busy"))]
    )
    assert store.namespace_exists("empty") and store.namespace_exists("busy")
    assert not store.namespace_exists("other")
    store.apply([Delete(Kind.SERVICE, "busy", "a")])
    assert not store.namespace_exists("busy")


def test_synced_needs_every_required_kind() -> None:
    store = Store(required=[Kind.SERVICE, Kind.ENDPOINT_SLICE])
    store.apply([Synced(Kind.SERVICE)])
    assert not store.synced
    assert store.apply([Synced(Kind.ENDPOINT_SLICE)])  # becoming synced is a visible change
    assert store.synced


def test_shared_ip_lists_every_owner() -> None:
    store = Store()
    store.apply([Upsert(svc("a", cluster_ip="None")), Upsert(svc("b", cluster_ip="None"))])
    store.apply([Upsert(eps("a-1", "a", "10.1.0.1")), Upsert(eps("b-1", "b", "10.1.0.1"))])
    assert sorted(store.reverse("10.1.0.1")) == [(("n", "a"), "10-1-0-1"), (("n", "b"), "10-1-0-1")]
    store.apply([Delete(Kind.SERVICE, "n", "a")])
    assert store.reverse("10.1.0.1") == [(("n", "b"), "10-1-0-1")]


def test_an_address_moving_between_owners_keeps_the_reverse_index_exact() -> None:
    store = Store()
    store.apply([Upsert(svc("a", cluster_ip="None")), Upsert(svc("b", cluster_ip="None"))])
    store.apply([Upsert(eps("a-1", "a", "10.1.0.1")), Upsert(eps("b-1", "b", "10.1.0.1"))])
    store.apply([Upsert(eps("a-1", "a", "10.1.0.2"))])  # a lets go of 10.1.0.1: b owns it alone
    assert store.reverse("10.1.0.1") == [(("n", "b"), "10-1-0-1")]
    assert store.reverse("10.1.0.2") == [(("n", "a"), "10-1-0-2")]
    store.apply([Delete(Kind.SERVICE, "n", "b")])
    assert store.reverse("10.1.0.1") == []
    assert store.counts()["ReverseAddresses"] == 1


def test_an_update_that_changes_nothing_visible_is_no_change() -> None:
    store = Store()
    store.apply([Upsert(svc("h", cluster_ip="None")), Upsert(eps("h-a", "h", "10.1.0.1"))])
    store.apply([Upsert(eps("h-b", "h", "10.1.0.2"))])
    serial = store.serial
    not_ready = from_dict(
        Kind.ENDPOINT_SLICE,
        {
            "metadata": {"name": "h-a", "namespace": "n", "labels": {"kubernetes.io/service-name": "h"}},
            "endpoints": [
                {"addresses": ["10.1.0.1"]},
                {"addresses": ["10.1.0.9"], "conditions": {"ready": False}},
            ],
            "ports": [{"name": "http", "port": 8080}],
        },
    )
    assert not store.apply([Upsert(not_ready)])  # a not-ready endpoint more: the same records
    assert store.serial == serial
