"""The one parse of a question's name: each kind of name, its parts, and what is not under the zone."""

from __future__ import annotations

import pytest

from kubedns_py.cluster.names import ClusterName, NameKind, NameParser
from kubedns_py.dnswire import encode

PARSER = NameParser("cluster.local")


def parse(name: str) -> ClusterName:
    return PARSER.parse(encode.name(name))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cluster.local", NameKind.APEX),
        ("dns-version.cluster.local", NameKind.DNS_VERSION),
        ("ns.dns.cluster.local", NameKind.NAMESERVER),
        ("dns.cluster.local", NameKind.DNS),
        ("svc.cluster.local", NameKind.SERVICES),
        ("pod.cluster.local", NameKind.PODS),
        ("default.svc.cluster.local", NameKind.SERVICE_NAMESPACE),
        ("default.pod.cluster.local", NameKind.POD_NAMESPACE),
        ("a.default.svc.cluster.local", NameKind.SERVICE),
        ("db-0.a.default.svc.cluster.local", NameKind.ENDPOINT),
        ("_tcp.a.default.svc.cluster.local", NameKind.ENDPOINT),
        ("_http._tcp.a.default.svc.cluster.local", NameKind.PORT),
        ("1-2-3-4.default.pod.cluster.local", NameKind.POD),
        ("_autopath-1-2-3-4.cluster.local", NameKind.AUTOPATH),
        ("4.3.2.1.in-addr.arpa", NameKind.REVERSE),
        ("10.in-addr.arpa", NameKind.REVERSE),
        ("foo.cluster.local", NameKind.NONE),
        ("a.b.cluster.local", NameKind.NONE),
        ("a.b.c.cluster.local", NameKind.NONE),
        ("a.b.c.d.cluster.local", NameKind.NONE),
        ("http._tcp.a.default.svc.cluster.local", NameKind.NONE),
        ("_http.tcp.a.default.svc.cluster.local", NameKind.NONE),
        ("x.1-2-3-4.default.pod.cluster.local", NameKind.NONE),
        ("a.default.svc.cluster.local.default.svc.cluster.local", NameKind.NONE),
        ("example.com", NameKind.OUTSIDE),
        ("local", NameKind.OUTSIDE),
        ("arpa", NameKind.OUTSIDE),
    ],
)
def test_each_kind_of_name(name: str, kind: NameKind) -> None:
    assert parse(name).kind is kind


def test_the_parts_of_service_names() -> None:
    service = parse("a.default.svc.cluster.local")
    assert (service.service, service.namespace, service.prefix) == ("a", "default", b"")
    endpoint = parse("db-0.a.default.svc.cluster.local")
    assert (endpoint.endpoint, endpoint.service, endpoint.namespace) == ("db-0", "a", "default")
    assert endpoint.node == encode.name("a.default.svc")[:-1]
    port = parse("_http._tcp.a.default.svc.cluster.local")
    assert (port.port, port.protocol, port.service, port.namespace) == ("http", "tcp", "a", "default")
    assert port.apex == len(encode.name("_http._tcp.a.default.svc")) - 1


def test_addresses_are_read_from_pod_autopath_and_reverse_names() -> None:
    assert parse("fd00--1-5.default.pod.cluster.local").ip == "fd00::1:5"
    assert parse("1-2-3-4.kube-system.pod.cluster.local").namespace == "kube-system"
    assert parse("web-1.default.pod.cluster.local").ip is None
    assert parse("_autopath-10-0-0-1.cluster.local").ip == "10.0.0.1"
    assert parse("4.3.2.1.in-addr.arpa").ip == "1.2.3.4"
    assert parse("1.0." + "0." * 30 + "ip6.arpa").ip == "::1"
    assert parse("10.in-addr.arpa").ip is None


def test_the_zone_name_inside_a_label_is_not_the_zone() -> None:
    # One 12-byte label ending in "\x07cluster": the bytes end as the zone's name does.
    assert PARSER.parse(b"\x0cabcd\x07cluster\x05local\x00").kind is NameKind.OUTSIDE
    assert PARSER.parse(b"\x0cabcd\x07in-addr\x04arpa\x00").kind is NameKind.OUTSIDE
