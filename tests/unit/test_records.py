"""Per-service record derivation."""

from __future__ import annotations

import pytest

from kubedns_py.cluster.objects import Endpoint, EndpointGroup, EndpointSet, Kind, Port, Service
from kubedns_py.cluster.records import SrvGroup, SrvTarget, dashed_ip, service_records, srv_targets


@pytest.mark.parametrize(
    ("ip", "label"),
    [("10.1.2.3", "10-1-2-3"), ("fd00::1", "fd00--1"), ("::1", "0--1"), ("fe80::", "fe80--0")],
)
def test_dashed_ip_labels_never_start_or_end_with_a_dash(ip: str, label: str) -> None:
    assert dashed_ip(ip) == label


def headless(publish_not_ready: bool = False) -> Service:
    return Service("n", "h", (), True, None, (Port("web", 80, "tcp"),), publish_not_ready)


def endpoint_set(*endpoints: Endpoint, ports: tuple[Port, ...] = (Port("web", 8080, "tcp"),)) -> EndpointSet:
    return EndpointSet(Kind.ENDPOINT_SLICE, "n", "h-1", "h", (EndpointGroup(endpoints, ports),), None)


def test_headless_hostnames_group_addresses_and_srv_uses_slice_ports() -> None:
    records = service_records(
        headless(),
        [
            endpoint_set(
                Endpoint(("10.0.0.1",), "web-0", True),
                Endpoint(("10.0.0.2",), "web-0", True),
                Endpoint(("10.0.0.3",), None, True),
                Endpoint(("10.0.0.4",), "web-9", False),
                Endpoint(("10.0.0.1",), None, True),
            )
        ],
    )
    assert records is not None
    assert records.addresses == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert records.hosts == {
        "web-0": ("10.0.0.1", "10.0.0.2"),
        "10-0-0-3": ("10.0.0.3",),
        "10-0-0-1": ("10.0.0.1",),
    }
    assert records.srv == {("web", "tcp"): (SrvGroup(8080, ("web-0", "10-0-0-3", "10-0-0-1")),)}
    assert srv_targets(records.srv[("web", "tcp")]) == [
        SrvTarget(8080, "web-0"),
        SrvTarget(8080, "10-0-0-3"),
        SrvTarget(8080, "10-0-0-1"),
    ]
    assert records.reverse() == [
        ("10.0.0.1", "web-0"),
        ("10.0.0.2", "web-0"),
        ("10.0.0.3", "10-0-0-3"),
        ("10.0.0.1", "10-0-0-1"),
    ]


def test_srv_targets_merge_groups_without_repeating_a_target() -> None:
    groups = [SrvGroup(80, ("a", "b")), SrvGroup(80, ("b", "c")), SrvGroup(81, ("a",)), SrvGroup(53, None)]
    assert srv_targets(groups) == [
        SrvTarget(80, "a"),
        SrvTarget(80, "b"),
        SrvTarget(80, "c"),
        SrvTarget(81, "a"),
        SrvTarget(53, None),
    ]


def test_publish_not_ready_includes_every_address() -> None:
    records = service_records(
        headless(publish_not_ready=True), [endpoint_set(Endpoint(("10.0.0.4",), None, False))]
    )
    assert records is not None and records.addresses == ("10.0.0.4",)


def test_headless_without_ready_endpoint_does_not_exist() -> None:
    assert service_records(headless(), [endpoint_set(Endpoint(("10.0.0.4",), None, False))]) is None
    assert service_records(headless(), []) is None


def test_unnamed_ports_make_no_srv() -> None:
    service = Service(
        "n", "c", ("10.0.0.9",), False, None, (Port("", 80, "tcp"), Port("dns", 53, "udp")), False
    )
    records = service_records(service, [])
    assert records is not None and list(records.srv) == [("dns", "udp")]
