"""The one parse of a question's name: each kind of name, its parts, and what is not under the zone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


LABELS = st.lists(st.binary(min_size=1, max_size=12).map(bytes.lower), max_size=8)
SUFFIXES = st.sampled_from(
    [(b"cluster", b"local"), (b"in-addr", b"arpa"), (b"ip6", b"arpa"), (b"local",), ()]
)


@settings(derandomize=True, database=None, deadline=None, max_examples=2000)
@given(LABELS, SUFFIXES)
def test_any_name_parses_under_the_zone_it_ends_in(labels: list[bytes], suffix: tuple[bytes, ...]) -> None:
    """Any bytes in any labels: the parse never fails, and a name is OUTSIDE exactly when its last
    labels are neither the zone's nor a reverse zone's."""
    parts = [*labels, *suffix]
    key = b"".join(bytes((len(part),)) + part for part in parts) + b"\0"
    name = PARSER.parse(key)
    inside = parts[-2:] in ([b"cluster", b"local"], [b"in-addr", b"arpa"], [b"ip6", b"arpa"])
    assert (name.kind is not NameKind.OUTSIDE) == inside, (parts, name)
    if name.kind in (NameKind.SERVICE, NameKind.ENDPOINT, NameKind.PORT):
        assert key.startswith(name.prefix + name.node), (parts, name)
        assert name.service.encode("latin-1") == parts[len(parts) - 5] and parts[len(parts) - 3] == b"svc"
