"""Conversion of API-shaped dicts into slim records."""

from __future__ import annotations

import pytest

from kubedns_py.cluster.objects import (
    Endpoint,
    EndpointGroup,
    Kind,
    ObjectError,
    Port,
    from_dict,
    normalize_ip,
    object_key,
    raw_object_key,
)


def test_service_dual_stack_normalises_ips_and_ports() -> None:
    svc = from_dict(
        Kind.SERVICE,
        {
            "metadata": {"name": "Web", "namespace": "Prod"},
            "spec": {
                "clusterIP": "10.0.0.1",
                "clusterIPs": ["10.0.0.1", "FD00:0:0::1"],
                "ports": [{"name": "HTTP", "port": 80}, {"port": 81, "protocol": "UDP"}],
            },
        },
    )
    assert svc.namespace == "prod" and svc.name == "web"  # type: ignore[union-attr]
    assert svc.cluster_ips == ("10.0.0.1", "fd00::1")  # type: ignore[union-attr]
    assert svc.ports == (Port("http", 80, "tcp"), Port("", 81, "udp"))  # type: ignore[union-attr]
    assert not svc.headless  # type: ignore[union-attr]


@pytest.mark.parametrize("spec", [{"clusterIP": "None"}, {"clusterIPs": ["None"]}, {}])
def test_headless_forms(spec: dict[str, object]) -> None:
    svc = from_dict(Kind.SERVICE, {"metadata": {"name": "h", "namespace": "n"}, "spec": spec})
    assert svc.headless and svc.cluster_ips == ()  # type: ignore[union-attr]


def test_external_name_requires_target() -> None:
    with pytest.raises(ObjectError, match=r"ExternalName without spec\.externalName"):
        from_dict(Kind.SERVICE, {"metadata": {"name": "x"}, "spec": {"type": "ExternalName"}})
    svc = from_dict(
        Kind.SERVICE, {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "A.B."}}
    )
    assert svc.external_name == "a.b" and svc.namespace == "default"  # type: ignore[union-attr]


def test_tolerate_unready_annotation_publishes_not_ready() -> None:
    svc = from_dict(
        Kind.SERVICE,
        {
            "metadata": {
                "name": "s",
                "annotations": {"service.alpha.kubernetes.io/tolerate-unready-endpoints": "true"},
            },
            "spec": {"clusterIP": "None"},
        },
    )
    assert svc.publish_not_ready  # type: ignore[union-attr]


def test_endpoint_slice_ready_unset_counts_as_ready() -> None:
    es = from_dict(
        Kind.ENDPOINT_SLICE,
        {
            "metadata": {"name": "s-1", "namespace": "n", "labels": {"kubernetes.io/service-name": "S"}},
            "endpoints": [
                {"addresses": ["10.0.0.1"]},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}, "hostname": "Pod-2"},
                {"addresses": ["not-an-ip"]},
            ],
            "ports": [{"name": "http", "port": 8080}, {"name": "all"}],
        },
    )
    assert es.service == "s"  # type: ignore[union-attr]
    assert es.groups == (  # type: ignore[union-attr]
        EndpointGroup(
            (
                Endpoint(("10.0.0.1",), None, True),
                Endpoint(("10.0.0.2",), "pod-2", False),
                Endpoint((), None, True),
            ),
            (Port("http", 8080, "tcp"),),
        ),
    )


def test_endpoints_subsets_keep_their_own_ports() -> None:
    ep = from_dict(
        Kind.ENDPOINTS,
        {
            "metadata": {"name": "s", "namespace": "n"},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1", "hostname": "a"}], "ports": [{"name": "x", "port": 1}]},
                {"notReadyAddresses": [{"ip": "10.0.0.2"}], "ports": [{"name": "y", "port": 2}]},
            ],
        },
    )
    assert ep.groups == (  # type: ignore[union-attr]
        EndpointGroup((Endpoint(("10.0.0.1",), "a", True),), (Port("x", 1, "tcp"),)),
        EndpointGroup((Endpoint(("10.0.0.2",), None, False),), (Port("y", 2, "tcp"),)),
    )


def test_pod_ips_from_pod_ips_or_pod_ip() -> None:
    pod = from_dict(Kind.POD, {"metadata": {"name": "p", "namespace": "n"}, "status": {"podIP": "10.1.1.1"}})
    assert pod.ips == ("10.1.1.1",)  # type: ignore[union-attr]
    pod = from_dict(
        Kind.POD,
        {"metadata": {"name": "p"}, "status": {"podIPs": [{"ip": "10.1.1.1"}, {"ip": "fd00::0001"}]}},
    )
    assert pod.ips == ("10.1.1.1", "fd00::1")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "obj", "message"),
    [
        (Kind.SERVICE, {}, "no metadata"),
        (Kind.SERVICE, {"metadata": {}}, "no metadata.name"),
        (Kind.SERVICE, {"metadata": {"name": "s"}, "spec": "x"}, "spec is not a mapping"),
        (Kind.SERVICE, {"metadata": {"name": "s"}, "spec": {"ports": "80"}}, "spec.ports is not a list"),
        (Kind.ENDPOINT_SLICE, {"metadata": {"name": "e"}, "endpoints": [1]}, "endpoint is not a mapping"),
        (Kind.ENDPOINTS, {"metadata": {"name": "e"}, "subsets": {}}, "subsets is not a list"),
        (Kind.POD, {"metadata": {"name": "p"}, "status": "Running"}, "status is not a mapping"),
        (Kind.NAMESPACE, [], "not a mapping"),
    ],
)
def test_malformed_objects_raise_a_clear_error(kind: Kind, obj: object, message: str) -> None:
    with pytest.raises(ObjectError, match=message):
        from_dict(kind, obj)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["a..b.example.com", "x" * 64 + ".com", "bad name.com", "-a.com"])
def test_external_names_must_be_dns_names(target: str) -> None:
    with pytest.raises(ObjectError, match="is not a DNS name"):
        from_dict(
            Kind.SERVICE,
            {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": target}},
        )


def test_addresses_with_odd_characters_are_not_addresses() -> None:
    assert normalize_ip("10.96.9.9\x00") is None
    assert normalize_ip("10.96.9.9\udc80") is None
    assert normalize_ip(" 10.96.9.9 ") == "10.96.9.9"


def test_raw_key_is_the_key_of_the_converted_object_even_when_the_rest_is_unusable() -> None:
    service = {"metadata": {"name": "Web", "namespace": "Shop"}, "spec": {"clusterIP": "10.0.0.1"}}
    assert raw_object_key(Kind.SERVICE, service) == object_key(from_dict(Kind.SERVICE, service))[1:]
    assert raw_object_key(Kind.SERVICE, {**service, "spec": "x"}) == ("shop", "web")
    assert raw_object_key(Kind.POD, {"metadata": {"name": "p"}}) == ("default", "p")
    assert raw_object_key(Kind.NAMESPACE, {"metadata": {"name": "Kube-System"}}) == ("", "kube-system")
    for unnamed in ({}, {"metadata": {"name": ""}}, {"metadata": {"name": "x", "namespace": 7}}, []):
        assert raw_object_key(Kind.SERVICE, unnamed) is None
